// Preloaded into a benchmarked server (`node --import ./bench/count-queries.ts …`): counts
// every statement the process sends to PostgreSQL through `pg` (pg.Client#query, which
// MikroORM's pool and the raw pg server both use) and writes the running count to
// $BENCH_QUERY_COUNT_DIR/<pid> a few times a second. Workers forked by node:cluster inherit
// the preload, so the orchestrator sums one file per process. This counts all statements —
// the database monitor's `select 1` (about one a second), last-used writes, LISTEN — not
// just lookups; the orchestrator reports the delta per request of a case.
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";

const dir = process.env["BENCH_QUERY_COUNT_DIR"];
if (dir !== undefined && dir !== "") {
  let count = 0;
  let written = -1;
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    count += 1;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  const file = join(dir, String(process.pid));
  const timer = setInterval(() => {
    if (count === written) return;
    written = count;
    // Written aside and renamed, so a reader never sees a half-written (empty) file.
    try {
      writeFileSync(`${file}.tmp`, String(count));
      renameSync(`${file}.tmp`, file);
    } catch {
      // the directory is gone: the run is over
    }
  }, 100);
  timer.unref();
}
