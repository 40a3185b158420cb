// Audit events get a random public id: their names used the global bigserial, which told
// every tenant how many events all tenants write. The bigserial stays the internal order.
import { Migration } from "@mikro-orm/migrations";

/** Adds audit_event.event_id (random, unique per tenant), filled for existing rows. */
export class Migration20261130000004AuditEventId extends Migration {
  override up(): void {
    // A volatile default fills existing rows by rewriting the table (each row its own
    // value), which fires no row trigger: the append-only guard stays as it is.
    this.addSql(`
alter table audit_event add column event_id uuid not null default gen_random_uuid();
create unique index audit_event_event_id_uq on audit_event (tenant_id, event_id);
`);
  }
}
