// Bad policies are refused with a precise reason and the field, and nothing is stored; weak
// policies are stored with warnings; org-scoped policies are pinned to their org's GitHub
// owner; names are unique within their scope, case-insensitively.
import { beforeAll, describe, expect, test } from "@jest/globals";
import { Code, type Client } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import type { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { directory, reasonOf, rpcError, server, useServer } from "../rpc.ts";
import { codesOf, createOrg, createPolicy, policyClient, policyOf, strongClaims, type Claims, type PolicyOptions } from "./policy-helpers.ts";

useServer();

let policies: Client<typeof PolicyService>;
let t: TestTenant;
beforeAll(async () => {
  policies = policyClient();
  t = await createTestTenant(server, "pol-val");
});

async function listed(tenant: TestTenant = t): Promise<string[]> {
  return (await policies.listPolicies({ parent: `tenants/${tenant.slug}`, pageSize: 1000 }, withKey(tenant.adminKey))).policies.map((p) => p.displayName);
}

/** The code, reason and ErrorInfo `field` of a refused create; checks that nothing was stored. */
async function refusedCreate(opts: PolicyOptions, tenant: TestTenant = t): Promise<{ code: string; reason: string | undefined; field: string | undefined }> {
  const displayName = opts.displayName ?? `refused ${Math.random().toString(36).slice(2, 8)}`;
  const before = await listed(tenant);
  const err = await rpcError(createPolicy(tenant, { ...opts, displayName }));
  expect(await listed(tenant)).toEqual(before);
  return { code: Code[err.code], reason: reasonOf(err), field: err.findDetails(ErrorInfoSchema)[0]?.metadata["field"] };
}

describe("create: fields", () => {
  test.each<[string, string, string, string, PolicyOptions]>([
    ["no display name", "InvalidArgument", "REQUIRED_FIELD", "policy.display_name", { displayName: "   " }],
    ["a display name over 100 characters", "InvalidArgument", "FIELD_TOO_LONG", "policy.display_name", { displayName: "x".repeat(101) }],
    ["a display name with a control character", "InvalidArgument", "INVALID_CHARACTERS", "policy.display_name", { displayName: "a\u0000b" }],
    ["a display name with a bidi override", "InvalidArgument", "INVALID_CHARACTERS", "policy.display_name", { displayName: "deploy\u202Eevil" }],
    ["a description over 1000 characters", "InvalidArgument", "FIELD_TOO_LONG", "policy.description", { description: "d".repeat(1001) }],
    ["no permissions", "InvalidArgument", "REQUIRED_FIELD", "policy.permissions", { permissions: [] }],
    ["an unknown permission", "InvalidArgument", "UNKNOWN_PERMISSION", "policy.permissions", { permissions: ["keys:read", "rockets:launch"] }],
    ["a max session of 3601 s", "InvalidArgument", "INVALID_SESSION_DURATION", "policy.max_session_duration_seconds", { maxSessionDurationSeconds: 3601 }],
    ["a negative max session", "InvalidArgument", "INVALID_SESSION_DURATION", "policy.max_session_duration_seconds", { maxSessionDurationSeconds: -1 }],
    ["an org that does not exist", "InvalidArgument", "UNKNOWN_ORG", "policy.org", { org: "no-such-org" }],
    ["an org that is no slug", "InvalidArgument", "INVALID_FORMAT", "policy.org", { org: "Not A Slug" }],
  ])("when a policy has %s, then %s %s on %s", async (_what, code, reason, field, opts) => {
    expect(await refusedCreate(opts)).toEqual({ code, reason, field });
  });

  test("when the max session is 0 or 3600, then it is stored as given (0 = server default)", async () => {
    expect(policyOf(await createPolicy(t, { maxSessionDurationSeconds: 0 })).maxSessionDurationSeconds).toBe(0);
    expect(policyOf(await createPolicy(t, { maxSessionDurationSeconds: 3600 })).maxSessionDurationSeconds).toBe(3600);
  });

  test("when the parent names another tenant, then PermissionDenied TENANT_MISMATCH", async () => {
    const err = await rpcError(policies.createPolicy({ parent: "tenants/someone-else", policy: { displayName: "x", claims: strongClaims, permissions: ["keys:read"] } }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["PermissionDenied", "TENANT_MISMATCH"]);
  });

  test("when the request carries no policy at all, then InvalidArgument REQUIRED_FIELD on the display name", async () => {
    const err = await rpcError(policies.createPolicy({ parent: `tenants/${t.slug}` }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "REQUIRED_FIELD"]);
  });
});

describe("create: claims", () => {
  test.each<[string, string, string, Claims]>([
    ["neither owner nor repository", "OWNER_OR_REPOSITORY_REQUIRED", "policy.claims", { ref: "refs/heads/main", environment: "production", repositoryId: "1" }],
    ["no claims at all", "OWNER_OR_REPOSITORY_REQUIRED", "policy.claims", {}],
    ["a repository without an owner part", "INVALID_FORMAT", "policy.claims.repository", { repository: "deploy" }],
    ["a repository with two slashes", "INVALID_FORMAT", "policy.claims.repository", { repository: "acme/deploy/x" }],
    ["a repository with a space", "INVALID_FORMAT", "policy.claims.repository", { repository: "acme/de ploy" }],
    ["an owner with a slash", "INVALID_FORMAT", "policy.claims.repository_owner", { repositoryOwner: "acme/x" }],
    ["a repository under another owner than the owner claim", "CONTRADICTORY_CLAIMS", "policy.claims.repository", { repositoryOwner: "acme", repository: "other/deploy" }],
    ["a repository whose owner only shares a prefix", "CONTRADICTORY_CLAIMS", "policy.claims.repository", { repositoryOwner: "acme", repository: "acme-evil/deploy" }],
    ["a repository_id with a sign", "INVALID_FORMAT", "policy.claims.repository_id", { repository: "acme/deploy", repositoryId: "-1" }],
    ["a repository_id in hex", "INVALID_FORMAT", "policy.claims.repository_id", { repository: "acme/deploy", repositoryId: "0x1F" }],
    ["a repository_owner_id with a decimal point", "INVALID_FORMAT", "policy.claims.repository_owner_id", { repository: "acme/deploy", repositoryOwnerId: "12.0" }],
    ["an event_name in capitals", "INVALID_FORMAT", "policy.claims.event_name", { repository: "acme/deploy", eventName: "Push" }],
    ["an event_name with a pipe", "INVALID_FORMAT", "policy.claims.event_name", { repository: "acme/deploy", eventName: "push|pull_request" }],
    ["a ref with a control character", "INVALID_CHARACTERS", "policy.claims.ref", { repository: "acme/deploy", ref: "refs/heads/main\n" + "x" }],
    ["an environment with a zero-width space", "INVALID_CHARACTERS", "policy.claims.environment", { repository: "acme/deploy", environment: "prod\u200B" }],
    ["a job_workflow_ref over 300 characters", "FIELD_TOO_LONG", "policy.claims.job_workflow_ref", { repository: "acme/deploy", jobWorkflowRef: `acme/deploy/${"w".repeat(300)}` }],
  ])("when the claims have %s, then InvalidArgument %s on %s", async (_what, reason, field, claims) => {
    expect(await refusedCreate({ claims })).toEqual({ code: "InvalidArgument", reason, field });
  });

  test("when owner and repository differ only in ASCII case, then the policy is accepted", async () => {
    const p = policyOf(await createPolicy(t, { claims: { repositoryOwner: "ACME", repository: "acme/Deploy", repositoryId: "1", environment: "prod" } }));
    expect(p.claims).toMatchObject({ repositoryOwner: "ACME", repository: "acme/Deploy" });
  });

  test("when ids have leading zeros and refs contain a pipe, then they are stored exactly as written", async () => {
    const p = policyOf(await createPolicy(t, { claims: { repository: "acme/deploy", repositoryId: "01234", repositoryOwnerId: "007", ref: "refs/heads/main|refs/heads/dev" } }));
    expect(p.claims).toMatchObject({ repositoryId: "01234", repositoryOwnerId: "007", ref: "refs/heads/main|refs/heads/dev" });
  });
});

describe("names", () => {
  test("when a name is taken in the same scope, in any case, then AlreadyExists POLICY_NAME_TAKEN; another org or the tenant level may reuse it", async () => {
    const tenant = await createTestTenant(server, "pol-names");
    const [orgA, orgB] = [await createOrg(tenant, "acme"), await createOrg(tenant, "acme")];
    await createPolicy(tenant, { displayName: "Deploy" });
    for (const displayName of ["Deploy", "deploy", "DEPLOY", "  deploy  "]) {
      expect(await refusedCreate({ displayName }, tenant)).toEqual({ code: "AlreadyExists", reason: "POLICY_NAME_TAKEN", field: "policy.display_name" });
    }
    await createPolicy(tenant, { displayName: "deploy", org: orgA });
    expect(await refusedCreate({ displayName: "DEPLOY", org: orgA }, tenant)).toEqual({ code: "AlreadyExists", reason: "POLICY_NAME_TAKEN", field: "policy.display_name" });
    await createPolicy(tenant, { displayName: "Deploy", org: orgB });
    expect((await listed(tenant)).sort()).toEqual(["Deploy", "Deploy", "deploy"]);
  });

  test("when a policy is renamed to a name its scope already has, then AlreadyExists POLICY_NAME_TAKEN; renaming to its own name in another case is allowed", async () => {
    const tenant = await createTestTenant(server, "pol-rename");
    await createPolicy(tenant, { displayName: "one" });
    const two = policyOf(await createPolicy(tenant, { displayName: "two" }));
    const err = await rpcError(policies.updatePolicy({ policy: { name: two.name, etag: two.etag, displayName: "ONE" }, updateMask: { paths: ["display_name"] } }, withKey(tenant.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["AlreadyExists", "POLICY_NAME_TAKEN"]);
    const renamed = await policies.updatePolicy({ policy: { name: two.name, etag: two.etag, displayName: "TWO" }, updateMask: { paths: ["display_name"] } }, withKey(tenant.adminKey));
    expect(policyOf(renamed).displayName).toBe("TWO");
  });

  test("when two creates with the same name race, then one succeeds and the other is AlreadyExists POLICY_NAME_TAKEN (the unique index decides)", async () => {
    const tenant = await createTestTenant(server, "pol-race");
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => createPolicy(tenant, { displayName: n % 2 === 0 ? "Race" : "race" })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect([Code[r.reason.code], reasonOf(r.reason)]).toEqual(["AlreadyExists", "POLICY_NAME_TAKEN"]);
    expect(await listed(tenant)).toHaveLength(1);
  });
});

describe("org-scoped policies", () => {
  test("when an org-scoped policy names no owner, then the org's GitHub owner is filled in", async () => {
    const org = await createOrg(t, "acme-org");
    const p = policyOf(await createPolicy(t, { org, claims: { repository: "ACME-ORG/deploy", repositoryId: "5", environment: "prod" } }));
    expect(p.org).toBe(org);
    expect(p.claims).toMatchObject({ repositoryOwner: "acme-org", repository: "ACME-ORG/deploy" });
    const bare = policyOf(await createPolicy(t, { org, claims: { ref: "refs/heads/main" } }));
    expect(bare.claims).toMatchObject({ repositoryOwner: "acme-org", ref: "refs/heads/main" });
  });

  test("when an org-scoped policy names another owner, or a repository of another owner, then InvalidArgument ORG_OWNER_MISMATCH", async () => {
    const org = await createOrg(t, "acme-org");
    expect(await refusedCreate({ org, claims: { repositoryOwner: "evil" } })).toEqual({ code: "InvalidArgument", reason: "ORG_OWNER_MISMATCH", field: "policy.claims.repository_owner" });
    expect(await refusedCreate({ org, claims: { repository: "evil/deploy" } })).toEqual({ code: "InvalidArgument", reason: "ORG_OWNER_MISMATCH", field: "policy.claims.repository" });
    expect(await refusedCreate({ org, claims: { repository: "acme-org-evil/deploy" } })).toEqual({ code: "InvalidArgument", reason: "ORG_OWNER_MISMATCH", field: "policy.claims.repository" });
    // The owner's case does not matter.
    expect(policyOf(await createPolicy(t, { org, claims: { repositoryOwner: "ACME-Org", repository: "acme-org/x" } })).org).toBe(org);
  });

  test("when the org is bound to no GitHub owner, then FailedPrecondition ORG_HAS_NO_GITHUB_OWNER", async () => {
    const org = await createOrg(t, "");
    expect(await refusedCreate({ org, claims: strongClaims })).toEqual({ code: "FailedPrecondition", reason: "ORG_HAS_NO_GITHUB_OWNER", field: undefined });
  });

  test("when the org's GitHub owner changes, then its policies show the new owner, and a claims update is pinned to it", async () => {
    const org = await createOrg(t, "old-owner");
    const p = policyOf(await createPolicy(t, { org, claims: { repositoryOwner: "old-owner" } }));
    const { organization } = await directory.getOrganization({ name: `tenants/${t.slug}/orgs/${org}` }, withKey(t.adminKey));
    await directory.updateOrganization({ organization: { name: organization!.name, etag: organization!.etag, githubOwner: "new-owner" }, updateMask: { paths: ["github_owner"] } }, withKey(t.adminKey));
    expect(policyOf(await policies.getPolicy({ name: p.name }, withKey(t.adminKey))).claims?.repositoryOwner).toBe("new-owner");
    const err = await rpcError(policies.updatePolicy({ policy: { name: p.name, etag: p.etag, claims: { repositoryOwner: "old-owner" } }, updateMask: { paths: ["claims"] } }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "ORG_OWNER_MISMATCH"]);
    const u = await policies.updatePolicy({ policy: { name: p.name, etag: p.etag, claims: { repository: "new-owner/app" } }, updateMask: { paths: ["claims"] } }, withKey(t.adminKey));
    expect(policyOf(u).claims).toMatchObject({ repositoryOwner: "new-owner", repository: "new-owner/app" });
  });

  test("when an org-scoped policy's claims are updated, then the whole validation runs again", async () => {
    const org = await createOrg(t, "acme-upd");
    const p = policyOf(await createPolicy(t, { org, claims: { repository: "acme-upd/app" } }));
    for (const [claims, reason] of [
      [{ repository: "nope" }, "INVALID_FORMAT"],
      [{ repositoryOwner: "acme-upd", repository: "other/x" }, "CONTRADICTORY_CLAIMS"],
      [{ repository: "other/x" }, "ORG_OWNER_MISMATCH"],
    ] as const) {
      const err = await rpcError(policies.updatePolicy({ policy: { name: p.name, etag: p.etag, claims }, updateMask: { paths: ["claims"] } }, withKey(t.adminKey)));
      expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", reason]);
    }
    expect(policyOf(await policies.getPolicy({ name: p.name }, withKey(t.adminKey)))).toEqual(p);
  });
});

describe("update: fields", () => {
  test.each<[string, string, object, string[]]>([
    ["an empty display name", "REQUIRED_FIELD", { displayName: "" }, ["display_name"]],
    ["no permissions", "REQUIRED_FIELD", { permissions: [] }, ["permissions"]],
    ["an unknown permission", "UNKNOWN_PERMISSION", { permissions: ["nope:read"] }, ["permissions"]],
    ["a max session of 7200 s", "INVALID_SESSION_DURATION", { maxSessionDurationSeconds: 7200 }, ["max_session_duration_seconds"]],
    ["claims without owner or repository", "OWNER_OR_REPOSITORY_REQUIRED", { claims: { environment: "prod" } }, ["claims"]],
  ])("when an update sets %s, then InvalidArgument %s and nothing changes", async (_what, reason, fields, paths) => {
    const p = policyOf(await createPolicy(t));
    const err = await rpcError(policies.updatePolicy({ policy: { name: p.name, etag: p.etag, ...fields }, updateMask: { paths } }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", reason]);
    expect(policyOf(await policies.getPolicy({ name: p.name }, withKey(t.adminKey)))).toEqual(p);
  });
});

describe("warnings", () => {
  test.each<[string, string[], Claims]>([
    ["an owner only", ["NO_STRONG_CLAIM", "OWNER_WILDCARD", "NO_IMMUTABLE_ID"], { repositoryOwner: "acme" }],
    ["an owner and a ref", ["NO_STRONG_CLAIM", "OWNER_WILDCARD", "NO_IMMUTABLE_ID"], { repositoryOwner: "acme", ref: "refs/heads/main" }],
    ["an owner and its id", ["NO_STRONG_CLAIM", "OWNER_WILDCARD"], { repositoryOwner: "acme", repositoryOwnerId: "42" }],
    ["a repository without ids", ["NO_IMMUTABLE_ID"], { repository: "acme/deploy" }],
    ["an owner and a repository id", [], { repositoryOwner: "acme", repositoryId: "7" }],
    ["a repository and pull_request_target", ["GUARDED_EVENT"], { repository: "acme/deploy", repositoryId: "7", eventName: "pull_request_target" }],
    ["a strong policy", [], strongClaims],
  ])("when a tenant-scoped policy has %s, then it is saved with warnings %j", async (_what, codes, claims) => {
    const res = await createPolicy(t, { claims });
    expect(codesOf(res.warnings)).toEqual(codes);
    for (const w of res.warnings) expect(w).toMatch(/^[A-Z_]+: \S/);
    expect(await listed()).toContain(policyOf(res).displayName);
  });

  test("when an org-scoped policy names only its org's owner, then it warns NO_STRONG_CLAIM and NO_IMMUTABLE_ID but not OWNER_WILDCARD", async () => {
    const org = await createOrg(t, "acme-w");
    const res = await createPolicy(t, { org, claims: {} });
    expect(codesOf(res.warnings)).toEqual(["NO_STRONG_CLAIM", "NO_IMMUTABLE_ID"]);
  });

  test("when an owner-wildcard warning is given, then it names the owner", async () => {
    const res = await createPolicy(t, { claims: { repositoryOwner: "wide-owner" } });
    expect(res.warnings.find((w) => w.startsWith("OWNER_WILDCARD:"))).toContain("every repository of wide-owner can exchange");
  });
});
