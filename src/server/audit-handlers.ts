// AuditService handlers.
import type { ServiceImpl } from "@connectrpc/connect";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import type { AuditFilter } from "../audit/audit-log.ts";
import type { AuditService as AuditDomainService } from "../audit/audit-service.ts";
import { callContextOf } from "./auth-interceptor.ts";
import { auditEventToProto, auditOutcomes, dateOf } from "./convert.ts";

/** The AuditService implementation. */
export function createAuditHandlers(deps: { audit: AuditDomainService }): ServiceImpl<typeof AuditService> {
  return {
    async listAuditEvents(req, ctx) {
      const call = callContextOf(ctx);
      const filter: AuditFilter = {};
      if (req.action !== "") filter.action = req.action;
      if (req.resource !== "") filter.resource = req.resource;
      if (req.actor !== "") filter.actor = req.actor;
      const outcome = auditOutcomes.name(req.outcome);
      if (outcome !== undefined) filter.outcome = outcome;
      const start = dateOf(req.startTime);
      const end = dateOf(req.endTime);
      if (start !== undefined) filter.start = start;
      if (end !== undefined) filter.end = end;
      const page = await deps.audit.list(call, req.parent, filter, req.pageSize, req.pageToken);
      return { events: page.events.map((e) => auditEventToProto(call.caller.tenantSlug, e)), nextPageToken: page.nextPageToken };
    },
  };
}
