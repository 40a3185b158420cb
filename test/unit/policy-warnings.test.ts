// Weak-policy warnings and claim validation without a server: which shapes get which
// codes, each warning `CODE: advice`; validation of claim values, contradictions, and the
// pin of org-scoped policies to their org's GitHub owner.
import { describe, expect, test } from "@jest/globals";
import { KeywardError } from "../../src/errors.ts";
import type { RequiredClaims } from "../../src/policies/claim-matching.ts";
import { effectiveClaims, pinClaimsToOrg, requireOwnerOrRepository, validateClaims, type ClaimInput } from "../../src/policies/policy-claims.ts";
import { policyWarnings, warningCodes } from "../../src/policies/policy-warnings.ts";

const none: ClaimInput = { repository_owner: "", repository: "", job_workflow_ref: "", ref: "", environment: "", repository_id: "", repository_owner_id: "", event_name: "" };

function refusal(run: () => unknown): { kind: string; reason: string; field: string | undefined } {
  try {
    run();
  } catch (e) {
    if (e instanceof KeywardError) return { kind: e.kind, reason: e.reason, field: e.metadata["field"] };
    throw e;
  }
  throw new Error("expected a refusal");
}

describe("policyWarnings", () => {
  test.each<[string, RequiredClaims, "tenant" | "org", string[]]>([
    ["an owner only, tenant scope", { repository_owner: "acme" }, "tenant", ["NO_STRONG_CLAIM", "OWNER_WILDCARD", "NO_IMMUTABLE_ID"]],
    ["an owner only, org scope", { repository_owner: "acme" }, "org", ["NO_STRONG_CLAIM", "NO_IMMUTABLE_ID"]],
    ["an owner and its id", { repository_owner: "acme", repository_owner_id: "1" }, "tenant", ["NO_STRONG_CLAIM", "OWNER_WILDCARD"]],
    ["an owner, ref and event", { repository_owner: "acme", ref: "refs/heads/main", event_name: "push" }, "tenant", ["NO_STRONG_CLAIM", "OWNER_WILDCARD", "NO_IMMUTABLE_ID"]],
    ["an owner and an environment", { repository_owner: "acme", environment: "prod" }, "tenant", ["OWNER_WILDCARD", "NO_IMMUTABLE_ID"]],
    ["an owner and a workflow ref", { repository_owner: "acme", job_workflow_ref: "acme/w/.github/workflows/x.yml@refs/heads/main" }, "tenant", ["OWNER_WILDCARD", "NO_IMMUTABLE_ID"]],
    ["an owner and a repository id", { repository_owner: "acme", repository_id: "5" }, "tenant", []],
    ["a repository", { repository: "acme/x" }, "tenant", ["NO_IMMUTABLE_ID"]],
    ["a repository and the owner id", { repository: "acme/x", repository_owner_id: "9" }, "tenant", []],
    ["a repository and workflow_run", { repository: "acme/x", repository_id: "5", event_name: "workflow_run" }, "tenant", ["GUARDED_EVENT"]],
    ["everything pinned", { repository_owner: "acme", repository: "acme/x", repository_id: "5", repository_owner_id: "9", environment: "prod" }, "org", []],
  ])("when a policy has %s, then the warnings are %j", (_what, claims, scope, codes) => {
    const warnings = policyWarnings(claims, scope);
    expect(warningCodes(warnings)).toEqual(codes);
    for (const w of warnings) expect(w).toMatch(/^[A-Z_]+: [a-z0-9]/);
  });

  test("when the warnings are given, then the advice says what to add", () => {
    const [strong, wildcard, ids] = policyWarnings({ repository_owner: "acme" }, "tenant");
    expect(strong).toContain("repository, repository_id, job_workflow_ref or environment");
    expect(wildcard).toContain("every repository of acme can exchange");
    expect(ids).toBe("NO_IMMUTABLE_ID: pin repository_id or repository_owner_id so a renamed or re-registered repository cannot match");
  });
});

describe("validateClaims", () => {
  test("when values are valid, then only the non-empty ones are kept, trimmed, ids exactly as written", () => {
    expect(validateClaims({ ...none, repository: " acme/x ", repository_id: "0012", ref: "refs/heads/main|refs/heads/dev" })).toEqual({
      repository: "acme/x", repository_id: "0012", ref: "refs/heads/main|refs/heads/dev",
    });
  });

  test.each<[string, Partial<ClaimInput>, string, string]>([
    ["a repository without a slash", { repository: "acme" }, "INVALID_FORMAT", "policy.claims.repository"],
    ["an owner with a space", { repository_owner: "ac me" }, "INVALID_FORMAT", "policy.claims.repository_owner"],
    ["a repository id with letters", { repository_id: "12a" }, "INVALID_FORMAT", "policy.claims.repository_id"],
    ["an owner id with a space inside", { repository_owner_id: "1 2" }, "INVALID_FORMAT", "policy.claims.repository_owner_id"],
    ["an event with a digit", { event_name: "push2" }, "INVALID_FORMAT", "policy.claims.event_name"],
    ["a repository of another owner", { repository_owner: "acme", repository: "evil/x" }, "CONTRADICTORY_CLAIMS", "policy.claims.repository"],
    ["a ref with a tab", { ref: "refs/heads/\tmain" }, "INVALID_CHARACTERS", "policy.claims.ref"],
    ["an environment of 301 characters", { environment: "e".repeat(301) }, "FIELD_TOO_LONG", "policy.claims.environment"],
  ])("when the claims have %s, then %s on %s", (_what, claims, reason, field) => {
    expect(refusal(() => validateClaims({ ...none, ...claims }))).toEqual({ kind: "INVALID_ARGUMENT", reason, field });
  });

  test("when neither owner nor repository is set, then OWNER_OR_REPOSITORY_REQUIRED", () => {
    expect(refusal(() => requireOwnerOrRepository({ environment: "prod" }))).toEqual({ kind: "INVALID_ARGUMENT", reason: "OWNER_OR_REPOSITORY_REQUIRED", field: "policy.claims" });
    expect(() => requireOwnerOrRepository({ repository: "a/b" })).not.toThrow();
  });
});

describe("org pinning", () => {
  const org = { slug: "infra", githubOwner: "acme" };

  test("when no owner is given, then the org's owner is filled in; the same owner in another case is kept", () => {
    expect(pinClaimsToOrg({ repository: "ACME/x" }, org)).toEqual({ repository: "ACME/x", repository_owner: "acme" });
    expect(pinClaimsToOrg({ repository_owner: "Acme" }, org)).toEqual({ repository_owner: "Acme" });
  });

  test("when another owner or a repository of another owner is given, then ORG_OWNER_MISMATCH", () => {
    expect(refusal(() => pinClaimsToOrg({ repository_owner: "evil" }, org))).toMatchObject({ reason: "ORG_OWNER_MISMATCH", field: "policy.claims.repository_owner" });
    expect(refusal(() => pinClaimsToOrg({ repository: "acme-evil/x" }, org))).toMatchObject({ reason: "ORG_OWNER_MISMATCH", field: "policy.claims.repository" });
  });

  test("when the org has no GitHub owner, then FAILED_PRECONDITION ORG_HAS_NO_GITHUB_OWNER", () => {
    expect(refusal(() => pinClaimsToOrg({ repository_owner: "acme" }, { slug: "infra", githubOwner: null }))).toMatchObject({ kind: "FAILED_PRECONDITION", reason: "ORG_HAS_NO_GITHUB_OWNER" });
  });

  test("when claims are read for matching, then an org policy requires the org's current owner, or an owner no token has", () => {
    expect(effectiveClaims({ repository_owner: "old", ref: "r" }, org)).toEqual({ repository_owner: "acme", ref: "r" });
    expect(effectiveClaims({ repository_owner: "old" }, null)).toEqual({ repository_owner: "old" });
    const unbound = effectiveClaims({ repository_owner: "acme" }, { slug: "infra", githubOwner: null });
    expect(unbound.repository_owner).toBe("(organization infra is bound to no GitHub owner)");
  });
});
