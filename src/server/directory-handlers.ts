// DirectoryService handlers: tenant, organizations, principals. Names, masks and values
// go to the service as they came; it validates them inside its audited guard.
import type { ServiceImpl } from "@connectrpc/connect";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import type { DirectoryService as DirectoryDomainService } from "../directory/directory-service.ts";
import { callContextOf } from "./auth-interceptor.ts";
import { orgToProto, principalStatuses, principalToProto, principalTypes, tenantToProto } from "./convert.ts";

/** The DirectoryService implementation. */
export function createDirectoryHandlers(deps: { directory: DirectoryDomainService; audienceDomain: string }): ServiceImpl<typeof DirectoryService> {
  const { directory, audienceDomain } = deps;
  return {
    async getTenant(req, ctx) {
      return { tenant: tenantToProto(await directory.getTenant(callContextOf(ctx), req.name), audienceDomain) };
    },
    async getPermissionCatalogue(req, ctx) {
      return { catalogue: await directory.getPermissionCatalogue(callContextOf(ctx), req.name) };
    },
    async updateTenant(req, ctx) {
      const updated = await directory.updateTenant(callContextOf(ctx), {
        name: req.tenant?.name ?? "",
        etag: req.tenant?.etag ?? "",
        paths: req.updateMask?.paths ?? [],
        displayName: req.tenant?.displayName ?? "",
        disableKeysOfSuspendedPrincipals: req.tenant?.disableKeysOfSuspendedPrincipals ?? false,
      });
      return { tenant: tenantToProto(updated, audienceDomain) };
    },
    async createOrganization(req, ctx) {
      const org = await directory.createOrganization(callContextOf(ctx), {
        parent: req.parent,
        slug: req.slug,
        displayName: req.displayName,
        githubOwner: req.githubOwner,
      });
      return { organization: orgToProto(org) };
    },
    async getOrganization(req, ctx) {
      return { organization: orgToProto(await directory.getOrganization(callContextOf(ctx), req.name)) };
    },
    async listOrganizations(req, ctx) {
      const page = await directory.listOrganizations(callContextOf(ctx), { parent: req.parent, pageSize: req.pageSize, pageToken: req.pageToken });
      return { organizations: page.items.map(orgToProto), nextPageToken: page.nextPageToken };
    },
    async updateOrganization(req, ctx) {
      const updated = await directory.updateOrganization(callContextOf(ctx), {
        name: req.organization?.name ?? "",
        etag: req.organization?.etag ?? "",
        paths: req.updateMask?.paths ?? [],
        displayName: req.organization?.displayName ?? "",
        githubOwner: req.organization?.githubOwner ?? "",
      });
      return { organization: orgToProto(updated) };
    },
    async createPrincipal(req, ctx) {
      const principal = await directory.createPrincipal(callContextOf(ctx), {
        parent: req.parent,
        principalId: req.principalId,
        displayName: req.displayName,
        type: principalTypes.name(req.type),
        permissions: req.permissions,
        org: req.org,
      });
      return { principal: principalToProto(principal) };
    },
    async getPrincipal(req, ctx) {
      return { principal: principalToProto(await directory.getPrincipal(callContextOf(ctx), req.name)) };
    },
    async listPrincipals(req, ctx) {
      const page = await directory.listPrincipals(callContextOf(ctx), {
        parent: req.parent,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        status: principalStatuses.name(req.status),
      });
      return { principals: page.items.map(principalToProto), nextPageToken: page.nextPageToken };
    },
    async updatePrincipal(req, ctx) {
      const updated = await directory.updatePrincipal(callContextOf(ctx), {
        name: req.principal?.name ?? "",
        etag: req.principal?.etag ?? "",
        paths: req.updateMask?.paths ?? [],
        displayName: req.principal?.displayName ?? "",
        permissions: req.principal?.permissions ?? [],
        status: principalStatuses.name(req.principal?.status ?? 0),
      });
      return { principal: principalToProto(updated) };
    },
  };
}
