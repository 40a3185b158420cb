// Knows whether PostgreSQL answers right now, so health reports tell the truth: a periodic
// `select 1` with a short bound, plus an immediate "unavailable" when a request's query
// fails that way. Listeners hear every change (health turns services NOT_SERVING / SERVING).
import type { Logger } from "../logger.ts";
import { describeDatabaseFailure, isDatabaseUnavailable } from "./database-errors.ts";
import type { Database } from "./orm.ts";

/** The database as the monitor last saw it; `reason` is a short phrase without secrets. */
export type DatabaseState = { status: "available" } | { status: "unavailable"; reason: string };

/** Watches one database; see createDatabaseMonitor. */
export type DatabaseMonitor = {
  /** The latest state (available until a probe or a report says otherwise). */
  current(): DatabaseState;
  /** Calls `listener` on every change of state; returns the way to stop listening. */
  onChange(listener: (state: DatabaseState) => void): () => void;
  /** Marks the database unavailable now if `e` says it is (a query of a request failed); returns whether `e` says the database is unavailable. */
  report(e: unknown): boolean;
  /** Probes now and returns the resulting state (tests and start-up use it). */
  probe(): Promise<DatabaseState>;
  /** Stops the periodic probe. Safe to call twice. */
  stop(): void;
};

/** Runs one `select 1`; rejects when the database fails it. */
export type DatabaseProbe = () => Promise<void>;

/** A probe over the database's connection pool. */
export function createDatabaseProbe(db: Database): DatabaseProbe {
  const connection = db.orm.driver.getConnection();
  return async () => {
    await connection.execute("select 1", [], "all");
  };
}

/**
 * Starts probing every `intervalMs`; a probe that fails or takes longer than `timeoutMs`
 * makes the state unavailable, the next one that answers makes it available again. So the
 * state follows the database within `intervalMs + timeoutMs`. One probe at a time: a hung
 * probe is abandoned at its bound (its query has the pool's own bound as well).
 */
export function createDatabaseMonitor(deps: { probe: DatabaseProbe; intervalMs: number; timeoutMs: number; logger: Logger }): DatabaseMonitor {
  const log = deps.logger.child({ component: "database-monitor" });
  const listeners = new Set<(state: DatabaseState) => void>();
  let state: DatabaseState = { status: "available" };
  let stopped = false;
  let running: Promise<DatabaseState> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const change = (next: DatabaseState): void => {
    if (next.status === state.status && (next.status === "available" || (state.status === "unavailable" && state.reason === next.reason))) return;
    const was = state.status;
    state = next;
    if (next.status === "unavailable") log.warn({ reason: next.reason }, "database unavailable");
    else if (was === "unavailable") log.info("database available again");
    for (const listener of [...listeners]) {
      try {
        listener(next);
      } catch (err) {
        log.error({ err }, "database state listener failed");
      }
    }
  };

  const probeOnce = async (): Promise<DatabaseState> => {
    let bound: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      bound = setTimeout(() => resolve("timeout"), deps.timeoutMs);
    });
    const attempt = deps.probe().then(
      () => "ok" as const,
      (e: unknown) => e,
    );
    try {
      const outcome = await Promise.race([attempt, timedOut]);
      if (outcome === "ok") return { status: "available" };
      if (outcome === "timeout") return { status: "unavailable", reason: `no answer within ${Math.round(deps.timeoutMs / 100) / 10} s` };
      log.debug({ err: outcome }, "database probe failed");
      return { status: "unavailable", reason: describeDatabaseFailure(outcome, deps.timeoutMs) };
    } finally {
      clearTimeout(bound);
    }
  };

  const probe = (): Promise<DatabaseState> => {
    running ??= probeOnce().then((next) => {
      running = undefined;
      if (!stopped) change(next);
      return next;
    });
    return running;
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      void probe().finally(schedule);
    }, deps.intervalMs);
    timer.unref();
  };
  schedule();

  return {
    current: () => state,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    report(e) {
      if (stopped || !isDatabaseUnavailable(e)) return false;
      // The probe's reason (when it already saw the failure) is the more precise one: keep it.
      if (state.status === "available") change({ status: "unavailable", reason: describeDatabaseFailure(e) });
      return true;
    },
    probe,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
