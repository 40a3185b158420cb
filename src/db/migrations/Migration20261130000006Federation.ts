// OIDC federation (DESIGN.md §4): policies are bounded like keys, signing keys keep only a
// sealed private part, and every minted token has a row that VerifyKey reads (so deleting
// a policy or suspending a principal stops its tokens at once).
import { Migration } from "@mikro-orm/migrations";

/** Adds trust_policy.bounded_by, seals signing keys, and adds minted_token. */
export class Migration20261130000006Federation extends Migration {
  override up(): void {
    this.addSql(`
alter table trust_policy add column bounded_by uuid[] not null default '{}';
create index trust_policy_tenant_idx on trust_policy (tenant_id, lower(display_name), id);

-- No signing key was ever written before this migration: the table changes shape freely.
alter table signing_key drop column private_jwk;
-- AES-256-GCM sealed PKCS#8 private key: base64url(iv ‖ ciphertext ‖ tag), under the key-encryption key.
alter table signing_key add column private_key_sealed text not null;
-- Fingerprint of the key-encryption key that sealed it (a wrong KEK is reported, not guessed).
alter table signing_key add column kek_id varchar(64) not null;
-- A retired key stays published until every token it signed has expired.
alter table signing_key add column publish_until timestamptz;
-- At most one active (unretired) key: replicas starting at once race on creating the first
-- one (insert … on conflict do nothing), and a concurrent rotation fails instead of forking.
create unique index signing_key_one_active on signing_key ((true)) where retired_at is null;

create table minted_token (
  jti varchar(64) primary key,
  tenant_id uuid not null references tenant (id) on delete cascade,
  kind varchar(16) not null check (kind in ('exchanged', 'user')),
  -- The policy an exchanged token was minted under; null once the policy is deleted
  -- (the token then verifies as REVOKED).
  policy_id uuid references trust_policy (id) on delete set null,
  -- The principal the token acts as: the user of a user token, the policy's creator for an exchanged token.
  principal_id uuid not null references principal (id),
  -- Principals besides principal_id whose current authority bounds the token (as api_key.bounded_by).
  bounded_by uuid[] not null default '{}',
  org_id uuid references organization (id),
  permissions text[] not null,
  subject varchar(300) not null,
  issued_at timestamptz not null,
  expires_at timestamptz not null
);
create index minted_token_expires_idx on minted_token (expires_at);
create index exchanged_token_expires_idx on exchanged_token (expires_at);
`);
  }
}
