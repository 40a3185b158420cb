// Refused credentials leave a trail without letting a flood fill the audit log: refusals
// of one credential for one reason within one minute are folded into a single event
// (`auth.refused` for bearer credentials; `token.exchange` for refused exchanges, whose
// "credential" is the ID token's hash, or one bucket for tokens whose signature did not
// hold) whose `details.count` says how many there were. The first refusal of a minute is
// written at once; later ones are counted in memory and added every few seconds (and at
// shutdown) with an upsert on the (tenant, credential, reason, fold_minute) unique index.
// The audit trigger allows exactly that update (a rising count) and nothing else.
import type { Clock } from "../clock.ts";
import type { Database } from "../db/orm.ts";
import type { Logger } from "../logger.ts";

/** One refused credential of a known tenant. Never holds the credential's secret. */
export type Refusal = Readonly<{
  tenantId: string;
  orgId: string | null;
  /** The principal the credential stands for (resource name), or "" when unknown (wrong secret). */
  actor: string;
  /** The key id (public part) of the refused credential, or a minted token's `jti`. */
  credential: string;
  /** Why it was refused: KEY_REVOKED, KEY_EXPIRED, TOKEN_REVOKED, TOKEN_EXPIRED, PRINCIPAL_SUSPENDED, CREATOR_SUSPENDED, SECRET_MISMATCH … */
  reason: string;
  requestId: string;
  /** The management method that was called (`keyward.v1.KeyService/ListKeys`). */
  procedure: string;
  /** The event's action; default `auth.refused`. */
  action?: string;
  /** The resource the refused call named; default "". */
  resource?: string;
  /**
   * Details of the minute's first refusal (kept as written; later ones only add to
   * `count`). Never a secret: e.g. a token's SHA-256, never the token.
   */
  details?: Readonly<Record<string, string>>;
}>;

/** Records refusals folded per minute; `flush` writes the counts collected in memory. */
export type RefusalFold = {
  /** Audits a refusal: the first of its minute is written before this resolves, later ones are counted. */
  record(refusal: Refusal): Promise<void>;
  /** Adds the counts collected in memory to their events now. */
  flush(): Promise<void>;
  /** Stops the timer and flushes. */
  stop(): Promise<void>;
};

/** The action of a folded refusal unless it names its own. */
const refusedAction = "auth.refused";

const minuteMs = 60_000;

// Adds `count` to the minute's event, creating it if this is the first refusal seen (by
// any replica). The count lives in details.count as a decimal string, like other details.
const upsert = `
insert into audit_event (tenant_id, org_id, created_at, actor, credential, action, resource, outcome, reason, request_id, details, fold_minute)
values (?, ?, ?, ?, ?, ?, ?, 'denied', ?, ?, ?::jsonb || jsonb_build_object('procedure', ?::text, 'count', ?::text), ?)
on conflict (tenant_id, credential, reason, fold_minute) where fold_minute is not null
do update set details = jsonb_set(audit_event.details, '{count}',
  to_jsonb(((audit_event.details->>'count')::bigint + (excluded.details->>'count')::bigint)::text))`;

type Fold = { refusal: Refusal; firstAt: Date; minute: Date; pending: number };

/**
 * Creates the fold. `intervalMs` is how often counts are written (default 2 s);
 * `maxFolds` bounds the folds kept in memory (beyond it, each refusal is written on its own,
 * still folded by the database).
 */
export function createRefusalFold(deps: { db: Database; clock: Clock; logger: Logger; intervalMs?: number; maxFolds?: number }): RefusalFold {
  const { clock, logger } = deps;
  const maxFolds = deps.maxFolds ?? 10_000;
  const connection = deps.db.orm.driver.getConnection();
  const folds = new Map<string, Fold>();
  let flushing: Promise<void> = Promise.resolve();

  async function write(fold: Fold, count: number): Promise<void> {
    const r = fold.refusal;
    await connection.execute(
      upsert,
      [
        r.tenantId, r.orgId, fold.firstAt, r.actor.slice(0, 300), r.credential.slice(0, 100), r.action ?? refusedAction, (r.resource ?? "").slice(0, 300),
        r.reason.slice(0, 100), r.requestId.slice(0, 100), JSON.stringify(r.details ?? {}), r.procedure.slice(0, 200), String(count), fold.minute,
      ],
      "run",
    );
  }

  const flush = (): Promise<void> => {
    flushing = flushing.then(async () => {
      const current = Math.floor(clock.now().getTime() / minuteMs) * minuteMs;
      for (const [key, fold] of folds) {
        const count = fold.pending;
        if (count > 0) {
          fold.pending = 0;
          try {
            await write(fold, count);
          } catch (err) {
            fold.pending += count;
            logger.error({ err, reason: fold.refusal.reason, count }, "could not write folded refusal counts");
            continue;
          }
        }
        if (fold.minute.getTime() < current && fold.pending === 0) folds.delete(key);
      }
    });
    return flushing;
  };
  const timer = setInterval(() => void flush(), deps.intervalMs ?? 2000);
  timer.unref();

  return {
    async record(refusal) {
      const now = clock.now();
      const minute = new Date(Math.floor(now.getTime() / minuteMs) * minuteMs);
      const key = [refusal.tenantId, refusal.credential, refusal.reason, minute.getTime()].join("\u0000");
      const known = folds.get(key);
      if (known !== undefined) {
        known.pending += 1;
        return;
      }
      const fold: Fold = { refusal, firstAt: now, minute, pending: 0 };
      if (folds.size < maxFolds) folds.set(key, fold);
      try {
        await write(fold, 1);
      } catch (err) {
        logger.error({ err, reason: refusal.reason }, "could not write a refusal event");
        // Counted again at the next flush (when the fold is remembered).
        fold.pending += 1;
      }
    },
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
