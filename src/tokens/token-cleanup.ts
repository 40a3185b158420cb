// Deletes the rows of long-expired tokens, so minted_token and exchanged_token do not grow
// forever: a minted token's row a day after it expired (until then VerifyKey still answers
// EXPIRED rather than NOT_FOUND), an exchanged OIDC token id an hour after the ID token
// expired (it can no longer be presented, so replay protection no longer needs it).
import { describeDatabaseFailure } from "../db/database-errors.ts";
import type { Database } from "../db/orm.ts";
import type { Logger } from "../logger.ts";

/** Most rows deleted from each table per run (a run never holds long locks). */
const batch = 5_000;

// The database's clock, not the injected one: a test server whose clock runs days ahead must
// not delete the rows of other servers sharing its database.
const deleteMinted = `
delete from minted_token where jti in (
  select jti from minted_token where expires_at < now() - interval '1 day' limit ${batch})`;
const deleteExchanged = `
delete from exchanged_token where (issuer, jti) in (
  select issuer, jti from exchanged_token where expires_at < now() - interval '1 hour' limit ${batch})`;

/** The periodic cleanup; `run` deletes one batch of each table now and says how many rows went. */
export type TokenCleanup = { run(): Promise<{ minted: number; exchanged: number }>; stop(): void };

/** Starts the cleanup every `intervalMs` (default 10 minutes; the first run is one interval after start). */
export function startTokenCleanup(deps: { db: Database; logger: Logger; intervalMs?: number }): TokenCleanup {
  const connection = deps.db.orm.driver.getConnection();
  const run = async () => {
    const minted = await connection.execute<{ affectedRows: number }>(deleteMinted, [], "run");
    const exchanged = await connection.execute<{ affectedRows: number }>(deleteExchanged, [], "run");
    return { minted: minted.affectedRows, exchanged: exchanged.affectedRows };
  };
  const timer = setInterval(() => {
    run().then(
      (n) => (n.minted + n.exchanged > 0 ? deps.logger.debug(n, "deleted the rows of long-expired tokens") : undefined),
      (err: unknown) => deps.logger.warn({ reason: describeDatabaseFailure(err) }, "could not delete the rows of expired tokens; retrying at the next run"),
    );
  }, deps.intervalMs ?? 10 * 60_000);
  timer.unref();
  return { run, stop: () => clearInterval(timer) };
}
