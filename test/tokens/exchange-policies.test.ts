// ExchangeToken's choice of policy and of what the minted token carries (DESIGN.md §4,
// issue 11), through the real server: the named policy or the single match, ambiguity,
// tenancy of the name, permissions narrowed or refused, lifetimes, org pinning, bounds by
// the policy creator's current authority, request checks, and claim matching as GitHub
// names things (case-insensitive owner/repository, ids as exact strings, reusable workflows
// on job_workflow_ref, no patterns).
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { PrincipalStatus, PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { reasonOf, rpcError, uniq } from "../rpc.ts";
import type { LocalIssuer } from "../oidc/local-issuer.ts";
import { audienceOf, deployClaims, expectRefused, mintedCount, newPolicy, startExchangeWorld, type Claims, type ExchangeWorld } from "./exchange-support.ts";

let w: ExchangeWorld;
let idp: LocalIssuer;

beforeAll(async () => {
  w = await startExchangeWorld(["main"]);
  idp = w.issuers["main"]!;
});
afterAll(async () => {
  await w?.stop();
});

/** A token of the local issuer for `tenant`'s audience. */
function tokenFor(tenant: TestTenant, overrides: Record<string, unknown> = {}): Promise<string> {
  return idp.token(overrides, { audience: audienceOf(w, tenant) });
}

/** Exchanges a fresh default token (with `overrides`) at `tenant`. */
async function exchangeAt(tenant: TestTenant, req: { policy?: string; permissions?: string[]; durationSeconds?: number } = {}, overrides: Record<string, unknown> = {}) {
  return w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: await tokenFor(tenant, overrides), ...req });
}

/** A tenant with one policy of `claims` (and options). */
async function tenantWith(claims: Claims, opts: Parameters<typeof newPolicy>[3] = {}) {
  const tenant = await createTestTenant(w.server, "xpol");
  return { tenant, policy: await newPolicy(w, tenant, claims, opts) };
}

describe("which policy", () => {
  test("when the request names one of two matching policies, then that one is used", async () => {
    const { tenant } = await tenantWith(deployClaims);
    const second = await newPolicy(w, tenant, { repositoryOwner: "acme", repository: "acme/deploy" }, { permissions: ["keys:read"] });
    const granted = await exchangeAt(tenant, { policy: second.name });
    expect(granted.policy).toBe(second.name);
    expect(granted.permissions).toEqual(["keys:read"]);
    expect((await w.keys.verifyKey({ key: granted.accessToken })).policy).toBe(second.name);
  });

  test("when two policies match and none is named, then FailedPrecondition AMBIGUOUS_POLICY listing both names, audited, nothing minted", async () => {
    const { tenant, policy: first } = await tenantWith(deployClaims);
    const second = await newPolicy(w, tenant, { repositoryOwner: "acme" });
    const both = [first.name, second.name].sort();
    const { err } = await expectRefused(w, tenant, await tokenFor(tenant), {
      code: Code.FailedPrecondition, reason: "AMBIGUOUS_POLICY", metadata: { policies: both.join(",") }, details: { policies: both.join(",") },
    });
    for (const name of both) expect(err.rawMessage).toContain(name);
  });

  test("when the named policy belongs to another tenant, then InvalidArgument POLICY_TENANT_MISMATCH on field policy", async () => {
    const { tenant } = await tenantWith(deployClaims);
    const { policy: foreign } = await tenantWith(deployClaims);
    const err = await rpcError(exchangeAt(tenant, { policy: foreign.name }));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "POLICY_TENANT_MISMATCH"]);
    expect(err.findDetails(ErrorInfoSchema)[0]?.metadata).toMatchObject({ field: "policy" });
    expect(await mintedCount(w, tenant)).toBe(0);
  });

  test("when the named policy does not exist, then NotFound POLICY_NOT_FOUND, audited", async () => {
    const { tenant } = await tenantWith(deployClaims);
    await expectRefused(w, tenant, await tokenFor(tenant), { code: Code.NotFound, reason: "POLICY_NOT_FOUND" }, { policy: `tenants/${tenant.slug}/policies/${randomUUID()}` });
  });

  test("when the named policy is not a policy name, then InvalidArgument INVALID_RESOURCE_NAME", async () => {
    const { tenant } = await tenantWith(deployClaims);
    const err = await rpcError(exchangeAt(tenant, { policy: `tenants/${tenant.slug}/keys/abc` }));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "INVALID_RESOURCE_NAME"]);
  });
});

describe("permissions", () => {
  test("when narrower permissions are requested, then the token carries exactly them (in the answer and at VerifyKey)", async () => {
    const { tenant } = await tenantWith(deployClaims, { permissions: ["harden_runner:write", "keys:read"] });
    const granted = await exchangeAt(tenant, { permissions: ["harden_runner:read"] });
    expect(granted.permissions).toEqual(["harden_runner:read"]);
    const verified = await w.keys.verifyKey({ key: granted.accessToken });
    expect(verified.permissions).toEqual(["harden_runner:read"]);
    expect((await w.keys.verifyKey({ key: granted.accessToken, requiredPermissions: ["keys:read"] })).result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
  });

  test("when wider permissions are requested, then PermissionDenied PERMISSIONS_EXCEED_POLICY naming them, audited", async () => {
    const { tenant, policy } = await tenantWith(deployClaims, { permissions: ["keys:read"] });
    const { err, event } = await expectRefused(w, tenant, await tokenFor(tenant), {
      code: Code.PermissionDenied, reason: "PERMISSIONS_EXCEED_POLICY", metadata: { exceeding: "keys:write" },
    }, { permissions: ["keys:write"] });
    expect(err.rawMessage).toContain("keys:write");
    expect(event?.resource).toBe(policy.name);
  });

  test("when an unknown permission is requested, then InvalidArgument UNKNOWN_PERMISSION", async () => {
    const { tenant } = await tenantWith(deployClaims);
    const err = await rpcError(exchangeAt(tenant, { permissions: ["rockets:launch"] }));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "UNKNOWN_PERMISSION"]);
  });
});

describe("lifetime", () => {
  test("when duration_seconds is 0, then the token lives the policy's maximum", async () => {
    const { tenant } = await tenantWith(deployClaims, { maxSessionDurationSeconds: 1200 });
    const granted = await exchangeAt(tenant);
    expect(granted.expiresIn).toBe(1200n);
    expect(Number(granted.expireTime?.seconds) * 1000).toBe(w.clock.now().getTime() - (w.clock.now().getTime() % 1000) + 1200_000);
  });

  test("when the policy's maximum is 0, then the token lives the 900 s default", async () => {
    const { tenant } = await tenantWith(deployClaims, { maxSessionDurationSeconds: 0 });
    expect((await exchangeAt(tenant)).expiresIn).toBe(900n);
  });

  test("when a shorter duration is asked, then the token lives that long", async () => {
    const { tenant } = await tenantWith(deployClaims, { maxSessionDurationSeconds: 600 });
    expect((await exchangeAt(tenant, { durationSeconds: 120 })).expiresIn).toBe(120n);
  });

  test("when the duration asked is above the policy's maximum, then InvalidArgument DURATION_EXCEEDS_POLICY with max, audited, and the token not spent", async () => {
    const { tenant } = await tenantWith(deployClaims, { maxSessionDurationSeconds: 600 });
    const token = await tokenFor(tenant);
    const { err } = await expectRefused(w, tenant, token, { code: Code.InvalidArgument, reason: "DURATION_EXCEEDS_POLICY", metadata: { field: "duration_seconds", max: "600" } }, { durationSeconds: 601 });
    expect(err.rawMessage).toContain("600");
    // Fixing the request, the same token still exchanges.
    expect((await w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: token, durationSeconds: 600 })).expiresIn).toBe(600n);
  });

  test("when the duration is beyond 3600 or negative, then InvalidArgument INVALID_DURATION", async () => {
    const { tenant } = await tenantWith(deployClaims);
    for (const durationSeconds of [3601, -1]) {
      const err = await rpcError(exchangeAt(tenant, { durationSeconds }));
      expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "INVALID_DURATION"]);
    }
  });
});

describe("org-scoped policy", () => {
  test("when the policy is org-scoped, then its token is pinned to the org: VALID for it, WRONG_SCOPE for another org or none", async () => {
    const tenant = await createTestTenant(w.server, "xpol-org");
    const directory = w.server.client(DirectoryService);
    const org = uniq("org");
    const other = uniq("org");
    await directory.createOrganization({ parent: `tenants/${tenant.slug}`, slug: org, githubOwner: "acme" }, withKey(tenant.adminKey));
    await directory.createOrganization({ parent: `tenants/${tenant.slug}`, slug: other, githubOwner: "other" }, withKey(tenant.adminKey));
    const policy = await newPolicy(w, tenant, { repository: "acme/deploy", repositoryId: "123456789" }, { org });
    const granted = await exchangeAt(tenant);
    expect(granted.policy).toBe(policy.name);
    const own = await w.keys.verifyKey({ key: granted.accessToken, org });
    expect([own.result, own.org]).toEqual([VerifyResult.VALID, org]);
    expect((await w.keys.verifyKey({ key: granted.accessToken, org: other })).result).toBe(VerifyResult.WRONG_SCOPE);
    expect((await w.keys.verifyKey({ key: granted.accessToken })).result).toBe(VerifyResult.WRONG_SCOPE);
    // A token of another owner does not match the org's policy.
    await expectRefused(w, tenant, await tokenFor(tenant, { repository_owner: "evil" }), { code: Code.PermissionDenied, reason: "NO_MATCHING_POLICY" });
  });
});

describe("the policy creator's current authority", () => {
  /** A principal holding `permissions` with a key it owns, made by the tenant admin. */
  async function principalWithKey(tenant: TestTenant, permissions: string[]) {
    const directory = w.server.client(DirectoryService);
    const { principal } = await directory.createPrincipal({ parent: `tenants/${tenant.slug}`, principalId: uniq("ops"), type: PrincipalType.USER, permissions }, withKey(tenant.adminKey));
    const { secret } = await w.keys.createKey({ parent: `tenants/${tenant.slug}`, displayName: uniq("ops-key"), permissions, expireDays: 30, owner: principal!.name }, withKey(tenant.adminKey));
    return { name: principal!.name, key: secret };
  }

  async function updatePrincipal(tenant: TestTenant, name: string, change: { permissions?: string[]; status?: PrincipalStatus }) {
    await w.server.client(DirectoryService).updatePrincipal(
      { principal: { name, ...change }, updateMask: { paths: Object.keys(change) } },
      withKey(tenant.adminKey),
    );
  }

  test("when the creator's permissions are reduced after the policy was made, then new tokens carry only what the creator still holds, and earlier tokens shrink at VerifyKey", async () => {
    const tenant = await createTestTenant(w.server, "xpol-bound");
    const ops = await principalWithKey(tenant, ["policies:write", "keys:read", "harden_runner:read"]);
    await newPolicy(w, tenant, deployClaims, { key: ops.key, permissions: ["keys:read", "harden_runner:read"] });
    const before = await exchangeAt(tenant);
    expect([...before.permissions].sort()).toEqual(["harden_runner:read", "keys:read"]);

    await updatePrincipal(tenant, ops.name, { permissions: ["policies:write", "keys:read"] });

    const after = await exchangeAt(tenant);
    expect(after.permissions).toEqual(["keys:read"]);
    expect((await w.keys.verifyKey({ key: after.accessToken })).permissions).toEqual(["keys:read"]);
    const earlier = await w.keys.verifyKey({ key: before.accessToken, requiredPermissions: ["harden_runner:read"] });
    expect([earlier.result, earlier.permissions]).toEqual([VerifyResult.INSUFFICIENT_PERMISSIONS, ["keys:read"]]);
    // Asking by name for what the creator lost (the policy still allows it): refused, never cut silently.
    await expectRefused(w, tenant, await tokenFor(tenant), {
      code: Code.PermissionDenied, reason: "PERMISSIONS_EXCEED_CREATOR", metadata: { exceeding: "harden_runner:read" }, details: { exceeding: "harden_runner:read" },
    }, { permissions: ["keys:read", "harden_runner:read"] });
    expect((await exchangeAt(tenant, { permissions: ["keys:read"] })).permissions).toEqual(["keys:read"]);
  });

  test("when the creator no longer holds any permission the policy allows, then PermissionDenied NO_PERMISSIONS_LEFT, audited", async () => {
    const tenant = await createTestTenant(w.server, "xpol-none");
    const ops = await principalWithKey(tenant, ["policies:write", "harden_runner:read"]);
    await newPolicy(w, tenant, deployClaims, { key: ops.key, permissions: ["harden_runner:read"] });
    await updatePrincipal(tenant, ops.name, { permissions: ["policies:write"] });
    await expectRefused(w, tenant, await tokenFor(tenant), { code: Code.PermissionDenied, reason: "NO_PERMISSIONS_LEFT" });
  });

  test("when the creator is suspended, then PermissionDenied CREATOR_SUSPENDED, audited", async () => {
    const tenant = await createTestTenant(w.server, "xpol-susp");
    const ops = await principalWithKey(tenant, ["policies:write", "keys:read"]);
    const policy = await newPolicy(w, tenant, deployClaims, { key: ops.key, permissions: ["keys:read"] });
    await updatePrincipal(tenant, ops.name, { status: PrincipalStatus.SUSPENDED });
    const { event } = await expectRefused(w, tenant, await tokenFor(tenant), { code: Code.PermissionDenied, reason: "CREATOR_SUSPENDED" });
    expect(event?.resource).toBe(policy.name);
  });
});

describe("the request", () => {
  test("when subject_token_type is neither id_token nor jwt, then InvalidArgument UNSUPPORTED_TOKEN_TYPE; both of those are accepted", async () => {
    const { tenant } = await tenantWith(deployClaims);
    for (const subjectTokenType of ["urn:ietf:params:oauth:token-type:access_token", "urn:ietf:params:oauth:token-type:saml2", "id_token"]) {
      const err = await rpcError(w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: await tokenFor(tenant), subjectTokenType }));
      expect([Code[err.code], reasonOf(err), err.findDetails(ErrorInfoSchema)[0]?.metadata["field"]]).toEqual(["InvalidArgument", "UNSUPPORTED_TOKEN_TYPE", "subject_token_type"]);
    }
    for (const subjectTokenType of ["urn:ietf:params:oauth:token-type:id_token", "urn:ietf:params:oauth:token-type:jwt"]) {
      const granted = await w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: await tokenFor(tenant), subjectTokenType });
      expect(granted.accessToken).not.toBe("");
    }
    expect(await mintedCount(w, tenant)).toBe(2);
  });

  test("when parent is missing or malformed, then InvalidArgument on field parent", async () => {
    const { tenant } = await tenantWith(deployClaims);
    for (const parent of ["", "tenant/x", `tenants/${tenant.slug}/orgs/a`]) {
      const err = await rpcError(w.exchange.exchangeToken({ parent, subjectToken: await tokenFor(tenant) }));
      expect(Code[err.code]).toBe("InvalidArgument");
      expect(err.findDetails(ErrorInfoSchema)[0]?.metadata["field"]).toBe("parent");
    }
  });

  test("when subject_token is missing, then InvalidArgument on field subject_token", async () => {
    const { tenant } = await tenantWith(deployClaims);
    const err = await rpcError(w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: "" }));
    expect([Code[err.code], err.findDetails(ErrorInfoSchema)[0]?.metadata["field"]]).toEqual(["InvalidArgument", "subject_token"]);
  });

  test("when the tenant does not exist, then Unauthenticated UNKNOWN_TENANT and the issuer is not asked", async () => {
    const tenant = { slug: uniq("nosuch"), adminKey: "" };
    const before = { ...idp.requests };
    const err = await rpcError(w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: await tokenFor(tenant) }));
    expect([Code[err.code], reasonOf(err)]).toEqual(["Unauthenticated", "UNKNOWN_TENANT"]);
    expect(idp.requests).toEqual(before);
  });
});

describe("claim matching as GitHub names things", () => {
  test("when the policy spells owner and repository in another case, then they still match", async () => {
    const { tenant, policy } = await tenantWith({ repositoryOwner: "ACME", repository: "Acme/Deploy", repositoryId: "123456789" });
    expect((await exchangeAt(tenant)).policy).toBe(policy.name);
    expect((await exchangeAt(tenant, {}, { repository: "ACME/deploy", repository_owner: "Acme" })).policy).toBe(policy.name);
  });

  test("when the policy pins repository_id 01234, then a token with 1234 is refused (CLAIM_MISMATCH repository_id) and one with 01234 accepted", async () => {
    const { tenant, policy } = await tenantWith({ repositoryOwner: "acme", repository: "acme/deploy", repositoryId: "01234" });
    await expectRefused(w, tenant, await tokenFor(tenant, { repository_id: "1234" }), {
      code: Code.PermissionDenied, reason: "CLAIM_MISMATCH", metadata: { claim: "repository_id" }, details: { expected: "01234", actual: "1234" },
    }, { policy: policy.name });
    expect((await exchangeAt(tenant, {}, { repository_id: "01234" })).policy).toBe(policy.name);
  });

  test("when the policy names a reusable workflow, then it matches on job_workflow_ref, not on the caller's workflow_ref", async () => {
    const shared = "acme/shared/.github/workflows/deploy.yml@refs/heads/main";
    const { tenant, policy } = await tenantWith({ repositoryOwner: "acme", jobWorkflowRef: shared });
    // A caller repository using the shared workflow: its own workflow_ref, the shared job_workflow_ref.
    const caller = { repository: "acme/app", workflow_ref: "acme/app/.github/workflows/ci.yml@refs/heads/main", job_workflow_ref: shared };
    expect((await exchangeAt(tenant, {}, caller)).policy).toBe(policy.name);
    // The caller's own workflow_ref naming the shared workflow does not count.
    await expectRefused(w, tenant, await tokenFor(tenant, { ...caller, workflow_ref: shared, job_workflow_ref: caller.workflow_ref }), {
      code: Code.PermissionDenied, reason: "CLAIM_MISMATCH", metadata: { claim: "job_workflow_ref" },
    }, { policy: policy.name });
  });

  test("when the policy's ref is refs/heads/main|refs/heads/dev, then it is a literal: neither branch matches", async () => {
    const { tenant, policy } = await tenantWith({ repositoryOwner: "acme", repository: "acme/deploy", ref: "refs/heads/main|refs/heads/dev" });
    for (const ref of ["refs/heads/main", "refs/heads/dev"]) {
      await expectRefused(w, tenant, await tokenFor(tenant, { ref }), { code: Code.PermissionDenied, reason: "CLAIM_MISMATCH", metadata: { claim: "ref" } }, { policy: policy.name });
    }
    // Only that exact string (no real branch is named so) would match.
    expect((await exchangeAt(tenant, {}, { ref: "refs/heads/main|refs/heads/dev" })).policy).toBe(policy.name);
  });

  test("when the token lacks a claim the policy requires (environment), then CLAIM_MISMATCH claim=environment", async () => {
    const { tenant, policy } = await tenantWith({ ...deployClaims, environment: "production" });
    await expectRefused(w, tenant, await tokenFor(tenant, { environment: undefined }), {
      code: Code.PermissionDenied, reason: "CLAIM_MISMATCH", metadata: { claim: "environment" }, details: { actual: "" },
    }, { policy: policy.name });
  });
});
