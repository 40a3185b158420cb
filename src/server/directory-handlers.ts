// DirectoryService handlers: tenant, organizations, principals.
import type { ServiceImpl } from "@connectrpc/connect";
import type { FieldMask } from "@bufbuild/protobuf/wkt";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import type { DirectoryService as DirectoryDomainService } from "../directory/directory-service.ts";
import { parseResourceName, parseTenantName } from "../directory/resource-names.ts";
import { invalidArgument } from "../errors.ts";
import { callContextOf } from "./auth-interceptor.ts";
import { orgToProto, principalStatuses, principalToProto, principalTypes, tenantToProto } from "./convert.ts";

/** The paths of an update mask, checked against what may be changed. */
function maskPaths(mask: FieldMask | undefined, allowed: readonly string[]): Set<string> {
  const paths = mask?.paths ?? [];
  if (paths.length === 0) throw invalidArgument("REQUIRED_FIELD", `update_mask is required: any of ${allowed.join(", ")}`, { field: "update_mask" });
  const unknown = paths.filter((p) => !allowed.includes(p));
  if (unknown.length > 0) {
    throw invalidArgument("INVALID_UPDATE_MASK", `update_mask: cannot update ${unknown.slice(0, 5).map((p) => JSON.stringify(p.slice(0, 60))).join(", ")}; allowed: ${allowed.join(", ")}`, { field: "update_mask" });
  }
  return new Set(paths);
}

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw invalidArgument("REQUIRED_FIELD", `${field} is required`, { field });
  return value;
}

/** The DirectoryService implementation. */
export function createDirectoryHandlers(deps: { directory: DirectoryDomainService; audienceDomain: string }): ServiceImpl<typeof DirectoryService> {
  const { directory, audienceDomain } = deps;
  return {
    async getTenant(req, ctx) {
      return { tenant: tenantToProto(await directory.getTenant(callContextOf(ctx.values), parseTenantName(req.name, "name")), audienceDomain) };
    },
    async updateTenant(req, ctx) {
      const tenant = required(req.tenant, "tenant");
      const paths = maskPaths(req.updateMask, ["display_name", "disable_keys_of_suspended_principals"]);
      const patch: { displayName?: string; disableKeysOfSuspendedPrincipals?: boolean } = {};
      if (paths.has("display_name")) patch.displayName = tenant.displayName;
      if (paths.has("disable_keys_of_suspended_principals")) patch.disableKeysOfSuspendedPrincipals = tenant.disableKeysOfSuspendedPrincipals;
      const updated = await directory.updateTenant(callContextOf(ctx.values), parseTenantName(tenant.name, "tenant.name"), tenant.etag, patch);
      return { tenant: tenantToProto(updated, audienceDomain) };
    },
    async createOrganization(req, ctx) {
      const org = await directory.createOrganization(callContextOf(ctx.values), parseTenantName(req.parent), {
        slug: req.slug,
        displayName: req.displayName,
        githubOwner: req.githubOwner,
      });
      return { organization: orgToProto(org) };
    },
    async getOrganization(req, ctx) {
      const { tenant, id } = parseResourceName(req.name, "orgs");
      return { organization: orgToProto(await directory.getOrganization(callContextOf(ctx.values), tenant, id)) };
    },
    async listOrganizations(req, ctx) {
      const page = await directory.listOrganizations(callContextOf(ctx.values), parseTenantName(req.parent), req.pageSize, req.pageToken);
      return { organizations: page.items.map(orgToProto), nextPageToken: page.nextPageToken };
    },
    async updateOrganization(req, ctx) {
      const org = required(req.organization, "organization");
      const { tenant, id } = parseResourceName(org.name, "orgs", "organization.name");
      const paths = maskPaths(req.updateMask, ["display_name", "github_owner"]);
      const patch: { displayName?: string; githubOwner?: string } = {};
      if (paths.has("display_name")) patch.displayName = org.displayName;
      if (paths.has("github_owner")) patch.githubOwner = org.githubOwner;
      return { organization: orgToProto(await directory.updateOrganization(callContextOf(ctx.values), tenant, id, org.etag, patch)) };
    },
    async createPrincipal(req, ctx) {
      const principal = await directory.createPrincipal(callContextOf(ctx.values), parseTenantName(req.parent), {
        principalId: req.principalId,
        displayName: req.displayName,
        type: principalTypes.name(req.type),
        permissions: req.permissions,
        org: req.org,
      });
      return { principal: principalToProto(principal) };
    },
    async getPrincipal(req, ctx) {
      const { tenant, id } = parseResourceName(req.name, "principals");
      return { principal: principalToProto(await directory.getPrincipal(callContextOf(ctx.values), tenant, id)) };
    },
    async listPrincipals(req, ctx) {
      const page = await directory.listPrincipals(callContextOf(ctx.values), parseTenantName(req.parent), req.pageSize, req.pageToken, principalStatuses.name(req.status));
      return { principals: page.items.map(principalToProto), nextPageToken: page.nextPageToken };
    },
    async updatePrincipal(req, ctx) {
      const p = required(req.principal, "principal");
      const { tenant, id } = parseResourceName(p.name, "principals", "principal.name");
      const paths = maskPaths(req.updateMask, ["display_name", "permissions", "status"]);
      const patch: { displayName?: string; permissions?: readonly string[]; status?: ReturnType<typeof principalStatuses.name> } = {};
      if (paths.has("display_name")) patch.displayName = p.displayName;
      if (paths.has("permissions")) patch.permissions = p.permissions;
      if (paths.has("status")) patch.status = principalStatuses.name(p.status);
      return { principal: principalToProto(await directory.updatePrincipal(callContextOf(ctx.values), tenant, id, p.etag, patch)) };
    },
  };
}
