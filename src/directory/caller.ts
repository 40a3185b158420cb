// Who is calling a management method, and the checks every service applies to them:
// the permission a method needs, the tenant and the organization they may touch.
import { ErrorKind, KeywardError } from "../errors.ts";
import type { CredentialKind } from "../verify/verifier.ts";
import { notImplied, type Catalogue, type PermissionSet } from "./permissions.ts";

/** An authenticated caller: the credential, its owner and its effective authority. */
export type Caller = Readonly<{
  tenantId: string;
  tenantSlug: string;
  /** The owner principal's row id and resource name. */
  principalRowId: string;
  principalName: string;
  /**
   * Row ids of the principals besides the owner whose authority bounds the credential (its
   * creator and the chain above, see CredentialIdentity.boundedBy); a key made with this
   * credential is bounded by them too, and the credential may not suspend them.
   */
  boundedBy: readonly string[];
  /** The key id (or a minted token's `jti`) used; safe to log. */
  credentialId: string;
  /** An API key kind, or `exchanged_token` / `user_token`: a token acts like a fine-grained key with its permissions. */
  kind: CredentialKind;
  /** The organization the credential is pinned to; null for tenant scope. */
  orgId: string | null;
  orgSlug: string | null;
  /** Effective permissions: granted ∩ owner's current ∩ the current permissions of every principal bounding the credential. */
  permissions: PermissionSet;
}>;

/** What a service call knows about its context. */
export type CallContext = Readonly<{
  caller: Caller;
  requestId: string;
  /** Aborts when the call's deadline passes or its client goes away; bounds its database work. */
  signal?: AbortSignal | undefined;
  /**
   * Long-lived calls (server streams) only: authenticates the call's credential again, now —
   * the current Caller; throws UNAUTHENTICATED once it is revoked, expired or unknown (the
   * answer the call would get if it started now), and as the authenticator does otherwise
   * (PERMISSION_DENIED for a suspended owner or creator).
   */
  reauthenticate?: (() => Promise<Caller>) | undefined;
}>;

/** The message every missing-permission refusal starts with (DESIGN.md, the SDK's 403). */
const insufficientScope = "Insufficient scope for this action";

/** Refuses the call unless the caller holds `permission` (PERMISSION_DENIED names it). */
export function requirePermission(catalogue: Catalogue, caller: Caller, permission: string): void {
  if (notImplied(catalogue, caller.permissions, [permission]).length > 0) {
    throw new KeywardError(ErrorKind.PERMISSION_DENIED, "INSUFFICIENT_SCOPE", `${insufficientScope}: needs ${permission}`, { permission });
  }
}

/** Refuses granting permissions the caller does not hold (no escalation). */
export function requireHeld(catalogue: Catalogue, caller: Caller, wanted: readonly string[]): void {
  const exceeding = notImplied(catalogue, caller.permissions, wanted);
  if (exceeding.length > 0) {
    throw new KeywardError(
      ErrorKind.PERMISSION_DENIED,
      "PERMISSIONS_EXCEED_CALLER",
      `${insufficientScope}: cannot grant permissions you do not hold: ${exceeding.join(", ")}`,
      { exceeding: exceeding.join(",") },
    );
  }
}

/**
 * Refuses a request about another tenant. The answer is the same whether that tenant
 * exists or not, so a credential learns nothing about other tenants.
 */
export function requireOwnTenant(caller: Caller, tenant: string | undefined): void {
  if (tenant !== undefined && tenant !== caller.tenantSlug) {
    throw new KeywardError(ErrorKind.PERMISSION_DENIED, "TENANT_MISMATCH", "the credential is not valid for this tenant");
  }
}

/** Refuses callers pinned to an organization, for tenant-wide operations. */
export function requireTenantScope(caller: Caller): void {
  if (caller.orgId !== null) {
    throw new KeywardError(ErrorKind.PERMISSION_DENIED, "TENANT_SCOPE_REQUIRED", `${insufficientScope}: needs a tenant-scoped credential`);
  }
}

/** True when a resource pinned to `orgId` (null: tenant-level) is visible to the caller. */
export function canSeeOrg(caller: Caller, orgId: string | null): boolean {
  return caller.orgId === null || caller.orgId === orgId;
}

/**
 * The caller a verified, usable credential stands for. Whether it may act at all (a
 * suspended owner or creator) is the authenticator's decision (authenticator.ts).
 */
export function callerFromIdentity(identity: {
  keyId: string; kind: CredentialKind; tenantId: string; tenantSlug: string; orgId: string | null; orgSlug: string | null;
  ownerRowId: string; ownerName: string; boundedBy: readonly string[]; permissions: PermissionSet;
}): Caller {
  return {
    tenantId: identity.tenantId,
    tenantSlug: identity.tenantSlug,
    principalRowId: identity.ownerRowId,
    principalName: identity.ownerName,
    boundedBy: identity.boundedBy,
    credentialId: identity.keyId,
    kind: identity.kind,
    orgId: identity.orgId,
    orgSlug: identity.orgSlug,
    permissions: identity.permissions,
  };
}

/** Longest chain of principals that may bound one credential or policy (a longer one is refused, never truncated). */
const maxBounds = 32;

/**
 * The principals whose current authority bounds something the caller makes for `ownerId`
 * (a key for its owner, a policy for its creator): the caller's principal and every
 * principal bounding the caller's credential, minus the owner itself, which bounds it
 * anyway (DESIGN.md §1: nothing exceeds who made it, nor who made what it was made with).
 * `alsoBoundedBy` (e.g. a policy's current bounds) is kept. FAILED_PRECONDITION
 * `CREDENTIAL_CHAIN_TOO_LONG` when more than 32 principals would bound it.
 */
export function boundsFor(caller: Caller, ownerId: string, alsoBoundedBy: readonly string[] = []): string[] {
  const boundedBy = [...new Set([...alsoBoundedBy, caller.principalRowId, ...caller.boundedBy])].filter((id) => id !== ownerId);
  if (boundedBy.length > maxBounds) {
    throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "CREDENTIAL_CHAIN_TOO_LONG", `this credential was made through too many principals (over ${maxBounds}) to make keys or policies; use a key of your own`);
  }
  return boundedBy;
}

/**
 * Refuses a change that needs authority over something holding `held` (a principal's
 * permissions, or the permissions a key grants): the caller must hold every one of them.
 * PERMISSION_DENIED names the ones that exceed.
 */
export function requireAuthorityOver(catalogue: Catalogue, caller: Caller, what: string, held: readonly string[]): void {
  const exceeding = notImplied(catalogue, caller.permissions, held);
  if (exceeding.length > 0) {
    throw new KeywardError(
      ErrorKind.PERMISSION_DENIED,
      "PERMISSIONS_EXCEED_CALLER",
      `${insufficientScope}: needs authority over the ${what}, which holds permissions you do not: ${exceeding.join(", ")}`,
      { exceeding: exceeding.join(","), target: what },
    );
  }
}

/**
 * Refuses making a credential (`what`: "API keys", "user tokens", "trust policies") with a CI
 * workflow's exchanged token: that token lives minutes and stops when its policy is deleted,
 * and anything it made would do neither (DESIGN.md §4). PERMISSION_DENIED
 * EXCHANGED_TOKEN_CANNOT_MINT; keys, user tokens and policies are made with an API key or a
 * user token.
 */
export function refuseExchangedToken(caller: Caller, what: string): void {
  if (caller.kind === "exchanged_token") {
    throw new KeywardError(
      ErrorKind.PERMISSION_DENIED,
      "EXCHANGED_TOKEN_CANNOT_MINT",
      `a CI workflow's exchanged token cannot make ${what}: they would outlive it and its policy`,
    );
  }
}
