// Claim matching (DESIGN.md §4), without a server: each claim compared on its own, exact
// equality, empty = wildcard, no patterns, owner and repository ASCII-case-insensitive, ids
// as exact strings, the first failing claim reported in a fixed order, guarded events
// refused unless named.
import { describe, expect, test } from "@jest/globals";
import { asciiLower, claimNames, matchClaims, type RequiredClaims } from "../../src/policies/claim-matching.ts";
import { infraPush } from "../policies/github-claims.ts";

const token = infraPush;

describe("matchClaims", () => {
  test("when the policy requires nothing, then any token matches (the service refuses such policies; matching alone does not)", () => {
    expect(matchClaims({}, token)).toEqual({ matched: true });
  });

  test("when every required claim equals the token's, then it matches", () => {
    const required: RequiredClaims = { repository: "acme/infra", repository_id: "1234", ref: "refs/heads/main", environment: "production", job_workflow_ref: token.job_workflow_ref };
    expect(matchClaims(required, token)).toEqual({ matched: true });
  });

  test("when an empty string is required, then it is a wildcard", () => {
    expect(matchClaims({ repository: "acme/infra", environment: "" }, { ...token, environment: "anything" })).toEqual({ matched: true });
  });

  test.each<[string, RequiredClaims, Record<string, string | undefined>, string, string, string]>([
    ["a prefix of the repository", { repository: "acme/infra" }, { repository: "acme/infra-evil" }, "repository", "acme/infra", "acme/infra-evil"],
    ["a repository that is a prefix", { repository: "acme/infra-evil" }, { repository: "acme/infra" }, "repository", "acme/infra-evil", "acme/infra"],
    ["a ref that looks like an alternation", { ref: "refs/heads/main|refs/heads/dev" }, { ref: "refs/heads/dev" }, "ref", "refs/heads/main|refs/heads/dev", "refs/heads/dev"],
    ["a ref given as a glob", { ref: "refs/heads/*" }, { ref: "refs/heads/main" }, "ref", "refs/heads/*", "refs/heads/main"],
    ["a regex-looking repository", { repository: "acme/.*" }, { repository: "acme/infra" }, "repository", "acme/.*", "acme/infra"],
    ["an id with a leading zero", { repository_id: "01234" }, { repository_id: "1234" }, "repository_id", "01234", "1234"],
    ["an id without the leading zero", { repository_owner_id: "77" }, { repository_owner_id: "077" }, "repository_owner_id", "77", "077"],
    ["an environment in another case", { environment: "production" }, { environment: "Production" }, "environment", "production", "Production"],
    ["a job_workflow_ref in another case", { job_workflow_ref: "acme/x/.github/workflows/a.yml@refs/heads/main" }, { job_workflow_ref: "ACME/x/.github/workflows/a.yml@refs/heads/main" }, "job_workflow_ref", "acme/x/.github/workflows/a.yml@refs/heads/main", "ACME/x/.github/workflows/a.yml@refs/heads/main"],
    ["a missing claim", { environment: "production" }, { environment: undefined }, "environment", "production", ""],
    ["an owner whose Unicode lowercase would match (Kelvin sign)", { repository_owner: "kacme" }, { repository_owner: "\u212Aacme" }, "repository_owner", "kacme", "\u212Aacme"],
  ])("when the token has %s, then it fails on that claim with expected and actual", (_what, required, claims, claim, expected, actual) => {
    const m = matchClaims(required, { ...token, ...claims });
    expect(m).toMatchObject({ matched: false, claim, expected, actual });
  });

  test("when owner and repository differ only in ASCII case, then they match", () => {
    expect(matchClaims({ repository_owner: "ACME", repository: "Acme/INFRA" }, token)).toEqual({ matched: true });
  });

  test("when several claims fail, then the first in claimNames order is reported", () => {
    const m = matchClaims({ event_name: "workflow_dispatch", ref: "refs/heads/x", repository: "acme/other", repository_owner: "other" }, token);
    expect(m).toMatchObject({ matched: false, claim: "repository_owner" });
    expect(claimNames[0]).toBe("repository_owner");
    const m2 = matchClaims({ event_name: "workflow_dispatch", ref: "refs/heads/x" }, token);
    expect(m2).toMatchObject({ matched: false, claim: "ref" });
  });

  test("when sub would match but a claim differs, then sub is never consulted", () => {
    expect(matchClaims({ repository: "acme/infra" }, { ...token, repository: "acme/other", sub: "repo:acme/infra:ref:refs/heads/main" })).toMatchObject({ matched: false, claim: "repository" });
  });

  test.each(["pull_request_target", "workflow_run"])("when the token comes from %s, then it fails on event_name unless the policy names that event", (event) => {
    const m = matchClaims({ repository: "acme/infra" }, { ...token, event_name: event });
    expect(m).toMatchObject({ matched: false, claim: "event_name", expected: "", actual: event });
    if (!m.matched) expect(m.explanation).toContain("refused unless the policy names that event");
    expect(matchClaims({ repository: "acme/infra", event_name: event }, { ...token, event_name: event })).toEqual({ matched: true });
  });

  test("when a policy names another event than the token's, then it fails on event_name with both values", () => {
    expect(matchClaims({ event_name: "push" }, { ...token, event_name: "pull_request" })).toMatchObject({ matched: false, claim: "event_name", expected: "push", actual: "pull_request" });
  });

  test("when explanations are written, then they quote expected and actual values", () => {
    const m = matchClaims({ repository: "acme/infra" }, { ...token, repository: "acme/infra-evil" });
    if (m.matched) throw new Error("expected a mismatch");
    expect(m.explanation).toBe('repository: the policy requires "acme/infra", the token has "acme/infra-evil"');
  });
});

describe("asciiLower", () => {
  test("when a name has non-ASCII letters, then only A–Z are lowered", () => {
    expect(asciiLower("ACME-Ünï\u212A")).toBe("acme-Ünï\u212A");
  });
});
