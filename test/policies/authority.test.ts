// Who may make, change and delete trust policies (DESIGN.md §1, §4): nobody grants what
// they do not hold; changing or deleting a policy needs every permission it grants; an
// updater joins the principals bounding the policy's tokens; org-scoped callers see and
// change only their org's policies.
import { beforeAll, describe, expect, test } from "@jest/globals";
import { Code, type Client } from "@connectrpc/connect";
import { PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import type { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { createUnitsOfWork } from "../../src/db/unit-of-work.ts";
import { directoryRepository } from "../../src/directory/directory-repository.ts";
import { findPolicyForMatching, policiesForMatching } from "../../src/policies/policy-repository.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { directory, keys, reasonOf, rpcError, server, uniq, useServer } from "../rpc.ts";
import { createOrg, createPolicy, policyClient, policyOf } from "./policy-helpers.ts";

useServer();

let policies: Client<typeof PolicyService>;
beforeAll(() => {
  policies = policyClient();
});

/** A principal holding `permissions` and a key it owns, made for it by the tenant admin. */
async function principalWithKey(t: TestTenant, principalId: string, permissions: string[]): Promise<{ name: string; key: string }> {
  const parent = `tenants/${t.slug}`;
  const { principal } = await directory.createPrincipal({ parent, principalId, type: PrincipalType.USER, permissions }, withKey(t.adminKey));
  const { secret } = await keys.createKey({ parent, displayName: uniq(principalId), permissions, expireDays: 30, owner: principal!.name }, withKey(t.adminKey));
  return { name: principal!.name, key: secret };
}

/** Row ids of a tenant and of some of its principals, read from the database. */
async function rowIds(t: TestTenant, principalIds: string[]): Promise<{ tenantId: string; principals: Record<string, string> }> {
  return createUnitsOfWork(server.store.db).read({}, async (uow) => {
    const tenant = await directoryRepository.findTenantBySlug(uow, t.slug);
    const principals: Record<string, string> = {};
    for (const id of principalIds) principals[id] = (await directoryRepository.findPrincipal(uow, tenant!.id, id))!.id;
    return { tenantId: tenant!.id, principals };
  });
}

async function names(t: TestTenant, key = t.adminKey): Promise<string[]> {
  return (await policies.listPolicies({ parent: `tenants/${t.slug}`, pageSize: 1000 }, withKey(key))).policies.map((p) => p.displayName).sort();
}

describe("granting", () => {
  test("when a policies:write key creates a policy granting what it does not hold, then PermissionDenied PERMISSIONS_EXCEED_CALLER naming it, and nothing is stored", async () => {
    const t = await createTestTenant(server, "pol-grant");
    const p = await principalWithKey(t, "writer", ["policies:write", "keys:read"]);
    const err = await rpcError(createPolicy(t, { key: p.key, displayName: "too much", permissions: ["keys:read", "keys:write", "audit:read"] }));
    expect([Code[err.code], reasonOf(err)]).toEqual(["PermissionDenied", "PERMISSIONS_EXCEED_CALLER"]);
    expect(err.rawMessage).toContain("keys:write");
    expect(err.rawMessage).toContain("audit:read");
    expect(await names(t)).toEqual([]);
    // Within what it holds, it may: write implies read.
    const ok = policyOf(await createPolicy(t, { key: p.key, displayName: "fits", permissions: ["keys:read", "policies:read"] }));
    expect(ok.creator).toBe(p.name);
  });

  test("when a key holding policies:read but not policies:write creates a policy, then PermissionDenied INSUFFICIENT_SCOPE naming policies:write", async () => {
    const t = await createTestTenant(server, "pol-ro");
    const p = await principalWithKey(t, "reader", ["policies:read", "keys:read"]);
    const err = await rpcError(createPolicy(t, { key: p.key, permissions: ["keys:read"] }));
    expect([Code[err.code], reasonOf(err)]).toEqual(["PermissionDenied", "INSUFFICIENT_SCOPE"]);
    expect(err.rawMessage).toContain("policies:write");
    expect(await names(t)).toEqual([]);
  });

  test("when a principal creates a policy with a key the admin made for it, then the policy's creator is that principal and the admin bounds it", async () => {
    const t = await createTestTenant(server, "pol-bounds");
    const p = await principalWithKey(t, "ops", ["policies:write", "keys:read"]);
    const made = policyOf(await createPolicy(t, { key: p.key, permissions: ["keys:read"] }));
    const ids = await rowIds(t, ["admin", "ops"]);
    const m = await createUnitsOfWork(server.store.db).read({}, (uow) => findPolicyForMatching(uow, ids.tenantId, made.policyId));
    expect(m).toMatchObject({ id: made.policyId, name: made.name, creatorId: ids.principals["ops"], boundedBy: [ids.principals["admin"]], permissions: ["keys:read"] });
  });
});

describe("authority over a policy", () => {
  test("when a caller lacking a permission the policy grants updates or deletes it, then PermissionDenied PERMISSIONS_EXCEED_CALLER and it is unchanged", async () => {
    const t = await createTestTenant(server, "pol-auth");
    const mighty = policyOf(await createPolicy(t, { displayName: "mighty", permissions: ["keys:write", "directory:write"] }));
    const p = await principalWithKey(t, "editor", ["policies:write", "keys:write"]);
    const upd = await rpcError(policies.updatePolicy({ policy: { name: mighty.name, etag: mighty.etag, description: "mine now" }, updateMask: { paths: ["description"] } }, withKey(p.key)));
    expect([Code[upd.code], reasonOf(upd)]).toEqual(["PermissionDenied", "PERMISSIONS_EXCEED_CALLER"]);
    expect(upd.rawMessage).toContain("directory:write");
    const del = await rpcError(policies.deletePolicy({ name: mighty.name, etag: mighty.etag }, withKey(p.key)));
    expect([Code[del.code], reasonOf(del)]).toEqual(["PermissionDenied", "PERMISSIONS_EXCEED_CALLER"]);
    // Narrowing it away is no way around the rule either.
    const narrow = await rpcError(policies.updatePolicy({ policy: { name: mighty.name, etag: mighty.etag, permissions: ["keys:read"] }, updateMask: { paths: ["permissions"] } }, withKey(p.key)));
    expect([Code[narrow.code], reasonOf(narrow)]).toEqual(["PermissionDenied", "PERMISSIONS_EXCEED_CALLER"]);
    expect(policyOf(await policies.getPolicy({ name: mighty.name }, withKey(t.adminKey)))).toEqual(mighty);
  });

  test("when an update raises the permissions beyond the caller's, then PermissionDenied PERMISSIONS_EXCEED_CALLER", async () => {
    const t = await createTestTenant(server, "pol-raise");
    const p = await principalWithKey(t, "editor", ["policies:write", "keys:read"]);
    const own = policyOf(await createPolicy(t, { key: p.key, permissions: ["keys:read"] }));
    const err = await rpcError(policies.updatePolicy({ policy: { name: own.name, etag: own.etag, permissions: ["keys:write"] }, updateMask: { paths: ["permissions"] } }, withKey(p.key)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["PermissionDenied", "PERMISSIONS_EXCEED_CALLER"]);
    expect(err.rawMessage).toContain("keys:write");
  });

  test("when someone other than the creator updates a policy, then they join the principals bounding it; the creator stays its creator", async () => {
    const t = await createTestTenant(server, "pol-shape");
    const p = await principalWithKey(t, "shaper", ["policies:write", "keys:read"]);
    const made = policyOf(await createPolicy(t, { displayName: "shaped", permissions: ["keys:read"] }));
    const ids = await rowIds(t, ["admin", "shaper"]);
    const read = () => createUnitsOfWork(server.store.db).read({}, (uow) => findPolicyForMatching(uow, ids.tenantId, made.policyId));
    expect((await read())?.boundedBy).toEqual([]);
    const u = policyOf(await policies.updatePolicy({ policy: { name: made.name, etag: made.etag, description: "shaped by shaper" }, updateMask: { paths: ["description"] } }, withKey(p.key)));
    expect(u.creator).toBe(`tenants/${t.slug}/principals/admin`);
    // The shaper's key was made by the admin, who is the creator: only the shaper is added.
    expect((await read())?.boundedBy).toEqual([ids.principals["shaper"]]);
    // Another update by the same principal adds nobody twice.
    await policies.updatePolicy({ policy: { name: made.name, etag: u.etag, description: "again" }, updateMask: { paths: ["description"] } }, withKey(p.key));
    expect((await read())?.boundedBy).toEqual([ids.principals["shaper"]]);
  });

  test("when a principal holding what the policy grants deletes someone else's policy, then it is deleted", async () => {
    const t = await createTestTenant(server, "pol-del-auth");
    const made = policyOf(await createPolicy(t, { permissions: ["keys:read"] }));
    const p = await principalWithKey(t, "janitor", ["policies:write", "keys:read"]);
    await policies.deletePolicy({ name: made.name, etag: made.etag }, withKey(p.key));
    expect(await names(t)).toEqual([]);
  });
});

describe("org-scoped callers", () => {
  test("when an org-scoped key manages policies, then it sees and changes only its org's, creates only in its org, and another org's policy answers like a missing one", async () => {
    const t = await createTestTenant(server, "pol-orgs");
    const [own, other] = [await createOrg(t, "own-gh"), await createOrg(t, "other-gh")];
    const tenantLevel = policyOf(await createPolicy(t, { displayName: "tenant level" }));
    const otherOrg = policyOf(await createPolicy(t, { displayName: "other org", org: other, claims: { repository: "other-gh/app" } }));
    const { secret: orgKey } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "org key", permissions: ["*:write"], org: own, expireDays: 30 }, withKey(t.adminKey));

    // Creating with no org lands in its own org; naming another org is refused.
    const mine = policyOf(await createPolicy(t, { key: orgKey, displayName: "mine", claims: { repository: "own-gh/app" } }));
    expect(mine.org).toBe(own);
    expect(mine.claims?.repositoryOwner).toBe("own-gh");
    const elsewhere = await rpcError(createPolicy(t, { key: orgKey, displayName: "elsewhere", org: other, claims: { repository: "other-gh/app" } }));
    expect([Code[elsewhere.code], reasonOf(elsewhere)]).toEqual(["PermissionDenied", "ORG_SCOPE"]);

    expect(await names(t, orgKey)).toEqual(["mine"]);
    expect((await policies.listPolicies({ parent: `tenants/${t.slug}`, org: other }, withKey(orgKey))).policies).toEqual([]);
    expect(await names(t)).toEqual(["mine", "other org", "tenant level"]);

    const missing = `tenants/${t.slug}/policies/00000000-0000-4000-8000-000000000000`;
    for (const target of [tenantLevel, otherOrg]) {
      for (const [what, call] of [
        ["get", (name: string, _etag: string) => policies.getPolicy({ name }, withKey(orgKey))],
        ["update", (name: string, etag: string) => policies.updatePolicy({ policy: { name, etag, description: "x" }, updateMask: { paths: ["description"] } }, withKey(orgKey))],
        ["delete", (name: string, etag: string) => policies.deletePolicy({ name, etag }, withKey(orgKey))],
      ] as const) {
        const err = await rpcError(call(target.name, target.etag));
        const none = await rpcError(call(missing, "1"));
        expect([what, Code[err.code], reasonOf(err), err.rawMessage]).toEqual([what, "NotFound", "POLICY_NOT_FOUND", none.rawMessage]);
      }
    }
    expect(await names(t)).toEqual(["mine", "other org", "tenant level"]);
    expect(policyOf(await policies.getPolicy({ name: tenantLevel.name }, withKey(t.adminKey)))).toEqual(tenantLevel);

    // Within its org it may change and delete.
    const u = policyOf(await policies.updatePolicy({ policy: { name: mine.name, etag: mine.etag, description: "ok" }, updateMask: { paths: ["description"] } }, withKey(orgKey)));
    await policies.deletePolicy({ name: u.name, etag: u.etag }, withKey(orgKey));
    expect(await names(t)).toEqual(["other org", "tenant level"]);
  });

  test("when an admin lists with an org filter, then only that org's policies come back; an unknown org lists nothing", async () => {
    const t = await createTestTenant(server, "pol-filter");
    const org = await createOrg(t, "filter-gh");
    await createPolicy(t, { displayName: "tenant" });
    await createPolicy(t, { displayName: "in org", org, claims: { repository: "filter-gh/x" } });
    const list = (o: string) => policies.listPolicies({ parent: `tenants/${t.slug}`, org: o }, withKey(t.adminKey));
    expect((await list(org)).policies.map((p) => [p.displayName, p.org])).toEqual([["in org", org]]);
    expect((await list("no-such-org")).policies).toEqual([]);
    const bad = await rpcError(list("Not a slug"));
    expect([Code[bad.code], reasonOf(bad)]).toEqual(["InvalidArgument", "INVALID_FORMAT"]);
  });
});

describe("policiesForMatching", () => {
  test("when read for matching, then scope narrows as documented and org policies require their org's current owner, or nothing when it has none", async () => {
    const t = await createTestTenant(server, "pol-match");
    const org = await createOrg(t, "match-gh");
    const tp = policyOf(await createPolicy(t, { displayName: "B tenant", claims: { repository: "acme/x" }, maxSessionDurationSeconds: 60 }));
    const op = policyOf(await createPolicy(t, { displayName: "a org", org, claims: { repository: "match-gh/x" } }));
    const { tenantId } = await rowIds(t, []);
    const units = createUnitsOfWork(server.store.db);
    const { organization } = await directory.getOrganization({ name: `tenants/${t.slug}/orgs/${org}` }, withKey(t.adminKey));
    const orgId = await units.read({}, async (uow) => (await directoryRepository.findOrgBySlug(uow, tenantId, org))!.id);

    const all = await units.read({}, (uow) => policiesForMatching(uow, tenantId, {}));
    expect(all.map((p) => p.name)).toEqual([op.name, tp.name]);
    expect(all[0]).toMatchObject({ displayName: "a org", orgId, orgSlug: org, claims: { repository_owner: "match-gh", repository: "match-gh/x" } });
    expect(all[1]).toMatchObject({ displayName: "B tenant", orgId: null, orgSlug: null, claims: { repository: "acme/x" }, maxSessionSeconds: 60, permissions: ["keys:read"] });
    expect((await units.read({}, (uow) => policiesForMatching(uow, tenantId, { orgId: null }))).map((p) => p.name)).toEqual([tp.name]);
    expect((await units.read({}, (uow) => policiesForMatching(uow, tenantId, { orgId }))).map((p) => p.name)).toEqual([op.name]);

    await directory.updateOrganization({ organization: { name: organization!.name, etag: organization!.etag }, updateMask: { paths: ["github_owner"] } }, withKey(t.adminKey));
    const unbound = await units.read({}, (uow) => findPolicyForMatching(uow, tenantId, op.policyId));
    expect(unbound?.claims.repository_owner).toBe(`(organization ${org} is bound to no GitHub owner)`);
    expect(await units.read({}, (uow) => findPolicyForMatching(uow, tenantId, "not-a-uuid"))).toBeUndefined();
  });
});
