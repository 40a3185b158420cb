// VerifyKey's decision: checksum first (no database), then one lookup, then the verdict.
// A credential shaped like a compact JWS is a minted token and takes the token path
// (token-recognition.ts). Every credential outcome is data (a VerifyOutcome), never an exception.
import type { Clock } from "../clock.ts";
import { isCompactJws } from "../common/compact-jws.ts";
import { resourceName, slugPattern } from "../common/resource-names.ts";
import { formatPermissions, notImplied, parsePermissions, type Catalogue, type PermissionSet } from "../directory/permissions.ts";
import { invalidArgument } from "../errors.ts";
import { keyMatches, parseKey, type KeyKindName } from "../keys/key-format.ts";
import { effectivePermissions } from "./effective-permissions.ts";
import type { KeyLookup, KeyLookupRecord } from "./key-lookup.ts";
import type { LastUsedRecorder } from "./last-used.ts";
import { oncePer } from "./once-per.ts";
import type { TokenRecognizer } from "./token-recognition.ts";

/** The verdicts of DESIGN.md §8. */
export type VerifyResultName = VerifyOutcome["result"];

/** What a credential is: an API key of one of the key kinds, or a token keyward minted. */
export type CredentialKind = KeyKindName | "exchanged_token" | "user_token";

/** The key kind of a credential kind; undefined for minted tokens. */
export function keyKindOf(kind: CredentialKind): KeyKindName | undefined {
  return kind === "exchanged_token" || kind === "user_token" ? undefined : kind;
}

/** Who a credential is, when it is known. */
export type CredentialIdentity = Readonly<{
  /** The key id, or a minted token's `jti`. */
  keyId: string;
  kind: CredentialKind;
  tenantId: string;
  tenantSlug: string;
  orgId: string | null;
  orgSlug: string | null;
  ownerRowId: string;
  ownerName: string;
  /**
   * Principals besides the owner whose current authority bounds the credential: its creator
   * when it made the key (or user token) for someone else, and every principal bounding the
   * credential it was made with (a key made with a key made for you stays bounded by whoever
   * made that); for an exchanged token, the principals bounding its policy.
   */
  boundedBy: readonly string[];
  /**
   * granted ∩ owner's current ∩ the current permissions of every principal of `boundedBy`
   * (∩ the policy's current allowlist, for an exchanged token).
   */
  permissions: PermissionSet;
  expiresAt: Date | null;
  /** False when the owner is suspended (its keys may still verify: see the tenant setting). */
  ownerActive: boolean;
  /**
   * False when a principal of `boundedBy` (e.g. the creator of a key made for someone else)
   * is suspended: such a key is treated as if its owner were suspended (DESIGN.md §1).
   */
  creatorActive: boolean;
  /**
   * For a minted token: the policy it was minted under (resource name; null for user tokens
   * and once the policy is deleted) and its `sub`. Null for API keys.
   */
  token: Readonly<{ policyName: string | null; subject: string }> | null;
}>;

/** Where an unknown credential's key id led: a real key of a tenant whose secret did not match. */
export type ResolvedKeyId = Readonly<{ keyId: string; tenantId: string; orgId: string | null }>;

/**
 * What the credential itself is, before scope and permissions: the verdict of
 * `authenticate` (management calls) and the first half of `verify`.
 */
export type Recognition =
  | Readonly<{ result: "valid"; identity: CredentialIdentity }>
  | Readonly<{ result: "revoked" | "expired" | "owner_suspended"; identity: CredentialIdentity }>
  | Readonly<{ result: "malformed" }>
  /** `resolved` is set when the key id is a real key of a tenant (wrong secret or kind). */
  | Readonly<{ result: "not_found"; resolved?: ResolvedKeyId }>;

/** The answer to one verification: one shape per result, so no field is optional by accident. */
export type VerifyOutcome =
  | Readonly<{ result: "valid"; identity: CredentialIdentity; permissions: readonly string[] }>
  | Readonly<{ result: "insufficient_permissions"; identity: CredentialIdentity; permissions: readonly string[]; missing: readonly string[] }>
  | Readonly<{ result: "wrong_scope"; identity: CredentialIdentity; permissions: readonly string[] }>
  | Readonly<{ result: "revoked" | "expired" | "owner_suspended"; identity: CredentialIdentity }>
  | Readonly<{ result: "malformed" }>
  | Readonly<{ result: "not_found" }>;

/** A verification request. */
export type VerifyInput = Readonly<{
  key: string;
  requiredPermissions: readonly string[];
  org: string;
  /** The call's signal: aborts the lookup when the caller's deadline passes or it goes away. */
  signal?: AbortSignal | undefined;
}>;

/** The verifier's operations. */
export type Verifier = {
  /** VerifyKey: the full verdict, scope and permissions included. */
  verify(input: VerifyInput): Promise<VerifyOutcome>;
  /**
   * For management calls: what the credential is, before scope and permissions. A usable
   * credential is `valid`; a key's last use is recorded only when its owner and bounds are
   * active (a suspended principal's key is refused by the authenticator, so it was not used).
   * Minted tokens have no last-used time.
   */
  authenticate(key: string, signal?: AbortSignal): Promise<Recognition>;
};

/** Creates the verifier. */
export function createVerifier(deps: {
  lookup: KeyLookup;
  clock: Clock;
  catalogue: Catalogue;
  keyPrefix: string;
  keyPepper: string | undefined;
  lastUsed: LastUsedRecorder;
  /** The minted-token path (token-recognition.ts). */
  tokens: TokenRecognizer;
}): Verifier {
  const { lookup, clock, catalogue } = deps;

  /** Records a key's use (api_key.last_used_at); minted tokens have no such column. */
  const recordUse = (identity: CredentialIdentity) => {
    if (identity.token === null) deps.lastUsed.record(identity.keyId, clock.now());
  };

  /**
   * Who a key record is. Cached records are the same object on every hit: the identity (its
   * effective permissions parsed and intersected) is computed once per record read.
   */
  const identityOf = oncePer((record: KeyLookupRecord): CredentialIdentity => {
    // A key is bounded by its owner's current authority and by that of every principal up
    // the chain that made it (DESIGN.md §1): stripping any of them shrinks it at once.
    const effective = effectivePermissions(catalogue, record.permissions, [record.ownerPermissions, ...record.boundsPermissions]);
    return {
      keyId: record.keyId,
      kind: record.kind,
      tenantId: record.tenantId,
      tenantSlug: record.tenantSlug,
      orgId: record.orgId,
      orgSlug: record.orgSlug,
      ownerRowId: record.ownerRowId,
      ownerName: resourceName(record.tenantSlug, "principals", record.ownerPrincipalId),
      boundedBy: record.boundedBy,
      permissions: effective,
      expiresAt: record.expiresAt,
      ownerActive: record.ownerStatus === "active",
      creatorActive: record.boundsActive,
      token: null,
    };
  });

  /** Checks format, existence, secret, revocation, expiry (against the clock, every call) and owner/creator status. */
  async function identify(key: string, signal: AbortSignal | undefined): Promise<Recognition> {
    if (isCompactJws(key)) return deps.tokens(key, signal);
    const parsed = parseKey(deps.keyPrefix, key);
    if (parsed === undefined) return { result: "malformed" };
    const record = await lookup(parsed.keyId, signal);
    if (record === undefined) return { result: "not_found" };
    if (record.kind !== parsed.kind || !keyMatches(parsed.raw, record.secretHash, deps.keyPepper)) {
      return { result: "not_found", resolved: { keyId: record.keyId, tenantId: record.tenantId, orgId: record.orgId } };
    }
    const identity = identityOf(record);
    if (record.revokedAt !== null) return { result: "revoked", identity };
    if (record.expiresAt !== null && record.expiresAt.getTime() <= clock.now().getTime()) return { result: "expired", identity };
    if ((!identity.ownerActive || !identity.creatorActive) && record.disableKeysOfSuspendedPrincipals) return { result: "owner_suspended", identity };
    return { result: "valid", identity };
  }

  /** The identity's effective permissions as strings, formatted once per identity (cached identities repeat). */
  const permissionsOf = oncePer((identity: CredentialIdentity): readonly string[] => formatPermissions(catalogue, identity.permissions));

  return {
    async verify(input) {
      // A broken request is an RPC error; a bad credential is a verdict.
      const required = parsePermissions(catalogue, input.requiredPermissions, "required_permissions");
      if (input.org !== "" && !slugPattern.test(input.org)) {
        throw invalidArgument("INVALID_FORMAT", "org: expected an organization slug (lowercase letters, digits, hyphens)", { field: "org" });
      }
      const recognition = await identify(input.key, input.signal);
      if (recognition.result === "not_found") return { result: "not_found" };
      if (recognition.result !== "valid") return recognition;
      const { identity } = recognition;
      const permissions = permissionsOf(identity);
      if (identity.orgSlug !== null && input.org !== identity.orgSlug) return { result: "wrong_scope", identity, permissions };
      const missing = notImplied(catalogue, identity.permissions, required);
      if (missing.length > 0) return { result: "insufficient_permissions", identity, permissions, missing };
      recordUse(identity);
      return { result: "valid", identity, permissions };
    },
    async authenticate(key, signal) {
      const recognition = await identify(key, signal);
      const { result } = recognition;
      if (result === "valid" && recognition.identity.ownerActive && recognition.identity.creatorActive) recordUse(recognition.identity);
      return recognition;
    },
  };
}
