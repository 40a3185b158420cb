// Audit events remember the organization they concern, so org-scoped credentials can
// read the part of the log that is theirs; keys are looked up by owner.
import { Migration } from "@mikro-orm/migrations";

/** Adds audit_event.org_id and the indexes listings use. */
export class Migration20261123000002AuditOrg extends Migration {
  override up(): void {
    this.addSql(`
alter table audit_event add column org_id uuid;
create index audit_event_tenant_org_idx on audit_event (tenant_id, org_id, id desc);
create index api_key_owner_idx on api_key (owner_id);
`);
  }
}
