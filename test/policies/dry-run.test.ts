// TestPolicy, the dry run (DESIGN.md §4): for a claim set or a verified OIDC token, which
// policies of the caller's scope match and, for each that does not, the first claim that
// failed with expected and actual values. Matching is exact, claim by claim: no patterns,
// owner and repository case-insensitive, ids as exact strings, guarded events refused
// unless named. It changes nothing.
import { beforeAll, describe, expect, test } from "@jest/globals";
import { Code, type Client } from "@connectrpc/connect";
import type { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { createAuditLog } from "../../src/audit/audit-log.ts";
import { createUnitsOfWork } from "../../src/db/unit-of-work.ts";
import type { CallContext } from "../../src/directory/caller.ts";
import { directoryRepository } from "../../src/directory/directory-repository.ts";
import { toPermissionSet } from "../../src/directory/permissions.ts";
import { KeyKindName } from "../../src/keys/key-format.ts";
import { createLogger } from "../../src/logger.ts";
import type { OidcVerifier, VerifiedIdToken } from "../../src/oidc/id-token.ts";
import { createPolicyService } from "../../src/policies/policy-service.ts";
import { ErrorKind, KeywardError } from "../../src/errors.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { directory, keys, reasonOf, rpcError, server, useServer } from "../rpc.ts";
import { infraPush } from "./github-claims.ts";
import { createOrg, createPolicy, policyClient, policyOf, type Claims } from "./policy-helpers.ts";

useServer();

let policies: Client<typeof PolicyService>;
beforeAll(() => {
  policies = policyClient();
});

async function dryRun(t: TestTenant, claims: Record<string, string>, opts: { org?: string; key?: string } = {}) {
  return policies.testPolicy({ parent: `tenants/${t.slug}`, claims, org: opts.org ?? "" }, withKey(opts.key ?? t.adminKey));
}

/** One result per policy as [display name, matched, failed claim, expected, actual]. */
function verdicts(res: Awaited<ReturnType<typeof dryRun>>): [string, boolean, string, string, string][] {
  return res.results.map((r) => [r.displayName, r.matched, r.failedClaim, r.expected, r.actual]);
}

async function tenantWith(policiesByName: Record<string, Claims>): Promise<TestTenant> {
  const t = await createTestTenant(server, "dry");
  for (const [displayName, claims] of Object.entries(policiesByName)) await createPolicy(t, { displayName, claims });
  return t;
}

describe("dry run with a claim set", () => {
  test("when the claims satisfy a policy exactly, then it matches, and the answer echoes the claims and gives the audience", async () => {
    const t = await tenantWith({ infra: { repositoryOwner: "acme", repository: "acme/infra", repositoryId: "1234", ref: "refs/heads/main", environment: "production" } });
    const res = await dryRun(t, infraPush);
    expect(verdicts(res)).toEqual([["infra", true, "", "", ""]]);
    expect(res.results[0]?.reason).toBe("");
    expect(res.results[0]?.policy).toMatch(new RegExp(`^tenants/${t.slug}/policies/[0-9a-f-]{36}$`));
    expect(res.claims).toEqual(infraPush);
    expect(res.audience).toBe(`${t.slug}.${server.config.audienceDomain}`);
  });

  test("when the repository only shares a prefix with the policy's (acme/infra-evil vs acme/infra), then it fails on repository with expected and actual", async () => {
    const t = await tenantWith({ infra: { repository: "acme/infra" } });
    const res = await dryRun(t, { ...infraPush, repository: "acme/infra-evil" });
    expect(verdicts(res)).toEqual([["infra", false, "repository", "acme/infra", "acme/infra-evil"]]);
    expect(res.results[0]?.reason).toContain("repository");
    expect(res.results[0]?.reason).toContain('"acme/infra-evil"');
  });

  test("when a ref looks like an alternation (refs/heads/main|refs/heads/dev), then it is a literal string on either side", async () => {
    const t = await tenantWith({ main: { repository: "acme/infra", ref: "refs/heads/main" }, piped: { repository: "acme/infra", ref: "refs/heads/main|refs/heads/dev" } });
    expect(verdicts(await dryRun(t, { ...infraPush, ref: "refs/heads/main|refs/heads/dev" }))).toEqual([
      ["piped", true, "", "", ""],
      ["main", false, "ref", "refs/heads/main", "refs/heads/main|refs/heads/dev"],
    ]);
    expect(verdicts(await dryRun(t, { ...infraPush, ref: "refs/heads/dev" }))).toEqual([
      ["main", false, "ref", "refs/heads/main", "refs/heads/dev"],
      ["piped", false, "ref", "refs/heads/main|refs/heads/dev", "refs/heads/dev"],
    ]);
  });

  test("when owner and repository differ in case, then they match; other claims are case-sensitive", async () => {
    const t = await tenantWith({ infra: { repositoryOwner: "ACME", repository: "Acme/Infra", environment: "production" } });
    expect(verdicts(await dryRun(t, { ...infraPush, repository_owner: "acme", repository: "aCmE/iNfRa" }))).toEqual([["infra", true, "", "", ""]]);
    expect(verdicts(await dryRun(t, { ...infraPush, environment: "Production" }))).toEqual([["infra", false, "environment", "production", "Production"]]);
  });

  test("when ids differ only by leading zeros (01234 vs 1234), then they do not match", async () => {
    const t = await tenantWith({ padded: { repository: "acme/infra", repositoryId: "01234" }, plain: { repository: "acme/infra", repositoryOwnerId: "77", repositoryId: "1234" } });
    expect(verdicts(await dryRun(t, infraPush))).toEqual([
      ["plain", true, "", "", ""],
      ["padded", false, "repository_id", "01234", "1234"],
    ]);
  });

  test("when a policy pins a reusable workflow by job_workflow_ref, then callers running it match and their own workflows do not", async () => {
    const shared = "acme/shared-workflows/.github/workflows/deploy.yml@refs/heads/main";
    const t = await tenantWith({ reusable: { repositoryOwner: "acme", jobWorkflowRef: shared } });
    expect(verdicts(await dryRun(t, { ...infraPush, repository: "acme/app", job_workflow_ref: shared }))).toEqual([["reusable", true, "", "", ""]]);
    expect(verdicts(await dryRun(t, infraPush))).toEqual([["reusable", false, "job_workflow_ref", shared, infraPush.job_workflow_ref]]);
  });

  test("when the token comes from pull_request_target or workflow_run, then only a policy naming that event matches", async () => {
    const t = await tenantWith({ plain: { repository: "acme/infra" }, prt: { repository: "acme/infra", eventName: "pull_request_target" } });
    expect(verdicts(await dryRun(t, { ...infraPush, event_name: "pull_request_target" }))).toEqual([
      ["prt", true, "", "", ""],
      ["plain", false, "event_name", "", "pull_request_target"],
    ]);
    const wr = await dryRun(t, { ...infraPush, event_name: "workflow_run" });
    expect(verdicts(wr)).toEqual([
      ["plain", false, "event_name", "", "workflow_run"],
      ["prt", false, "event_name", "pull_request_target", "workflow_run"],
    ]);
    expect(wr.results[0]?.reason).toContain("refused unless the policy names that event");
  });

  test("when a claim the policy requires is missing, then it fails on that claim with an empty actual value", async () => {
    const t = await tenantWith({ env: { repository: "acme/infra", environment: "production" } });
    const { environment: _omitted, ...withoutEnvironment } = infraPush;
    const res = await dryRun(t, withoutEnvironment);
    expect(verdicts(res)).toEqual([["env", false, "environment", "production", ""]]);
    expect(res.results[0]?.reason).toContain("no environment claim");
  });

  test("when several policies are in scope, then matching ones come first, each group by case-insensitive name", async () => {
    const t = await tenantWith({
      "delta miss": { repository: "other/x" },
      "Bravo match": { repositoryOwner: "acme" },
      "charlie miss": { repository: "acme/other" },
      "alpha match": { repository: "acme/infra" },
      "Echo match": { repository: "acme/infra", ref: "refs/heads/main" },
    });
    expect((await dryRun(t, infraPush)).results.map((r) => [r.displayName, r.matched])).toEqual([
      ["alpha match", true],
      ["Bravo match", true],
      ["Echo match", true],
      ["charlie miss", false],
      ["delta miss", false],
    ]);
  });

  test("when an org policy is tested, then it requires the org's CURRENT GitHub owner", async () => {
    const t = await createTestTenant(server, "dry-org");
    const org = await createOrg(t, "old-gh");
    await createPolicy(t, { displayName: "org policy", org, claims: { ref: "refs/heads/main" } });
    expect(verdicts(await dryRun(t, { ...infraPush, repository_owner: "old-gh" }))).toEqual([["org policy", true, "", "", ""]]);
    const { organization } = await directory.getOrganization({ name: `tenants/${t.slug}/orgs/${org}` }, withKey(t.adminKey));
    await directory.updateOrganization({ organization: { name: organization!.name, etag: organization!.etag, githubOwner: "new-gh" }, updateMask: { paths: ["github_owner"] } }, withKey(t.adminKey));
    expect(verdicts(await dryRun(t, { ...infraPush, repository_owner: "old-gh" }))).toEqual([["org policy", false, "repository_owner", "new-gh", "old-gh"]]);
    expect(verdicts(await dryRun(t, { ...infraPush, repository_owner: "new-gh" }))).toEqual([["org policy", true, "", "", ""]]);
  });

  test("when an org-scoped key runs the dry run, then only its org's policies are compared; `org` narrows an admin's", async () => {
    const t = await createTestTenant(server, "dry-scope");
    const [own, other] = [await createOrg(t, "acme"), await createOrg(t, "acme")];
    await createPolicy(t, { displayName: "tenant", claims: { repository: "acme/infra" } });
    await createPolicy(t, { displayName: "own", org: own, claims: { repository: "acme/infra" } });
    await createPolicy(t, { displayName: "other", org: other, claims: { repository: "acme/infra" } });
    const { secret: orgKey } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "org key", permissions: ["policies:read"], org: own, expireDays: 30 }, withKey(t.adminKey));
    const names = async (opts: { org?: string; key?: string }) => (await dryRun(t, infraPush, opts)).results.map((r) => r.displayName);
    expect(await names({ key: orgKey })).toEqual(["own"]);
    expect(await names({ key: orgKey, org: other })).toEqual([]);
    expect(await names({})).toEqual(["other", "own", "tenant"]);
    expect(await names({ org: other })).toEqual(["other"]);
    expect(await names({ org: "no-such-org" })).toEqual([]);
  });

  test("when the dry run goes over gRPC, then the answer is the same", async () => {
    const t = await tenantWith({ infra: { repository: "acme/infra" } });
    const res = await policyClient(server.grpcTransport).testPolicy({ parent: `tenants/${t.slug}`, claims: { ...infraPush, repository: "acme/infra-evil" } }, withKey(t.adminKey));
    expect(verdicts(res)).toEqual([["infra", false, "repository", "acme/infra", "acme/infra-evil"]]);
  });

  test("when the dry run runs, then the policies are unchanged", async () => {
    const t = await tenantWith({ infra: { repository: "acme/infra" } });
    const before = (await policies.listPolicies({ parent: `tenants/${t.slug}` }, withKey(t.adminKey))).policies;
    await dryRun(t, infraPush);
    expect((await policies.listPolicies({ parent: `tenants/${t.slug}` }, withKey(t.adminKey))).policies).toEqual(before);
  });
});

describe("dry run: bad requests", () => {
  let t: TestTenant;
  beforeAll(async () => {
    t = await tenantWith({ infra: { repository: "acme/infra" } });
  });

  test.each<[string, string, { subjectToken?: string; claims?: Record<string, string> }]>([
    ["neither a token nor claims", "REQUIRED_FIELD", {}],
    ["both a token and claims", "CONFLICTING_FIELDS", { subjectToken: "eyJ.x.y", claims: { repository: "acme/infra" } }],
    ["65 claims", "TOO_MANY_CLAIMS", { claims: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`c${i}`, "v"])) }],
    ["a claim name with a space", "INVALID_FORMAT", { claims: { "bad name": "v" } }],
    ["an empty claim name", "INVALID_FORMAT", { claims: { "": "v" } }],
    ["a claim name of 65 characters", "INVALID_FORMAT", { claims: { ["c".repeat(65)]: "v" } }],
    ["a claim value with a NUL", "INVALID_CHARACTERS", { claims: { repository: "acme/infra\u0000" } }],
    ["a claim value of 1001 characters", "FIELD_TOO_LONG", { claims: { ref: "r".repeat(1001) } }],
  ])("when the request has %s, then InvalidArgument %s", async (_what, reason, body) => {
    const err = await rpcError(policies.testPolicy({ parent: `tenants/${t.slug}`, ...body }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", reason]);
  });

  test("when 64 claims are sent, then they are accepted", async () => {
    const claims = Object.fromEntries(Array.from({ length: 63 }, (_, i) => [`c${i}`, "v"]));
    const res = await policies.testPolicy({ parent: `tenants/${t.slug}`, claims: { ...claims, repository: "acme/infra" } }, withKey(t.adminKey));
    expect(verdicts(res)).toEqual([["infra", true, "", "", ""]]);
  });

  test("when the caller lacks policies:read, then PermissionDenied INSUFFICIENT_SCOPE; another tenant gets TENANT_MISMATCH", async () => {
    const { secret } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "no policies", permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
    const err = await rpcError(dryRun(t, infraPush, { key: secret }));
    expect([Code[err.code], reasonOf(err)]).toEqual(["PermissionDenied", "INSUFFICIENT_SCOPE"]);
    const other = await createTestTenant(server, "dry-other");
    const mismatch = await rpcError(dryRun(t, infraPush, { key: other.adminKey }));
    expect([Code[mismatch.code], reasonOf(mismatch)]).toEqual(["PermissionDenied", "TENANT_MISMATCH"]);
  });

  test("when a subject token that does not verify is sent, then Unauthenticated with the verifier's reason, and the token reaches neither the answer nor the logs", async () => {
    const token = `eyJhbGciOiJSUzI1NiJ9.e30.${"s".repeat(20)}-dry-run-secret`;
    const err = await rpcError(policies.testPolicy({ parent: `tenants/${t.slug}`, subjectToken: token }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["Unauthenticated", "MISSING_KEY_ID"]);
    expect(err.rawMessage).not.toContain("dry-run-secret");
    expect(server.logs.filter((l) => l.includes("dry-run-secret"))).toEqual([]);
    expect(server.logs.some((l) => l.includes("PolicyService/TestPolicy"))).toBe(true);
  });
});

describe("dry run with a subject token (service with a stand-in verifier)", () => {
  /** A PolicyService over the test database whose ID-token verifier is `verify`. */
  async function serviceWith(t: TestTenant, verify: OidcVerifier["verify"]) {
    const units = createUnitsOfWork(server.store.db);
    const logger = createLogger({ level: "silent" });
    const catalogue = { categories: server.config.permissionCategories };
    const service = createPolicyService({
      units, audit: createAuditLog({ units, clock: server.clock, logger }), clock: server.clock, catalogue,
      audienceDomain: server.config.audienceDomain, publicUrl: undefined, idTokens: { verify, stop: () => {} },
    });
    const ids = await units.read({}, async (uow) => {
      const tenant = (await directoryRepository.findTenantBySlug(uow, t.slug))!;
      return { tenantId: tenant.id, adminId: (await directoryRepository.findPrincipal(uow, tenant.id, "admin"))!.id };
    });
    const ctx: CallContext = {
      requestId: "dry-run-test",
      signal: new AbortController().signal,
      caller: {
        tenantId: ids.tenantId, tenantSlug: t.slug, principalRowId: ids.adminId, principalName: `tenants/${t.slug}/principals/admin`, boundedBy: [],
        credentialId: "test", kind: KeyKindName.ADMIN, orgId: null, orgSlug: null, permissions: toPermissionSet(catalogue, ["*:write"]),
      },
    };
    return { service, ctx };
  }

  test("when a token verifies, then its claims are compared, and the verifier was asked for the tenant's audience with the call's signal", async () => {
    const t = await tenantWith({ infra: { repository: "acme/infra", environment: "production" }, other: { repository: "acme/other" } });
    const asked: { token: string; audience: string; signal: AbortSignal | undefined }[] = [];
    const verified: VerifiedIdToken = {
      issuer: "https://token.actions.githubusercontent.com", jti: "j-1", subject: infraPush.sub, issuedAt: new Date(), expiresAt: new Date(), claims: infraPush, expired: false, sha256: "00",
    };
    const { service, ctx } = await serviceWith(t, async (token, audience, signal) => {
      asked.push({ token, audience, signal });
      return verified;
    });
    const res = await service.test(ctx, { parent: `tenants/${t.slug}`, subjectToken: "the.id.token", claims: {}, org: "" });
    expect(asked).toEqual([{ token: "the.id.token", audience: `${t.slug}.${server.config.audienceDomain}`, signal: ctx.signal }]);
    expect(res.results.map((r) => [r.displayName, r.matched, r.failedClaim, r.expected, r.actual])).toEqual([
      ["infra", true, "", "", ""],
      ["other", false, "repository", "acme/other", "acme/infra"],
    ]);
    expect(res.claims).toEqual(infraPush);
  });

  test("when the verifier refuses the token, then its error passes through unchanged", async () => {
    const t = await tenantWith({ infra: { repository: "acme/infra" } });
    const refusal = new KeywardError(ErrorKind.UNAUTHENTICATED, "AUDIENCE_MISMATCH", "audience mismatch: expected x");
    const { service, ctx } = await serviceWith(t, async () => {
      throw refusal;
    });
    await expect(service.test(ctx, { parent: `tenants/${t.slug}`, subjectToken: "the.id.token", claims: {}, org: "" })).rejects.toBe(refusal);
  });
});

describe("dry run after a policy changes", () => {
  test("when a policy is updated or deleted, then the next dry run reflects it at once", async () => {
    const t = await createTestTenant(server, "dry-change");
    const p = policyOf(await createPolicy(t, { displayName: "moving", claims: { repository: "acme/infra" } }));
    expect(verdicts(await dryRun(t, infraPush))).toEqual([["moving", true, "", "", ""]]);
    const u = policyOf(await policies.updatePolicy({ policy: { name: p.name, etag: p.etag, claims: { repository: "acme/infra", ref: "refs/heads/release" } }, updateMask: { paths: ["claims"] } }, withKey(t.adminKey)));
    expect(verdicts(await dryRun(t, infraPush))).toEqual([["moving", false, "ref", "refs/heads/release", "refs/heads/main"]]);
    await policies.deletePolicy({ name: u.name, etag: u.etag }, withKey(t.adminKey));
    expect((await dryRun(t, infraPush)).results).toEqual([]);
  });
});
