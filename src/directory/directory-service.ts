// The directory: the caller's tenant, its organizations and principals. Reads need
// directory:read, changes directory:write; org-scoped callers see only their org; nobody
// changes a principal with more authority than their own.
import type { Clock } from "../clock.ts";
import type { UnitsOfWork } from "../db/unit-of-work.ts";
import { actorOf, type AuditLog } from "../audit/audit-log.ts";
import { ErrorKind, KeywardError, invalidArgument } from "../errors.ts";
import { canSeeOrg, requireHeld, requireOwnTenant, requirePermission, requireTenantScope, type CallContext } from "./caller.ts";
import { directoryRepository as directory, type OrgRecord, type PrincipalRecord, type PrincipalStatus, type PrincipalType, type TenantRecord } from "./directory-repository.ts";
import { decodePageToken, pageOf, pageSizeOf, patternPart } from "../common/page-token.ts";
import { notImplied, parsePermissions, toPermissionSet, type Catalogue } from "./permissions.ts";
import { auditedName, parseResourceName, parseTenantName, parseTenantSingletonName, principalIdPattern, resourceName, slugPattern } from "../common/resource-names.ts";
import { patternField, textField } from "../common/text-fields.ts";
import { checkUpdateMask } from "../common/update-mask.ts";

/** A principal with its organization's slug resolved. */
export type PrincipalView = PrincipalRecord & { tenantSlug: string; orgSlug: string | null };
/** An organization with its tenant's slug. */
export type OrgView = OrgRecord & { tenantSlug: string };

/** A requested change: the update mask's paths and the proposed values. */
type Update<T> = { name: string; etag: string; paths: readonly string[] } & T;

const githubOwnerPattern = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;

function notFound(what: string): KeywardError {
  return new KeywardError(ErrorKind.NOT_FOUND, `${what.toUpperCase()}_NOT_FOUND`, `${what} not found`);
}

function stringDetails(values: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : String(v ?? "")]));
}

/** Creates the directory service. */
export function createDirectoryService(deps: { units: UnitsOfWork; audit: AuditLog; clock: Clock; catalogue: Catalogue }) {
  const { units, audit, clock, catalogue } = deps;

  async function principalView(ctx: CallContext, p: PrincipalRecord): Promise<PrincipalView> {
    const orgs = await units.read(ctx, (uow) => directory.orgSlugs(uow, p.orgId === null ? [] : [p.orgId]));
    return { ...p, tenantSlug: ctx.caller.tenantSlug, orgSlug: p.orgId === null ? null : (orgs.get(p.orgId) ?? null) };
  }

  /** The org named `name`, if the caller may see it (NOT_FOUND otherwise). */
  async function visibleOrg(ctx: CallContext, name: string): Promise<OrgRecord> {
    const { tenant, id } = parseResourceName(name, "orgs");
    requireOwnTenant(ctx.caller, tenant);
    const org = await units.read(ctx, (uow) => directory.findOrgBySlug(uow, ctx.caller.tenantId, id));
    if (org === undefined || !canSeeOrg(ctx.caller, org.id)) throw notFound("organization");
    return org;
  }

  /** The principal named `name`, if the caller may see it (NOT_FOUND otherwise). */
  async function visiblePrincipal(ctx: CallContext, name: string): Promise<PrincipalRecord> {
    const { tenant, id } = parseResourceName(name, "principals");
    requireOwnTenant(ctx.caller, tenant);
    const p = await units.read(ctx, (uow) => directory.findPrincipal(uow, ctx.caller.tenantId, id));
    if (p === undefined || (ctx.caller.orgId !== null && p.orgId !== ctx.caller.orgId)) throw notFound("principal");
    return p;
  }

  return {
    async getTenant(ctx: CallContext, name: string): Promise<TenantRecord> {
      return audit.guard(ctx, "tenant.get", `tenants/${ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "directory:read");
        requireOwnTenant(ctx.caller, parseTenantName(name, "name"));
        const found = await units.read(ctx, (uow) => directory.findTenantBySlug(uow, ctx.caller.tenantSlug));
        if (found === undefined) throw notFound("tenant");
        return found;
      });
    },

    /**
     * GetPermissionCatalogue: the deployment's permission categories (config
     * `permissionCategories`, DESIGN.md §1), for any authenticated caller of the tenant —
     * no permission needed, so a key holding only `keys:write` learns what it may grant.
     * `name` is `tenants/{tenant}/permissionCatalogue` (empty: the caller's). Refusals:
     * INVALID_ARGUMENT INVALID_RESOURCE_NAME, PERMISSION_DENIED TENANT_MISMATCH.
     */
    async getPermissionCatalogue(ctx: CallContext, name: string): Promise<{ name: string; categories: string[] }> {
      const own = `tenants/${ctx.caller.tenantSlug}/permissionCatalogue`;
      return audit.guard(ctx, "catalogue.get", own, async () => {
        requireOwnTenant(ctx.caller, parseTenantSingletonName(name, "permissionCatalogue"));
        return { name: own, categories: [...catalogue.categories] };
      });
    },

    async updateTenant(ctx: CallContext, input: Update<{ displayName: string; disableKeysOfSuspendedPrincipals: boolean }>): Promise<TenantRecord> {
      const resource = `tenants/${ctx.caller.tenantSlug}`;
      return audit.guard(ctx, "tenant.update", resource, async () => {
        requirePermission(catalogue, ctx.caller, "directory:write");
        requireOwnTenant(ctx.caller, parseTenantName(input.name, "tenant.name"));
        requireTenantScope(ctx.caller);
        const paths = checkUpdateMask(input.paths, ["display_name", "disable_keys_of_suspended_principals"]);
        const patch: { displayName?: string; disableKeysOfSuspendedPrincipals?: boolean } = {};
        if (paths.has("display_name")) patch.displayName = textField(input.displayName, "tenant.display_name", { max: 200, required: true });
        if (paths.has("disable_keys_of_suspended_principals")) patch.disableKeysOfSuspendedPrincipals = input.disableKeysOfSuspendedPrincipals;
        return units.write(ctx, async (uow) => {
          const updated = await directory.updateTenant(uow, ctx.caller.tenantId, input.etag, patch, clock.now());
          audit.record(uow, { ...actorOf(ctx), action: "tenant.update", resource, outcome: "success", details: stringDetails(patch) });
          return updated;
        });
      });
    },

    async createOrganization(ctx: CallContext, input: { parent: string; slug: string; displayName: string; githubOwner: string }): Promise<OrgView> {
      const resource = auditedName(resourceName(ctx.caller.tenantSlug, "orgs", input.slug), "orgs", ctx.caller.tenantSlug);
      return audit.guard(ctx, "org.create", resource, async () => {
        requirePermission(catalogue, ctx.caller, "directory:write");
        requireOwnTenant(ctx.caller, parseTenantName(input.parent));
        requireTenantScope(ctx.caller);
        const slug = patternField(input.slug, "slug", slugPattern, "1 to 63 lowercase letters, digits and inner hyphens");
        const displayName = textField(input.displayName, "display_name", { max: 200, required: false }) || slug;
        const githubOwner = patternField(input.githubOwner, "github_owner", githubOwnerPattern, "a GitHub user or organization name", false);
        return units.write(ctx, async (uow) => {
          const org = await directory.insertOrg(uow, { tenantId: ctx.caller.tenantId, slug, displayName, githubOwner: githubOwner || null, now: clock.now() });
          audit.record(uow, { ...actorOf(ctx), orgId: org.id, action: "org.create", resource, outcome: "success", details: { githubOwner } });
          return { ...org, tenantSlug: ctx.caller.tenantSlug };
        });
      });
    },

    async getOrganization(ctx: CallContext, name: string): Promise<OrgView> {
      return audit.guard(ctx, "org.get", auditedName(name, "orgs", ctx.caller.tenantSlug), async () => {
        requirePermission(catalogue, ctx.caller, "directory:read");
        return { ...(await visibleOrg(ctx, name)), tenantSlug: ctx.caller.tenantSlug };
      });
    },

    async listOrganizations(ctx: CallContext, input: { parent: string; pageSize: number; pageToken: string }): Promise<{ items: OrgView[]; nextPageToken: string }> {
      return audit.guard(ctx, "org.list", `tenants/${ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "directory:read");
        requireOwnTenant(ctx.caller, parseTenantName(input.parent));
        const limit = pageSizeOf(input.pageSize);
        const query = { listing: "ListOrganizations", parent: ctx.caller.tenantId };
        const position = decodePageToken(input.pageToken, query, [patternPart(slugPattern)]);
        const opts: { onlyId?: string; afterSlug?: string; limit: number } = { limit: limit + 1 };
        if (ctx.caller.orgId !== null) opts.onlyId = ctx.caller.orgId;
        if (position !== undefined) opts.afterSlug = position[0]!;
        const rows = await units.read(ctx, (uow) => directory.listOrgs(uow, ctx.caller.tenantId, opts));
        const page = pageOf(rows, limit, (o) => [o.slug], query);
        return { items: page.items.map((o) => ({ ...o, tenantSlug: ctx.caller.tenantSlug })), nextPageToken: page.nextPageToken };
      });
    },

    async updateOrganization(ctx: CallContext, input: Update<{ displayName: string; githubOwner: string }>): Promise<OrgView> {
      const resource = auditedName(input.name, "orgs", ctx.caller.tenantSlug);
      return audit.guard(ctx, "org.update", resource, async () => {
        requirePermission(catalogue, ctx.caller, "directory:write");
        requireTenantScope(ctx.caller);
        const org = await visibleOrg(ctx, input.name);
        const paths = checkUpdateMask(input.paths, ["display_name", "github_owner"]);
        const patch: { displayName?: string; githubOwner?: string | null } = {};
        if (paths.has("display_name")) patch.displayName = textField(input.displayName, "organization.display_name", { max: 200, required: true });
        if (paths.has("github_owner")) {
          patch.githubOwner = patternField(input.githubOwner, "organization.github_owner", githubOwnerPattern, "a GitHub user or organization name", false) || null;
        }
        return units.write(ctx, async (uow) => {
          const updated = await directory.updateOrg(uow, org.id, input.etag, patch, clock.now());
          audit.record(uow, { ...actorOf(ctx), orgId: org.id, action: "org.update", resource, outcome: "success", details: stringDetails(patch) });
          return { ...updated, tenantSlug: ctx.caller.tenantSlug };
        });
      });
    },

    async createPrincipal(
      ctx: CallContext,
      input: { parent: string; principalId: string; displayName: string; type: PrincipalType | undefined; permissions: readonly string[]; org: string },
    ): Promise<PrincipalView> {
      const resource = auditedName(resourceName(ctx.caller.tenantSlug, "principals", input.principalId), "principals", ctx.caller.tenantSlug);
      return audit.guard(ctx, "principal.create", resource, async () => {
        requirePermission(catalogue, ctx.caller, "directory:write");
        requireOwnTenant(ctx.caller, parseTenantName(input.parent));
        const principalId = patternField(input.principalId, "principal_id", principalIdPattern, "1 to 100 lowercase letters, digits, '-', '_', '.', '@'");
        const displayName = textField(input.displayName, "display_name", { max: 200, required: false }) || principalId;
        const type = input.type;
        if (type === undefined) throw invalidArgument("REQUIRED_FIELD", "type must be PRINCIPAL_TYPE_USER or PRINCIPAL_TYPE_SERVICE_ACCOUNT", { field: "type" });
        const permissions = parsePermissions(catalogue, input.permissions);
        requireHeld(catalogue, ctx.caller, permissions);
        const orgSlug = patternField(input.org, "org", slugPattern, "an organization slug", false);
        const created = await units.write(ctx, async (uow) => {
          let orgId: string | null = ctx.caller.orgId;
          if (orgSlug !== "") {
            const org = await directory.findOrgBySlug(uow, ctx.caller.tenantId, orgSlug);
            if (ctx.caller.orgId !== null && org?.id !== ctx.caller.orgId) throw new KeywardError(ErrorKind.PERMISSION_DENIED, "ORG_SCOPE", "the credential is pinned to another organization");
            if (org === undefined) throw invalidArgument("UNKNOWN_ORG", `org: no organization ${JSON.stringify(orgSlug)} in this tenant`, { field: "org" });
            orgId = org.id;
          }
          const principal = await directory.insertPrincipal(uow, { tenantId: ctx.caller.tenantId, principalId, displayName, type, status: "active", permissions, orgId, now: clock.now() });
          audit.record(uow, { ...actorOf(ctx), orgId, action: "principal.create", resource, outcome: "success", details: { permissions: permissions.join(","), type } });
          return principal;
        });
        return principalView(ctx, created);
      });
    },

    async getPrincipal(ctx: CallContext, name: string): Promise<PrincipalView> {
      return audit.guard(ctx, "principal.get", auditedName(name, "principals", ctx.caller.tenantSlug), async () => {
        requirePermission(catalogue, ctx.caller, "directory:read");
        return principalView(ctx, await visiblePrincipal(ctx, name));
      });
    },

    async listPrincipals(
      ctx: CallContext,
      input: { parent: string; pageSize: number; pageToken: string; status: PrincipalStatus | undefined },
    ): Promise<{ items: PrincipalView[]; nextPageToken: string }> {
      return audit.guard(ctx, "principal.list", `tenants/${ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "directory:read");
        requireOwnTenant(ctx.caller, parseTenantName(input.parent));
        const limit = pageSizeOf(input.pageSize);
        const query = { listing: "ListPrincipals", parent: ctx.caller.tenantId, filters: { status: input.status } };
        const position = decodePageToken(input.pageToken, query, [patternPart(principalIdPattern)]);
        const opts: { orgId?: string; status?: PrincipalStatus; afterId?: string; limit: number } = { limit: limit + 1 };
        if (ctx.caller.orgId !== null) opts.orgId = ctx.caller.orgId;
        if (input.status !== undefined) opts.status = input.status;
        if (position !== undefined) opts.afterId = position[0]!;
        return units.read(ctx, async (uow) => {
          const page = pageOf(await directory.listPrincipals(uow, ctx.caller.tenantId, opts), limit, (p) => [p.principalId], query);
          const orgs = await directory.orgSlugs(uow, page.items.flatMap((p) => (p.orgId === null ? [] : [p.orgId])));
          return {
            items: page.items.map((p) => ({ ...p, tenantSlug: ctx.caller.tenantSlug, orgSlug: p.orgId === null ? null : (orgs.get(p.orgId) ?? null) })),
            nextPageToken: page.nextPageToken,
          };
        });
      });
    },

    async updatePrincipal(
      ctx: CallContext,
      input: Update<{ displayName: string; permissions: readonly string[]; status: PrincipalStatus | undefined }>,
    ): Promise<PrincipalView> {
      const resource = auditedName(input.name, "principals", ctx.caller.tenantSlug);
      return audit.guard(ctx, "principal.update", resource, async () => {
        requirePermission(catalogue, ctx.caller, "directory:write");
        const { tenant, id } = parseResourceName(input.name, "principals");
        requireOwnTenant(ctx.caller, tenant);
        const paths = checkUpdateMask(input.paths, ["display_name", "permissions", "status"]);
        const patch: { displayName?: string; permissions?: string[]; status?: PrincipalStatus } = {};
        if (paths.has("display_name")) patch.displayName = textField(input.displayName, "principal.display_name", { max: 200, required: true });
        if (paths.has("permissions")) {
          patch.permissions = parsePermissions(catalogue, input.permissions, "principal.permissions");
          requireHeld(catalogue, ctx.caller, patch.permissions);
        }
        if (paths.has("status")) {
          if (input.status === undefined) throw invalidArgument("REQUIRED_FIELD", "principal.status must be ACTIVE or SUSPENDED when in the update mask", { field: "principal.status" });
          patch.status = input.status;
        }
        const updated = await units.write(ctx, async (uow) => {
          // The target is read and locked in the transaction that writes it: a concurrent
          // raise of its permissions cannot slip between the authority check and the write.
          const target = await directory.lockPrincipal(uow, ctx.caller.tenantId, id);
          if (target === undefined || (ctx.caller.orgId !== null && target.orgId !== ctx.caller.orgId)) throw notFound("principal");
          // Whoever changes a principal must hold everything it holds: otherwise a
          // directory:write key could suspend or strip an administrator.
          requireHeld(catalogue, ctx.caller, target.permissions);
          // Nobody suspends itself, nor, with a credential, a principal whose authority bounds
          // that credential (who made it, or made what it was made with): a key made for a peer
          // is no way around the rule, and a delegate cannot turn on its delegator.
          const boundsCaller = ctx.caller.boundedBy.includes(target.id);
          if (patch.status === "suspended" && (target.id === ctx.caller.principalRowId || boundsCaller)) {
            throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "SELF_SUSPENSION", "a principal cannot suspend itself, nor a principal its credential is bounded by");
          }
          // Nor strips such a principal: that would cut the authority of every key made through
          // it, the caller's own included.
          if (boundsCaller && patch.permissions !== undefined && notImplied(catalogue, toPermissionSet(catalogue, patch.permissions), target.permissions).length > 0) {
            throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "BOUNDING_PRINCIPAL", "the credential is bounded by this principal's authority: it cannot reduce it (use a credential not made through it)");
          }
          const principal = await directory.updatePrincipal(uow, target.id, input.etag, patch, clock.now());
          audit.record(uow, { ...actorOf(ctx), orgId: target.orgId, action: "principal.update", resource, outcome: "success", details: stringDetails(patch) });
          return principal;
        });
        return principalView(ctx, updated);
      });
    },
  };
}

/** The directory service's operations. */
export type DirectoryService = ReturnType<typeof createDirectoryService>;
