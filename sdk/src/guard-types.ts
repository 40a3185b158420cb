// The interface the guards (guards.ts) need from a verifier: createVerifier (verifier.ts)
// satisfies it, and so can any object that answers VerifyKey (DESIGN.md §3).

/** Who a valid credential is (from VerifyKeyResponse); for the calling service's logs, never for the end caller. */
export type KeywardIdentity = {
  /** The key id, or the minted token's id. */
  keyId: string;
  /** Tenant slug. */
  tenant: string;
  /** Org slug the credential is pinned to; "" for tenant scope. */
  org: string;
  /** Resource name of the owner principal. */
  owner: string;
  /** Effective permissions. */
  permissions: readonly string[];
};

/** What to check a credential for: the permissions the endpoint requires, and the org of the resource. */
export type VerifyOptions = { permissions?: readonly string[]; org?: string };

/**
 * Outcome of one verification. `resultName` is the VerifyResult without prefix: "VALID",
 * "INSUFFICIENT_PERMISSIONS", "WRONG_SCOPE", "REVOKED", "NOT_FOUND", "MALFORMED", "EXPIRED",
 * "OWNER_SUSPENDED", … `result` is its number. `identity` is set when valid.
 */
export type VerifyOutcome<I = KeywardIdentity> = {
  valid: boolean;
  result: number;
  resultName: string;
  identity?: I;
  missingPermissions: string[];
};

/**
 * Verifies a presented credential. Resolves with a verdict for every credential outcome;
 * rejects (any error) only when keyward cannot answer and nothing valid is cached — the
 * guards then fail closed (503 / Unavailable).
 */
export type KeyVerifier<I = KeywardIdentity> = {
  verify(key: string, opts: VerifyOptions): Promise<VerifyOutcome<I>>;
};
