// Nobody changes a principal with more authority than their own; bootstrap is the break
// glass that restores the tenant's admin; concurrent updates are settled, not crashed.
import { describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { PrincipalStatus, PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { backendsWaitingOnLocks, bootstrap, createTestTenant, withKey, withOpenTransaction } from "../harness.ts";
import { attempt, directory, keys, reasonOf, server, useServer } from "../rpc.ts";

useServer();

/** A principal with `permissions` and a key it owns, made by the tenant admin. */
async function principalWithKey(slug: string, adminKey: string, principalId: string, permissions: string[]): Promise<{ name: string; key: string }> {
  const parent = `tenants/${slug}`;
  const { principal } = await directory.createPrincipal({ parent, principalId, type: PrincipalType.USER, permissions }, withKey(adminKey));
  const { secret } = await keys.createKey({ parent, displayName: `${principalId} key`, permissions, expireDays: 30, owner: principal!.name }, withKey(adminKey));
  return { name: principal!.name, key: secret };
}

describe("changing a principal", () => {
  test("when a directory:write key tries to suspend or strip the admin, then PermissionDenied and the admin is unchanged", async () => {
    const t = await createTestTenant(server);
    const bob = await principalWithKey(t.slug, t.adminKey, "bob", ["directory:write"]);
    const adminName = `tenants/${t.slug}/principals/admin`;
    for (const change of [
      { principal: { name: adminName, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } },
      { principal: { name: adminName, permissions: [] }, updateMask: { paths: ["permissions"] } },
    ]) {
      const err = await attempt(directory.updatePrincipal(change, withKey(bob.key)));
      expect(err?.code).toBe(Code.PermissionDenied);
      expect(reasonOf(err)).toBe("PERMISSIONS_EXCEED_CALLER");
    }
    const { principal } = await directory.getPrincipal({ name: adminName }, withKey(t.adminKey));
    expect(principal).toMatchObject({ status: PrincipalStatus.ACTIVE, permissions: ["*:write"] });
  });

  test("when a directory:write key changes a principal holding no more than it, then the change is made", async () => {
    const t = await createTestTenant(server);
    const bob = await principalWithKey(t.slug, t.adminKey, "bob", ["directory:write"]);
    const { principal: intern } = await directory.createPrincipal({ parent: `tenants/${t.slug}`, principalId: "intern", type: PrincipalType.USER, permissions: ["directory:read"] }, withKey(t.adminKey));
    const { principal } = await directory.updatePrincipal({ principal: { name: intern!.name, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(bob.key));
    expect(principal?.status).toBe(PrincipalStatus.SUSPENDED);
  });

  test("when 20 updates of one principal race, then each is OK or Aborted, never Internal", async () => {
    const t = await createTestTenant(server);
    const { principal } = await directory.createPrincipal({ parent: `tenants/${t.slug}`, principalId: "busy", type: PrincipalType.USER, permissions: [] }, withKey(t.adminKey));
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        attempt(directory.updatePrincipal({ principal: { name: principal!.name, displayName: `name ${i}` }, updateMask: { paths: ["display_name"] } }, withKey(t.adminKey))),
      ),
    );
    const codes = results.map((e) => (e === undefined ? "OK" : Code[e.code]));
    expect(codes.filter((c) => c !== "OK" && c !== "Aborted")).toEqual([]);
    expect(codes).toContain("OK");
    for (const e of results) if (e !== undefined) expect(reasonOf(e)).toBe("CONCURRENT_MODIFICATION");
  });
});

describe("self-suspension through a key made for someone else", () => {
  test("when a principal uses a key it made for a peer to suspend itself, then FailedPrecondition SELF_SUSPENSION and it stays active", async () => {
    const t = await createTestTenant(server);
    const perms = ["directory:write", "keys:write", "harden_runner:write"];
    const pat = await principalWithKey(t.slug, t.adminKey, "pat", perms);
    const { principal: quinn } = await directory.createPrincipal({ parent: `tenants/${t.slug}`, principalId: "quinn", type: PrincipalType.USER, permissions: perms }, withKey(t.adminKey));
    const { secret: forQuinn } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "made for quinn", permissions: perms, expireDays: 7, owner: quinn!.name }, withKey(pat.key));
    const err = await attempt(directory.updatePrincipal({ principal: { name: pat.name, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(forQuinn)));
    expect([err === undefined ? "OK" : Code[err.code], reasonOf(err)]).toEqual(["FailedPrecondition", "SELF_SUSPENSION"]);
    const { principal } = await directory.getPrincipal({ name: pat.name }, withKey(t.adminKey));
    expect(principal?.status).toBe(PrincipalStatus.ACTIVE);
  });
});

describe("changing a principal while its permissions change", () => {
  test("when the target is raised to admin while a lesser principal suspends it, then the check sees the raise: PermissionDenied and the target stays active", async () => {
    const t = await createTestTenant(server);
    const bob = await principalWithKey(t.slug, t.adminKey, "bob", ["directory:write", "harden_runner:write"]);
    const { principal: carol } = await directory.createPrincipal({ parent: `tenants/${t.slug}`, principalId: "carol", type: PrincipalType.USER, permissions: ["harden_runner:read"] }, withKey(t.adminKey));
    // An administrator's raise of carol, in a transaction held open until the suspension waits on it.
    const raise = `update principal set permissions = '{*:write}', version = version + 1 where tenant_id = (select id from tenant where slug = ?) and principal_id = 'carol'`;
    const { suspension } = await withOpenTransaction(server, raise, [t.slug], async () => {
      const pending = attempt(directory.updatePrincipal({ principal: { name: carol!.name, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(bob.key)));
      // Wait (bounded) until the suspension waits on carol's row lock, then let the raise commit.
      const deadline = Date.now() + 10_000;
      while ((await backendsWaitingOnLocks(server, "%principal%")) === 0) {
        if (Date.now() > deadline) throw new Error("the suspension never waited on the principal's row");
        await new Promise((resolve) => setImmediate(resolve));
      }
      return { suspension: pending }; // wrapped: awaited only after the raise commits
    });
    const err = await suspension;
    expect([err === undefined ? "OK" : Code[err.code], reasonOf(err)]).toEqual(["PermissionDenied", "PERMISSIONS_EXCEED_CALLER"]);
    const { principal } = await directory.getPrincipal({ name: carol!.name }, withKey(t.adminKey));
    expect(principal).toMatchObject({ status: PrincipalStatus.ACTIVE, permissions: ["*:write"] });
  });
});

describe("bootstrap as break glass", () => {
  test("when another administrator (whose keys all descend from the admin) tries to suspend or strip it, then FailedPrecondition and the tenant keeps working", async () => {
    const t = await createTestTenant(server);
    const root = await principalWithKey(t.slug, t.adminKey, "root2", ["*:write"]);
    const { secret: rootOwn } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "root2 own", permissions: ["*:write"], expireDays: 7 }, withKey(root.key));
    const adminName = `tenants/${t.slug}/principals/admin`;
    for (const key of [root.key, rootOwn]) {
      const suspend = await attempt(directory.updatePrincipal({ principal: { name: adminName, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(key)));
      expect(reasonOf(suspend)).toBe("SELF_SUSPENSION");
      const strip = await attempt(directory.updatePrincipal({ principal: { name: adminName, permissions: ["keys:read"] }, updateMask: { paths: ["permissions"] } }, withKey(key)));
      expect(reasonOf(strip)).toBe("BOUNDING_PRINCIPAL");
    }
    // Changing its display name is no reduction of its authority.
    expect(await attempt(directory.updatePrincipal({ principal: { name: adminName, displayName: "Tenant root" }, updateMask: { paths: ["display_name"] } }, withKey(rootOwn)))).toBeUndefined();
    expect((await keys.verifyKey({ key: rootOwn, requiredPermissions: ["keys:write"] })).result).toBe(VerifyResult.VALID);
  });

  test("when the admin principal was suspended and stripped anyway (e.g. in the database), then bootstrap restores it and its keys work again", async () => {
    const t = await createTestTenant(server);
    const adminName = `tenants/${t.slug}/principals/admin`;
    await server.store.db.orm.driver.getConnection().execute(
      `update principal set status = 'suspended', permissions = '{}', version = version + 1 where principal_id = 'admin' and tenant_id = (select id from tenant where slug = ?)`, [t.slug], "run",
    );
    await server.verification.listener?.catchUp();
    expect(reasonOf(await attempt(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(t.adminKey))))).toBe("PRINCIPAL_SUSPENDED");

    const fresh = await bootstrap(server, t.slug);
    for (const key of [fresh, t.adminKey]) {
      expect(await attempt(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(key)))).toBeUndefined();
    }
    const { principal } = await directory.getPrincipal({ name: adminName }, withKey(fresh));
    expect(principal).toMatchObject({ status: PrincipalStatus.ACTIVE, permissions: ["*:write"] });
  });
});
