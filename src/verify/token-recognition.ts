// The minted-token half of VerifyKey and bearer authentication: a compact JWS is checked
// against keyward's own published keys (RFC 9068 profile, `typ: at+jwt`), then its row is
// read in one query (token-lookup.ts), then the verdict. Every outcome is data.
import { errors, jwtVerify, type JWTPayload } from "jose";
import type { Clock } from "../clock.ts";
import { resourceName } from "../common/resource-names.ts";
import { tenantAudience } from "../common/tenant-audience.ts";
import type { Catalogue } from "../directory/permissions.ts";
import { accessTokenTyp } from "../tokens/token-types.ts";
import { signingAlgorithm, type SigningKeys } from "../tokens/signing-keys.ts";
import { effectivePermissions } from "./effective-permissions.ts";
import { oncePer } from "./once-per.ts";
import type { TokenLookup, TokenLookupRecord } from "./token-lookup.ts";
import type { CredentialIdentity, Recognition } from "./verifier.ts";

/** The longest minted token looked at, in characters; anything longer is MALFORMED without any work. */
export const maxAccessTokenLength = 8 * 1024;
/** Leeway for `exp`/`nbf`/`iat` between replicas' clocks, in seconds. */
const clockToleranceSeconds = 5;

/** Recognizes a credential already known to be shaped like a compact JWS (isCompactJws). */
export type TokenRecognizer = (token: string, signal: AbortSignal | undefined) => Promise<Recognition>;

/**
 * Creates the recognizer. Signature, `typ`, `alg` (ES256 only), `iss` or any other format
 * failure → malformed; expired (its row's expiry, or `exp` past the leeway) → expired; a valid
 * signature with no row → not_found; a row of another tenant than the token's `tenant`/`aud`
 * → malformed; an exchanged token whose policy was deleted → revoked; a suspended principal
 * → owner_suspended when the tenant disables such credentials (else valid, and the
 * authenticator refuses management calls). Effective permissions: granted ∩ the principal's
 * current ∩ every bounding principal's current ∩ (exchanged) the policy's current allowlist.
 */
export function createTokenRecognizer(deps: {
  lookup: TokenLookup;
  signingKeys: SigningKeys;
  clock: Clock;
  catalogue: Catalogue;
  tokenIssuer: string;
  audienceDomain: string;
}): TokenRecognizer {
  const { lookup, signingKeys, clock, catalogue } = deps;

  /** The signature-checked payload; `expired` when only `exp` failed; undefined for anything else wrong. */
  async function checkSignature(token: string): Promise<{ payload: JWTPayload; expired: boolean } | undefined> {
    try {
      const { payload } = await jwtVerify(
        token,
        async (header) => {
          const key = typeof header.kid === "string" ? await signingKeys.verificationKey(header.kid) : undefined;
          if (key === undefined) throw new errors.JWKSNoMatchingKey();
          return key;
        },
        {
          algorithms: [signingAlgorithm],
          typ: accessTokenTyp,
          issuer: deps.tokenIssuer,
          requiredClaims: ["jti", "sub", "aud", "exp", "iat", "tenant"],
          currentDate: clock.now(),
          clockTolerance: clockToleranceSeconds,
        },
      );
      return { payload, expired: false };
    } catch (e) {
      // jose checks the signature before the claims: an expired token's payload is authentic.
      if (e instanceof errors.JWTExpired) return { payload: e.payload, expired: true };
      if (e instanceof errors.JOSEError) return undefined;
      // Anything else (the database, re-reading the keys) is not a verdict.
      throw e;
    }
  }

  /**
   * Who a token record is. Cached records are the same object on every hit (as in the
   * verifier's key path): the identity is built once per record read.
   */
  const identityOf = oncePer((record: TokenLookupRecord): CredentialIdentity => {
    const bounds = [record.principalPermissions, ...record.boundsPermissions, ...(record.policyPermissions === null ? [] : [record.policyPermissions])];
    const effective = effectivePermissions(catalogue, record.permissions, bounds);
    return {
      keyId: record.jti,
      kind: record.kind === "user" ? "user_token" : "exchanged_token",
      tenantId: record.tenantId,
      tenantSlug: record.tenantSlug,
      orgId: record.orgId,
      orgSlug: record.orgSlug,
      ownerRowId: record.principalRowId,
      ownerName: resourceName(record.tenantSlug, "principals", record.principalId),
      boundedBy: record.boundedBy,
      permissions: effective,
      expiresAt: record.expiresAt,
      ownerActive: record.principalStatus === "active",
      creatorActive: record.boundsActive,
      token: { policyName: record.policyId === null ? null : resourceName(record.tenantSlug, "policies", record.policyId), subject: record.subject },
    };
  });

  return async (token, signal) => {
    if (token.length > maxAccessTokenLength) return { result: "malformed" };
    const checked = await checkSignature(token);
    if (checked === undefined) return { result: "malformed" };
    const { payload } = checked;
    const { jti, tenant, aud } = payload as { jti?: unknown; tenant?: unknown; aud?: unknown };
    if (typeof jti !== "string" || typeof tenant !== "string" || aud !== tenantAudience(tenant, deps.audienceDomain)) return { result: "malformed" };
    const record = await lookup(jti, signal);
    if (record === undefined) return { result: "not_found" };
    if (record.tenantSlug !== tenant) return { result: "malformed" };
    const identity = identityOf(record);
    // Deleting the policy stops its tokens at once (DESIGN.md §4).
    if (record.kind === "exchanged" && record.policyId === null) return { result: "revoked", identity };
    if (checked.expired || record.expiresAt.getTime() <= clock.now().getTime()) return { result: "expired", identity };
    if ((!identity.ownerActive || !identity.creatorActive) && record.disableKeysOfSuspendedPrincipals) return { result: "owner_suspended", identity };
    return { result: "valid", identity };
  };
}
