// A key is bounded by every principal up the chain of credentials that made it, not only
// by its direct creator: a key made with a key that someone made for you stays bounded by
// that someone (otherwise a creator-bound key could mint an unbound one).
import { Migration } from "@mikro-orm/migrations";

/** Adds api_key.bounded_by: the principals (besides the owner) whose current authority bounds the key. */
export class Migration20261130000005KeyBounds extends Migration {
  override up(): void {
    this.addSql(`
alter table api_key add column bounded_by uuid[] not null default '{}';
update api_key set bounded_by = array[creator_id] where creator_id <> owner_id;
`);
  }
}
