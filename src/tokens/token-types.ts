// The token vocabulary of token exchange (RFC 8693) and of keyward's minted tokens (RFC 9068):
// one spelling for each identifier, shared by ExchangeToken, CreateUserToken and VerifyKey.

/** RFC 8693 §3 token type identifiers (`subject_token_type`, `issued_token_type`). */
export const tokenTypes = {
  idToken: "urn:ietf:params:oauth:token-type:id_token",
  jwt: "urn:ietf:params:oauth:token-type:jwt",
  accessToken: "urn:ietf:params:oauth:token-type:access_token",
} as const;

/** RFC 8693 §2.2.1 `token_type` of every token keyward issues: a bearer token (RFC 6750). */
export const bearerTokenType = "Bearer";

/** The JOSE `typ` header of keyward's access tokens (RFC 9068 §2.1), checked when they are verified. */
export const accessTokenTyp = "at+jwt";
