// Authority over other principals' keys (DESIGN.md §1–2): making a key for another
// principal needs authority over it; every key records its creator, whose current
// authority (and status) bounds a key made for someone else; revoking, rotating or
// cloning someone else's key needs authority over the key; one's own keys are always
// revocable. Listings filter by creator; audit events name owner and creator.
import { describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { PrincipalStatus, PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { KeyKind, KeySlot } from "../../gen/keyward/v1/key_pb.ts";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { attempt, audit, directory, keyIdOf, keys, reasonOf, server, uniq, useServer } from "../rpc.ts";

useServer();

/** Creates a principal holding `permissions` and a key it owns (made by the tenant admin, granting the same). */
async function principalWithKey(t: TestTenant, principalId: string, permissions: string[]): Promise<{ name: string; key: string }> {
  const parent = `tenants/${t.slug}`;
  const { principal } = await directory.createPrincipal({ parent, principalId, type: PrincipalType.USER, permissions }, withKey(t.adminKey));
  const { secret } = await keys.createKey({ parent, displayName: uniq(principalId), permissions, expireDays: 30, owner: principal!.name }, withKey(t.adminKey));
  return { name: principal!.name, key: secret };
}

/** Sets a principal's permissions, as the tenant admin. */
async function setPermissions(t: TestTenant, name: string, permissions: string[]): Promise<void> {
  await directory.updatePrincipal({ principal: { name, permissions }, updateMask: { paths: ["permissions"] } }, withKey(t.adminKey));
}

/** Sets a principal's status, as the tenant admin. */
async function setStatus(t: TestTenant, name: string, status: PrincipalStatus): Promise<void> {
  await directory.updatePrincipal({ principal: { name, status }, updateMask: { paths: ["status"] } }, withKey(t.adminKey));
}

const verify = (key: string, requiredPermissions: string[]) => keys.verifyKey({ key, requiredPermissions });

describe("making a key for another principal", () => {
  test("when a keys:write + harden_runner:write principal makes a key for the tenant admin (the issue's input), then PermissionDenied naming *:write and no key is made", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const p = await principalWithKey(t, "p", ["keys:write", "harden_runner:write"]);
    const adminName = `${parent}/principals/admin`;
    const err = await attempt(
      keys.createKey({ parent, displayName: "for admin", owner: adminName, permissions: ["keys:write", "harden_runner:write"], expireDays: 365 }, withKey(p.key)),
    );
    expect(err?.code).toBe(Code.PermissionDenied);
    expect(reasonOf(err)).toBe("PERMISSIONS_EXCEED_CALLER");
    expect(err?.rawMessage).toContain("*:write");
    const { keys: adminKeys } = await keys.listKeys({ parent, owner: adminName }, withKey(t.adminKey));
    expect(adminKeys.filter((k) => k.displayName === "for admin")).toHaveLength(0);
    const { events } = await audit.listAuditEvents({ parent, action: "key.create" }, withKey(t.adminKey));
    expect(events.find((e) => e.credential === keyIdOf(p.key))).toMatchObject({ reason: "PERMISSIONS_EXCEED_CALLER" });
  });

  test("when the caller holds everything the owner holds, then the key is made, names owner and creator, and ListKeys filters by creator", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const c = await principalWithKey(t, "creator", ["keys:write", "harden_runner:write"]);
    const { principal: q } = await directory.createPrincipal({ parent, principalId: "q", type: PrincipalType.SERVICE_ACCOUNT, permissions: ["harden_runner:write", "keys:read"] }, withKey(t.adminKey));
    const made = await keys.createKey({ parent, displayName: "for q", owner: q!.name, permissions: ["harden_runner:write", "keys:read"], expireDays: 30 }, withKey(c.key));
    expect(made.key).toMatchObject({ owner: q!.name, creator: c.name });
    // A principal's own key names itself as creator.
    const own = await keys.createKey({ parent, displayName: "own", permissions: ["harden_runner:read"], expireDays: 7 }, withKey(c.key));
    expect(own.key).toMatchObject({ owner: c.name, creator: c.name });

    const byCreator = await keys.listKeys({ parent, creator: c.name }, withKey(t.adminKey));
    expect(byCreator.keys.map((k) => k.displayName).sort()).toEqual(["for q", "own"]);
    const byCreatorAndOwner = await keys.listKeys({ parent, creator: c.name, owner: q!.name }, withKey(t.adminKey));
    expect(byCreatorAndOwner.keys.map((k) => k.displayName)).toEqual(["for q"]);
    expect((await keys.listKeys({ parent, creator: q!.name }, withKey(t.adminKey))).keys).toHaveLength(0);
    expect((await keys.listKeys({ parent, creator: `${parent}/principals/nobody` }, withKey(t.adminKey))).keys).toHaveLength(0);
    expect(reasonOf(await attempt(keys.listKeys({ parent, creator: "principals/x" }, withKey(t.adminKey))))).toBe("INVALID_RESOURCE_NAME");

    const { events } = await audit.listAuditEvents({ parent, action: "key.create", resource: made.key!.name }, withKey(t.adminKey));
    expect(events).toHaveLength(1);
    expect(events[0]?.details).toMatchObject({ owner: q!.name, creator: c.name });
    expect(events[0]?.actor).toBe(c.name);
  });

  test("when a page token of a creator-filtered listing is reused with another creator, then InvalidArgument", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    for (let i = 0; i < 3; i++) await keys.createKey({ parent, displayName: uniq("k"), permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
    const adminName = `${parent}/principals/admin`;
    const first = await keys.listKeys({ parent, creator: adminName, pageSize: 2 }, withKey(t.adminKey));
    expect(first.nextPageToken).not.toBe("");
    const err = await attempt(keys.listKeys({ parent, creator: `${parent}/principals/other`, pageToken: first.nextPageToken }, withKey(t.adminKey)));
    expect(err?.code).toBe(Code.InvalidArgument);
  });
});

describe("the creator bounds a key made for someone else", () => {
  test("when the creator is later stripped, then the key stops granting what the creator lost (granted ∩ owner ∩ creator)", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const c = await principalWithKey(t, "creator", ["keys:write", "harden_runner:write", "audit:read"]);
    const { principal: q } = await directory.createPrincipal({ parent, principalId: "q", type: PrincipalType.SERVICE_ACCOUNT, permissions: ["harden_runner:write", "audit:read"] }, withKey(t.adminKey));
    const made = await keys.createKey({ parent, displayName: "for q", owner: q!.name, permissions: ["harden_runner:write", "audit:read"], expireDays: 30 }, withKey(c.key));
    expect((await verify(made.secret, ["harden_runner:write", "audit:read"])).result).toBe(VerifyResult.VALID);

    await setPermissions(t, c.name, ["keys:write", "harden_runner:read"]);
    const reduced = await verify(made.secret, ["harden_runner:write"]);
    expect(reduced.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
    expect(reduced.missingPermissions).toEqual(["harden_runner:write"]);
    expect(reduced.permissions).toEqual(["harden_runner:read"]);
    // The key can no longer read the audit log either (a management call).
    expect(reasonOf(await attempt(audit.listAuditEvents({ parent }, withKey(made.secret))))).toBe("INSUFFICIENT_SCOPE");

    await setPermissions(t, c.name, []);
    const stripped = await verify(made.secret, []);
    expect(stripped.result).toBe(VerifyResult.VALID);
    expect(stripped.permissions).toEqual([]);
    // The owner's own keys (creator = owner) are not affected by someone else's change.
    const ownOfQ = await keys.createKey({ parent, displayName: "q own", owner: q!.name, permissions: ["harden_runner:write"], expireDays: 7 }, withKey(t.adminKey));
    expect((await verify(ownOfQ.secret, ["harden_runner:write"])).result).toBe(VerifyResult.VALID);
  });

  test("when the creator is suspended, then the key made for someone else keeps verifying but cannot administer (CREATOR_SUSPENDED, audited), and with the tenant setting it does not verify", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const c = await principalWithKey(t, "creator", ["keys:write", "harden_runner:write"]);
    const { principal: q } = await directory.createPrincipal({ parent, principalId: "q", type: PrincipalType.SERVICE_ACCOUNT, permissions: ["keys:read", "harden_runner:write"] }, withKey(t.adminKey));
    const made = await keys.createKey({ parent, displayName: "for q", owner: q!.name, permissions: ["keys:read", "harden_runner:write"], expireDays: 30 }, withKey(c.key));
    expect(await attempt(keys.listKeys({ parent }, withKey(made.secret)))).toBeUndefined();

    await setStatus(t, c.name, PrincipalStatus.SUSPENDED);
    expect((await verify(made.secret, ["harden_runner:write"])).result).toBe(VerifyResult.VALID);
    const refused = await attempt(keys.listKeys({ parent }, withKey(made.secret)));
    expect(refused?.code).toBe(Code.PermissionDenied);
    expect(reasonOf(refused)).toBe("CREATOR_SUSPENDED");
    await server.flushRefusals();
    const { events } = await audit.listAuditEvents({ parent, action: "auth.refused" }, withKey(t.adminKey));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ credential: keyIdOf(made.secret), reason: "CREATOR_SUSPENDED", actor: q!.name });

    await directory.updateTenant({ tenant: { name: parent, disableKeysOfSuspendedPrincipals: true }, updateMask: { paths: ["disable_keys_of_suspended_principals"] } }, withKey(t.adminKey));
    expect((await verify(made.secret, ["harden_runner:write"])).result).toBe(VerifyResult.OWNER_SUSPENDED);
    expect((await attempt(keys.listKeys({ parent }, withKey(made.secret))))?.code).toBe(Code.Unauthenticated);
    // Keys the admin made for q are untouched by c's suspension.
    const byAdmin = await keys.createKey({ parent, displayName: "by admin", owner: q!.name, permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
    expect(await attempt(keys.listKeys({ parent }, withKey(byAdmin.secret)))).toBeUndefined();
  });

  test("when a principal makes a key for another, cannot use it to suspend itself, and is then suspended by an administrator, then that key can no longer administer", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const p = await principalWithKey(t, "p", ["keys:write", "directory:write"]);
    const { principal: q } = await directory.createPrincipal({ parent, principalId: "q", type: PrincipalType.USER, permissions: ["directory:write", "keys:write"] }, withKey(t.adminKey));
    const made = await keys.createKey({ parent, displayName: "for q", owner: q!.name, permissions: ["directory:write", "keys:write"], expireDays: 30 }, withKey(p.key));
    const selfSuspension = await attempt(directory.updatePrincipal({ principal: { name: p.name, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(made.secret)));
    expect(reasonOf(selfSuspension)).toBe("SELF_SUSPENSION");
    await directory.updatePrincipal({ principal: { name: p.name, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(t.adminKey));
    for (const call of [
      () => keys.listKeys({ parent }, withKey(made.secret)),
      () => keys.createKey({ parent, displayName: "late", permissions: ["keys:read"], expireDays: 7 }, withKey(made.secret)),
      () => directory.updatePrincipal({ principal: { name: p.name, status: PrincipalStatus.ACTIVE }, updateMask: { paths: ["status"] } }, withKey(made.secret)),
    ]) {
      const err = await attempt(call());
      expect(err?.code).toBe(Code.PermissionDenied);
      expect(reasonOf(err)).toBe("CREATOR_SUSPENDED");
    }
  });
});

describe("authority over a key", () => {
  test("when a keys:write key revokes or rotates the tenant admin key, then PermissionDenied and the admin key still works", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const r = await principalWithKey(t, "r", ["keys:write"]);
    const adminKeyName = `${parent}/keys/${keyIdOf(t.adminKey)}`;
    for (let i = 0; i < 2; i++) {
      const err = await attempt(keys.revokeKey({ name: adminKeyName, reason: "lock them out" }, withKey(r.key)));
      expect(err?.code).toBe(Code.PermissionDenied);
      expect(reasonOf(err)).toBe("PERMISSIONS_EXCEED_CALLER");
      expect(err?.rawMessage).toContain("*:write");
    }
    for (const slot of [KeySlot.PRIMARY, KeySlot.SECONDARY]) {
      const err = await attempt(keys.rotateKey({ parent, kind: KeyKind.ADMIN, slot }, withKey(r.key)));
      expect(err?.code).toBe(Code.PermissionDenied);
      expect(reasonOf(err)).toBe("PERMISSIONS_EXCEED_CALLER");
    }
    const { key } = await keys.getKey({ name: adminKeyName }, withKey(t.adminKey));
    expect(key?.revokeTime).toBeUndefined();
    expect((await verify(t.adminKey, ["keys:write"])).result).toBe(VerifyResult.VALID);
  });

  test("when a key grants more than the caller holds, then revoking or cloning it is refused; a key within the caller's authority can be revoked", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const r = await principalWithKey(t, "r", ["keys:write"]);
    const strong = await keys.createKey({ parent, displayName: "strong", permissions: ["harden_runner:write"], expireDays: 7 }, withKey(t.adminKey));
    const weak = await keys.createKey({ parent, displayName: "weak", permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
    const revokeStrong = await attempt(keys.revokeKey({ name: strong.key!.name, reason: "x" }, withKey(r.key)));
    expect(reasonOf(revokeStrong)).toBe("PERMISSIONS_EXCEED_CALLER");
    const cloneStrong = await attempt(keys.cloneKey({ name: strong.key!.name, displayName: "copy" }, withKey(r.key)));
    expect(reasonOf(cloneStrong)).toBe("PERMISSIONS_EXCEED_CALLER");
    expect((await verify(strong.secret, ["harden_runner:write"])).result).toBe(VerifyResult.VALID);

    const { key } = await keys.revokeKey({ name: weak.key!.name, reason: "cleanup" }, withKey(r.key));
    expect(key?.revokeReason).toBe("cleanup");
    const { events } = await audit.listAuditEvents({ parent, action: "key.revoke", resource: weak.key!.name }, withKey(t.adminKey));
    expect(events.find((e) => e.outcome === AuditOutcome.SUCCESS)?.details).toMatchObject({ owner: `${parent}/principals/admin`, creator: `${parent}/principals/admin` });
  });

  test("when a principal lost the permissions its own key grants, then it can still revoke that key", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const o = await principalWithKey(t, "o", ["keys:write", "harden_runner:write"]);
    const own = await keys.createKey({ parent, displayName: "own strong", permissions: ["harden_runner:write"], expireDays: 7 }, withKey(o.key));
    await setPermissions(t, o.name, ["keys:write"]);
    const { key } = await keys.revokeKey({ name: own.key!.name, reason: "mine" }, withKey(o.key));
    expect(key?.revokeReason).toBe("mine");
    expect((await verify(own.secret, [])).result).toBe(VerifyResult.REVOKED);
  });

  test("when keys are rotated and cloned, then the new key names its owner and creator, and so do the audit events", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const adminName = `${parent}/principals/admin`;
    const rotated = await keys.rotateKey({ parent, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY }, withKey(t.adminKey));
    expect(rotated.key).toMatchObject({ owner: adminName, creator: adminName });
    const source = await keys.createKey({ parent, displayName: "src", permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
    const cloned = await keys.cloneKey({ name: source.key!.name, displayName: "copy" }, withKey(t.adminKey));
    expect(cloned.key).toMatchObject({ owner: adminName, creator: adminName });
    for (const [action, resource] of [["key.rotate", rotated.key!.name], ["key.clone", cloned.key!.name]] as const) {
      const { events } = await audit.listAuditEvents({ parent, action, resource }, withKey(t.adminKey));
      expect(events[0]?.details).toMatchObject({ owner: adminName, creator: adminName });
    }
  });
});

describe("a key made with a key someone made for you", () => {
  test("when dave uses a key carol made for him to make another key (or clone one), then the new key stays bounded by carol: stripping or suspending her shrinks or stops it, and it cannot suspend her", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const perms = ["directory:write", "harden_runner:write", "keys:write"];
    const carol = await principalWithKey(t, "carol", perms);
    const { secret: carolOwn } = await keys.createKey({ parent, displayName: uniq("carol-own"), permissions: perms, expireDays: 7 }, withKey(carol.key));
    const { principal: dave } = await directory.createPrincipal({ parent, principalId: "dave", type: PrincipalType.USER, permissions: perms }, withKey(t.adminKey));
    const k1 = await keys.createKey({ parent, displayName: uniq("k1"), owner: dave!.name, permissions: perms, expireDays: 7 }, withKey(carolOwn));
    // The reviewer's input: K2 made with K1 for dave himself, and a clone of K1 made with K1.
    const k2 = await keys.createKey({ parent, displayName: uniq("k2"), permissions: perms, expireDays: 7 }, withKey(k1.secret));
    expect(k2.key).toMatchObject({ owner: dave!.name, creator: dave!.name });
    const clone = await keys.cloneKey({ name: k1.key!.name, displayName: uniq("k1-clone") }, withKey(k1.secret));

    for (const made of [k2.secret, clone.secret]) {
      const err = await attempt(directory.updatePrincipal({ principal: { name: carol.name, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(made)));
      expect(reasonOf(err)).toBe("SELF_SUSPENSION");
    }
    await setPermissions(t, carol.name, ["harden_runner:read"]);
    for (const made of [k1.secret, k2.secret, clone.secret]) {
      const res = await verify(made, ["harden_runner:write"]);
      expect(res.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
      expect(res.permissions).toEqual(["harden_runner:read"]);
    }
    await setPermissions(t, carol.name, perms);
    await setStatus(t, carol.name, PrincipalStatus.SUSPENDED);
    for (const made of [k2.secret, clone.secret]) {
      expect(reasonOf(await attempt(keys.listKeys({ parent }, withKey(made))))).toBe("CREATOR_SUSPENDED");
    }
  });
});

describe("last use of a refused key", () => {
  test("when a suspended principal's key is refused on a management call, then its last-used time does not move", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const p = await principalWithKey(t, "idle", ["keys:read"]);
    await setStatus(t, p.name, PrincipalStatus.SUSPENDED);
    expect(reasonOf(await attempt(keys.listKeys({ parent }, withKey(p.key))))).toBe("PRINCIPAL_SUSPENDED");
    await server.flushLastUsed();
    const { key } = await keys.getKey({ name: `${parent}/keys/${keyIdOf(p.key)}` }, withKey(t.adminKey));
    expect(key?.lastUsedTime).toBeUndefined();
    // A verification (which the key still passes, as its services rely on) is a use.
    expect((await verify(p.key, ["keys:read"])).result).toBe(VerifyResult.VALID);
    await server.flushLastUsed();
    expect((await keys.getKey({ name: `${parent}/keys/${keyIdOf(p.key)}` }, withKey(t.adminKey))).key?.lastUsedTime).toBeDefined();
  });
});
