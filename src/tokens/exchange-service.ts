// Token exchange (DESIGN.md §4, RFC 8693): a CI workflow's OIDC ID token is verified,
// matched against the tenant's trust policies claim by claim, recorded as spent, and
// traded for a short-lived token minted by keyward — the replay record, the minted token's
// row and the audit event commit in one transaction. Every exchange, granted or refused, is
// audited with the reason, the ID token's SHA-256 (never the token), repository, workflow
// and run. Refusals carry a stable ErrorInfo reason; the values a policy expects go only to
// the audit log and to PolicyService.TestPolicy, never to the caller.
import { decodeJwt } from "jose";
import type { AuditLog } from "../audit/audit-log.ts";
import type { RefusalFold } from "../audit/refusal-fold.ts";
import type { Clock } from "../clock.ts";
import { entityManagerOf, type UnitOfWork, type UnitsOfWork } from "../db/unit-of-work.ts";
import { directoryRepository as directory, type TenantRecord } from "../directory/directory-repository.ts";
import { formatPermissions, notImplied, parsePermissions, toPermissionSet, type Catalogue } from "../directory/permissions.ts";
import { parseResourceName, parseTenantName } from "../common/resource-names.ts";
import { sha256Hex } from "../common/sha256-hex.ts";
import { tenantAudience } from "../common/tenant-audience.ts";
import { ErrorKind, KeywardError, invalidArgument, isKeywardError } from "../errors.ts";
import type { OidcVerifier, VerifiedIdToken } from "../oidc/id-token.ts";
import { maxIdTokenLength } from "../oidc/oidc-verifier.ts";
import { effectivePermissions } from "../verify/effective-permissions.ts";
import { guardedEvents, matchClaims } from "../policies/claim-matching.ts";
import { findPolicyForMatching, policiesForMatching, type MatchablePolicy } from "../policies/policy-repository.ts";
import { defaultSessionSeconds, maxPolicySessionSeconds, type TokenMinter } from "./minting.ts";
import { bearerTokenType, tokenTypes } from "./token-types.ts";

/** An ExchangeToken request (RFC 8693 §2.1 names). */
export type ExchangeInput = Readonly<{
  parent: string;
  subjectToken: string;
  subjectTokenType: string;
  policy: string;
  permissions: readonly string[];
  durationSeconds: number;
  requestId: string;
  signal?: AbortSignal | undefined;
}>;

/** A granted exchange (RFC 8693 §2.2.1 names). */
export type ExchangeResult = Readonly<{
  accessToken: string;
  issuedTokenType: string;
  tokenType: typeof bearerTokenType;
  expiresIn: number;
  expiresAt: Date;
  policy: string;
  permissions: readonly string[];
}>;

/** Exchange details for the audit log: never the token, only its hash and what it says. */
type Trail = { sha256: string; verified: boolean; subject: string; repository: string; jobWorkflowRef: string; runId: string };

/** What an unverified token claims (for the trail of a refusal before its signature held). */
function unverifiedTrail(token: string): Trail {
  const sha256 = sha256Hex(token);
  let claims: Record<string, unknown> = {};
  try {
    if (token.length <= maxIdTokenLength) claims = decodeJwt(token);
  } catch {
    // Not a JWT at all: only its hash is recorded.
  }
  const text = (v: unknown) => (typeof v === "string" ? v.slice(0, 200) : "");
  return {
    sha256, verified: false, subject: text(claims["sub"]), repository: text(claims["repository"]),
    jobWorkflowRef: text(claims["job_workflow_ref"]), runId: text(claims["run_id"]),
  };
}

function verifiedTrail(token: VerifiedIdToken): Trail {
  return {
    sha256: token.sha256, verified: true, subject: token.subject, repository: token.claims["repository"] ?? "",
    jobWorkflowRef: token.claims["job_workflow_ref"] ?? "", runId: token.claims["run_id"] ?? "",
  };
}

function trailDetails(trail: Trail): Record<string, string> {
  return {
    tokenSha256: trail.sha256, claimsVerified: String(trail.verified), subject: trail.subject,
    repository: trail.repository, jobWorkflowRef: trail.jobWorkflowRef, runId: trail.runId,
  };
}

/** A refusal that also carries what the audit log (not the caller) should know. */
class ExchangeRefusal extends Error {
  readonly error: KeywardError;
  readonly auditDetails: Record<string, string>;
  /** The policy's resource name, when the refusal is about one ("" otherwise). */
  readonly resource: string;
  /** The policy's org, so an org's audit listing shows its policies' refusals too. */
  readonly orgId: string | null;
  constructor(error: KeywardError, auditDetails: Record<string, string> = {}, policy?: Pick<MatchablePolicy, "name" | "orgId">) {
    super(error.message);
    this.error = error;
    this.auditDetails = auditDetails;
    this.resource = policy?.name ?? "";
    this.orgId = policy?.orgId ?? null;
  }
}

/**
 * The rule a `pull_request_target` / `workflow_run` token meets, for refusal messages: it is
 * not secret (DESIGN.md §4), unlike the values a policy expects. "" for other events, or
 * when the policy names the event (`expectedEvent`).
 */
function guardedEventHint(token: VerifiedIdToken, expectedEvent: string): string {
  const event = token.claims["event_name"];
  return event !== undefined && guardedEvents.has(event) && expectedEvent !== event
    ? `; tokens from ${event} events are refused unless the policy names that event in event_name`
    : "";
}

const denied = (reason: string, message: string, metadata: Record<string, string> = {}) =>
  new KeywardError(ErrorKind.PERMISSION_DENIED, reason, message, metadata);

/** Creates the exchange service. */
export function createExchangeService(deps: {
  units: UnitsOfWork;
  audit: AuditLog;
  clock: Clock;
  catalogue: Catalogue;
  audienceDomain: string;
  idTokens: OidcVerifier;
  minter: TokenMinter;
  refusals: RefusalFold;
}) {
  const { units, audit, clock, catalogue } = deps;

  /** Checks the request's own fields; nothing here needs the token or the database. */
  function parseRequest(input: ExchangeInput) {
    const tenantSlug = parseTenantName(input.parent, "parent");
    if (tenantSlug === undefined) throw invalidArgument("REQUIRED_FIELD", "parent: the tenant (tenants/{tenant}) is required", { field: "parent" });
    if (input.subjectToken === "") throw invalidArgument("REQUIRED_FIELD", "subject_token: the workflow's OIDC ID token is required", { field: "subject_token" });
    if (input.subjectTokenType !== "" && input.subjectTokenType !== tokenTypes.idToken && input.subjectTokenType !== tokenTypes.jwt) {
      throw invalidArgument("UNSUPPORTED_TOKEN_TYPE", `subject_token_type: expected ${tokenTypes.idToken}`, { field: "subject_token_type" });
    }
    let policyId: string | undefined;
    if (input.policy !== "") {
      const { tenant, id } = parseResourceName(input.policy, "policies", "policy");
      if (tenant !== tenantSlug) throw invalidArgument("POLICY_TENANT_MISMATCH", "policy: the policy must belong to the tenant of parent", { field: "policy" });
      policyId = id;
    }
    const permissions = parsePermissions(catalogue, input.permissions);
    if (!Number.isInteger(input.durationSeconds) || input.durationSeconds < 0 || input.durationSeconds > maxPolicySessionSeconds) {
      throw invalidArgument("INVALID_DURATION", `duration_seconds: expected 0 (the policy's maximum) to ${maxPolicySessionSeconds}`, { field: "duration_seconds" });
    }
    return { tenantSlug, policyId, permissions };
  }

  /** The policy the token is exchanged under: the named one, or the only one that matches. */
  async function choosePolicy(uow: UnitOfWork, tenant: TenantRecord, policyId: string | undefined, token: VerifiedIdToken): Promise<MatchablePolicy> {
    if (policyId !== undefined) {
      const policy = await findPolicyForMatching(uow, tenant.id, policyId);
      if (policy === undefined) throw new ExchangeRefusal(new KeywardError(ErrorKind.NOT_FOUND, "POLICY_NOT_FOUND", "policy: no such policy in this tenant"));
      const match = matchClaims(policy.claims, token.claims);
      if (!match.matched) {
        throw new ExchangeRefusal(
          denied("CLAIM_MISMATCH", `the token's ${match.claim} claim does not satisfy the policy${match.claim === "event_name" ? guardedEventHint(token, match.expected) : ""} (PolicyService.TestPolicy explains why)`, { claim: match.claim }),
          { policy: policy.name, failedClaim: match.claim, expected: match.expected, actual: match.actual },
          policy,
        );
      }
      return policy;
    }
    const all = await policiesForMatching(uow, tenant.id, {});
    const matching = all.filter((p) => matchClaims(p.claims, token.claims).matched);
    if (matching.length === 1) return matching[0]!;
    if (matching.length === 0) {
      const failures = all.slice(0, 20).map((p) => {
        const m = matchClaims(p.claims, token.claims);
        return m.matched ? "" : `${p.name}: ${m.explanation}`;
      });
      throw new ExchangeRefusal(
        denied("NO_MATCHING_POLICY", `no trust policy of this tenant matches the token's claims${guardedEventHint(token, "")} (PolicyService.TestPolicy explains why)`),
        { policiesChecked: String(all.length), failures: failures.filter((f) => f !== "").join("; ").slice(0, 2000) },
      );
    }
    const names = matching.map((p) => p.name).sort();
    throw new ExchangeRefusal(
      new KeywardError(
        ErrorKind.FAILED_PRECONDITION,
        "AMBIGUOUS_POLICY",
        `several policies match the token; name one in \`policy\`: ${names.join(", ")}`,
        { policies: names.join(",") },
      ),
      { policies: names.join(",") },
    );
  }

  /**
   * The permissions of the minted token: the request's (or the policy's whole allowlist),
   * which must be within the allowlist, bounded now by the policy creator's current
   * permissions and those of every principal bounding the policy (as keys are, DESIGN.md §1).
   * The whole allowlist shrinks to what the creator still holds (NO_PERMISSIONS_LEFT when
   * nothing does); permissions requested by name are granted exactly, or the exchange is
   * refused with PERMISSIONS_EXCEED_CREATOR.
   */
  async function grantOf(uow: UnitOfWork, tenant: TenantRecord, policy: MatchablePolicy, requested: readonly string[]): Promise<string[]> {
    const exceeding = notImplied(catalogue, toPermissionSet(catalogue, policy.permissions), requested);
    if (exceeding.length > 0) {
      throw new ExchangeRefusal(denied("PERMISSIONS_EXCEED_POLICY", `the policy does not allow: ${exceeding.join(", ")}`, { exceeding: exceeding.join(",") }), {}, policy);
    }
    const bounds: (readonly string[])[] = [];
    for (const id of [policy.creatorId, ...policy.boundedBy]) {
      const principal = await directory.findPrincipalByRowId(uow, id);
      const disabled = principal === undefined || (principal.status !== "active" && (tenant.disableKeysOfSuspendedPrincipals || id === policy.creatorId));
      if (disabled) {
        throw new ExchangeRefusal(denied("CREATOR_SUSPENDED", "the principal that created this policy is suspended or gone"), {}, policy);
      }
      bounds.push(principal.permissions);
    }
    const granted = effectivePermissions(catalogue, requested.length > 0 ? requested : policy.permissions, bounds);
    // Permissions asked for by name are granted exactly or refused, never silently cut: a
    // workflow that asked for them would otherwise fail later, somewhere less clear.
    const lost = notImplied(catalogue, granted, requested);
    if (lost.length > 0) {
      throw new ExchangeRefusal(
        denied("PERMISSIONS_EXCEED_CREATOR", `the policy's creator no longer holds: ${lost.join(", ")}`, { exceeding: lost.join(",") }),
        { exceeding: lost.join(",") },
        policy,
      );
    }
    const permissions = formatPermissions(catalogue, granted);
    if (permissions.length === 0) {
      throw new ExchangeRefusal(denied("NO_PERMISSIONS_LEFT", "the policy's creator no longer holds any of the permissions the policy allows"), {}, policy);
    }
    return permissions;
  }

  /** Records `issuer`+`jti` as spent; false when it already was (a replay). */
  async function spend(uow: UnitOfWork, tenantId: string, token: VerifiedIdToken, now: Date): Promise<boolean> {
    const rows = await entityManagerOf(uow).execute<{ jti: string }[]>(
      `insert into exchanged_token (issuer, jti, tenant_id, expires_at, created_at) values (?, ?, ?, ?, ?)
       on conflict (issuer, jti) do nothing returning jti`,
      [token.issuer, token.jti, tenantId, token.expiresAt, now],
      "all",
    );
    return rows.length === 1;
  }

  /**
   * Audits a refused exchange through the refusal fold (one `token.exchange` event per
   * tenant, reason, minute and "credential", whose `details.count` counts the refusals): a
   * genuine ID token (its signature held) is its own credential, `id-token:<SHA-256>`, so each
   * workflow's refusal is an event of its own with its repository, workflow and run, and only
   * replays of one token fold; tokens whose signature did not hold share the credential
   * `id-token:unverified`, so a flood of forged tokens writes one event per reason per minute
   * (whose details are those of the minute's first, with its SHA-256).
   */
  async function auditRefusal(tenant: TenantRecord, input: ExchangeInput, trail: Trail, refusal: ExchangeRefusal): Promise<void> {
    await deps.refusals.record({
      tenantId: tenant.id, orgId: refusal.orgId, actor: trail.verified ? trail.subject : "",
      credential: trail.verified ? `id-token:${trail.sha256}` : "id-token:unverified",
      action: "token.exchange", resource: refusal.resource, reason: refusal.error.reason, requestId: input.requestId,
      procedure: "keyward.v1.TokenExchangeService/ExchangeToken",
      details: { ...trailDetails(trail), ...refusal.auditDetails },
    });
  }

  return {
    /**
     * ExchangeToken (RFC 8693 §2): trades the workflow's ID token for a minted access token
     * whose lifetime is `durationSeconds` (0: the policy's maximum; a policy's 0 means
     * defaultSessionSeconds). Throws KeywardError: INVALID_ARGUMENT for a broken request
     * (REQUIRED_FIELD, INVALID_RESOURCE_NAME, UNSUPPORTED_TOKEN_TYPE, POLICY_TENANT_MISMATCH,
     * UNKNOWN_PERMISSION, INVALID_DURATION, DURATION_EXCEEDS_POLICY with metadata `max`);
     * UNAUTHENTICATED for a token that does not verify (the reasons of OidcVerifier, plus
     * UNKNOWN_TENANT and TOKEN_REPLAYED); NOT_FOUND POLICY_NOT_FOUND; PERMISSION_DENIED
     * NO_MATCHING_POLICY, CLAIM_MISMATCH (metadata `claim`), PERMISSIONS_EXCEED_POLICY and
     * PERMISSIONS_EXCEED_CREATOR (metadata `exceeding`), CREATOR_SUSPENDED,
     * NO_PERMISSIONS_LEFT; FAILED_PRECONDITION AMBIGUOUS_POLICY (metadata `policies`);
     * ABORTED CONCURRENT_MODIFICATION (the policy or its creator deleted meanwhile);
     * UNAVAILABLE ISSUER_UNAVAILABLE. Every refusal after the tenant is known is audited
     * (never a caller's own deadline or cancellation).
     */
    async exchange(input: ExchangeInput): Promise<ExchangeResult> {
      const { tenantSlug, policyId, permissions: requested } = parseRequest(input);
      const tenant = await units.read(input, (uow) => directory.findTenantBySlug(uow, tenantSlug));
      if (tenant === undefined) throw new KeywardError(ErrorKind.UNAUTHENTICATED, "UNKNOWN_TENANT", "parent: no such tenant");
      const audience = tenantAudience(tenant.slug, deps.audienceDomain);

      let token: VerifiedIdToken;
      try {
        token = await deps.idTokens.verify(input.subjectToken, audience, input.signal);
      } catch (e) {
        // Every refusal is audited (DESIGN.md §4), an unreachable issuer (UNAVAILABLE
        // ISSUER_UNAVAILABLE) included: the tenant's log then explains a failed deploy and
        // shows attempts made during an outage. A caller that gave up (its deadline or
        // cancellation, not a KeywardError) is not.
        if (isKeywardError(e)) await auditRefusal(tenant, input, unverifiedTrail(input.subjectToken), new ExchangeRefusal(e));
        throw e;
      }
      const trail = verifiedTrail(token);
      try {
        return await units.write(input, async (uow) => {
          const policy = await choosePolicy(uow, tenant, policyId, token);
          const permissions = await grantOf(uow, tenant, policy, requested);
          const maxSeconds = policy.maxSessionSeconds === 0 ? defaultSessionSeconds : policy.maxSessionSeconds;
          if (input.durationSeconds > maxSeconds) {
            throw new ExchangeRefusal(
              invalidArgument("DURATION_EXCEEDS_POLICY", `duration_seconds: the policy allows at most ${maxSeconds} seconds`, { field: "duration_seconds", max: String(maxSeconds) }),
              {}, policy,
            );
          }
          const now = clock.now();
          if (!(await spend(uow, tenant.id, token, now))) {
            throw new ExchangeRefusal(new KeywardError(ErrorKind.UNAUTHENTICATED, "TOKEN_REPLAYED", "this OIDC token was already exchanged; request a new one"), {}, policy);
          }
          const minted = await deps.minter.mint(uow, {
            kind: "exchanged",
            tenantId: tenant.id,
            tenantSlug: tenant.slug,
            orgId: policy.orgId,
            orgSlug: policy.orgSlug,
            policy: { id: policy.id, name: policy.name },
            principalId: policy.creatorId,
            boundedBy: policy.boundedBy,
            permissions,
            subject: token.subject,
            lifetimeSeconds: input.durationSeconds === 0 ? maxSeconds : input.durationSeconds,
            source: { repository: trail.repository, runId: trail.runId, jobWorkflowRef: trail.jobWorkflowRef },
          });
          audit.record(uow, {
            tenantId: tenant.id, orgId: policy.orgId, actor: token.subject, credential: minted.jti, action: "token.exchange",
            resource: policy.name, outcome: "success", requestId: input.requestId,
            details: { ...trailDetails(trail), permissions: permissions.join(","), expireTime: minted.expiresAt.toISOString() },
          });
          return {
            accessToken: minted.accessToken,
            issuedTokenType: tokenTypes.accessToken,
            tokenType: bearerTokenType,
            expiresIn: minted.expiresIn,
            expiresAt: minted.expiresAt,
            policy: policy.name,
            permissions,
          };
        });
      } catch (e) {
        if (e instanceof ExchangeRefusal) {
          await auditRefusal(tenant, input, trail, e);
          throw e.error;
        }
        throw e;
      }
    },
  };
}

/** The exchange service's operations. */
export type ExchangeService = ReturnType<typeof createExchangeService>;
