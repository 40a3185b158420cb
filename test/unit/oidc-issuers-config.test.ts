// KEYWARD_OIDC_ISSUERS as an operator types it. Found by the newcomer review of issue 11.
import { describe, expect, test } from "@jest/globals";
import { loadConfig } from "../../src/config.ts";

describe("KEYWARD_OIDC_ISSUERS", () => {
  // Open defect: src/config.ts issuers() keeps each URL exactly as typed, and
  // src/oidc/oidc-verifier.ts compares the token's `iss` to it as a string. GitHub's tokens
  // carry iss "https://token.actions.githubusercontent.com" (no slash), so an operator who
  // writes the issuer with a trailing slash gets ISSUER_NOT_TRUSTED for every exchange, and
  // the refusal names GitHub's own issuer as "not trusted". Start-up should either refuse the
  // value naming the variable, or normalise it (the discovery fetch in jwks-cache.ts already
  // strips trailing slashes, so only the comparison disagrees).
  test.failing("when an issuer is written with a trailing slash, then it is stored as the `iss` tokens carry", () => {
    const config = loadConfig({ KEYWARD_OIDC_ISSUERS: "https://token.actions.githubusercontent.com/" }, "/srv");
    expect(config.oidcIssuers).toEqual(["https://token.actions.githubusercontent.com"]);
  });

  test("when an issuer is written without a trailing slash, then it is kept as is", () => {
    const config = loadConfig({ KEYWARD_OIDC_ISSUERS: "https://token.actions.githubusercontent.com" }, "/srv");
    expect(config.oidcIssuers).toEqual(["https://token.actions.githubusercontent.com"]);
  });
});
