// Opens keyward's PostgreSQL: DATABASE_URL when set, otherwise an embedded server whose
// data lives in KEYWARD_DATA_DIR; then applies pending migrations.
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import { findRunningEmbeddedPostgres, startEmbeddedPostgres } from "./embedded-postgres.ts";
import { migrateDatabase } from "./migrate.ts";
import { openDatabase, type Database } from "./orm.ts";

/**
 * An open, migrated database and the way to release it (and the embedded server). `died`
 * resolves, with a one-line description, when keyward's own embedded PostgreSQL exits
 * unexpectedly; it stays pending with DATABASE_URL or an attached server (there the database
 * monitor and health report outages, and the database comes back on its own).
 */
export type Store = { db: Database; url: string; embedded: boolean; died: Promise<string>; close(): Promise<void> };

/**
 * How long close() waits for the connection pool to end (ms): a hung server never answers the
 * goodbye, and stopping (or, for DATABASE_URL, leaving) it ends those connections anyway.
 */
export const closeTimeoutMs = 1_000;

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
    died: embedded?.died ?? new Promise<string>(() => {}),
    async close() {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([db.close().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, closeTimeoutMs)))]);
      clearTimeout(timer);
      await embedded?.stop();
    },
  };
}
