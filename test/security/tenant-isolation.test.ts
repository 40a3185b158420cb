// Tenant isolation: two tenants, A and B, each with organizations, principals and keys.
// B's admin key never sees, changes or learns anything of A: A's names are refused with
// TENANT_MISMATCH, A's ids under B's name are simply not found, B's listings and audit log
// hold nothing of A, and B's attempts on A's keys leave them verifying.
import { describe, expect, test } from "@jest/globals";
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import { AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { KeyKind, KeySlot, KeyState } from "../../gen/keyward/v1/key_pb.ts";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, withKey } from "../harness.ts";
import { attempt, audit, directory, keyIdOf, keys, reasonOf, runTag, server, uniq, useServer } from "../rpc.ts";

useServer();

/** One tenant with an org, an org-confined principal, a tenant-wide principal and keys at both scopes. */
type World = {
  slug: string;
  parent: string;
  adminKey: string;
  adminKeyId: string;
  org: string;
  principals: string[];
  keyId: string;
  keySecret: string;
  orgKeyId: string;
  orgKeySecret: string;
  as: CallOptions;
};

async function makeWorld(prefix: string): Promise<World> {
  const t = await createTestTenant(server, prefix);
  const parent = `tenants/${t.slug}`;
  const as = withKey(t.adminKey);
  const org = uniq(`${prefix}-org`);
  await directory.createOrganization({ parent, slug: org, githubOwner: `${prefix}-gh` }, as);
  const user = uniq(`${prefix}-user`);
  const bot = uniq(`${prefix}-bot`);
  await directory.createPrincipal({ parent, principalId: user, type: PrincipalType.USER, permissions: ["keys:write"] }, as);
  await directory.createPrincipal({ parent, principalId: bot, type: PrincipalType.SERVICE_ACCOUNT, permissions: ["keys:read"], org }, as);
  const key = await keys.createKey({ parent, displayName: "tenant key", permissions: ["keys:read"], expireDays: 30 }, as);
  const orgKey = await keys.createKey({ parent, displayName: "org key", permissions: ["keys:read"], org, expireDays: 30 }, as);
  return {
    slug: t.slug,
    parent,
    adminKey: t.adminKey,
    adminKeyId: keyIdOf(t.adminKey),
    org,
    principals: ["admin", user, bot],
    keyId: key.key?.keyId ?? "",
    keySecret: key.secret,
    orgKeyId: orgKey.key?.keyId ?? "",
    orgKeySecret: orgKey.secret,
    as,
  };
}

function expectRefused(err: ConnectError | undefined, code: Code, reason: string): ConnectError {
  expect(err).toBeInstanceOf(ConnectError);
  const e = err as ConnectError;
  expect({ code: Code[e.code], reason: reasonOf(e) }).toEqual({ code: Code[code], reason });
  return e;
}

async function keyIdsOf(w: World): Promise<string[]> {
  return (await keys.listKeys({ parent: w.parent, pageSize: 1000 }, w.as)).keys.map((k) => k.keyId).sort();
}

async function auditOf(w: World) {
  return (await audit.listAuditEvents({ parent: w.parent, pageSize: 1000 }, w.as)).events;
}

async function verify(key: string, as?: CallOptions) {
  return keys.verifyKey({ key, requiredPermissions: [] }, as);
}

/** Asserts A's key still verifies as A's and is still active in A's own view. */
async function expectIntact(a: World, keyId: string, secret: string): Promise<void> {
  const verdict = await verify(secret);
  expect(verdict).toMatchObject({ result: VerifyResult.VALID, tenant: a.slug, keyId });
  const got = await keys.getKey({ name: `${a.parent}/keys/${keyId}` }, a.as);
  expect(got.key?.state).toBe(KeyState.ACTIVE);
  expect(got.key?.revokeTime).toBeUndefined();
}

type Kind = "key" | "admin key" | "principal" | "organization";
const kinds: Kind[] = ["key", "admin key", "principal", "organization"];

/** Gets A's resource of a kind under `tenant`'s name (A's own, or B's), with B's admin key. */
function getAs(b: World, tenant: string, a: World, kind: Kind, id?: string): Promise<unknown> {
  switch (kind) {
    case "key":
      return keys.getKey({ name: `tenants/${tenant}/keys/${id ?? a.keyId}` }, b.as);
    case "admin key":
      return keys.getKey({ name: `tenants/${tenant}/keys/${id ?? a.adminKeyId}` }, b.as);
    case "principal":
      return directory.getPrincipal({ name: `tenants/${tenant}/principals/${id ?? a.principals[1]}` }, b.as);
    case "organization":
      return directory.getOrganization({ name: `tenants/${tenant}/orgs/${id ?? a.org}` }, b.as);
  }
}

const notFoundReason: Record<Kind, string> = { key: "KEY_NOT_FOUND", "admin key": "KEY_NOT_FOUND", principal: "PRINCIPAL_NOT_FOUND", organization: "ORGANIZATION_NOT_FOUND" };
const missingId: Record<Kind, string> = { key: "NoSuchKey0000000", "admin key": "NoSuchKey0000001", principal: `nobody-${runTag}`, organization: `no-such-org-${runTag}` };

describe("reading another tenant's resources", () => {
  test.each(kinds)("when B's admin key gets A's %s by A's name, then PermissionDenied TENANT_MISMATCH, as for a name A does not have", async (kind) => {
    const a = await makeWorld("iso-a");
    const b = await makeWorld("iso-b");
    const existing = expectRefused(await attempt(getAs(b, a.slug, a, kind)), Code.PermissionDenied, "TENANT_MISMATCH");
    const missing = expectRefused(await attempt(getAs(b, a.slug, a, kind, missingId[kind])), Code.PermissionDenied, "TENANT_MISMATCH");
    expect(missing.rawMessage).toBe(existing.rawMessage);
  });

  test.each(kinds)("when B's admin key asks for A's %s id under B's own tenant name, then NotFound, as for an id that exists nowhere", async (kind) => {
    const a = await makeWorld("iso-a");
    const b = await makeWorld("iso-b");
    const existing = expectRefused(await attempt(getAs(b, b.slug, a, kind)), Code.NotFound, notFoundReason[kind]);
    const missing = expectRefused(await attempt(getAs(b, b.slug, a, kind, missingId[kind])), Code.NotFound, notFoundReason[kind]);
    expect(missing.rawMessage).toBe(existing.rawMessage);
  });
});

describe("listings", () => {
  test("when B lists its keys, with or without filters naming A's things, then it sees exactly its own keys and none of A's", async () => {
    const a = await makeWorld("iso-a");
    const b = await makeWorld("iso-b");
    const aIds = await keyIdsOf(a);
    expect(aIds).toEqual(expect.arrayContaining([a.adminKeyId, a.keyId, a.orgKeyId]));

    const bIds = await keyIdsOf(b);
    expect(bIds).toEqual([b.adminKeyId, b.keyId, b.orgKeyId].sort());
    for (const id of aIds) expect(bIds).not.toContain(id);

    // Filters that name A's org or principals find nothing (or are refused), never A's keys.
    const byOrg = await keys.listKeys({ parent: b.parent, pageSize: 1000, org: a.org }, b.as);
    expect(byOrg.keys).toEqual([]);
    const byOwnerUnderB = await keys.listKeys({ parent: b.parent, pageSize: 1000, owner: `${b.parent}/principals/${a.principals[1]}` }, b.as);
    expect(byOwnerUnderB.keys).toEqual([]);
    expectRefused(await attempt(keys.listKeys({ parent: b.parent, owner: `${a.parent}/principals/admin` }, b.as)), Code.PermissionDenied, "TENANT_MISMATCH");
    expectRefused(await attempt(keys.listKeys({ parent: a.parent }, b.as)), Code.PermissionDenied, "TENANT_MISMATCH");
  });

  test("when B lists its principals, then it sees exactly its own and none of A's", async () => {
    const a = await makeWorld("iso-a");
    const b = await makeWorld("iso-b");
    const res = await directory.listPrincipals({ parent: b.parent, pageSize: 1000 }, b.as);
    expect(res.principals.map((p) => p.principalId).sort()).toEqual([...b.principals].sort());
    for (const p of res.principals) expect(p.name.startsWith(`${b.parent}/`)).toBe(true);
    for (const id of a.principals.slice(1)) expect(res.principals.map((p) => p.principalId)).not.toContain(id);
    expectRefused(await attempt(directory.listPrincipals({ parent: a.parent }, b.as)), Code.PermissionDenied, "TENANT_MISMATCH");
  });

  test("when B lists its organizations, then it sees exactly its own and none of A's", async () => {
    const a = await makeWorld("iso-a");
    const b = await makeWorld("iso-b");
    const res = await directory.listOrganizations({ parent: b.parent, pageSize: 1000 }, b.as);
    expect(res.organizations.map((o) => o.slug)).toEqual([b.org]);
    expect(res.organizations.map((o) => o.githubOwner)).not.toContain("iso-a-gh");
    expect(res.organizations.map((o) => o.slug)).not.toContain(a.org);
    expectRefused(await attempt(directory.listOrganizations({ parent: a.parent }, b.as)), Code.PermissionDenied, "TENANT_MISMATCH");
  });

  test("when both tenants act and B probes A, then B's audit log holds none of A's events, and A's log none of B's probes", async () => {
    const a = await makeWorld("iso-a");
    const b = await makeWorld("iso-b");
    // A acts (success and refusal in A's log); B probes A (refusals in B's log).
    await keys.revokeKey({ name: `${a.parent}/keys/${a.orgKeyId}`, reason: "A's own revocation" }, a.as);
    await attempt(keys.getKey({ name: `${a.parent}/keys/NoSuchKey0000000` }, a.as));
    await attempt(keys.getKey({ name: `${a.parent}/keys/${a.keyId}` }, b.as));
    await attempt(keys.revokeKey({ name: `${b.parent}/keys/${a.keyId}`, reason: "probe" }, b.as));

    const aEvents = await auditOf(a);
    const bEvents = await auditOf(b);
    expect(aEvents.length).toBeGreaterThanOrEqual(6);
    const bIds = new Set(bEvents.map((e) => e.eventId));
    for (const e of aEvents) expect(bIds.has(e.eventId)).toBe(false);
    const aCredentials = new Set([a.adminKeyId, a.keyId, a.orgKeyId]);
    for (const e of bEvents) {
      expect(aCredentials.has(e.credential)).toBe(false);
      expect(e.actor.startsWith(`${a.parent}/`)).toBe(false);
      expect(e.name.startsWith(`${b.parent}/auditEvents/`)).toBe(true);
    }
    // A's refusal of its own call and its revocation are A's alone.
    expect(bEvents.filter((e) => e.resource === `${a.parent}/keys/NoSuchKey0000000`)).toEqual([]);
    expect(bEvents.filter((e) => e.action === "key.revoke" && e.outcome !== AuditOutcome.DENIED)).toEqual([]);
    // B's probes are B's own business: they write nothing into A's log.
    for (const e of aEvents) expect(e.credential).not.toBe(b.adminKeyId);
    expectRefused(await attempt(audit.listAuditEvents({ parent: a.parent }, b.as)), Code.PermissionDenied, "TENANT_MISMATCH");
  });
});

describe("verification", () => {
  test("when A's keys are verified (even by a caller presenting B's key), then they report tenant A, never B", async () => {
    const a = await makeWorld("iso-a");
    const b = await makeWorld("iso-b");
    expect(await verify(a.keySecret, b.as)).toMatchObject({ result: VerifyResult.VALID, tenant: a.slug, keyId: a.keyId, owner: `${a.parent}/principals/admin` });
    expect(await verify(a.adminKey, b.as)).toMatchObject({ result: VerifyResult.VALID, tenant: a.slug, keyId: a.adminKeyId, kind: KeyKind.ADMIN });
    const orgScoped = await keys.verifyKey({ key: a.orgKeySecret, org: a.org }, b.as);
    expect(orgScoped).toMatchObject({ result: VerifyResult.VALID, tenant: a.slug, org: a.org });
    expect(await verify(b.keySecret)).toMatchObject({ result: VerifyResult.VALID, tenant: b.slug, keyId: b.keyId });
  });
});

describe("changing another tenant's keys", () => {
  test("when B tries to revoke A's key by A's name or under its own, then it is refused and A's key still verifies", async () => {
    const a = await makeWorld("iso-a");
    const b = await makeWorld("iso-b");
    expectRefused(await attempt(keys.revokeKey({ name: `${a.parent}/keys/${a.keyId}`, reason: "hostile" }, b.as)), Code.PermissionDenied, "TENANT_MISMATCH");
    expectRefused(await attempt(keys.revokeKey({ name: `${b.parent}/keys/${a.keyId}`, reason: "hostile" }, b.as)), Code.NotFound, "KEY_NOT_FOUND");
    expectRefused(await attempt(keys.revokeKey({ name: `${a.parent}/keys/${a.adminKeyId}`, reason: "hostile" }, b.as)), Code.PermissionDenied, "TENANT_MISMATCH");
    await expectIntact(a, a.keyId, a.keySecret);
    await expectIntact(a, a.adminKeyId, a.adminKey);
  });

  test("when B tries to clone A's key, then it is refused, no key appears in either tenant and A's key still verifies", async () => {
    const a = await makeWorld("iso-a");
    const b = await makeWorld("iso-b");
    const aBefore = await keyIdsOf(a);
    const bBefore = await keyIdsOf(b);
    expectRefused(await attempt(keys.cloneKey({ name: `${a.parent}/keys/${a.keyId}`, displayName: "stolen" }, b.as)), Code.PermissionDenied, "TENANT_MISMATCH");
    expectRefused(await attempt(keys.cloneKey({ name: `${b.parent}/keys/${a.keyId}`, displayName: "stolen" }, b.as)), Code.NotFound, "KEY_NOT_FOUND");
    expect(await keyIdsOf(a)).toEqual(aBefore);
    expect(await keyIdsOf(b)).toEqual(bBefore);
    await expectIntact(a, a.keyId, a.keySecret);
  });

  test("when B tries to rotate A's slot keys, then it is refused, A's keys are unchanged and A's admin key still verifies", async () => {
    const a = await makeWorld("iso-a");
    const b = await makeWorld("iso-b");
    const aBefore = await keyIdsOf(a);
    for (const slot of [KeySlot.PRIMARY, KeySlot.SECONDARY]) {
      expectRefused(await attempt(keys.rotateKey({ parent: a.parent, kind: KeyKind.ADMIN, slot }, b.as)), Code.PermissionDenied, "TENANT_MISMATCH");
      expectRefused(await attempt(keys.rotateKey({ parent: a.parent, kind: KeyKind.ADMIN, slot, org: a.org }, b.as)), Code.PermissionDenied, "TENANT_MISMATCH");
    }
    // Naming A's org under B's own tenant reaches nothing of A.
    expectRefused(await attempt(keys.rotateKey({ parent: b.parent, kind: KeyKind.ADMIN, slot: KeySlot.PRIMARY, org: a.org }, b.as)), Code.InvalidArgument, "UNKNOWN_ORG");
    expect(await keyIdsOf(a)).toEqual(aBefore);
    await expectIntact(a, a.adminKeyId, a.adminKey);
    await expectIntact(a, a.keyId, a.keySecret);
  });
});
