// Reading the audit log: audit:read, newest first, filtered; org-scoped callers see the
// events of their organization only.
import { requireOwnTenant, requirePermission, type CallContext } from "../directory/caller.ts";
import { decodePageToken, encodePageToken, pageSizeOf } from "../directory/page-token.ts";
import { parseTenantName } from "../directory/resource-names.ts";
import type { Catalogue } from "../directory/permissions.ts";
import { textField } from "../directory/text-fields.ts";
import { invalidArgument } from "../errors.ts";
import type { AuditFilter, AuditLog, AuditRecord } from "./audit-log.ts";

/** Creates the audit service. */
export function createAuditService(deps: { audit: AuditLog; catalogue: Catalogue }) {
  const { audit, catalogue } = deps;
  return {
    async list(ctx: CallContext, parent: string, filter: AuditFilter, pageSize: number, pageToken: string): Promise<{ events: AuditRecord[]; nextPageToken: string }> {
      return audit.guard(ctx, "audit.list", `tenants/${ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "audit:read");
        requireOwnTenant(ctx.caller, parseTenantName(parent));
        for (const [field, date] of [["start_time", filter.start], ["end_time", filter.end]] as const) {
          if (date !== undefined && !(date.getTime() >= 0 && date.getFullYear() <= 9999)) {
            throw invalidArgument("INVALID_TIME", `${field} must be between 1970 and 9999`, { field });
          }
        }
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
