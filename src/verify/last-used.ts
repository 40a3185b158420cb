// Last-used times collected in memory and written in batches, so a successful VerifyKey
// never waits for (or causes) a database write of its own.
import { describeDatabaseFailure } from "../db/database-errors.ts";
import type { Database } from "../db/orm.ts";
import type { Logger } from "../logger.ts";

/** Records uses; `flush` writes what was collected. */
export type LastUsedRecorder = { record(keyId: string, at: Date): void; flush(): Promise<void>; stop(): Promise<void> };

// One JSON parameter carries the whole batch (the driver would spread a JS array into
// separate parameters).
const update = `
update api_key k set last_used_at = v.at
  from jsonb_to_recordset(?::jsonb) as v(key_id text, at timestamptz)
 where k.key_id = v.key_id and (k.last_used_at is null or k.last_used_at < v.at)`;

/** Creates a recorder that flushes every `intervalMs`; `onBatch` hears the size of each write (for the metrics). */
export function createLastUsedRecorder(deps: { db: Database; logger: Logger; intervalMs?: number; onBatch?: (keys: number) => void }): LastUsedRecorder {
  const pending = new Map<string, Date>();
  const connection = deps.db.orm.driver.getConnection();
  let flushing: Promise<void> = Promise.resolve();

  const flush = (): Promise<void> => {
    flushing = flushing.then(async () => {
      if (pending.size === 0) return;
      const batch = [...pending];
      pending.clear();
      deps.onBatch?.(batch.length);
      try {
        await connection.execute(update, [JSON.stringify(batch.map(([keyId, at]) => ({ key_id: keyId, at: at.toISOString() })))], "run");
      } catch (err) {
        // One line, no stack: the database is down or hung, and the health monitor says so.
        deps.logger.warn({ keys: batch.length, reason: describeDatabaseFailure(err) }, `could not record last-used times: ${batch.length} key(s)' times lost`);
      }
    });
    return flushing;
  };
  const timer = setInterval(() => void flush(), deps.intervalMs ?? 5000);
  timer.unref();

  return {
    record(keyId, at) {
      const seen = pending.get(keyId);
      if (seen === undefined || seen < at) pending.set(keyId, at);
    },
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
