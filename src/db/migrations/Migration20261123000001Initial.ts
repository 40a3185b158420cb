// The initial schema: directory, keys, policies, token exchange and audit.
import { Migration } from "@mikro-orm/migrations";

/** Creates every table of the first release. */
export class Migration20261123000001Initial extends Migration {
  override up(): void {
    this.addSql(`
create table tenant (
  id uuid primary key,
  slug varchar(63) not null unique,
  display_name varchar(200) not null,
  disable_keys_of_suspended_principals boolean not null default false,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  version integer not null default 1
);

create table organization (
  id uuid primary key,
  tenant_id uuid not null references tenant (id) on delete cascade,
  slug varchar(63) not null,
  display_name varchar(200) not null,
  github_owner varchar(100),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  version integer not null default 1,
  unique (tenant_id, slug)
);

create table principal (
  id uuid primary key,
  tenant_id uuid not null references tenant (id) on delete cascade,
  principal_id varchar(100) not null,
  display_name varchar(200) not null,
  type varchar(20) not null,
  status varchar(20) not null,
  permissions text[] not null default '{}',
  org_id uuid references organization (id),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  version integer not null default 1,
  unique (tenant_id, principal_id)
);

create table api_key (
  key_id varchar(32) primary key,
  tenant_id uuid not null references tenant (id) on delete cascade,
  kind varchar(20) not null,
  slot varchar(20),
  display_name varchar(100) not null,
  org_id uuid references organization (id),
  permissions text[] not null default '{}',
  owner_id uuid not null references principal (id),
  secret_hash bytea not null,
  hint varchar(4) not null,
  created_at timestamptz not null,
  expires_at timestamptz,
  last_used_at timestamptz,
  rotated_at timestamptz,
  revoked_at timestamptz,
  revoke_reason varchar(500),
  cloned_from varchar(32),
  version integer not null default 1
);
create index api_key_tenant_created_idx on api_key (tenant_id, created_at desc, key_id desc);
-- One live value per slot (tenant or org, kind, slot).
create unique index api_key_live_slot_uq on api_key
  (tenant_id, coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid), kind, slot)
  where slot is not null and revoked_at is null;
-- Fine-grained key names are unique among the tenant's unrevoked keys.
create unique index api_key_live_name_uq on api_key (tenant_id, lower(display_name))
  where kind = 'fine_grained' and revoked_at is null;

create table trust_policy (
  id uuid primary key,
  tenant_id uuid not null references tenant (id) on delete cascade,
  org_id uuid references organization (id),
  display_name varchar(100) not null,
  description varchar(1000) not null default '',
  claims jsonb not null,
  max_session_seconds integer not null,
  permissions text[] not null default '{}',
  creator_id uuid not null references principal (id),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  version integer not null default 1
);
create unique index trust_policy_name_uq on trust_policy
  (tenant_id, coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid), lower(display_name));

create table signing_key (
  kid varchar(64) primary key,
  alg varchar(16) not null,
  public_jwk jsonb not null,
  private_jwk jsonb not null,
  created_at timestamptz not null,
  retired_at timestamptz
);

create table exchanged_token (
  issuer varchar(500) not null,
  jti varchar(200) not null,
  tenant_id uuid not null references tenant (id) on delete cascade,
  expires_at timestamptz not null,
  created_at timestamptz not null,
  primary key (issuer, jti)
);

create table audit_event (
  id bigserial primary key,
  tenant_id uuid not null references tenant (id) on delete cascade,
  created_at timestamptz not null,
  actor varchar(300) not null,
  credential varchar(100) not null default '',
  action varchar(64) not null,
  resource varchar(300) not null default '',
  outcome varchar(16) not null,
  reason varchar(100) not null default '',
  request_id varchar(100) not null default '',
  details jsonb not null default '{}'
);
create index audit_event_tenant_idx on audit_event (tenant_id, id desc);

-- The audit log is append-only: refuse updates and deletes of single rows.
create function audit_event_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'audit_event is append-only';
end $$;
create trigger audit_event_no_change before update or delete on audit_event
  for each row execute function audit_event_append_only();
`);
  }
}
