// Persistence shape of the append-only audit log.
import { defineEntity, p } from "@mikro-orm/core";

/** Table schema of one audit event. */
export const AuditEventSchema = defineEntity({
  name: "AuditEvent",
  tableName: "audit_event",
  properties: {
    /** Internal order of the log; never shown (it is shared by all tenants). */
    id: p.bigint("string").primary().autoincrement(),
    /** The public id, random. */
    eventId: p.uuid(),
    tenantId: p.uuid(),
    orgId: p.uuid().nullable(),
    createdAt: p.datetime(),
    actor: p.string().length(300),
    credential: p.string().length(100),
    action: p.string().length(64),
    resource: p.string().length(300),
    outcome: p.string().length(16),
    reason: p.string().length(100),
    requestId: p.string().length(100),
    details: p.json<Record<string, string>>(),
    /** Set on folded refusals (auth.refused): the minute they count; see audit/refusal-fold.ts. */
    foldMinute: p.datetime().nullable(),
  },
});
/** An audit event row. */
export class AuditEvent extends AuditEventSchema.class {}
AuditEventSchema.setClass(AuditEvent);
