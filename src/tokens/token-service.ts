// Per-user tokens (CreateUserToken), signing-key rotation and the published JWKS
// (TokenExchangeService, DESIGN.md §4). ExchangeToken is exchange-service.ts (same minter).
import { actorOf, type AuditLog } from "../audit/audit-log.ts";
import type { Clock } from "../clock.ts";
import { auditedName, parseResourceName } from "../common/resource-names.ts";
import type { UnitOfWork, UnitsOfWork } from "../db/unit-of-work.ts";
import { boundsFor, requireAuthorityOver, requireHeld, requireOwnTenant, refuseExchangedToken, requirePermission, requireTenantScope, type CallContext } from "../directory/caller.ts";
import { directoryRepository as directory } from "../directory/directory-repository.ts";
import { formatPermissions, notImplied, parsePermissions, toPermissionSet, type Catalogue } from "../directory/permissions.ts";
import { ErrorKind, KeywardError, invalidArgument } from "../errors.ts";
import { maxTokenLifetimeSeconds, type MintedAccessToken, type TokenMinter } from "./minting.ts";
import { mintedTokenRepository } from "./minted-token-repository.ts";
import { ConcurrentRotationError, maxPublishedSigningKeys, TooManySigningKeysError, type PublicJwk, type SigningKeys } from "./signing-keys.ts";

/** Lifetime of a user token when the request says 0: one hour. */
const defaultUserTokenSeconds = 60 * 60;

/** A minted user token and the permissions it carries (shown once; never stored or logged). */
export type UserTokenView = MintedAccessToken & { permissions: readonly string[] };

/** The lifetime a CreateUserToken request asks for: 0 → one hour; 1 to 43200 s; else INVALID_ARGUMENT INVALID_DURATION. */
function durationOf(seconds: number): number {
  if (seconds === 0) return defaultUserTokenSeconds;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > maxTokenLifetimeSeconds) {
    throw invalidArgument("INVALID_DURATION", `duration_seconds must be 1 to ${maxTokenLifetimeSeconds} (12 hours), or 0 for one hour`, { field: "duration_seconds" });
  }
  return seconds;
}

/** Creates the token service (everything of TokenExchangeService but ExchangeToken). */
export function createTokenService(deps: { units: UnitsOfWork; audit: AuditLog; clock: Clock; catalogue: Catalogue; minter: TokenMinter; signingKeys: SigningKeys }) {
  const { units, audit, clock, catalogue, minter, signingKeys } = deps;

  /**
   * The lifetime of a user token made with a user token: never past the caller's own expiry,
   * so a stolen token cannot renew itself. The default (0) shrinks to what the caller has
   * left; an explicit longer one is INVALID_ARGUMENT DURATION_EXCEEDS_CREDENTIAL.
   */
  async function withinCallerToken(uow: UnitOfWork, ctx: CallContext, requested: number, lifetimeSeconds: number): Promise<number> {
    const expiresAt = await mintedTokenRepository.expiry(uow, ctx.caller.credentialId);
    const left = expiresAt === undefined ? 0 : Math.floor((expiresAt.getTime() - clock.now().getTime()) / 1000);
    if (requested === 0 && left >= 1) return Math.min(lifetimeSeconds, left);
    if (lifetimeSeconds > left) {
      throw invalidArgument(
        "DURATION_EXCEEDS_CREDENTIAL",
        `duration_seconds: a user token made with a user token cannot outlive it (${Math.max(left, 0)} seconds left)`,
        { field: "duration_seconds", max: String(Math.max(left, 0)) },
      );
    }
    return lifetimeSeconds;
  }

  return {
    /**
     * CreateUserToken: a token acting as one user principal of the caller's tenant, for
     * interactive use. Needs `keys:write` and authority over the principal (unless it is the
     * caller's own); the principal must be a user (FAILED_PRECONDITION PRINCIPAL_NOT_USER:
     * service accounts use keys or token exchange) and active (PRINCIPAL_SUSPENDED). Its
     * permissions (empty: the principal's own) must be held by the principal
     * (PERMISSIONS_EXCEED_PRINCIPAL) and by the caller (PERMISSIONS_EXCEED_CALLER); at verify
     * time they stay bounded by the principal's and the caller's current ones, as a key made
     * for someone else is. Pinned to the principal's org, if any. Made with a minted token:
     * never by an exchanged one (PERMISSION_DENIED EXCHANGED_TOKEN_CANNOT_MINT), and a user
     * token's child never outlives it (INVALID_ARGUMENT DURATION_EXCEEDS_CREDENTIAL; the
     * default lifetime shrinks to what the caller has left).
     *
     * `durationSeconds`: 0 (one hour) or 1 to 43200 (INVALID_ARGUMENT INVALID_DURATION).
     * Other refusals: INVALID_ARGUMENT (INVALID_RESOURCE_NAME, UNKNOWN_PERMISSION),
     * PERMISSION_DENIED (INSUFFICIENT_SCOPE, TENANT_MISMATCH, PERMISSIONS_EXCEED_CALLER),
     * NOT_FOUND PRINCIPAL_NOT_FOUND (also outside an org-scoped caller's org),
     * FAILED_PRECONDITION (PERMISSIONS_EXCEED_PRINCIPAL, PRINCIPAL_HAS_NO_PERMISSIONS,
     * CREDENTIAL_CHAIN_TOO_LONG). Returns the JWT (shown once), its `jti`, times, `expiresIn`
     * (seconds) and permissions.
     */
    async createUserToken(ctx: CallContext, input: { principal: string; durationSeconds: number; permissions: readonly string[] }): Promise<UserTokenView> {
      const resource = auditedName(input.principal, "principals", ctx.caller.tenantSlug);
      return audit.guard(ctx, "token.user.create", resource, async () => {
        requirePermission(catalogue, ctx.caller, "keys:write");
        refuseExchangedToken(ctx.caller, "user tokens");
        const { tenant, id } = parseResourceName(input.principal, "principals", "principal");
        requireOwnTenant(ctx.caller, tenant);
        const asked = input.permissions.length === 0 ? undefined : parsePermissions(catalogue, input.permissions);
        let lifetimeSeconds = durationOf(input.durationSeconds);
        return units.write(ctx, async (uow) => {
          if (ctx.caller.kind === "user_token") lifetimeSeconds = await withinCallerToken(uow, ctx, input.durationSeconds, lifetimeSeconds);
          const principal = await directory.findPrincipal(uow, ctx.caller.tenantId, id);
          if (principal === undefined || (ctx.caller.orgId !== null && principal.orgId !== ctx.caller.orgId)) {
            throw new KeywardError(ErrorKind.NOT_FOUND, "PRINCIPAL_NOT_FOUND", "principal: principal not found");
          }
          if (principal.id !== ctx.caller.principalRowId) requireAuthorityOver(catalogue, ctx.caller, "principal", principal.permissions);
          if (principal.type !== "user") {
            throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "PRINCIPAL_NOT_USER", "principal: user tokens are for user principals; a service account uses an API key or token exchange");
          }
          if (principal.status !== "active") throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "PRINCIPAL_SUSPENDED", "principal: the principal is suspended");
          const held = toPermissionSet(catalogue, principal.permissions);
          const permissions = asked ?? formatPermissions(catalogue, held);
          const exceeding = notImplied(catalogue, held, permissions);
          if (exceeding.length > 0) {
            throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "PERMISSIONS_EXCEED_PRINCIPAL", `the principal does not hold: ${exceeding.join(", ")}`, { exceeding: exceeding.join(",") });
          }
          if (permissions.length === 0) {
            throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "PRINCIPAL_HAS_NO_PERMISSIONS", "the principal holds no permissions, so a token for it could do nothing");
          }
          requireHeld(catalogue, ctx.caller, permissions);
          const orgSlug = principal.orgId === null ? null : ((await directory.orgSlugs(uow, [principal.orgId])).get(principal.orgId) ?? null);
          const minted = await minter.mint(uow, {
            kind: "user",
            tenantId: ctx.caller.tenantId,
            tenantSlug: ctx.caller.tenantSlug,
            orgId: principal.orgId,
            orgSlug,
            policy: null,
            principalId: principal.id,
            boundedBy: boundsFor(ctx.caller, principal.id),
            permissions,
            subject: input.principal,
            lifetimeSeconds,
          });
          audit.record(uow, {
            ...actorOf(ctx), orgId: principal.orgId, action: "token.user.create", resource: input.principal, outcome: "success",
            details: { principal: input.principal, permissions: permissions.join(","), expireTime: minted.expiresAt.toISOString(), jti: minted.jti },
          });
          return { ...minted, permissions };
        });
      });
    },

    /**
     * RotateSigningKey (DESIGN.md §4): a new active signing key; the old one stays published
     * until every token it signed has expired (maxTokenLifetimeSeconds and a margin). Needs
     * `keys:write` on a tenant-scoped credential holding `*:write` (the keys serve every
     * tenant): PERMISSION_DENIED INSUFFICIENT_SCOPE or TENANT_SCOPE_REQUIRED otherwise.
     * ABORTED CONCURRENT_ROTATION when another rotation won the race; FAILED_PRECONDITION
     * TOO_MANY_SIGNING_KEYS (metadata `retryAfter`, an RFC 3339 time) when
     * maxPublishedSigningKeys are published. Returns the new and the retired `kid`.
     */
    async rotateSigningKey(ctx: CallContext): Promise<{ kid: string; retired: string }> {
      return audit.guard(ctx, "signing_key.rotate", "signingKeys/-", async () => {
        requirePermission(catalogue, ctx.caller, "keys:write");
        requireTenantScope(ctx.caller);
        requirePermission(catalogue, ctx.caller, "*:write");
        refuseExchangedToken(ctx.caller, "signing keys");
        const rotated = await units.write(ctx, async (uow) => {
          let result: { kid: string; retired: string };
          try {
            result = await signingKeys.rotate(uow);
          } catch (e) {
            if (e instanceof ConcurrentRotationError) throw new KeywardError(ErrorKind.ABORTED, "CONCURRENT_ROTATION", "the signing key was rotated concurrently; retry");
            if (e instanceof TooManySigningKeysError) {
              throw new KeywardError(
                ErrorKind.FAILED_PRECONDITION,
                "TOO_MANY_SIGNING_KEYS",
                `${maxPublishedSigningKeys} signing keys are published already (each until its last token has expired); rotate again after ${e.until.toISOString()}`,
                { retryAfter: e.until.toISOString() },
              );
            }
            throw e;
          }
          audit.record(uow, {
            ...actorOf(ctx), orgId: null, action: "signing_key.rotate", resource: `signingKeys/${result.kid}`, outcome: "success",
            details: { kid: result.kid, retired: result.retired },
          });
          return result;
        });
        // Sign with the new key on this replica at once (others pick it up on their next re-read).
        await signingKeys.reload();
        return rotated;
      });
    },

    /** GetJwks and /.well-known/jwks.json: the public keys that verify minted tokens (no credential needed). */
    jwks(): PublicJwk[] {
      return signingKeys.jwks();
    },
  };
}

/** The token service's operations. */
export type TokenService = ReturnType<typeof createTokenService>;
