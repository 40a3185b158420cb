// Reading the audit log: audit:read, newest first, filtered; org-scoped callers see the
// events of their organization only.
import { requireOwnTenant, requirePermission, type CallContext } from "../directory/caller.ts";
import { decodePageToken, encodePageToken, pageSizeOf } from "../directory/page-token.ts";
import type { Catalogue } from "../directory/permissions.ts";
import { textField } from "../directory/text-fields.ts";
import { invalidArgument } from "../errors.ts";
import type { AuditFilter, AuditLog, AuditRecord } from "./audit-log.ts";

/** Creates the audit service. */
export function createAuditService(deps: { audit: AuditLog; catalogue: Catalogue }) {
  const { audit, catalogue } = deps;
  return {
    async list(ctx: CallContext, tenant: string | undefined, filter: AuditFilter, pageSize: number, pageToken: string): Promise<{ events: AuditRecord[]; nextPageToken: string }> {
      return audit.guard(ctx, "audit.list", `tenants/${ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "audit:read");
        requireOwnTenant(ctx.caller, tenant);
        for (const [field, value] of [["action", filter.action], ["resource", filter.resource], ["actor", filter.actor]] as const) {
          if (value !== undefined) textField(value, field, { max: 300, required: false });
        }
        const limit = pageSizeOf(pageSize);
        const scoped: AuditFilter = ctx.caller.orgId === null ? filter : { ...filter, orgId: ctx.caller.orgId };
        const position = decodePageToken(pageToken, { ...filter, start: filter.start?.toISOString(), end: filter.end?.toISOString() });
        const afterId = position === undefined ? undefined : String(position[0]);
        if (afterId !== undefined && !/^\d{1,19}$/.test(afterId)) throw invalidArgument("INVALID_PAGE_TOKEN", "page_token is not valid for this request", { field: "page_token" });
        const rows = await audit.list(ctx.caller.tenantId, scoped, limit + 1, afterId);
        const page = rows.slice(0, limit);
        const last = page[page.length - 1];
        const nextPageToken =
          rows.length > limit && last !== undefined ? encodePageToken([last.id], { ...filter, start: filter.start?.toISOString(), end: filter.end?.toISOString() }) : "";
        return { events: page, nextPageToken };
      });
    },
  };
}

/** The audit service's operations. */
export type AuditService = ReturnType<typeof createAuditService>;
