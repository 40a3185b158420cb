// WatchInvalidations catches a stream up with "this tenant's changes since position P"
// (src/keys/invalidation-watch.ts). With only the txid index, a position from long ago — a
// day-old resume token, or a forged one (resume tokens are opaque, not signed) — made
// PostgreSQL walk every tenant's changes since then; with (tenant_id, txid) it reads only
// the asking tenant's.
import { Migration } from "@mikro-orm/migrations";

/** Adds credential_change_tenant_txid_idx on credential_change (tenant_id, txid). */
export class Migration20261130000008CredentialChangeTenantIndex extends Migration {
  override up(): void {
    this.addSql(`create index credential_change_tenant_txid_idx on credential_change (tenant_id, txid);`);
  }
}
