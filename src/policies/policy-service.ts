// Trust policies (DESIGN.md §4): create, get, list, update, delete, and the dry run that
// explains which policies a token or claim set matches. Reads need policies:read, changes
// policies:write; org-scoped callers see and change only their org's policies; nobody
// grants, changes or deletes more than they hold. Every change and its audit event share
// one transaction.
import type { Clock } from "../clock.ts";
import type { UnitOfWork, UnitsOfWork } from "../db/unit-of-work.ts";
import { actorOf, type AuditLog } from "../audit/audit-log.ts";
import { boundsFor, canSeeOrg, requireAuthorityOver, requireHeld, requireOwnTenant, refuseExchangedToken, requirePermission, type CallContext } from "../directory/caller.ts";
import { directoryRepository as directory } from "../directory/directory-repository.ts";
import { decodePageToken, pageOf, pageSizeOf, patternPart, type PositionPart } from "../common/page-token.ts";
import { isPermission, notImplied, parsePermissions, toPermissionSet, type Catalogue } from "../directory/permissions.ts";
import { auditedName, parseResourceName, parseTenantName, policyIdPattern, resourceName, slugPattern } from "../common/resource-names.ts";
import { tenantAudience } from "../common/tenant-audience.ts";
import { quotedForError, textField } from "../common/text-fields.ts";
import { checkUpdateMask } from "../common/update-mask.ts";
import { ErrorKind, KeywardError, invalidArgument } from "../errors.ts";
import type { OidcVerifier } from "../oidc/id-token.ts";
import { defaultSessionSeconds, maxPolicySessionSeconds } from "../tokens/minting.ts";
import { matchClaims, type ClaimName, type RequiredClaims } from "./claim-matching.ts";
import { effectiveClaims, pinClaimsToOrg, requireOwnerOrRepository, validateClaims, type ClaimInput, type OrgPin } from "./policy-claims.ts";
import { policiesForMatching, policyNameTaken, policyRepository as policies, type PolicyPatch, type PolicyRecord } from "./policy-repository.ts";
import { administrativePermissions, policyWarnings, warningCodes } from "./policy-warnings.ts";
import { workflowSnippet } from "./workflow-snippet.ts";

/** A policy as callers see it: the record plus names, the claims it requires now, its audience and snippet. */
export type PolicyView = Omit<PolicyRecord, "claims"> & {
  /** `tenants/{tenant}/policies/{id}`. */
  name: string;
  tenantSlug: string;
  orgSlug: string | null;
  /** Resource name of the creator principal. */
  creatorName: string;
  /** The required claims; an org-scoped policy shows its org's current GitHub owner as `repository_owner`. */
  claims: RequiredClaims;
  /** `{tenant}.{audience domain}`, the audience the workflow requests its ID token for. */
  audience: string;
  /** GitHub Actions YAML to paste into a job (workflow-snippet.ts). */
  workflowSnippet: string;
  /** Advice about the policy's weak constraints as stored (`CODE: advice`, policy-warnings.ts); [] for a strong one. */
  warnings: string[];
};

/** A policy and the advice about its weak constraints (`CODE: advice`, policy-warnings.ts). */
export type PolicyWithWarnings = { policy: PolicyView; warnings: string[] };

/** What a create or update request says about a policy (`""`/0/[] when unset). */
export type PolicyInput = {
  displayName: string;
  description: string;
  claims: ClaimInput;
  maxSessionSeconds: number;
  permissions: readonly string[];
};

/** How one policy fared in a dry run. `failedClaim`, `expected`, `actual`, `reason` are "" for a match. */
export type PolicyMatchView = {
  policy: string;
  displayName: string;
  matched: boolean;
  failedClaim: ClaimName | "";
  expected: string;
  actual: string;
  reason: string;
};

/** The answer of a dry run. */
export type DryRunView = { results: PolicyMatchView[]; claims: Record<string, string>; audience: string; notes: string[] };

/** Most claims a dry-run claim set may carry, and the longest name and value. */
const maxTestClaims = 64;
const maxTestClaimValue = 1000;
const testClaimNamePattern = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/;

/** The update mask paths UpdatePolicy accepts (the org, the name and output-only fields are not among them). */
const updatablePaths = ["display_name", "description", "claims", "max_session_duration_seconds", "permissions"] as const;

function notFound(): KeywardError {
  return new KeywardError(ErrorKind.NOT_FOUND, "POLICY_NOT_FOUND", "policy not found");
}

function requireEtag(etag: string, field: string): void {
  if (etag === "") throw invalidArgument("ETAG_REQUIRED", `${field} is required: send the policy's current etag (from GetPolicy or ListPolicies)`, { field });
}

function checkEtag(given: string, policy: PolicyRecord): void {
  if (given !== String(policy.version)) {
    throw new KeywardError(ErrorKind.ABORTED, "ETAG_MISMATCH", "the policy changed since it was read (etag mismatch): read it again and retry");
  }
}

function sessionSecondsOf(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > maxPolicySessionSeconds) {
    throw invalidArgument("INVALID_SESSION_DURATION", `policy.max_session_duration_seconds must be 1 to ${maxPolicySessionSeconds} seconds, or 0 for the server default (${defaultSessionSeconds / 60} minutes)`, {
      field: "policy.max_session_duration_seconds",
    });
  }
  return value;
}

function displayNameOf(value: string): string {
  return textField(value, "policy.display_name", { max: 100, required: true });
}

function descriptionOf(value: string): string {
  return textField(value, "policy.description", { max: 1000, required: false, multiline: true });
}

/** The warnings of a policy as stored (its claims, scope and the administrative permissions its allowlist implies). */
function warningsOf(catalogue: Catalogue, policy: Pick<PolicyRecord, "claims" | "orgId" | "permissions">): string[] {
  const granted = toPermissionSet(catalogue, policy.permissions);
  const administrative = administrativePermissions.filter((p) => isPermission(catalogue, p) && notImplied(catalogue, granted, [p]).length === 0);
  return policyWarnings(policy.claims, policy.orgId === null ? "tenant" : "org", administrative);
}

/** Validates and pins the claims of a request; `org` is the policy's org (null for tenant scope). */
function claimsFor(input: ClaimInput, org: OrgPin | null): RequiredClaims {
  const validated = validateClaims(input);
  const claims = org === null ? validated : pinClaimsToOrg(validated, org);
  requireOwnerOrRepository(claims);
  return claims;
}

/** Validates a dry run's claim set: at most 64 names of at most 64 characters, values of at most 1000 characters without control characters, kept exactly as sent. */
function testClaimsOf(claims: Readonly<Record<string, string>>): Record<string, string> {
  const entries = Object.entries(claims);
  if (entries.length > maxTestClaims) throw invalidArgument("TOO_MANY_CLAIMS", `claims: at most ${maxTestClaims} claims`, { field: "claims" });
  for (const [name, value] of entries) {
    if (!testClaimNamePattern.test(name)) {
      throw invalidArgument("INVALID_FORMAT", `claims: ${quotedForError(name)} is not a claim name (letters, digits, _ . : -, at most 64)`, { field: "claims" });
    }
    textField(value, `claims.${name}`, { max: maxTestClaimValue, required: false });
  }
  return Object.fromEntries(entries);
}

/** Creates the policy service. `idTokens` verifies the dry run's ID tokens; `publicUrl` goes into workflow snippets. */
export function createPolicyService(deps: {
  units: UnitsOfWork;
  audit: AuditLog;
  clock: Clock;
  catalogue: Catalogue;
  audienceDomain: string;
  publicUrl: string | undefined;
  idTokens: OidcVerifier;
}) {
  const { units, audit, clock, catalogue, idTokens } = deps;
  const audienceOf = (tenantSlug: string) => tenantAudience(tenantSlug, deps.audienceDomain);

  async function views(uow: UnitOfWork, tenantSlug: string, records: readonly PolicyRecord[]): Promise<PolicyView[]> {
    const orgs = await policies.orgPins(uow, records.map((r) => r.orgId));
    const principals = await directory.principalIds(uow, records.map((r) => r.creatorId));
    const audience = audienceOf(tenantSlug);
    return records.map((r) => {
      const org = r.orgId === null ? null : (orgs.get(r.orgId) ?? null);
      const name = resourceName(tenantSlug, "policies", r.id);
      return {
        ...r,
        name,
        tenantSlug,
        orgSlug: org?.slug ?? null,
        creatorName: resourceName(tenantSlug, "principals", principals.get(r.creatorId) ?? "unknown"),
        // An org bound to no owner any more shows what was saved (matching then refuses every token).
        claims: org?.githubOwner ? effectiveClaims(r.claims, org) : { ...r.claims },
        audience,
        workflowSnippet: workflowSnippet({ keywardUrl: deps.publicUrl, tenant: tenantSlug, policyName: name, audience }),
        warnings: warningsOf(catalogue, r),
      };
    });
  }

  async function view(uow: UnitOfWork, tenantSlug: string, record: PolicyRecord): Promise<PolicyView> {
    const [one] = await views(uow, tenantSlug, [record]);
    return one!;
  }

  /**
   * The org a new policy belongs to: the caller's own for an org-scoped caller (another
   * org is PERMISSION_DENIED `ORG_SCOPE`), the named one otherwise (unknown:
   * INVALID_ARGUMENT `UNKNOWN_ORG`), null for tenant scope.
   */
  async function orgForNew(uow: UnitOfWork, ctx: CallContext, orgSlug: string): Promise<(OrgPin & { id: string }) | null> {
    const { caller } = ctx;
    if (orgSlug !== "" && !slugPattern.test(orgSlug)) throw invalidArgument("INVALID_FORMAT", "policy.org: expected an organization slug", { field: "policy.org" });
    if (caller.orgId !== null && orgSlug !== "" && orgSlug !== caller.orgSlug) {
      throw new KeywardError(ErrorKind.PERMISSION_DENIED, "ORG_SCOPE", "the credential is pinned to another organization");
    }
    const slug = caller.orgId !== null ? (caller.orgSlug ?? "") : orgSlug;
    if (slug === "") return null;
    const org = await directory.findOrgBySlug(uow, caller.tenantId, slug);
    if (org === undefined) throw invalidArgument("UNKNOWN_ORG", `policy.org: no organization ${JSON.stringify(slug)} in this tenant`, { field: "policy.org" });
    return { id: org.id, slug: org.slug, githubOwner: org.githubOwner };
  }

  /** Locks a policy the caller may see, for a change; NOT_FOUND otherwise (the same answer either way). */
  async function lockVisible(uow: UnitOfWork, ctx: CallContext, id: string): Promise<PolicyRecord> {
    const policy = await policies.lock(uow, ctx.caller.tenantId, id);
    if (policy === undefined || !canSeeOrg(ctx.caller, policy.orgId)) throw notFound();
    return policy;
  }

  /** The org of an existing policy, with its current GitHub owner. */
  async function orgOf(uow: UnitOfWork, policy: PolicyRecord): Promise<(OrgPin & { id: string }) | null> {
    if (policy.orgId === null) return null;
    const pin = (await policies.orgPins(uow, [policy.orgId])).get(policy.orgId);
    return pin === undefined ? null : { id: policy.orgId, ...pin };
  }

  /** The org a listing or dry run is confined to: undefined for every policy, null when nothing can be in scope. */
  async function scopeOf(uow: UnitOfWork, ctx: CallContext, orgSlug: string): Promise<{ orgId?: string } | null> {
    const { caller } = ctx;
    if (orgSlug !== "" && !slugPattern.test(orgSlug)) throw invalidArgument("INVALID_FORMAT", "org: expected an organization slug", { field: "org" });
    if (caller.orgId !== null) return orgSlug === "" || orgSlug === caller.orgSlug ? { orgId: caller.orgId } : null;
    if (orgSlug === "") return {};
    const org = await directory.findOrgBySlug(uow, caller.tenantId, orgSlug);
    return org === undefined ? null : { orgId: org.id };
  }

  function details(policy: PolicyView, warnings: readonly string[]): Record<string, string> {
    return {
      displayName: policy.displayName,
      org: policy.orgSlug ?? "",
      claims: JSON.stringify(policy.claims),
      permissions: policy.permissions.join(","),
      maxSessionSeconds: String(policy.maxSessionSeconds),
      warnings: warningCodes(warnings).join(","),
    };
  }

  return {
    /**
     * CreatePolicy (DESIGN.md §4): a policy under `parent` (`tenants/{tenant}`, or empty for
     * the caller's; see PolicyInput; `org` an org slug, empty for tenant scope), made by the
     * caller and bounded by its credential's chain. Needs `policies:write`. Returns the policy
     * and its warnings (policy-warnings.ts). Refusals: INVALID_ARGUMENT (INVALID_RESOURCE_NAME,
     * REQUIRED_FIELD, FIELD_TOO_LONG, INVALID_CHARACTERS, INVALID_FORMAT, CONTRADICTORY_CLAIMS,
     * OWNER_OR_REPOSITORY_REQUIRED, ORG_OWNER_MISMATCH, UNKNOWN_ORG, INVALID_SESSION_DURATION,
     * UNKNOWN_PERMISSION), FAILED_PRECONDITION (ORG_HAS_NO_GITHUB_OWNER,
     * CREDENTIAL_CHAIN_TOO_LONG), PERMISSION_DENIED (INSUFFICIENT_SCOPE,
     * EXCHANGED_TOKEN_CANNOT_MINT, PERMISSIONS_EXCEED_CALLER, ORG_SCOPE, TENANT_MISMATCH),
     * ALREADY_EXISTS POLICY_NAME_TAKEN.
     */
    async create(ctx: CallContext, input: { parent: string; org: string } & PolicyInput): Promise<PolicyWithWarnings> {
      return audit.guard(ctx, "policy.create", resourceName(ctx.caller.tenantSlug, "policies", "-"), async () => {
        requirePermission(catalogue, ctx.caller, "policies:write");
        refuseExchangedToken(ctx.caller, "trust policies");
        requireOwnTenant(ctx.caller, parseTenantName(input.parent));
        const displayName = displayNameOf(input.displayName);
        const description = descriptionOf(input.description);
        validateClaims(input.claims); // format errors first, before any database read
        const maxSession = sessionSecondsOf(input.maxSessionSeconds);
        if (input.permissions.length === 0) throw invalidArgument("REQUIRED_FIELD", "policy.permissions: at least one permission is required", { field: "policy.permissions" });
        const permissions = parsePermissions(catalogue, input.permissions, "policy.permissions");
        requireHeld(catalogue, ctx.caller, permissions);
        return units.write(ctx, async (uow) => {
          const org = await orgForNew(uow, ctx, input.org);
          const claims = claimsFor(input.claims, org);
          const orgId = org?.id ?? null;
          if (await policies.nameTaken(uow, ctx.caller.tenantId, orgId, displayName)) throw policyNameTaken(displayName);
          const record = await policies.insert(uow, {
            tenantId: ctx.caller.tenantId, orgId, displayName, description, claims, maxSessionSeconds: maxSession, permissions,
            creatorId: ctx.caller.principalRowId, boundedBy: boundsFor(ctx.caller, ctx.caller.principalRowId), createdAt: clock.now(),
          });
          const policy = await view(uow, ctx.caller.tenantSlug, record);
          const { warnings } = policy;
          audit.record(uow, { ...actorOf(ctx), orgId, action: "policy.create", resource: policy.name, outcome: "success", details: details(policy, warnings) });
          return { policy, warnings };
        });
      });
    },

    /**
     * GetPolicy: the policy `name` (`tenants/{tenant}/policies/{uuid}`) if the caller may see
     * it. Needs `policies:read`. Refusals: INVALID_ARGUMENT INVALID_RESOURCE_NAME,
     * PERMISSION_DENIED (INSUFFICIENT_SCOPE, TENANT_MISMATCH), NOT_FOUND POLICY_NOT_FOUND
     * (also for another org's policy).
     */
    async get(ctx: CallContext, name: string): Promise<PolicyView> {
      return audit.guard(ctx, "policy.get", auditedName(name, "policies", ctx.caller.tenantSlug), async () => {
        requirePermission(catalogue, ctx.caller, "policies:read");
        const { tenant, id } = parseResourceName(name, "policies");
        requireOwnTenant(ctx.caller, tenant);
        return units.read(ctx, async (uow) => {
          const policy = await policies.find(uow, ctx.caller.tenantId, id);
          if (policy === undefined || !canSeeOrg(ctx.caller, policy.orgId)) throw notFound();
          return view(uow, ctx.caller.tenantSlug, policy);
        });
      });
    },

    /**
     * ListPolicies: a page (`pageSize` 0 → 50) of the policies the caller may see (optionally
     * the org `org`'s), by case-insensitive name then id, and the opaque token of the next
     * page ("" at the end). Needs `policies:read`. Refusals: INVALID_ARGUMENT
     * (INVALID_RESOURCE_NAME, INVALID_PAGE_SIZE, INVALID_PAGE_TOKEN, INVALID_FORMAT for `org`),
     * PERMISSION_DENIED (INSUFFICIENT_SCOPE, TENANT_MISMATCH).
     */
    async list(ctx: CallContext, input: { parent: string; pageSize: number; pageToken: string; org: string }): Promise<{ policies: PolicyView[]; nextPageToken: string }> {
      return audit.guard(ctx, "policy.list", `tenants/${ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "policies:read");
        requireOwnTenant(ctx.caller, parseTenantName(input.parent));
        const limit = pageSizeOf(input.pageSize);
        const query = { listing: "ListPolicies", parent: ctx.caller.tenantId, filters: { org: input.org } };
        const namePart: PositionPart = (v) => v.length <= 400;
        const position = decodePageToken(input.pageToken, query, [namePart, patternPart(policyIdPattern)]);
        return units.read(ctx, async (uow) => {
          const scope = await scopeOf(uow, ctx, input.org);
          if (scope === null) return { policies: [], nextPageToken: "" };
          const after = position === undefined ? undefined : { displayName: position[0]!, id: position[1]! };
          const rows = await policies.list(uow, ctx.caller.tenantId, scope, limit + 1, after);
          const page = pageOf(rows, limit, (p) => [p.displayName, p.id], query);
          return { policies: await views(uow, ctx.caller.tenantSlug, page.items), nextPageToken: page.nextPageToken };
        });
      });
    },

    /**
     * Changes the fields named by `paths` (display_name, description, claims,
     * max_session_duration_seconds, permissions) of the policy `name` whose etag is `etag`.
     * Needs authority over the policy (every permission it grants); new permissions must be
     * held; the updater (and its credential's chain) joins the principals bounding the
     * policy's tokens. Refusals as create, plus INVALID_ARGUMENT ETAG_REQUIRED,
     * INVALID_UPDATE_MASK, ABORTED ETAG_MISMATCH, NOT_FOUND POLICY_NOT_FOUND.
     */
    async update(ctx: CallContext, input: { name: string; etag: string; paths: readonly string[] } & PolicyInput): Promise<PolicyWithWarnings> {
      const resource = auditedName(input.name, "policies", ctx.caller.tenantSlug);
      return audit.guard(ctx, "policy.update", resource, async () => {
        requirePermission(catalogue, ctx.caller, "policies:write");
        refuseExchangedToken(ctx.caller, "trust policies");
        const { tenant, id } = parseResourceName(input.name, "policies", "policy.name");
        requireOwnTenant(ctx.caller, tenant);
        const paths = checkUpdateMask(input.paths, updatablePaths);
        requireEtag(input.etag, "policy.etag");
        const patch: PolicyPatch = {};
        if (paths.has("display_name")) patch.displayName = displayNameOf(input.displayName);
        if (paths.has("description")) patch.description = descriptionOf(input.description);
        if (paths.has("claims")) validateClaims(input.claims);
        if (paths.has("max_session_duration_seconds")) patch.maxSessionSeconds = sessionSecondsOf(input.maxSessionSeconds);
        if (paths.has("permissions")) {
          if (input.permissions.length === 0) throw invalidArgument("REQUIRED_FIELD", "policy.permissions: at least one permission is required", { field: "policy.permissions" });
          patch.permissions = parsePermissions(catalogue, input.permissions, "policy.permissions");
          requireHeld(catalogue, ctx.caller, patch.permissions);
        }
        return units.write(ctx, async (uow) => {
          const current = await lockVisible(uow, ctx, id);
          // Whoever changes a policy must hold everything its tokens may carry.
          requireAuthorityOver(catalogue, ctx.caller, "policy", current.permissions);
          checkEtag(input.etag, current);
          if (paths.has("claims")) patch.claims = claimsFor(input.claims, await orgOf(uow, current));
          if (patch.displayName !== undefined && (await policies.nameTaken(uow, ctx.caller.tenantId, current.orgId, patch.displayName, current.id))) {
            throw policyNameTaken(patch.displayName);
          }
          // Tokens never exceed anyone who shaped the policy: the updater and its credential's chain bound them too.
          patch.boundedBy = boundsFor(ctx.caller, current.creatorId, current.boundedBy);
          const record = await policies.update(uow, ctx.caller.tenantId, current.id, patch, clock.now());
          const policy = await view(uow, ctx.caller.tenantSlug, record);
          const { warnings } = policy;
          audit.record(uow, {
            ...actorOf(ctx), orgId: record.orgId, action: "policy.update", resource, outcome: "success",
            details: { ...details(policy, warnings), updateMask: [...paths].join(",") },
          });
          return { policy, warnings };
        });
      });
    },

    /**
     * Deletes the policy `name` whose etag is `etag`; tokens minted under it stop verifying.
     * Needs authority over the policy. Refusals: INVALID_ARGUMENT ETAG_REQUIRED, ABORTED
     * ETAG_MISMATCH, NOT_FOUND POLICY_NOT_FOUND, PERMISSION_DENIED PERMISSIONS_EXCEED_CALLER.
     */
    async delete(ctx: CallContext, input: { name: string; etag: string }): Promise<void> {
      const resource = auditedName(input.name, "policies", ctx.caller.tenantSlug);
      return audit.guard(ctx, "policy.delete", resource, async () => {
        requirePermission(catalogue, ctx.caller, "policies:write");
        const { tenant, id } = parseResourceName(input.name, "policies");
        requireOwnTenant(ctx.caller, tenant);
        requireEtag(input.etag, "etag");
        await units.write(ctx, async (uow) => {
          const current = await lockVisible(uow, ctx, id);
          requireAuthorityOver(catalogue, ctx.caller, "policy", current.permissions);
          checkEtag(input.etag, current);
          const policy = await view(uow, ctx.caller.tenantSlug, current);
          if (!(await policies.delete(uow, ctx.caller.tenantId, current.id))) throw notFound();
          audit.record(uow, { ...actorOf(ctx), orgId: current.orgId, action: "policy.delete", resource, outcome: "success", details: details(policy, policy.warnings) });
        });
      });
    },

    /**
     * Dry run (changes nothing, not audited): compares a verified ID token's claims, or a
     * bare claim set, with every policy the caller may see (narrowed to `org`), org
     * policies requiring their org's current GitHub owner. Exactly one of `subjectToken` and
     * `claims` (INVALID_ARGUMENT REQUIRED_FIELD / CONFLICTING_FIELDS); a claim set has at
     * most 64 claims (TOO_MANY_CLAIMS). The verifier's errors (UNAUTHENTICATED
     * AUDIENCE_MISMATCH, UNAVAILABLE ISSUER_UNAVAILABLE, …) pass through, except that an
     * expired token (or one past the age limit) is still compared, with a `TOKEN_EXPIRED: …` note.
     *
     * @returns one result per policy, matched ones first, then by name; the claims compared; the audience; notes.
     */
    async test(ctx: CallContext, input: { parent: string; subjectToken: string; claims: Readonly<Record<string, string>>; org: string }): Promise<DryRunView> {
      requirePermission(catalogue, ctx.caller, "policies:read");
      requireOwnTenant(ctx.caller, parseTenantName(input.parent));
      const hasToken = input.subjectToken !== "";
      const hasClaims = Object.keys(input.claims).length > 0;
      if (!hasToken && !hasClaims) throw invalidArgument("REQUIRED_FIELD", "one of subject_token or claims is required", { field: "subject_token" });
      if (hasToken && hasClaims) throw invalidArgument("CONFLICTING_FIELDS", "send subject_token or claims, not both", { field: "claims" });
      const audience = audienceOf(ctx.caller.tenantSlug);
      const verified = hasToken ? await idTokens.verify(input.subjectToken, audience, ctx.signal, { allowExpired: true }) : undefined;
      const claims = verified === undefined ? testClaimsOf(input.claims) : { ...verified.claims };
      // GitHub's ID tokens live five minutes: an expired one is still compared, with a note.
      const notes = verified?.expired === true
        ? [`TOKEN_EXPIRED: the token expired at ${verified.expiresAt.toISOString()} (or is older than an exchange accepts): an exchange would refuse it; its signature, issuer and audience hold, and its claims are compared below`]
        : [];
      const candidates = await units.read(ctx, async (uow) => {
        const scope = await scopeOf(uow, ctx, input.org);
        return scope === null ? [] : policiesForMatching(uow, ctx.caller.tenantId, scope);
      });
      const results = candidates.map((p): PolicyMatchView => {
        const m = matchClaims(p.claims, claims);
        return m.matched
          ? { policy: p.name, displayName: p.displayName, matched: true, failedClaim: "", expected: "", actual: "", reason: "" }
          : { policy: p.name, displayName: p.displayName, matched: false, failedClaim: m.claim, expected: m.expected, actual: m.actual, reason: m.explanation };
      });
      // Stable: within each group the repository's order (lower(display_name), id) stays.
      results.sort((a, b) => Number(b.matched) - Number(a.matched));
      return { results, claims, audience, notes };
    },
  };
}

/** The policy service's operations. */
export type PolicyService = ReturnType<typeof createPolicyService>;
