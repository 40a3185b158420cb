// The directory: the caller's tenant, its organizations and principals. Reads need
// directory:read, changes directory:write; org-scoped callers see only their org.
import type { Clock } from "../clock.ts";
import type { Database } from "../db/orm.ts";
import { actorOf, type AuditLog } from "../audit/audit-log.ts";
import { ErrorKind, KeywardError, invalidArgument } from "../errors.ts";
import { canSeeOrg, requireHeld, requireOwnTenant, requirePermission, requireTenantScope, type CallContext } from "./caller.ts";
import { directoryRepository as directory, type OrgRecord, type PrincipalRecord, type PrincipalStatus, type PrincipalType, type TenantRecord } from "./directory-repository.ts";
import { decodePageToken, encodePageToken, pageSizeOf } from "./page-token.ts";
import { parsePermissions, type Catalogue } from "./permissions.ts";
import { principalIdPattern, resourceName, slugPattern } from "./resource-names.ts";
import { patternField, textField } from "./text-fields.ts";

/** A principal with its organization's slug resolved. */
export type PrincipalView = PrincipalRecord & { tenantSlug: string; orgSlug: string | null };
/** An organization with its tenant's slug. */
export type OrgView = OrgRecord & { tenantSlug: string };

const githubOwnerPattern = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;

/** A decoded page position, checked before it reaches SQL (tokens are opaque, not secret). */
function checkedPosition(value: string | number | undefined, pattern: RegExp): string {
  const text = String(value);
  if (!pattern.test(text)) throw invalidArgument("INVALID_PAGE_TOKEN", "page_token is not valid for this request", { field: "page_token" });
  return text;
}

function notFound(what: string): KeywardError {
  return new KeywardError(ErrorKind.NOT_FOUND, `${what.toUpperCase()}_NOT_FOUND`, `${what} not found`);
}

/** Creates the directory service. */
export function createDirectoryService(deps: { db: Database; audit: AuditLog; clock: Clock; catalogue: Catalogue }) {
  const { db, audit, clock, catalogue } = deps;

  async function principalView(ctx: CallContext, p: PrincipalRecord): Promise<PrincipalView> {
    const orgs = await directory.orgSlugs(db.em.fork(), p.orgId === null ? [] : [p.orgId]);
    return { ...p, tenantSlug: ctx.caller.tenantSlug, orgSlug: p.orgId === null ? null : (orgs.get(p.orgId) ?? null) };
  }

  async function visibleOrg(ctx: CallContext, slug: string): Promise<OrgRecord> {
    const org = await directory.findOrgBySlug(db.em.fork(), ctx.caller.tenantId, slug);
    if (org === undefined || !canSeeOrg(ctx.caller, org.id)) throw notFound("organization");
    return org;
  }

  async function visiblePrincipal(ctx: CallContext, principalId: string): Promise<PrincipalRecord> {
    const p = await directory.findPrincipal(db.em.fork(), ctx.caller.tenantId, principalId);
    if (p === undefined || (ctx.caller.orgId !== null && p.orgId !== ctx.caller.orgId)) throw notFound("principal");
    return p;
  }

  return {
    async getTenant(ctx: CallContext, tenant: string | undefined): Promise<TenantRecord> {
      return audit.guard(ctx, "tenant.get", `tenants/${tenant ?? ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "directory:read");
        requireOwnTenant(ctx.caller, tenant);
        const found = await directory.findTenantBySlug(db.em.fork(), ctx.caller.tenantSlug);
        if (found === undefined) throw notFound("tenant");
        return found;
      });
    },

    async updateTenant(ctx: CallContext, tenant: string | undefined, etag: string, patch: { displayName?: string; disableKeysOfSuspendedPrincipals?: boolean }): Promise<TenantRecord> {
      const resource = `tenants/${ctx.caller.tenantSlug}`;
      return audit.guard(ctx, "tenant.update", resource, async () => {
        requirePermission(catalogue, ctx.caller, "directory:write");
        requireOwnTenant(ctx.caller, tenant);
        requireTenantScope(ctx.caller);
        const clean = { ...patch };
        if (patch.displayName !== undefined) clean.displayName = textField(patch.displayName, "tenant.display_name", { max: 200, required: true });
        return db.em.fork().transactional(async (em) => {
          const updated = await directory.updateTenant(em, ctx.caller.tenantId, etag, clean, clock.now());
          audit.record(em, { ...actorOf(ctx), action: "tenant.update", resource, outcome: "success", details: Object.fromEntries(Object.entries(clean).map(([k, v]) => [k, String(v)])) });
          return updated;
        });
      });
    },

    async createOrganization(ctx: CallContext, tenant: string | undefined, input: { slug: string; displayName: string; githubOwner: string }): Promise<OrgView> {
      return audit.guard(ctx, "org.create", resourceName(ctx.caller.tenantSlug, "orgs", input.slug.slice(0, 63)), async () => {
        requirePermission(catalogue, ctx.caller, "directory:write");
        requireOwnTenant(ctx.caller, tenant);
        requireTenantScope(ctx.caller);
        const slug = patternField(input.slug, "slug", slugPattern, "1 to 63 lowercase letters, digits and inner hyphens");
        const displayName = textField(input.displayName, "display_name", { max: 200, required: false }) || slug;
        const githubOwner = patternField(input.githubOwner, "github_owner", githubOwnerPattern, "a GitHub user or organization name", false);
        return db.em.fork().transactional(async (em) => {
          const org = await directory.insertOrg(em, { tenantId: ctx.caller.tenantId, slug, displayName, githubOwner: githubOwner || null, now: clock.now() });
          audit.record(em, { ...actorOf(ctx), orgId: org.id, action: "org.create", resource: resourceName(ctx.caller.tenantSlug, "orgs", slug), outcome: "success", details: { githubOwner } });
          return { ...org, tenantSlug: ctx.caller.tenantSlug };
        });
      });
    },

    async getOrganization(ctx: CallContext, tenant: string, slug: string): Promise<OrgView> {
      return audit.guard(ctx, "org.get", resourceName(tenant, "orgs", slug), async () => {
        requirePermission(catalogue, ctx.caller, "directory:read");
        requireOwnTenant(ctx.caller, tenant);
        return { ...(await visibleOrg(ctx, slug)), tenantSlug: ctx.caller.tenantSlug };
      });
    },

    async listOrganizations(ctx: CallContext, tenant: string | undefined, pageSize: number, pageToken: string): Promise<{ items: OrgView[]; nextPageToken: string }> {
      return audit.guard(ctx, "org.list", `tenants/${ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "directory:read");
        requireOwnTenant(ctx.caller, tenant);
        const limit = pageSizeOf(pageSize);
        const position = decodePageToken(pageToken, "orgs");
        const opts: { onlyId?: string; afterSlug?: string; limit: number } = { limit: limit + 1 };
        if (ctx.caller.orgId !== null) opts.onlyId = ctx.caller.orgId;
        if (position !== undefined) opts.afterSlug = checkedPosition(position[0], slugPattern);
        const rows = await directory.listOrgs(db.em.fork(), ctx.caller.tenantId, opts);
        const page = rows.slice(0, limit);
        const last = page[page.length - 1];
        return {
          items: page.map((o) => ({ ...o, tenantSlug: ctx.caller.tenantSlug })),
          nextPageToken: rows.length > limit && last !== undefined ? encodePageToken([last.slug], "orgs") : "",
        };
      });
    },

    async updateOrganization(ctx: CallContext, tenant: string, slug: string, etag: string, patch: { displayName?: string; githubOwner?: string }): Promise<OrgView> {
      const resource = resourceName(tenant, "orgs", slug);
      return audit.guard(ctx, "org.update", resource, async () => {
        requirePermission(catalogue, ctx.caller, "directory:write");
        requireOwnTenant(ctx.caller, tenant);
        requireTenantScope(ctx.caller);
        const clean: { displayName?: string; githubOwner?: string | null } = {};
        if (patch.displayName !== undefined) clean.displayName = textField(patch.displayName, "organization.display_name", { max: 200, required: true });
        if (patch.githubOwner !== undefined) clean.githubOwner = patternField(patch.githubOwner, "organization.github_owner", githubOwnerPattern, "a GitHub user or organization name", false) || null;
        const org = await visibleOrg(ctx, slug);
        return db.em.fork().transactional(async (em) => {
          const updated = await directory.updateOrg(em, org.id, etag, clean, clock.now());
          audit.record(em, { ...actorOf(ctx), orgId: org.id, action: "org.update", resource, outcome: "success", details: Object.fromEntries(Object.entries(clean).map(([k, v]) => [k, String(v ?? "")])) });
          return { ...updated, tenantSlug: ctx.caller.tenantSlug };
        });
      });
    },

    async createPrincipal(
      ctx: CallContext,
      tenant: string | undefined,
      input: { principalId: string; displayName: string; type: PrincipalType | undefined; permissions: readonly string[]; org: string },
    ): Promise<PrincipalView> {
      return audit.guard(ctx, "principal.create", resourceName(ctx.caller.tenantSlug, "principals", input.principalId.slice(0, 100)), async () => {
        requirePermission(catalogue, ctx.caller, "directory:write");
        requireOwnTenant(ctx.caller, tenant);
        const principalId = patternField(input.principalId, "principal_id", principalIdPattern, "1 to 100 lowercase letters, digits, '-', '_', '.', '@'");
        const displayName = textField(input.displayName, "display_name", { max: 200, required: false }) || principalId;
        if (input.type === undefined) throw invalidArgument("REQUIRED_FIELD", "type must be PRINCIPAL_TYPE_USER or PRINCIPAL_TYPE_SERVICE_ACCOUNT", { field: "type" });
        const permissions = parsePermissions(catalogue, input.permissions);
        requireHeld(catalogue, ctx.caller, permissions);
        return db.em.fork().transactional(async (em) => {
          let orgId: string | null = ctx.caller.orgId;
          if (patternField(input.org, "org", slugPattern, "an organization slug", false) !== "") {
            const org = await directory.findOrgBySlug(em, ctx.caller.tenantId, input.org);
            if (ctx.caller.orgId !== null && org?.id !== ctx.caller.orgId) throw new KeywardError(ErrorKind.PERMISSION_DENIED, "ORG_SCOPE", "the credential is pinned to another organization");
            if (org === undefined) throw invalidArgument("UNKNOWN_ORG", `org: no organization ${JSON.stringify(input.org)} in this tenant`, { field: "org" });
            orgId = org.id;
          }
          const created = await directory.insertPrincipal(em, {
            tenantId: ctx.caller.tenantId, principalId, displayName, type: input.type!, status: "active", permissions, orgId, now: clock.now(),
          });
          audit.record(em, {
            ...actorOf(ctx), orgId, action: "principal.create", resource: resourceName(ctx.caller.tenantSlug, "principals", principalId), outcome: "success",
            details: { permissions: permissions.join(","), type: created.type },
          });
          return created;
        }).then((p) => principalView(ctx, p));
      });
    },

    async getPrincipal(ctx: CallContext, tenant: string, principalId: string): Promise<PrincipalView> {
      return audit.guard(ctx, "principal.get", resourceName(tenant, "principals", principalId), async () => {
        requirePermission(catalogue, ctx.caller, "directory:read");
        requireOwnTenant(ctx.caller, tenant);
        return principalView(ctx, await visiblePrincipal(ctx, principalId));
      });
    },

    async listPrincipals(ctx: CallContext, tenant: string | undefined, pageSize: number, pageToken: string, status: PrincipalStatus | undefined): Promise<{ items: PrincipalView[]; nextPageToken: string }> {
      return audit.guard(ctx, "principal.list", `tenants/${ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "directory:read");
        requireOwnTenant(ctx.caller, tenant);
        const limit = pageSizeOf(pageSize);
        const position = decodePageToken(pageToken, { status });
        const opts: { orgId?: string; status?: PrincipalStatus; afterId?: string; limit: number } = { limit: limit + 1 };
        if (ctx.caller.orgId !== null) opts.orgId = ctx.caller.orgId;
        if (status !== undefined) opts.status = status;
        if (position !== undefined) opts.afterId = checkedPosition(position[0], principalIdPattern);
        const em = db.em.fork();
        const rows = await directory.listPrincipals(em, ctx.caller.tenantId, opts);
        const page = rows.slice(0, limit);
        const orgs = await directory.orgSlugs(em, page.flatMap((p) => (p.orgId === null ? [] : [p.orgId])));
        const last = page[page.length - 1];
        return {
          items: page.map((p) => ({ ...p, tenantSlug: ctx.caller.tenantSlug, orgSlug: p.orgId === null ? null : (orgs.get(p.orgId) ?? null) })),
          nextPageToken: rows.length > limit && last !== undefined ? encodePageToken([last.principalId], { status }) : "",
        };
      });
    },

    async updatePrincipal(
      ctx: CallContext,
      tenant: string,
      principalId: string,
      etag: string,
      patch: { displayName?: string; permissions?: readonly string[]; status?: PrincipalStatus | undefined },
    ): Promise<PrincipalView> {
      const resource = resourceName(tenant, "principals", principalId);
      return audit.guard(ctx, "principal.update", resource, async () => {
        requirePermission(catalogue, ctx.caller, "directory:write");
        requireOwnTenant(ctx.caller, tenant);
        const clean: { displayName?: string; permissions?: string[]; status?: PrincipalStatus } = {};
        if (patch.displayName !== undefined) clean.displayName = textField(patch.displayName, "principal.display_name", { max: 200, required: true });
        if (patch.permissions !== undefined) {
          clean.permissions = parsePermissions(catalogue, patch.permissions, "principal.permissions");
          requireHeld(catalogue, ctx.caller, clean.permissions);
        }
        if ("status" in patch) {
          if (patch.status === undefined) throw invalidArgument("REQUIRED_FIELD", "principal.status must be ACTIVE or SUSPENDED when in the update mask", { field: "principal.status" });
          clean.status = patch.status;
        }
        const target = await visiblePrincipal(ctx, principalId);
        if (clean.status === "suspended" && target.id === ctx.caller.principalRowId) {
          throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "SELF_SUSPENSION", "a principal cannot suspend itself");
        }
        return db.em.fork().transactional(async (em) => {
          const updated = await directory.updatePrincipal(em, target.id, etag, clean, clock.now());
          const details: Record<string, string> = {};
          if (clean.displayName !== undefined) details["displayName"] = clean.displayName;
          if (clean.permissions !== undefined) details["permissions"] = clean.permissions.join(",");
          if (clean.status !== undefined) details["status"] = clean.status;
          audit.record(em, { ...actorOf(ctx), orgId: target.orgId, action: "principal.update", resource, outcome: "success", details });
          return updated;
        }).then((p) => principalView(ctx, p));
      });
    },
  };
}

/** The directory service's operations. */
export type DirectoryService = ReturnType<typeof createDirectoryService>;
