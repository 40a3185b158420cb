// The append-only audit log: state changes are recorded in the caller's transaction;
// refused calls are recorded on their own; listing is paginated and filtered.
import { randomUUID } from "node:crypto";
import type { Clock } from "../clock.ts";
import { entityManagerOf, type UnitOfWork, type UnitOfWorkOwner, type UnitsOfWork } from "../db/unit-of-work.ts";
import type { CallContext } from "../directory/caller.ts";
import { isKeywardError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { AuditEvent } from "./audit-event-entity.ts";

/** Whether the audited action happened. */
export type AuditOutcome = "success" | "denied";

/** One audit entry as written. Never holds a secret. */
export type AuditEntry = {
  tenantId: string;
  orgId?: string | null;
  actor: string;
  credential: string;
  action: string;
  resource: string;
  outcome: AuditOutcome;
  reason?: string;
  requestId: string;
  details?: Record<string, string>;
};

/** One audit event as read back; `eventId` is its random public id. */
export type AuditRecord = Required<Omit<AuditEntry, "orgId">> & { eventId: string; orgId: string | null; createdAt: Date };

/** Filters of a listing. */
export type AuditFilter = {
  orgId?: string;
  action?: string;
  resource?: string;
  actor?: string;
  outcome?: AuditOutcome;
  start?: Date;
  end?: Date;
};

/** Audit text is for humans: control characters (NUL would fail the insert) become U+FFFD. */
function clean(text: string, max: number): string {
  // Format characters too (bidi overrides, zero-width): audit text must read as it is.
  return text.replace(/[\p{Cc}\p{Cs}\p{Cf}]/gu, "\uFFFD").slice(0, max);
}

/** The audit log's operations. */
export type AuditLog = ReturnType<typeof createAuditLog>;

/** The `actor`, `credential` and `requestId` of an entry made on behalf of a caller. */
export function actorOf(ctx: CallContext): Pick<AuditEntry, "tenantId" | "actor" | "credential" | "requestId"> {
  return { tenantId: ctx.caller.tenantId, actor: ctx.caller.principalName, credential: ctx.caller.credentialId, requestId: ctx.requestId };
}

/** Creates the audit log over the database. */
export function createAuditLog(deps: { units: UnitsOfWork; clock: Clock; logger: Logger }) {
  const { units, clock, logger } = deps;

  /** Adds an entry to the unit of work `uow` (written when its transaction commits). */
  function record(uow: UnitOfWork, entry: AuditEntry): void {
    entityManagerOf(uow).create(AuditEvent, {
      eventId: randomUUID(),
      tenantId: entry.tenantId,
      orgId: entry.orgId ?? null,
      createdAt: clock.now(),
      actor: clean(entry.actor, 300),
      credential: clean(entry.credential, 100),
      action: entry.action,
      resource: clean(entry.resource, 300),
      outcome: entry.outcome,
      reason: clean(entry.reason ?? "", 100),
      requestId: clean(entry.requestId, 100),
      details: Object.fromEntries(Object.entries(entry.details ?? {}).map(([k, v]) => [k, clean(v, 1000)])),
    });
  }

  /** Records an entry on its own (for refused calls, which change nothing else). */
  async function recordAlone(entry: AuditEntry): Promise<void> {
    // Not bound by the caller's signal: a refusal is recorded even when its caller gave up.
    await units.write({}, async (uow) => record(uow, entry));
  }

  /**
   * Runs a management operation and, if it is refused with a KeywardError, records the
   * refusal (action, resource, reason) before passing the error on.
   */
  async function guard<T>(ctx: CallContext, action: string, resource: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      if (isKeywardError(e)) {
        await recordAlone({ ...actorOf(ctx), orgId: ctx.caller.orgId, action, resource, outcome: "denied", reason: e.reason }).catch((err: unknown) =>
          logger.error({ err, action }, "could not write the audit event of a refused call"),
        );
      }
      throw e;
    }
  }

  /**
   * Lists a tenant's events, newest first, after the event `afterEventId` (exclusive);
   * undefined when that event is not one of the tenant's. `owner.signal` bounds the read.
   */
  async function list(owner: UnitOfWorkOwner, tenantId: string, filter: AuditFilter, limit: number, afterEventId: string | undefined): Promise<AuditRecord[] | undefined> {
    return units.read(owner, async (uow) => {
      const em = entityManagerOf(uow);
      let afterId: string | undefined;
      if (afterEventId !== undefined) {
        const anchor = await em.findOne(AuditEvent, { tenantId, eventId: afterEventId }, { fields: ["id"] });
        if (anchor === null) return undefined;
        afterId = anchor.id;
      }
      const where: Record<string, unknown> = { tenantId };
      if (filter.orgId !== undefined) where["orgId"] = filter.orgId;
      if (filter.action !== undefined) where["action"] = filter.action;
      if (filter.resource !== undefined) where["resource"] = filter.resource;
      if (filter.actor !== undefined) where["actor"] = filter.actor;
      if (filter.outcome !== undefined) where["outcome"] = filter.outcome;
      const created: Record<string, Date> = {};
      if (filter.start !== undefined) created["$gte"] = filter.start;
      if (filter.end !== undefined) created["$lt"] = filter.end;
      if (Object.keys(created).length > 0) where["createdAt"] = created;
      if (afterId !== undefined) where["id"] = { $lt: afterId };
      const rows = await em.find(AuditEvent, where, { orderBy: { id: "desc" }, limit });
      return rows.map((r) => ({
        eventId: r.eventId,
        tenantId: r.tenantId,
        orgId: r.orgId ?? null,
        createdAt: r.createdAt,
        actor: r.actor,
        credential: r.credential,
        action: r.action,
        resource: r.resource,
        outcome: r.outcome as AuditOutcome,
        reason: r.reason,
        requestId: r.requestId,
        details: r.details,
      }));
    });
  }

  return { record, guard, list };
}
