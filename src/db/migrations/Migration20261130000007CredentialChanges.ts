// The credential change log (DESIGN.md §3): every write that can change a VerifyKey verdict
// appends a row and NOTIFYs `keyward_credential_change` in its own transaction, so every
// replica's cache hears of it (src/verify/invalidation-listener.ts), and a replica that lost
// its LISTEN connection replays what it missed. Database triggers, not application code: they
// cover every write path (services, bootstrap, the CLI, direct SQL).
import { Migration } from "@mikro-orm/migrations";

/** Adds credential_change and the triggers that fill it. */
export class Migration20261130000007CredentialChanges extends Migration {
  override up(): void {
    this.addSql(`
create table credential_change (
  id bigserial primary key,
  -- The writing transaction. Readers consume the log by transaction, not by id: ids are taken
  -- before commit, so a transaction holding a smaller id may commit after one holding a larger.
  txid xid8 not null default pg_current_xact_id(),
  tenant_id uuid not null,
  -- 'key': one API key (key_id) changed, appeared or went; 'tenant': something every
  -- credential of the tenant may depend on (a principal, the tenant, an org, a policy, a token).
  scope varchar(8) not null check (scope in ('key', 'tenant')),
  key_id varchar(32),
  created_at timestamptz not null default clock_timestamp(),
  check ((scope = 'key') = (key_id is not null))
);
create index credential_change_txid_idx on credential_change (txid);
create index credential_change_created_idx on credential_change (created_at);

-- Appends one change and wakes every listener (the payload, the row's id, is informative only).
create function credential_change_record(change_tenant uuid, change_scope text, change_key text) returns void
language plpgsql as $$
declare
  change_id bigint;
begin
  insert into credential_change (tenant_id, scope, key_id) values (change_tenant, change_scope, change_key) returning id into change_id;
  perform pg_notify('keyward_credential_change', change_id::text);
end $$;

-- api_key: a key-scope change for the key. Inserts too (per statement): a cached "unknown id"
-- must never hide a key created later with that id.
create function credential_change_api_key_row() returns trigger language plpgsql as $$
begin
  if tg_op in ('UPDATE', 'DELETE') then
    perform credential_change_record(old.tenant_id, 'key', old.key_id);
  end if;
  if tg_op = 'UPDATE' and new.key_id is distinct from old.key_id then
    perform credential_change_record(new.tenant_id, 'key', new.key_id);
  end if;
  return null;
end $$;
create function credential_change_api_key_insert() returns trigger language plpgsql as $$
declare
  last_id bigint;
begin
  with added as (
    insert into credential_change (tenant_id, scope, key_id) select tenant_id, 'key', key_id from inserted_keys returning id
  )
  select max(id) into last_id from added;
  if last_id is not null then
    perform pg_notify('keyward_credential_change', last_id::text);
  end if;
  return null;
end $$;
create trigger api_key_credential_insert after insert on api_key
  referencing new table as inserted_keys for each statement execute function credential_change_api_key_insert();
-- Only the columns a verdict reads: last-used times, names, hints and versions change nothing.
create trigger api_key_credential_update after update on api_key for each row
  when ((old.key_id, old.tenant_id, old.kind, old.org_id, old.permissions, old.owner_id, old.bounded_by, old.secret_hash, old.expires_at, old.revoked_at)
        is distinct from
        (new.key_id, new.tenant_id, new.kind, new.org_id, new.permissions, new.owner_id, new.bounded_by, new.secret_hash, new.expires_at, new.revoked_at))
  execute function credential_change_api_key_row();
create trigger api_key_credential_delete after delete on api_key for each row execute function credential_change_api_key_row();

-- Everything else: a tenant-scope change of the row's tenant.
create function credential_change_tenant_row() returns trigger language plpgsql as $$
declare
  changed_row record;
begin
  if tg_op = 'DELETE' then changed_row := old; else changed_row := new; end if;
  if tg_table_name = 'tenant' then
    perform credential_change_record(changed_row.id, 'tenant', null);
  else
    perform credential_change_record(changed_row.tenant_id, 'tenant', null);
    if tg_op = 'UPDATE' and old.tenant_id is distinct from new.tenant_id then
      perform credential_change_record(old.tenant_id, 'tenant', null);
    end if;
  end if;
  return null;
end $$;

-- A principal's status and permissions bound every credential it owns or made; its id and org show in the verdict.
create trigger principal_credential_update after update on principal for each row
  when ((old.tenant_id, old.principal_id, old.status, old.permissions, old.org_id) is distinct from (new.tenant_id, new.principal_id, new.status, new.permissions, new.org_id))
  execute function credential_change_tenant_row();
create trigger principal_credential_delete after delete on principal for each row execute function credential_change_tenant_row();

-- The tenant's slug shows in the verdict; its setting disables keys of suspended principals.
create trigger tenant_credential_update after update on tenant for each row
  when ((old.slug, old.disable_keys_of_suspended_principals) is distinct from (new.slug, new.disable_keys_of_suspended_principals))
  execute function credential_change_tenant_row();
create trigger tenant_credential_delete after delete on tenant for each row execute function credential_change_tenant_row();

-- An org's slug is the scope a credential is checked against.
create trigger organization_credential_update after update on organization for each row
  when ((old.tenant_id, old.slug) is distinct from (new.tenant_id, new.slug))
  execute function credential_change_tenant_row();
create trigger organization_credential_delete after delete on organization for each row execute function credential_change_tenant_row();

-- A policy's allowlist bounds its tokens; deleting it revokes them.
create trigger trust_policy_credential_update after update on trust_policy for each row
  when ((old.tenant_id, old.org_id, old.permissions, old.bounded_by) is distinct from (new.tenant_id, new.org_id, new.permissions, new.bounded_by))
  execute function credential_change_tenant_row();
create trigger trust_policy_credential_delete after delete on trust_policy for each row execute function credential_change_tenant_row();

-- A live minted token's row going away turns it NOT_FOUND. The cleanup of rows that expired a
-- day ago (token-cleanup.ts) changes no verdict worth evicting for: such tokens are EXPIRED
-- already and never cached past their expiry.
create trigger minted_token_credential_delete after delete on minted_token for each row
  when (old.expires_at > now())
  execute function credential_change_tenant_row();
`);
  }
}
