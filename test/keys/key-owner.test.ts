// Keys made for another principal: the owner bounds the key, now and later.
import { describe, expect, test } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { PrincipalStatus, PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, withKey } from "../harness.ts";
import { reasonOf, server, useServer } from "../rpc.ts";

useServer();

describe("CreateKey with an owner", () => {
  test("when an admin makes a key for a principal, then the principal owns it and its permissions bound the key", async () => {
    const t = await createTestTenant(server);
    const keys = server.client(KeyService);
    const directory = server.client(DirectoryService);
    const admin = withKey(t.adminKey);
    const { principal } = await directory.createPrincipal(
      { parent: `tenants/${t.slug}`, principalId: "ci-bot", type: PrincipalType.SERVICE_ACCOUNT, permissions: ["harden_runner:write", "keys:read"] },
      admin,
    );
    const owner = principal!.name;
    const made = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "bot key", permissions: ["harden_runner:write"], expireDays: 30, owner }, admin);
    expect(made.key?.owner).toBe(owner);
    const valid = await keys.verifyKey({ key: made.secret, requiredPermissions: ["harden_runner:write"] });
    expect(valid.result).toBe(VerifyResult.VALID);
    expect(valid.owner).toBe(owner);

    // More than the owner holds is refused, even though the admin holds it.
    const err = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "too much", permissions: ["audit:read"], expireDays: 30, owner }, admin).catch((e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    expect(reasonOf(err)).toBe("PERMISSIONS_EXCEED_OWNER");

    // Reducing the owner shrinks the key at once.
    await directory.updatePrincipal({ principal: { name: owner, permissions: ["harden_runner:read"] }, updateMask: { paths: ["permissions"] } }, admin);
    const reduced = await keys.verifyKey({ key: made.secret, requiredPermissions: ["harden_runner:write"] });
    expect(reduced.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
    expect(reduced.missingPermissions).toEqual(["harden_runner:write"]);
    expect((await keys.verifyKey({ key: made.secret, requiredPermissions: ["harden_runner:read"] })).result).toBe(VerifyResult.VALID);

    // A suspended principal cannot be given new keys.
    await directory.updatePrincipal({ principal: { name: owner, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, admin);
    const suspended = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "late", permissions: ["harden_runner:read"], expireDays: 7, owner }, admin).catch((e: unknown) => e);
    expect(reasonOf(suspended)).toBe("OWNER_SUSPENDED");
  });

  test("when the owner does not exist or is malformed, then NotFound / InvalidArgument and no key is made", async () => {
    const t = await createTestTenant(server);
    const keys = server.client(KeyService);
    const admin = withKey(t.adminKey);
    const missing = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "k", permissions: ["keys:read"], expireDays: 7, owner: `tenants/${t.slug}/principals/nobody` }, admin).catch((e: unknown) => e);
    expect((missing as ConnectError).code).toBe(Code.NotFound);
    const malformed = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "k", permissions: ["keys:read"], expireDays: 7, owner: "principals/x" }, admin).catch((e: unknown) => e);
    expect((malformed as ConnectError).code).toBe(Code.InvalidArgument);
    const { keys: listed } = await keys.listKeys({ parent: `tenants/${t.slug}` }, admin);
    expect(listed.filter((k) => k.displayName === "k")).toHaveLength(0);
  });
});
