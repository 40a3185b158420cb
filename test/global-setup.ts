// Starts one PostgreSQL for the whole run (embedded, or TEST_DATABASE_URL) and migrates
// it; test files reach it through KEYWARD_TEST_DATABASE_URL.
import { mkdtempSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPostgres } from "../src/db/embedded-postgres.ts";
import { migrateDatabase } from "../src/db/migrate.ts";
import { openDatabase } from "../src/db/orm.ts";
import { createLogger } from "../src/logger.ts";

/** Jest global setup. */
export default async function globalSetup(): Promise<void> {
  const logger = createLogger({ level: "warn", pretty: false });
  let url = process.env["TEST_DATABASE_URL"];
  if (url === undefined || url === "") {
    const dataDir = mkdtempSync(join(tmpdir(), "keyward-test-"));
    chmodSync(dataDir, 0o755);
    const embedded = await startEmbeddedPostgres({ dataDir, logger });
    Object.assign(globalThis, { __keywardPostgres: embedded, __keywardDataDir: dataDir });
    url = embedded.url;
  }
  const db = await openDatabase({ url, logger });
  await migrateDatabase(db, logger);
  await db.close();
  process.env["KEYWARD_TEST_DATABASE_URL"] = url;
}
