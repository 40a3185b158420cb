// Reading the audit log: audit:read, newest first, filtered; org-scoped callers see the
// events of their organization only.
import { requireOwnTenant, requirePermission, type CallContext } from "../directory/caller.ts";
import { decodePageToken, invalidPageToken, isStorableDate, pageOf, pageSizeOf, patternPart } from "../common/page-token.ts";
import { parseTenantName } from "../common/resource-names.ts";
import type { Catalogue } from "../directory/permissions.ts";
import { textField } from "../common/text-fields.ts";
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
          if (date !== undefined && !isStorableDate(date)) {
            throw invalidArgument("INVALID_TIME", `${field} must be between 1970 and 9999`, { field });
          }
        }
        for (const [field, value] of [["action", filter.action], ["resource", filter.resource], ["actor", filter.actor]] as const) {
          if (value !== undefined) textField(value, field, { max: 300, required: false });
        }
        const limit = pageSizeOf(pageSize);
        const scoped: AuditFilter = ctx.caller.orgId === null ? filter : { ...filter, orgId: ctx.caller.orgId };
        const query = { listing: "ListAuditEvents", parent: ctx.caller.tenantId, filters: { ...filter, start: filter.start?.toISOString(), end: filter.end?.toISOString() } };
        const position = decodePageToken(pageToken, query, [patternPart(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)]);
        const rows = await audit.list(ctx, ctx.caller.tenantId, scoped, limit + 1, position?.[0]);
        if (rows === undefined) throw invalidPageToken(); // the event it points to is not this tenant's
        const page = pageOf(rows, limit, (e) => [e.eventId], query);
        return { events: page.items, nextPageToken: page.nextPageToken };
      });
    },
  };
}

/** The audit service's operations. */
export type AuditService = ReturnType<typeof createAuditService>;
