// VerifyKey's decision: checksum first (no database), then one lookup, then the verdict.
// Every credential outcome is data (a VerifyResult), never an exception.
import type { Clock } from "../clock.ts";
import { resourceName, slugPattern } from "../common/resource-names.ts";
import { formatPermissions, intersect, notImplied, parsePermissions, toPermissionSet, type Catalogue, type PermissionSet } from "../directory/permissions.ts";
import { invalidArgument } from "../errors.ts";
import { keyMatches, parseKey, type KeyKindName } from "../keys/key-format.ts";
import type { KeyLookup } from "./key-lookup.ts";
import type { LastUsedRecorder } from "./last-used.ts";

/** The verdicts of DESIGN.md §8. */
export type VerifyResultName =
  | "valid" | "malformed" | "not_found" | "expired" | "revoked" | "insufficient_permissions" | "wrong_scope" | "owner_suspended";

/** Who a credential is, when it is known. */
export type CredentialIdentity = Readonly<{
  keyId: string;
  kind: KeyKindName;
  tenantId: string;
  tenantSlug: string;
  orgId: string | null;
  orgSlug: string | null;
  ownerRowId: string;
  ownerName: string;
  /** granted ∩ owner's current permissions. */
  permissions: PermissionSet;
  expiresAt: Date | null;
  /** False when the owner is suspended (its keys may still verify: see the tenant setting). */
  ownerActive: boolean;
}>;

/** The answer to one verification. */
export type VerifyOutcome = Readonly<{
  result: VerifyResultName;
  identity?: CredentialIdentity;
  /** Effective permissions, spelled out (for the response). */
  permissions?: readonly string[];
  missing?: readonly string[];
}>;

/** A verification request. */
export type VerifyInput = Readonly<{ key: string; requiredPermissions: readonly string[]; org: string }>;

/** The verifier's operations. */
export type Verifier = {
  /** VerifyKey: the full verdict, scope and permissions included. */
  verify(input: VerifyInput): Promise<VerifyOutcome>;
  /** For management calls: the identity of a usable credential, before scope and permissions. */
  authenticate(key: string): Promise<CredentialIdentity | undefined>;
};

/** Creates the verifier. */
export function createVerifier(deps: {
  lookup: KeyLookup;
  clock: Clock;
  catalogue: Catalogue;
  keyPrefix: string;
  keyPepper: string | undefined;
  lastUsed: LastUsedRecorder;
}): Verifier {
  const { lookup, clock, catalogue } = deps;

  /** Checks format, existence, secret, revocation, expiry and owner status. */
  async function identify(key: string): Promise<{ result: VerifyResultName; identity?: CredentialIdentity }> {
    const parsed = parseKey(deps.keyPrefix, key);
    if (parsed === undefined) return { result: "malformed" };
    const record = await lookup(parsed.keyId);
    if (record === undefined || record.kind !== parsed.kind || !keyMatches(parsed.raw, record.secretHash, deps.keyPepper)) {
      return { result: "not_found" };
    }
    const effective = intersect(toPermissionSet(catalogue, record.permissions), toPermissionSet(catalogue, record.ownerPermissions));
    const identity: CredentialIdentity = {
      keyId: record.keyId,
      kind: record.kind,
      tenantId: record.tenantId,
      tenantSlug: record.tenantSlug,
      orgId: record.orgId,
      orgSlug: record.orgSlug,
      ownerRowId: record.ownerRowId,
      ownerName: resourceName(record.tenantSlug, "principals", record.ownerPrincipalId),
      permissions: effective,
      expiresAt: record.expiresAt,
      ownerActive: record.ownerStatus === "active",
    };
    if (record.revokedAt !== null) return { result: "revoked", identity };
    if (record.expiresAt !== null && record.expiresAt.getTime() <= clock.now().getTime()) return { result: "expired", identity };
    if (record.ownerStatus === "suspended" && record.disableKeysOfSuspendedPrincipals) return { result: "owner_suspended", identity };
    return { result: "valid", identity };
  }

  return {
    async verify(input) {
      // A broken request is an RPC error; a bad credential is a verdict.
      const required = parsePermissions(catalogue, input.requiredPermissions, "required_permissions");
      if (input.org !== "" && !slugPattern.test(input.org)) {
        throw invalidArgument("INVALID_FORMAT", "org: expected an organization slug (lowercase letters, digits, hyphens)", { field: "org" });
      }
      const { result, identity } = await identify(input.key);
      if (result !== "valid" || identity === undefined) return identity === undefined ? { result } : { result, identity };
      const permissions = formatPermissions(catalogue, identity.permissions);
      if (identity.orgSlug !== null && input.org !== identity.orgSlug) return { result: "wrong_scope", identity, permissions };
      const missing = notImplied(catalogue, identity.permissions, required);
      if (missing.length > 0) return { result: "insufficient_permissions", identity, permissions, missing };
      deps.lastUsed.record(identity.keyId, clock.now());
      return { result: "valid", identity, permissions };
    },
    async authenticate(key) {
      const { result, identity } = await identify(key);
      if (result !== "valid" || identity === undefined) return undefined;
      deps.lastUsed.record(identity.keyId, clock.now());
      return identity;
    },
  };
}
