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
  /** Lowercase hex SHA-256 of the raw token: what the audit log records instead of it. */
  sha256: string;
}>;

/**
 * Verifies OIDC ID tokens from the configured issuers (DESIGN.md §4). Throws KeywardError:
 * UNAUTHENTICATED with reason MALFORMED_TOKEN, ISSUER_NOT_TRUSTED, HEADER_NOT_ALLOWED,
 * ALGORITHM_NOT_ALLOWED, UNKNOWN_SIGNING_KEY, INVALID_SIGNATURE, AUDIENCE_MISMATCH (message
 * names the expected audience), TOKEN_EXPIRED, TOKEN_NOT_YET_VALID, TOKEN_TOO_OLD,
 * MISSING_CLAIM (metadata `claim`); UNAVAILABLE with ISSUER_UNAVAILABLE when the issuer's
 * keys cannot be had (never reachable, or the last good set is older than its grace).
 */
export type OidcVerifier = {
  /** Verifies `token` for `audience` (`<tenant>.<audience domain>`); `signal` bounds any JWKS fetch. */
  verify(token: string, audience: string, signal?: AbortSignal): Promise<VerifiedIdToken>;
  /** Stops background work (none is required; kept for symmetry with other services). */
  stop(): void;
};
