// The key lifecycle end to end through the real server: create, verify, revoke, rotate,
// clone, expiry (with the injectable clock), every VerifyKey verdict, owner changes,
// listing filters and pagination, last-used times.
import { describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { toJsonString } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { PrincipalStatus, PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { KeyKind, KeySchema, KeySlot, KeyState } from "../../gen/keyward/v1/key_pb.ts";
import { VerifyResult, type CreateKeyResponse, type VerifyKeyResponse } from "../../gen/keyward/v1/key_service_pb.ts";
import { KeyKindName, mintKey, parseKey, withChecksum } from "../../src/keys/key-format.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { directory, keyIdOf, keys, reasonOf, rpcError, server, useServer, verifyPaths } from "../rpc.ts";

const dayMs = 24 * 60 * 60 * 1000;

function ms(ts: Timestamp | undefined): number | undefined {
  return ts === undefined ? undefined : timestampDate(ts).getTime();
}

/** A well-formed key (valid checksum) with `keyId` but a secret nobody was given. */
function forgeWithKeyId(keyId: string, kind: KeyKindName = KeyKindName.FINE_GRAINED): string {
  const other = mintKey(server.config.keyPrefix, kind).raw;
  const [head, , secret] = other.slice(0, -6).split("_");
  return withChecksum(`${head}_${keyId}_${secret}`);
}

async function createKey(
  t: TestTenant,
  opts: { name?: string; permissions?: string[]; org?: string; expireDays?: number; caller?: string } = {},
): Promise<CreateKeyResponse> {
  return keys.createKey(
    {
      parent: `tenants/${t.slug}`,
      displayName: opts.name ?? `key-${Math.random().toString(36).slice(2, 10)}`,
      permissions: opts.permissions ?? ["keys:read"],
      org: opts.org ?? "",
      expireDays: opts.expireDays ?? 30,
    },
    withKey(opts.caller ?? t.adminKey),
  );
}

async function verify(key: string, requiredPermissions: string[] = [], org = ""): Promise<VerifyKeyResponse> {
  return keys.verifyKey({ key, requiredPermissions, org });
}

async function createOrg(t: TestTenant, slug: string): Promise<void> {
  await directory.createOrganization({ parent: `tenants/${t.slug}`, slug }, withKey(t.adminKey));
}

describe.each(verifyPaths)("VerifyKey through %s", (_path, env) => {
  useServer({ env });

  describe("create and revoke", () => {
    test("when a fine-grained key is created, then it verifies VALID with its identity, and GetKey shows it ACTIVE without the secret", async () => {
      const t = await createTestTenant(server);
      const now = server.clock.now().getTime();
      const created = await createKey(t, { name: "ci deploy", permissions: ["policies:write", "keys:read"], expireDays: 30 });
      const key = created.key!;
      expect(created.secret.startsWith(`${server.config.keyPrefix}fg_${key.keyId}_`)).toBe(true);
      expect(key.name).toBe(`tenants/${t.slug}/keys/${key.keyId}`);
      expect(key.hint).toBe(created.secret.slice(-4));
      expect(ms(key.expireTime)).toBe(now + 30 * dayMs);

      const res = await verify(created.secret, ["keys:read"]);
      expect(res.result).toBe(VerifyResult.VALID);
      expect(res.keyId).toBe(key.keyId);
      expect(res.kind).toBe(KeyKind.FINE_GRAINED);
      expect(res.tenant).toBe(t.slug);
      expect(res.org).toBe("");
      expect(res.owner).toBe(`tenants/${t.slug}/principals/admin`);
      expect([...res.permissions].sort()).toEqual(["keys:read", "policies:write"]);
      expect(ms(res.expireTime)).toBe(now + 30 * dayMs);
      expect(res.token).toBe(false);
      expect(res.missingPermissions).toEqual([]);

      const got = (await keys.getKey({ name: key.name }, withKey(t.adminKey))).key!;
      expect(got.state).toBe(KeyState.ACTIVE);
      expect(got.displayName).toBe("ci deploy");
      expect(got.kind).toBe(KeyKind.FINE_GRAINED);
      expect(got.slot).toBe(KeySlot.UNSPECIFIED);
      expect([...got.permissions].sort()).toEqual(["keys:read", "policies:write"]);
      expect(got.owner).toBe(`tenants/${t.slug}/principals/admin`);
      expect(got.revokeTime).toBeUndefined();
      expect(toJsonString(KeySchema, got)).not.toContain(created.secret.split("_")[2]);
    });

    test("when a key is revoked with a reason, then it verifies REVOKED and GetKey shows state, time and reason", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t, { permissions: ["keys:read"] });
      expect((await verify(created.secret)).result).toBe(VerifyResult.VALID);

      const revokedAt = server.clock.now().getTime();
      const revoked = (await keys.revokeKey({ name: created.key!.name, reason: "leaked in a build log" }, withKey(t.adminKey))).key!;
      expect(revoked.state).toBe(KeyState.REVOKED);

      expect((await verify(created.secret)).result).toBe(VerifyResult.REVOKED);
      expect((await verify(created.secret, ["keys:read"])).result).toBe(VerifyResult.REVOKED);
      const got = (await keys.getKey({ name: created.key!.name }, withKey(t.adminKey))).key!;
      expect(got.state).toBe(KeyState.REVOKED);
      expect(ms(got.revokeTime)).toBe(revokedAt);
      expect(got.revokeReason).toBe("leaked in a build log");
    });

    test("when a revoked key is revoked again, then FailedPrecondition ALREADY_REVOKED and the first reason is kept", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t);
      await keys.revokeKey({ name: created.key!.name, reason: "first" }, withKey(t.adminKey));
      const err = await rpcError(keys.revokeKey({ name: created.key!.name, reason: "second" }, withKey(t.adminKey)));
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(reasonOf(err)).toBe("ALREADY_REVOKED");
      const got = (await keys.getKey({ name: created.key!.name }, withKey(t.adminKey))).key!;
      expect(got.revokeReason).toBe("first");
    });

    test("when a revoked key is used as a management credential, then Unauthenticated", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t, { permissions: ["keys:read"] });
      await keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(created.secret));
      await keys.revokeKey({ name: created.key!.name, reason: "done" }, withKey(t.adminKey));
      const err = await rpcError(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(created.secret)));
      expect(err.code).toBe(Code.Unauthenticated);
      expect(err.rawMessage).toBe("Missing or invalid API key");
    });
  });

  describe("rotate", () => {
    test("when the admin primary slot is rotated twice, then the first new value is REVOKED, the secondary stays VALID and `replaced` names the old value", async () => {
      const t = await createTestTenant(server);
      const bootstrapName = `tenants/${t.slug}/keys/${keyIdOf(t.adminKey)}`;
      const rotate = (slot: KeySlot, caller: string) => keys.rotateKey({ parent: `tenants/${t.slug}`, kind: KeyKind.ADMIN, slot }, withKey(caller));

      const secondary = await rotate(KeySlot.SECONDARY, t.adminKey);
      expect(secondary.replaced).toBe("");
      expect(secondary.key!.slot).toBe(KeySlot.SECONDARY);
      expect(secondary.key!.kind).toBe(KeyKind.ADMIN);
      expect(secondary.secret.startsWith(`${server.config.keyPrefix}adm_${secondary.key!.keyId}_`)).toBe(true);

      const first = await rotate(KeySlot.PRIMARY, t.adminKey);
      expect(first.replaced).toBe(bootstrapName);
      expect((await verify(t.adminKey)).result).toBe(VerifyResult.REVOKED);

      const rotatedAt = server.clock.now().getTime();
      const second = await rotate(KeySlot.PRIMARY, secondary.secret);
      expect(second.replaced).toBe(first.key!.name);
      expect(second.key!.slot).toBe(KeySlot.PRIMARY);
      expect(ms(second.key!.lastRotateTime)).toBe(rotatedAt);
      expect(second.key!.expireTime).toBeUndefined();

      expect((await verify(first.secret)).result).toBe(VerifyResult.REVOKED);
      const sec = await verify(secondary.secret, ["keys:write", "directory:write"]);
      expect(sec.result).toBe(VerifyResult.VALID);
      const now = await verify(second.secret, ["keys:write"]);
      expect(now.result).toBe(VerifyResult.VALID);
      expect(now.kind).toBe(KeyKind.ADMIN);
      expect(now.permissions).toEqual(["*:write"]);

      const old = (await keys.getKey({ name: first.key!.name }, withKey(second.secret))).key!;
      expect(old.state).toBe(KeyState.REVOKED);
      expect(old.revokeReason).toBe("rotated");
      const got = (await keys.getKey({ name: second.key!.name }, withKey(second.secret))).key!;
      expect(got.state).toBe(KeyState.ACTIVE);
      expect(ms(got.lastRotateTime)).toBe(rotatedAt);

      const refused = await rpcError(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(t.adminKey)));
      expect(refused.code).toBe(Code.Unauthenticated);
    });

    test("when a read-only slot is rotated, then its value verifies reads and not writes", async () => {
      const t = await createTestTenant(server);
      const ro = await keys.rotateKey({ parent: `tenants/${t.slug}`, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY }, withKey(t.adminKey));
      expect(ro.secret.startsWith(`${server.config.keyPrefix}ro_`)).toBe(true);
      expect((await verify(ro.secret, ["policies:read", "keys:read"])).result).toBe(VerifyResult.VALID);
      const denied = await verify(ro.secret, ["keys:write"]);
      expect(denied.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
      expect(denied.missingPermissions).toEqual(["keys:write"]);
    });
  });

  describe("clone", () => {
    test("when a key is cloned, then the clone keeps permissions and org, verifies VALID, names its source, and the source stays valid until revoked", async () => {
      const t = await createTestTenant(server);
      await createOrg(t, "infra");
      const source = await createKey(t, { name: "deployer", permissions: ["keys:read", "audit:read"], org: "infra", expireDays: 90 });
      const clonedAt = server.clock.now().getTime();
      const clone = await keys.cloneKey({ name: source.key!.name, displayName: "deployer v2" }, withKey(t.adminKey));
      const key = clone.key!;
      expect(key.keyId).not.toBe(source.key!.keyId);
      expect(clone.secret).not.toBe(source.secret);
      expect(key.kind).toBe(KeyKind.FINE_GRAINED);
      expect(key.displayName).toBe("deployer v2");
      expect([...key.permissions].sort()).toEqual(["audit:read", "keys:read"]);
      expect(key.org).toBe("infra");
      expect(key.clonedFrom).toBe(source.key!.name);
      expect(ms(key.expireTime)).toBe(clonedAt + 90 * dayMs);

      const res = await verify(clone.secret, ["audit:read"], "infra");
      expect(res.result).toBe(VerifyResult.VALID);
      expect(res.keyId).toBe(key.keyId);
      expect(res.org).toBe("infra");
      expect([...res.permissions].sort()).toEqual(["audit:read", "keys:read"]);

      expect((await verify(source.secret, ["audit:read"], "infra")).result).toBe(VerifyResult.VALID);
      await keys.revokeKey({ name: source.key!.name, reason: "replaced by its clone" }, withKey(t.adminKey));
      expect((await verify(source.secret, ["audit:read"], "infra")).result).toBe(VerifyResult.REVOKED);
      expect((await verify(clone.secret, ["audit:read"], "infra")).result).toBe(VerifyResult.VALID);
      const got = (await keys.getKey({ name: key.name }, withKey(t.adminKey))).key!;
      expect(got.clonedFrom).toBe(source.key!.name);
    });

    test("when a revoked key is cloned, then FailedPrecondition and no key is made", async () => {
      const t = await createTestTenant(server);
      const source = await createKey(t, { name: "old" });
      await keys.revokeKey({ name: source.key!.name, reason: "gone" }, withKey(t.adminKey));
      const err = await rpcError(keys.cloneKey({ name: source.key!.name, displayName: "revived" }, withKey(t.adminKey)));
      expect(err.code).toBe(Code.FailedPrecondition);
      const list = await keys.listKeys({ parent: `tenants/${t.slug}`, kind: KeyKind.FINE_GRAINED }, withKey(t.adminKey));
      expect(list.keys.map((k) => k.displayName)).toEqual(["old"]);
    });

    test("when a slot key is cloned, then FailedPrecondition NOT_CLONEABLE", async () => {
      const t = await createTestTenant(server);
      const err = await rpcError(keys.cloneKey({ name: `tenants/${t.slug}/keys/${keyIdOf(t.adminKey)}`, displayName: "admin copy" }, withKey(t.adminKey)));
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(reasonOf(err)).toBe("NOT_CLONEABLE");
    });
  });

  describe("expiry", () => {
    test("when a 7-day key is 6 days old, then VALID; at 7 days, then EXPIRED, and GetKey says EXPIRED", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t, { permissions: ["keys:read"], expireDays: 7 });
      server.clock.advance(6 * dayMs);
      expect((await verify(created.secret, ["keys:read"])).result).toBe(VerifyResult.VALID);
      server.clock.advance(dayMs);
      expect((await verify(created.secret, ["keys:read"])).result).toBe(VerifyResult.EXPIRED);
      expect((await verify(created.secret)).result).toBe(VerifyResult.EXPIRED);
      const got = (await keys.getKey({ name: created.key!.name }, withKey(t.adminKey))).key!;
      expect(got.state).toBe(KeyState.EXPIRED);
      const err = await rpcError(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(created.secret)));
      expect(err.code).toBe(Code.Unauthenticated);
    });

    test("when listing with a state filter, then ACTIVE, EXPIRED and REVOKED each return the right keys", async () => {
      const t = await createTestTenant(server);
      const short = await createKey(t, { name: "short", expireDays: 7 });
      const long = await createKey(t, { name: "long", expireDays: 30 });
      const revoked = await createKey(t, { name: "revoked", expireDays: 30 });
      const revokedShort = await createKey(t, { name: "revoked-short", expireDays: 7 });
      for (const k of [revoked, revokedShort]) await keys.revokeKey({ name: k.key!.name, reason: "test" }, withKey(t.adminKey));
      server.clock.advance(7 * dayMs);

      const names = async (state: KeyState) => {
        const res = await keys.listKeys({ parent: `tenants/${t.slug}`, kind: KeyKind.FINE_GRAINED, state }, withKey(t.adminKey));
        return res.keys.map((k) => k.name).sort();
      };
      expect(await names(KeyState.ACTIVE)).toEqual([long.key!.name]);
      expect(await names(KeyState.EXPIRED)).toEqual([short.key!.name]);
      expect(await names(KeyState.REVOKED)).toEqual([revoked.key!.name, revokedShort.key!.name].sort());
      expect(await names(KeyState.UNSPECIFIED)).toEqual([short, long, revoked, revokedShort].map((k) => k.key!.name).sort());

      const all = await keys.listKeys({ parent: `tenants/${t.slug}`, kind: KeyKind.FINE_GRAINED }, withKey(t.adminKey));
      const stateOf = new Map(all.keys.map((k) => [k.name, k.state]));
      expect(stateOf.get(short.key!.name)).toBe(KeyState.EXPIRED);
      expect(stateOf.get(long.key!.name)).toBe(KeyState.ACTIVE);
      expect(stateOf.get(revokedShort.key!.name)).toBe(KeyState.REVOKED);
    });
  });

  describe("verify results", () => {
    test("when the key is garbage, has one checksum character changed, or has another deployment's prefix, then MALFORMED", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t);
      const last = created.secret.slice(-1);
      const tampered = created.secret.slice(0, -1) + (last === "A" ? "B" : "A");
      const foreign = mintKey("acme", KeyKindName.FINE_GRAINED).raw;
      const renamed = `zz${created.secret.slice(server.config.keyPrefix.length)}`;
      for (const key of ["hello", "Bearer x", tampered, foreign, renamed]) {
        const res = await verify(key, ["keys:read"]);
        expect({ key, result: res.result }).toEqual({ key, result: VerifyResult.MALFORMED });
        expect(res.keyId).toBe("");
        expect(res.tenant).toBe("");
      }
      expect((await verify(created.secret)).result).toBe(VerifyResult.VALID);
    });

    test("when a well-formed key's id does not exist, or the id exists with another secret or kind, then NOT_FOUND revealing nothing", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t, { permissions: ["keys:read"] });
      const unknown = mintKey(server.config.keyPrefix, KeyKindName.FINE_GRAINED).raw;
      const wrongSecret = forgeWithKeyId(created.key!.keyId);
      const wrongKind = forgeWithKeyId(created.key!.keyId, KeyKindName.ADMIN);
      for (const key of [unknown, wrongSecret, wrongKind]) {
        expect(parseKey(server.config.keyPrefix, key)).toBeDefined();
        const res = await verify(key, ["keys:read"]);
        expect(res.result).toBe(VerifyResult.NOT_FOUND);
        expect(res.keyId).toBe("");
        expect(res.tenant).toBe("");
        expect(res.owner).toBe("");
        expect(res.permissions).toEqual([]);
      }
      expect((await verify(created.secret, ["keys:read"])).result).toBe(VerifyResult.VALID);
    });

    test("when a required permission is not held, then INSUFFICIENT_PERMISSIONS lists exactly the missing ones", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t, { permissions: ["keys:read", "audit:write"] });
      const res = await verify(created.secret, ["keys:read", "policies:read", "audit:read", "keys:write", "directory:read"]);
      expect(res.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
      expect([...res.missingPermissions].sort()).toEqual(["directory:read", "keys:write", "policies:read"]);
      expect(res.keyId).toBe(created.key!.keyId);
      expect([...res.permissions].sort()).toEqual(["audit:write", "keys:read"]);
    });

    test("when an org-scoped key is verified for another org or for no org, then WRONG_SCOPE; for its own org, then VALID", async () => {
      const t = await createTestTenant(server);
      await createOrg(t, "infra");
      await createOrg(t, "web");
      const created = await createKey(t, { permissions: ["keys:read"], org: "infra" });
      expect(created.key!.org).toBe("infra");
      const other = await verify(created.secret, ["keys:read"], "web");
      expect(other.result).toBe(VerifyResult.WRONG_SCOPE);
      expect(other.org).toBe("infra");
      expect((await verify(created.secret, ["keys:read"], "")).result).toBe(VerifyResult.WRONG_SCOPE);
      expect((await verify(created.secret, [], "nowhere")).result).toBe(VerifyResult.WRONG_SCOPE);
      const own = await verify(created.secret, ["keys:read"], "infra");
      expect(own.result).toBe(VerifyResult.VALID);
      expect(own.org).toBe("infra");
    });

    test("when a tenant-scoped key is verified for any org, then VALID", async () => {
      const t = await createTestTenant(server);
      await createOrg(t, "infra");
      const created = await createKey(t, { permissions: ["keys:read"] });
      for (const org of ["", "infra", "web"]) {
        const res = await verify(created.secret, ["keys:read"], org);
        expect({ org, result: res.result }).toEqual({ org, result: VerifyResult.VALID });
        expect(res.org).toBe("");
      }
    });

    test("when permissions are compared, then write implies read, *:read reads all, *:write does everything", async () => {
      const t = await createTestTenant(server);
      const writer = (await createKey(t, { permissions: ["keys:write"] })).secret;
      const readAll = (await createKey(t, { permissions: ["*:read"] })).secret;
      const writeAll = (await createKey(t, { permissions: ["*:write"] })).secret;
      const cases: [string, string[], VerifyResult, string[]][] = [
        [writer, ["keys:read"], VerifyResult.VALID, []],
        [writer, ["keys:write", "keys:read"], VerifyResult.VALID, []],
        [writer, ["policies:read"], VerifyResult.INSUFFICIENT_PERMISSIONS, ["policies:read"]],
        [writer, ["*:read"], VerifyResult.INSUFFICIENT_PERMISSIONS, ["*:read"]],
        [readAll, ["policies:read", "secure_registry:read", "audit:read"], VerifyResult.VALID, []],
        [readAll, ["*:read"], VerifyResult.VALID, []],
        [readAll, ["policies:write"], VerifyResult.INSUFFICIENT_PERMISSIONS, ["policies:write"]],
        [readAll, ["*:write"], VerifyResult.INSUFFICIENT_PERMISSIONS, ["*:write"]],
        [writeAll, ["audit:write", "harden_runner:read", "*:read", "*:write"], VerifyResult.VALID, []],
      ];
      for (const [key, required, result, missing] of cases) {
        const res = await verify(key, required);
        expect({ required, result: res.result, missing: res.missingPermissions }).toEqual({ required, result, missing });
      }
      expect((await verify(readAll)).permissions).toEqual(["*:read"]);
      expect((await verify(writeAll)).permissions).toEqual(["*:write"]);
    });

    test("when the owner's permissions are reduced after the key was made, then the key's effective permissions shrink", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t, { permissions: ["keys:read", "policies:write", "audit:read"] });
      expect((await verify(created.secret, ["policies:write"])).result).toBe(VerifyResult.VALID);

      const admin = `tenants/${t.slug}/principals/admin`;
      await directory.updatePrincipal(
        { principal: { name: admin, permissions: ["directory:write", "keys:write", "audit:read"] }, updateMask: { paths: ["permissions"] } },
        withKey(t.adminKey),
      );
      const res = await verify(created.secret, ["policies:write"]);
      expect(res.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
      expect(res.missingPermissions).toEqual(["policies:write"]);
      expect([...res.permissions].sort()).toEqual(["audit:read", "keys:read"]);
      expect((await verify(created.secret, ["keys:read", "audit:read"])).result).toBe(VerifyResult.VALID);
      // The stored grant is unchanged: only the effective permissions shrank.
      const got = (await keys.getKey({ name: created.key!.name }, withKey(t.adminKey))).key!;
      expect([...got.permissions].sort()).toEqual(["audit:read", "keys:read", "policies:write"]);

      // Restoring *:write is self-escalation now: the admin credential no longer holds it.
      const err = await rpcError(
        directory.updatePrincipal({ principal: { name: admin, permissions: ["*:write"] }, updateMask: { paths: ["permissions"] } }, withKey(t.adminKey)),
      );
      expect(err.code).toBe(Code.PermissionDenied);
      expect((await verify(created.secret, ["policies:write"])).result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
    });

    test("when the admin principal tries to suspend itself, then FailedPrecondition SELF_SUSPENSION and its keys keep working", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t, { permissions: ["keys:read"] });
      const err = await rpcError(
        directory.updatePrincipal(
          { principal: { name: `tenants/${t.slug}/principals/admin`, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } },
          withKey(t.adminKey),
        ),
      );
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(reasonOf(err)).toBe("SELF_SUSPENSION");
      const admin = await directory.getPrincipal({ name: `tenants/${t.slug}/principals/admin` }, withKey(t.adminKey));
      expect(admin.principal!.status).toBe(PrincipalStatus.ACTIVE);
      expect((await verify(created.secret, ["keys:read"])).result).toBe(VerifyResult.VALID);
    });

    test("when another principal's permissions are reduced and restored, then its key's effective permissions follow", async () => {
      const t = await createTestTenant(server);
      const name = `tenants/${t.slug}/principals/deployer`;
      await directory.createPrincipal(
        { parent: `tenants/${t.slug}`, principalId: "deployer", type: PrincipalType.SERVICE_ACCOUNT, permissions: ["keys:read", "policies:write"] },
        withKey(t.adminKey),
      );
      const created = await keys.createKey(
        { parent: `tenants/${t.slug}`, displayName: "deployer key", permissions: ["keys:read", "policies:write"], expireDays: 30, owner: name },
        withKey(t.adminKey),
      );
      expect(created.key!.owner).toBe(name);
      const valid = await verify(created.secret, ["policies:write"]);
      expect(valid.result).toBe(VerifyResult.VALID);
      expect(valid.owner).toBe(name);

      const setPermissions = (permissions: string[]) =>
        directory.updatePrincipal({ principal: { name, permissions }, updateMask: { paths: ["permissions"] } }, withKey(t.adminKey));
      await setPermissions(["keys:read", "policies:read"]);
      const reduced = await verify(created.secret, ["policies:write"]);
      expect(reduced.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
      expect(reduced.missingPermissions).toEqual(["policies:write"]);
      expect([...reduced.permissions].sort()).toEqual(["keys:read", "policies:read"]);
      expect((await verify(created.secret, ["policies:read"])).result).toBe(VerifyResult.VALID);

      await setPermissions(["*:write"]);
      const restored = await verify(created.secret, ["policies:write"]);
      expect(restored.result).toBe(VerifyResult.VALID);
      // Never more than granted, however much the owner holds.
      expect([...restored.permissions].sort()).toEqual(["keys:read", "policies:write"]);
      expect((await verify(created.secret, ["directory:read"])).missingPermissions).toEqual(["directory:read"]);
    });

    test("when another principal is suspended, then its keys still verify VALID (but cannot administer) until the tenant disables them, and VALID again once it is reactivated", async () => {
      const t = await createTestTenant(server);
      const name = `tenants/${t.slug}/principals/ops`;
      await directory.createPrincipal({ parent: `tenants/${t.slug}`, principalId: "ops", type: PrincipalType.USER, permissions: ["keys:read"] }, withKey(t.adminKey));
      const created = await keys.createKey(
        { parent: `tenants/${t.slug}`, displayName: "ops key", permissions: ["keys:read"], expireDays: 30, owner: name },
        withKey(t.adminKey),
      );
      const setStatus = (status: PrincipalStatus) =>
        directory.updatePrincipal({ principal: { name, status }, updateMask: { paths: ["status"] } }, withKey(t.adminKey));
      await keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(created.secret));
      await setStatus(PrincipalStatus.SUSPENDED);
      expect((await verify(created.secret, ["keys:read"])).result).toBe(VerifyResult.VALID);
      // Suspended principals' keys keep verifying, but never administer keyward.
      const refused = await rpcError(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(created.secret)));
      expect(refused.code).toBe(Code.PermissionDenied);
      expect(reasonOf(refused)).toBe("PRINCIPAL_SUSPENDED");

      await directory.updateTenant(
        { tenant: { name: `tenants/${t.slug}`, disableKeysOfSuspendedPrincipals: true }, updateMask: { paths: ["disable_keys_of_suspended_principals"] } },
        withKey(t.adminKey),
      );
      expect((await verify(created.secret, ["keys:read"])).result).toBe(VerifyResult.OWNER_SUSPENDED);
      expect((await rpcError(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(created.secret)))).code).toBe(Code.Unauthenticated);
      expect((await verify(t.adminKey)).result).toBe(VerifyResult.VALID);

      await setStatus(PrincipalStatus.ACTIVE);
      expect((await verify(created.secret, ["keys:read"])).result).toBe(VerifyResult.VALID);
      await keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(created.secret));
    });

    test("when required_permissions holds an unknown permission, then the RPC fails with InvalidArgument, not a result", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t);
      for (const required of [["keys:admin"], ["nope:read"], ["keys"], ["keys:read:write"]]) {
        const err = await rpcError(verify(created.secret, required));
        expect(err.code).toBe(Code.InvalidArgument);
        expect(reasonOf(err)).toBe("UNKNOWN_PERMISSION");
      }
      const err = await rpcError(verify(created.secret, ["keys:read"], "Not A Slug"));
      expect(err.code).toBe(Code.InvalidArgument);
    });
  });

  describe("list", () => {
    async function allPages(t: TestTenant, pageSize: number): Promise<string[][]> {
      const pages: string[][] = [];
      let pageToken = "";
      for (let i = 0; i < 10; i++) {
        const res = await keys.listKeys({ parent: `tenants/${t.slug}`, kind: KeyKind.FINE_GRAINED, pageSize, pageToken }, withKey(t.adminKey));
        pages.push(res.keys.map((k) => k.name));
        pageToken = res.nextPageToken;
        if (pageToken === "") return pages;
      }
      throw new Error("more pages than keys");
    }

    test("when 7 keys are listed 3 per page, then pages of 3, 3 and 1, newest first, without duplicates", async () => {
      const t = await createTestTenant(server);
      const created: string[] = [];
      for (let i = 0; i < 7; i++) {
        created.push((await createKey(t, { name: `page-${i}` })).key!.name);
        server.clock.advance(1000);
      }
      const pages = await allPages(t, 3);
      expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
      expect(pages.flat()).toEqual([...created].reverse());
      expect(await allPages(t, 3)).toEqual(pages);
    });

    test("when keys share the same creation time, then pagination still returns each exactly once", async () => {
      const t = await createTestTenant(server);
      const created: string[] = [];
      for (let i = 0; i < 7; i++) created.push((await createKey(t, { name: `tie-${i}` })).key!.name);
      const pages = await allPages(t, 3);
      expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
      const flat = pages.flat();
      expect(new Set(flat).size).toBe(7);
      expect([...flat].sort()).toEqual([...created].sort());
    });

    test("when a page token is used with different filters, then InvalidArgument INVALID_PAGE_TOKEN", async () => {
      const t = await createTestTenant(server);
      for (let i = 0; i < 3; i++) await createKey(t, { name: `filter-${i}` });
      const first = await keys.listKeys({ parent: `tenants/${t.slug}`, kind: KeyKind.FINE_GRAINED, pageSize: 1 }, withKey(t.adminKey));
      expect(first.nextPageToken).not.toBe("");
      for (const changed of [{ state: KeyState.ACTIVE }, { kind: KeyKind.ADMIN }, { org: "infra" }]) {
        const err = await rpcError(
          keys.listKeys({ parent: `tenants/${t.slug}`, kind: KeyKind.FINE_GRAINED, pageSize: 1, pageToken: first.nextPageToken, ...changed }, withKey(t.adminKey)),
        );
        expect(err.code).toBe(Code.InvalidArgument);
        expect(reasonOf(err)).toBe("INVALID_PAGE_TOKEN");
      }
      const err = await rpcError(keys.listKeys({ parent: `tenants/${t.slug}`, pageToken: "not-a-token" }, withKey(t.adminKey)));
      expect(reasonOf(err)).toBe("INVALID_PAGE_TOKEN");
    });
  });

  describe("last used", () => {
    test("when a key verifies VALID and last-used times are flushed, then GetKey shows lastUsedTime; a refused verify does not set it", async () => {
      const t = await createTestTenant(server);
      const created = await createKey(t, { permissions: ["keys:read"] });
      const get = async () => (await keys.getKey({ name: created.key!.name }, withKey(t.adminKey))).key!;
      expect((await get()).lastUsedTime).toBeUndefined();

      expect((await verify(created.secret, ["keys:write"])).result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
      await server.flushLastUsed();
      expect((await get()).lastUsedTime).toBeUndefined();

      server.clock.advance(60_000);
      const usedAt = server.clock.now().getTime();
      expect((await verify(created.secret, ["keys:read"])).result).toBe(VerifyResult.VALID);
      await server.flushLastUsed();
      expect(ms((await get()).lastUsedTime)).toBe(usedAt);
    });
  });
});
