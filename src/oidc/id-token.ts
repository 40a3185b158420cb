// The contract between the OIDC ID-token verifier (oidc-verifier.ts) and its users
// (TokenExchangeService.ExchangeToken, PolicyService.TestPolicy).

/**
 * A verified OIDC ID token (GitHub Actions' claim set). Only what keyward needs; the raw
 * token is never kept.
 */
export type VerifiedIdToken = Readonly<{
  /** `iss`, one of KEYWARD_OIDC_ISSUERS (exactly as configured). */
  issuer: string;
  /** `jti`: with `issuer`, what replay protection records. */
  jti: string;
  /** `sub`, e.g. `repo:acme/deploy:ref:refs/heads/main` (for the audit log; never parsed). */
  subject: string;
  /** `iat` and `exp`. */
  issuedAt: Date;
  expiresAt: Date;
  /**
   * Every string-valued claim of the payload (GitHub sends ids as JSON strings; a number is
   * kept as its decimal string only if the issuer sent a number), e.g. `repository`,
   * `repository_owner`, `repository_id`, `job_workflow_ref`, `ref`, `environment`,
   * `event_name`, `run_id`, `workflow`.
   */
  claims: Readonly<Record<string, string>>;
  /**
   * True only when `allowExpired` was asked for and the token has expired (or is older than
   * the age limit): its signature, issuer and audience were verified as of one second after
   * it was issued. An exchange never asks for this.
   */
  expired: boolean;
  /** Lowercase hex SHA-256 of the raw token: what the audit log records instead of it. */
  sha256: string;
}>;

/** Options of OidcVerifier.verify. */
export type VerifyIdTokenOptions = Readonly<{
  /**
   * For PolicyService.TestPolicy only: accept a token past its expiry or age limit (GitHub's
   * live five minutes) so an engineer can still see how its claims compare; the result says
   * `expired: true`. Everything else (signature, issuer, audience, claims) is still checked.
   */
  allowExpired?: boolean;
}>;

/**
 * Verifies OIDC ID tokens from the configured issuers (DESIGN.md §4; RFC 7515, RFC 7519,
 * OpenID Connect Core 1.0 §2). Throws KeywardError UNAUTHENTICATED with reason
 * MALFORMED_TOKEN, ISSUER_NOT_TRUSTED (metadata `issuer`), HEADER_NOT_ALLOWED (`header`),
 * ALGORITHM_NOT_ALLOWED (`alg`), MISSING_KEY_ID, UNKNOWN_SIGNING_KEY (`issuer`, `kid`),
 * INVALID_SIGNATURE, AUDIENCE_MISMATCH (`expected`; the message names the expected audience),
 * TOKEN_EXPIRED, TOKEN_NOT_YET_VALID, TOKEN_TOO_OLD, MISSING_CLAIM (`claim`); UNAVAILABLE
 * ISSUER_UNAVAILABLE (`issuer`) when the issuer's keys cannot be had (never reachable, or the
 * last good set is older than its grace). A caller's aborted `signal` rejects with its reason.
 */
export type OidcVerifier = {
  /** Verifies `token` (a compact JWS) for `audience` (`<tenant>.<audience domain>`); `signal` ends the wait for any JWKS fetch. */
  verify(token: string, audience: string, signal?: AbortSignal, opts?: VerifyIdTokenOptions): Promise<VerifiedIdToken>;
  /** Aborts the JWKS fetches in flight (at shutdown). */
  stop(): void;
};
