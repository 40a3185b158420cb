// The OIDC tab's pure helpers (console/src/oidc-model.ts): the dry run's claim parsing (bad
// JSON refused in words before any call), the update mask of an edit, the allowlist editor's
// categories and permission levels (over the server's catalogue), and the dry run's words.
import { describe, expect, it } from "@jest/globals";
import { create } from "@bufbuild/protobuf";
import { TrustPolicySchema } from "../../gen/keyward/v1/policy_pb.ts";
import { PolicyMatchSchema } from "../../gen/keyward/v1/policy_service_pb.ts";
import {
  categoriesFor, claimsSummary, draftOf, draftProblems, lacksOwnerAndRepository, levelIn, looksLikeToken,
  matchInWords, parseClaims, policyFieldsOf, updateMaskOf, withLevel,
} from "../../console/src/oidc-model.ts";

const stored = create(TrustPolicySchema, {
  name: "tenants/acme/policies/p1", displayName: "deploys", description: "prod", etag: "3",
  claims: { repositoryOwner: "acme", repository: "acme/deploy", ref: "refs/heads/main" },
  maxSessionDurationSeconds: 900, permissions: ["keys:read", "harden_runner:write"],
});

describe("parseClaims", () => {
  it("when given a JSON object of strings and numbers, then strings are kept, numbers sent as text and null left out", () => {
    expect(parseClaims(' {"repository": "acme/deploy", "iat": 1700000000, "ok": true, "gone": null} ')).toEqual({
      ok: true, claims: { repository: "acme/deploy", iat: "1700000000", ok: "true" },
    });
  });

  it.each([
    ["", /Paste the claims/],
    ["{\"repository\": ", /not valid JSON/],
    ["[1, 2]", /must be a JSON object/],
    ["\"acme\"", /must be a JSON object/],
    ["{}", /has no claims/],
    ["{\"aud\": [\"a\", \"b\"]}", /"aud" is a list/],
    ["{\"x\": {\"y\": 1}}", /"x" is an object/],
  ])("when given %j, then it is refused in words", (text, words) => {
    const parsed = parseClaims(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(words);
  });

  it("tells a token from JSON", () => {
    expect(looksLikeToken("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")).toBe(true);
    expect(looksLikeToken("{\"repository\": \"a.b.c\"}")).toBe(false);
  });
});

describe("the policy draft", () => {
  it("when nothing is edited, then the update mask is empty; each edit adds its proto path", () => {
    const draft = draftOf(stored);
    expect(updateMaskOf(stored, draft)).toEqual([]);
    // Permissions compare as sets: another order is no change.
    expect(updateMaskOf(stored, { ...draft, permissions: ["harden_runner:write", "keys:read"] })).toEqual([]);
    const edited = { ...draft, description: "prod deploys", maxSessionDuration: "600", claims: { ...draft.claims, environment: "production" }, permissions: ["keys:read"] };
    expect(updateMaskOf(stored, edited)).toEqual(["description", "claims", "max_session_duration_seconds", "permissions"]);
    expect(policyFieldsOf(edited)).toMatchObject({ maxSessionDurationSeconds: 600, claims: { environment: "production", repository: "acme/deploy" } });
  });

  it.each([["3601"], ["-1"], ["1.5"], [""], ["ten"]])("when the max session duration is %j, then the form refuses it before any call", (typed) => {
    expect(draftProblems({ ...draftOf(stored), maxSessionDuration: typed }).map((p) => p.field)).toEqual(["maxSessionDuration"]);
  });

  it("when the duration is 0 or 3600 and there is a name, then the form has no problem; no name is one", () => {
    expect(draftProblems({ ...draftOf(stored), maxSessionDuration: "0" })).toEqual([]);
    expect(draftProblems({ ...draftOf(stored), maxSessionDuration: "3600" })).toEqual([]);
    expect(draftProblems({ ...draftOf(stored), displayName: "  " }).map((p) => p.field)).toEqual(["displayName"]);
  });

  it("when neither owner nor repository is filled in, then the guidance shows (the server enforces it)", () => {
    const draft = draftOf(undefined);
    expect(lacksOwnerAndRepository(draft)).toBe(true);
    expect(lacksOwnerAndRepository({ ...draft, claims: { ...draft.claims, repository: "acme/x" } })).toBe(false);
  });

  it("summarizes the required claims by their token names", () => {
    expect(claimsSummary(stored.claims)).toBe("repository_owner = acme · repository = acme/deploy · ref = refs/heads/main");
    expect(claimsSummary(undefined)).toBe("");
  });
});

describe("the allowlist editor", () => {
  it("when the credential holds *:write, then the server's whole catalogue is offered in its order; otherwise only the categories it holds", () => {
    const catalogue = ["deploy", "billing", "keys", "policies", "directory", "audit"];
    expect(categoriesFor(catalogue, ["*:write"])).toEqual(catalogue);
    expect(categoriesFor(catalogue, ["policies:write", "billing:read"])).toEqual(["billing", "policies"]);
    expect(categoriesFor(catalogue, ["*:read"], ["keys:write"])).toEqual(catalogue);
  });

  it("when a policy's allowlist names a category the catalogue no longer has, then it is still shown, after the catalogue's", () => {
    expect(categoriesFor(["keys", "policies"], ["policies:write"], ["harden_runner:read", "keys:read"])).toEqual(["keys", "policies", "harden_runner"]);
  });

  it("when one category changes under *:read, then the others keep read", () => {
    const categories = ["harden_runner", "keys"];
    expect(levelIn(["*:read"], "keys")).toBe(1);
    expect(withLevel(["*:read"], categories, "keys", 2)).toEqual(["harden_runner:read", "keys:write"]);
    expect(withLevel(["keys:write"], categories, "keys", 0)).toEqual([]);
  });
});

describe("the dry run in words", () => {
  it("names the failed claim with expected and actual, or says the token lacks it", () => {
    const fail = create(PolicyMatchSchema, { matched: false, failedClaim: "repository", expected: "acme/infra", actual: "acme/infra-evil" });
    expect(matchInWords(fail)).toBe('Does not match: fails on repository — the policy requires "acme/infra", the token has "acme/infra-evil".');
    expect(matchInWords(create(PolicyMatchSchema, { matched: false, failedClaim: "ref", expected: "refs/heads/main" }))).toMatch(/the token has no ref claim/);
    expect(matchInWords(create(PolicyMatchSchema, { matched: true }))).toMatch(/^Matches/);
  });
});
