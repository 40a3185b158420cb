// KEYWARD_OIDC_ISSUERS as an operator types it. Found by the newcomer review of issue 11.
import { describe, expect, test } from "@jest/globals";
import { loadConfig } from "../../src/config.ts";

describe("KEYWARD_OIDC_ISSUERS", () => {
  // GitHub's tokens carry iss "https://token.actions.githubusercontent.com" (no slash): an
  // operator who writes it with a trailing slash must not get ISSUER_NOT_TRUSTED forever.
  test("when an issuer is written with a trailing slash, then it is stored as the `iss` tokens carry", () => {
    const config = loadConfig({ KEYWARD_OIDC_ISSUERS: "https://token.actions.githubusercontent.com/" }, "/srv");
    expect(config.oidcIssuers).toEqual(["https://token.actions.githubusercontent.com"]);
  });

  test("when an issuer is written without a trailing slash, then it is kept as is", () => {
    const config = loadConfig({ KEYWARD_OIDC_ISSUERS: "https://token.actions.githubusercontent.com" }, "/srv");
    expect(config.oidcIssuers).toEqual(["https://token.actions.githubusercontent.com"]);
  });
});
