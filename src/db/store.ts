// Opens keyward's PostgreSQL: DATABASE_URL when set, otherwise an embedded server whose
// data lives in KEYWARD_DATA_DIR; then applies pending migrations.
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import { findRunningEmbeddedPostgres, startEmbeddedPostgres } from "./embedded-postgres.ts";
import { migrateDatabase } from "./migrate.ts";
import { openDatabase, type Database } from "./orm.ts";

/** An open, migrated database and the way to release it (and the embedded server). */
export type Store = { db: Database; url: string; embedded: boolean; close(): Promise<void> };

/**
 * Connects (starting embedded PostgreSQL if needed) and migrates. With `attach`, an
 * embedded PostgreSQL that a running keyward already started on the data folder is used
 * as it is (for the CLI's one-shot commands).
 */
export async function openStore(config: Config, logger: Logger, opts: { migrate?: boolean; attach?: boolean } = {}): Promise<Store> {
  const attached = config.databaseUrl === undefined && opts.attach === true ? await findRunningEmbeddedPostgres(config.dataDir) : undefined;
  const embedded = config.databaseUrl === undefined && attached === undefined ? await startEmbeddedPostgres({ dataDir: config.dataDir, logger }) : undefined;
  const url = config.databaseUrl ?? attached ?? embedded!.url;
  let db: Database;
  try {
    db = await openDatabase({ url, logger, timeouts: { connectMs: config.dbConnectTimeoutMs, queryMs: config.dbQueryTimeoutMs } });
    if (opts.migrate !== false) await migrateDatabase(db, logger);
  } catch (e) {
    await embedded?.stop();
    throw e;
  }
  return {
    db,
    url,
    embedded: embedded !== undefined,
    async close() {
      await db.close();
      await embedded?.stop();
    },
  };
}
