// Applies pending migrations with MikroORM's migrator, called from code (the MikroORM CLI
// cannot load .ts files under plain Node). Several processes may start at once: a
// PostgreSQL advisory lock lets one migrate while the others wait, then find nothing to do.
import type { MigrationInfo } from "@mikro-orm/core";
import type { Logger } from "../logger.ts";
import { StartupError } from "../startup-error.ts";
import type { Database } from "./orm.ts";

/** Advisory lock key (two int4 halves): "keyw" in ASCII, then 1 for "migrations". */
const lockKey = "1801812343, 1";

/** Runs every pending migration in one transaction; returns the names applied, oldest first. Throws StartupError. */
export async function migrateDatabase(db: Database, logger: Logger): Promise<string[]> {
  const log = logger.child({ component: "migrate" });
  const connection = db.orm.driver.getConnection();
  const migrator = db.orm.migrator;
  let current: string | undefined;
  const onMigrating = (event: MigrationInfo): void => {
    current = event.name;
    log.debug({ migration: event.name }, "applying migration");
  };
  migrator.on("migrating", onMigrating);
  let applied: MigrationInfo[];
  try {
    // The lock is transaction-scoped: it is released by the commit (or rollback) of the
    // all-or-nothing transaction the migrations run in, so a crashed migrator cannot leave it held.
    applied = await connection.transactional(async (trx) => {
      const [row] = await connection.execute<{ locked: boolean }[]>(`select pg_try_advisory_xact_lock(${lockKey}) as locked`, [], "all", trx);
      if (row?.locked !== true) {
        log.info("another process is migrating the database; waiting for it to finish");
        await connection.execute(`select pg_advisory_xact_lock(${lockKey})`, [], "all", trx);
      }
      return migrator.up({ transaction: trx });
    });
  } catch (e) {
    const where = current === undefined ? "" : ` in ${current} (nothing was applied: all pending migrations run in one transaction)`;
    throw new StartupError(`migrating the database failed${where}: ${e instanceof Error ? e.message : String(e)}`, e);
  } finally {
    migrator.off("migrating", onMigrating);
  }
  const names = applied.map((m) => m.name);
  for (const name of names) log.info({ migration: name }, "applied migration");
  if (names.length === 0) log.debug("database schema is up to date");
  return names;
}
