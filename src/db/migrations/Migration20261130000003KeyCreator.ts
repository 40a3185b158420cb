// Every key records the principal who created it (its authority bounds the key as the
// owner's does), and refused credentials are audited folded: one row per tenant, key id,
// reason and minute, whose `details.count` is the only thing ever updated in the log.
import { Migration } from "@mikro-orm/migrations";

/** Adds api_key.creator_id and audit_event.fold_minute, and lets folded rows count up. */
export class Migration20261130000003KeyCreator extends Migration {
  override up(): void {
    this.addSql(`
alter table api_key add column creator_id uuid references principal (id);
update api_key set creator_id = owner_id;
alter table api_key alter column creator_id set not null;
create index api_key_creator_idx on api_key (tenant_id, creator_id);

alter table audit_event add column fold_minute timestamptz;
create unique index audit_event_fold_uq on audit_event (tenant_id, credential, reason, fold_minute)
  where fold_minute is not null;

-- The audit log stays append-only. The one exception: a folded row (fold_minute set) may
-- have its details.count raised, and nothing else about it may change.
create or replace function audit_event_append_only() returns trigger language plpgsql as $$
begin
  if tg_op = 'UPDATE'
     and old.fold_minute is not null
     and row(new.id, new.tenant_id, new.org_id, new.created_at, new.actor, new.credential, new.action,
             new.resource, new.outcome, new.reason, new.request_id, new.fold_minute)
         is not distinct from
         row(old.id, old.tenant_id, old.org_id, old.created_at, old.actor, old.credential, old.action,
             old.resource, old.outcome, old.reason, old.request_id, old.fold_minute)
     and (new.details - 'count') = (old.details - 'count')
     and coalesce(new.details->>'count', '') ~ '^[0-9]{1,18}$'
     and coalesce(old.details->>'count', '') ~ '^[0-9]{1,18}$'
     and (new.details->>'count')::bigint > (old.details->>'count')::bigint
  then
    return new;
  end if;
  raise exception 'audit_event is append-only';
end $$;
`);
  }
}
