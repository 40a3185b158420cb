// `keyward serve --workers N`: N processes serving one port (node:cluster), each a whole
// keyward (own listener, cache, LISTEN connection, metrics) on one database.
//
// The primary serves nothing itself. It starts the embedded PostgreSQL (without
// DATABASE_URL), migrates and runs the first-start bootstrap once, then forks the workers:
// worker 1 alone first (it creates what a first start creates: the key-encryption key file,
// the first signing key), then the others together. It hands each the database URL over
// the IPC channel (never in the environment or on a command line). cluster shares the
// listening socket: the primary accepts connections and hands them out in turn
// (round-robin), and each worker's one-port listener peeks at them as usual.
//
// GET /metrics on any worker answers for all of them (a scraper holds one connection, so
// it would otherwise see one worker only): the worker asks the primary, which gathers every
// listening worker's snapshot over IPC; series carry a `worker` label and are never added up.
//
// A worker that exits unexpectedly is logged and replaced in the same slot, at most
// `maxRestarts` times within `restartWindowMs`; past that, the primary stops everything and
// exits 1 (a supervisor restarts it). SIGTERM/SIGINT/SIGHUP to the primary drains every
// worker (each finishes its calls and flushes, as a single process would), then stops
// PostgreSQL. A worker whose primary went away (kill -9) drains and exits on its own.
import cluster, { type Worker } from "node:cluster";
import { availableParallelism } from "node:os";
import type { Config } from "./config.ts";
import { closeTimeoutMs, openStore, type Store } from "./db/store.ts";
import type { Logger } from "./logger.ts";
import { flushBoundMs, startKeyward, type Keyward } from "./main.ts";
import { exposeSnapshots, type Metrics, type MetricsSnapshot } from "./metrics.ts";
import { StartupError } from "./startup-error.ts";

/** The most workers `--workers` accepts. */
const maxWorkers = 256;
/** A worker that dies is replaced at most this many times within `restartWindowMs`. */
export const maxRestarts = 5;
const restartWindowMs = 60_000;
/** Extra time, past a worker's own bounded stop, before the primary SIGKILLs it (ms). */
const stopMarginMs = 5_000;

/** How long a failed startup waits to learn whether PostgreSQL died (its watcher polls every 500 ms). */
const diedNoticeMs = 1_000;

/** The environment variable that tells a worker process its slot (1…N). */
const slotVariable = "KEYWARD_WORKER";

/** How long the primary waits for each worker's metrics when one of them is scraped (ms). */
const collectTimeoutMs = 2_000;

/** Messages from the primary to a worker. */
type PrimaryMessage =
  | { type: "keyward:start"; databaseUrl: string }
  | { type: "keyward:metrics-collect"; id: number }
  | { type: "keyward:metrics-response"; id: number; snapshots: MetricsSnapshot[] };
/** Messages from a worker to the primary. */
type WorkerMessage =
  | { type: "keyward:listening"; url: string }
  | { type: "keyward:metrics-request"; id: number }
  | { type: "keyward:metrics-part"; id: number; snapshot: MetricsSnapshot };

/**
 * The number of worker processes: `--workers` (flag), else KEYWARD_WORKERS, else one per
 * core (`os.availableParallelism()`). Throws StartupError naming the source when it is not
 * an integer from 1 to 256.
 */
export function workerCount(flag: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): number {
  const [source, raw] = flag !== undefined ? ["--workers", flag] : [`KEYWARD_WORKERS`, env["KEYWARD_WORKERS"]?.trim()];
  if (raw === undefined || raw === "") return Math.min(maxWorkers, availableParallelism());
  const n = /^[0-9]+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > maxWorkers) {
    throw new StartupError(`invalid ${source}=${JSON.stringify(raw.slice(0, 20))}: expected a number of processes from 1 to ${maxWorkers} (1 = a single process)`);
  }
  return n;
}

/** This process's worker slot (1…N) when it is a worker of `serve --workers N`, else undefined. */
export function workerSlot(): number | undefined {
  if (!cluster.isWorker) return undefined;
  const slot = Number(process.env[slotVariable]);
  return Number.isInteger(slot) && slot > 0 ? slot : undefined;
}

/** What the primary and the workers are given by `keyward serve`. */
export type ServeContext = {
  config: Config;
  logger: Logger;
  /** Resolves on the first stop request (signal, launcher gone). */
  stop: Promise<void>;
  /** Whether a stop was requested. */
  stopping: () => boolean;
};

/**
 * The primary of `serve --workers N`: prepares the database (`prepare` runs the first-start
 * bootstrap), forks and supervises the workers, stops them all on a stop request. Returns
 * the exit code: 0 after a requested stop, 1 when PostgreSQL died, a worker could not
 * start, or workers died too often.
 */
export async function runPrimary(ctx: ServeContext & { workers: number; prepare: (store: Store) => Promise<void> }): Promise<number> {
  const { config, logger, workers: n } = ctx;
  const store = await openStore(config, logger);
  try {
    await ctx.prepare(store);
    // The primary runs no queries: its pool goes; its embedded PostgreSQL (if any) stays.
    await store.db.close();
    return await superviseWorkers({ ...ctx, store, n });
  } finally {
    await store.close();
  }
}

/** One slot's current process, whether it listens, whether it was asked to stop. */
type Slot = { worker: Worker; listening: boolean; stopRequested: boolean; exited: Promise<{ code: number | null; signal: string | null }> };

async function superviseWorkers(ctx: ServeContext & { store: Store; n: number }): Promise<number> {
  const { logger, store, n } = ctx;
  const slots = new Map<number, Slot>();
  const restarts: number[] = [];
  let started = false;
  let shuttingDown = false;
  let fail!: (reason: string) => void;
  const failed = new Promise<string>((resolve) => (fail = resolve));
  // Structured clone over IPC: metric snapshots keep NaN and Infinity.
  cluster.setupPrimary({ serialization: "advanced" });

  // A scrape of any worker shows every worker: the primary gathers their snapshots.
  let collectId = 0;
  const collecting = new Map<number, (slot: number, snapshot: MetricsSnapshot) => void>();
  const collectSnapshots = async (): Promise<MetricsSnapshot[]> => {
    const id = collectId++;
    const targets = [...slots].filter(([, e]) => e.listening && e.worker.isConnected());
    const parts = new Map<number, MetricsSnapshot>();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        logger.warn({ missing: targets.map(([slot]) => slot).filter((slot) => !parts.has(slot)) }, "metrics of some workers did not arrive in time: answering without them");
        resolve();
      }, collectTimeoutMs);
      collecting.set(id, (slot, snapshot) => {
        parts.set(slot, snapshot);
        if (parts.size < targets.length) return;
        clearTimeout(timer);
        resolve();
      });
      if (targets.length === 0) {
        clearTimeout(timer);
        resolve();
      }
      for (const [, e] of targets) e.worker.send({ type: "keyward:metrics-collect", id } satisfies PrimaryMessage);
    });
    collecting.delete(id);
    return [...parts.values()];
  };

  /** Forks the worker of `slot`; resolves with its URL once it listens, rejects if it exits first. */
  const fork = (slot: number): Promise<string> => {
    const worker = cluster.fork({ [slotVariable]: String(slot) });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => worker.once("exit", (code, signal) => resolve({ code, signal })));
    const entry: Slot = { worker, listening: false, stopRequested: false, exited };
    slots.set(slot, entry);
    const listening = new Promise<string>((resolve, reject) => {
      worker.on("message", (m: WorkerMessage) => {
        if (m?.type === "keyward:listening") {
          entry.listening = true;
          resolve(m.url);
        } else if (m?.type === "keyward:metrics-part") {
          collecting.get(m.id)?.(slot, m.snapshot);
        } else if (m?.type === "keyward:metrics-request") {
          void collectSnapshots().then((snapshots) => {
            if (worker.isConnected()) worker.send({ type: "keyward:metrics-response", id: m.id, snapshots } satisfies PrimaryMessage);
          });
        }
      });
      void exited.then(({ code, signal }) => reject(new StartupError(`worker ${slot} exited (${signal ?? `code ${code}`}) before it was listening`)));
    });
    worker.once("online", () => worker.send({ type: "keyward:start", databaseUrl: store.url } satisfies PrimaryMessage));
    void exited.then(({ code, signal }) => {
      // Before every worker listened, a failure is the startup's (below), never restarted.
      if (slots.get(slot) !== entry || !started || entry.stopRequested || shuttingDown) return;
      slots.delete(slot);
      const now = Date.now();
      while (restarts.length > 0 && now - restarts[0]! > restartWindowMs) restarts.shift();
      if (restarts.length >= maxRestarts) {
        logger.error({ slot, pid: worker.process.pid, code, signal, restarts: restarts.length }, `worker ${slot} exited unexpectedly, the ${maxRestarts + 1}th time within ${restartWindowMs / 1000} s: shutting down with exit code 1`);
        fail("workers keep dying");
        return;
      }
      restarts.push(now);
      logger.error({ slot, pid: worker.process.pid, code, signal }, `worker ${slot} exited unexpectedly: starting a new one`);
      // A replacement that dies before listening is one more unexpected exit (logged and counted above).
      fork(slot).then(
        (url) => logger.info({ slot, pid: slots.get(slot)?.worker.process.pid, url }, `worker ${slot} replaced`),
        () => undefined,
      );
    });
    return listening;
  };

  /** Asks every worker to drain (SIGTERM, as a single process would get); SIGKILLs those that outlive their bound. */
  const stopAll = async () => {
    shuttingDown = true;
    const bound = ctx.config.shutdownGraceMs + flushBoundMs(ctx.config) + closeTimeoutMs + stopMarginMs;
    await Promise.all(
      [...slots].map(async ([slot, entry]) => {
        entry.stopRequested = true;
        entry.worker.process.kill("SIGTERM");
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), bound)));
        const outcome = await Promise.race([entry.exited, late]);
        clearTimeout(timer);
        if (outcome === "late") {
          logger.warn({ slot, pid: entry.worker.process.pid, boundMs: bound }, `worker ${slot} did not stop in time: killing it`);
          entry.worker.process.kill("SIGKILL");
          await entry.exited;
        } else if (outcome.code !== 0) {
          logger.warn({ slot, pid: entry.worker.process.pid, code: outcome.code, signal: outcome.signal }, `worker ${slot} stopped with an error`);
        }
      }),
    );
  };

  // Worker 1 alone, then the others: the first start of a data folder creates files and rows once.
  try {
    const starting = (async () => {
      const url = await fork(1);
      await Promise.all(Array.from({ length: n - 1 }, (_, i) => fork(i + 2)));
      return url;
    })();
    const first = await Promise.race([starting, ctx.stop.then(() => undefined), store.died]);
    if (first === undefined) {
      await stopAll();
      return 0;
    }
    if (!first.startsWith("http")) {
      logger.error(`${first}: shutting down with exit code 1; the next start restarts PostgreSQL on the same data folder`);
      await stopAll();
      return 1;
    }
    started = true;
    logger.info({ url: first, workers: n }, "keyward listening");
  } catch (e) {
    // A worker that failed because PostgreSQL died is reported as that (its watcher polls).
    let timer: NodeJS.Timeout | undefined;
    const died = await Promise.race([store.died, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), diedNoticeMs)))]);
    clearTimeout(timer);
    if (died !== undefined) logger.error(`${died}: shutting down with exit code 1; the next start restarts PostgreSQL on the same data folder`);
    else logger.error({ reason: (e as Error).message }, "a worker could not start: stopping");
    await stopAll();
    return 1;
  }

  const outcome = await Promise.race([ctx.stop.then(() => ({ kind: "stop" }) as const), store.died.then((why) => ({ kind: "died", why }) as const), failed.then(() => ({ kind: "failed" }) as const)]);
  if (outcome.kind === "died") logger.error(`${outcome.why}: shutting down with exit code 1; the next start restarts PostgreSQL on the same data folder`);
  await stopAll();
  logger.info("all workers stopped");
  return outcome.kind === "stop" ? 0 : 1;
}

/**
 * A worker of `serve --workers N`: waits for the database URL from the primary, opens its
 * own pool (no migrations: the primary ran them) and serves until asked to stop, or until
 * the primary is gone. Returns the exit code.
 */
export async function runWorker(ctx: ServeContext & { slot: number; onPrimaryGone: () => void }): Promise<number> {
  const { config, logger, slot } = ctx;
  // node:cluster ends a worker at once (process.exit) when its channel to the primary closes
  // unexpectedly; a keyward worker drains instead (in-flight calls, last-used times), as on
  // any other stop request. Accepted connections are the worker's own and outlive the primary.
  for (const listener of process.listeners("disconnect")) process.off("disconnect", listener);
  process.once("disconnect", ctx.onPrimaryGone);
  const send = (m: WorkerMessage) => {
    if (process.connected) process.send?.(m);
  };
  let keyward: Keyward | undefined;
  // GET /metrics on this worker: ask the primary for every worker's snapshot.
  let requestId = 0;
  const awaiting = new Map<number, (snapshots: MetricsSnapshot[]) => void>();
  const exposition = async (own: Metrics): Promise<string> => {
    const id = requestId++;
    const snapshots = await new Promise<MetricsSnapshot[] | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), collectTimeoutMs + 1_000);
      awaiting.set(id, (s) => {
        clearTimeout(timer);
        resolve(s);
      });
      send({ type: "keyward:metrics-request", id });
    });
    awaiting.delete(id);
    if (snapshots !== undefined) return exposeSnapshots(snapshots);
    logger.warn("the primary did not gather the workers' metrics in time: answering with this worker's only");
    return own.exposition();
  };
  let started!: (databaseUrl: string | undefined) => void;
  const databaseUrlGiven = new Promise<string | undefined>((resolve) => (started = resolve));
  process.on("message", (m: PrimaryMessage) => {
    if (m?.type === "keyward:start") started(m.databaseUrl);
    else if (m?.type === "keyward:metrics-response") awaiting.get(m.id)?.(m.snapshots);
    else if (m?.type === "keyward:metrics-collect") {
      const snapshot = keyward?.metrics.snapshot() ?? Promise.resolve([]);
      snapshot.then(
        (s) => send({ type: "keyward:metrics-part", id: m.id, snapshot: s }),
        (err: unknown) => {
          logger.warn({ err }, "could not read this worker's metrics");
          send({ type: "keyward:metrics-part", id: m.id, snapshot: [] });
        },
      );
    }
  });
  void ctx.stop.then(() => started(undefined));
  const databaseUrl = await databaseUrlGiven;
  if (databaseUrl === undefined) return 0;
  // The URL replaces only where the pool connects: the rest of the configuration (KEK source
  // and its warnings) stays as the operator set it.
  const store = await openStore({ ...config, databaseUrl }, logger, { migrate: false });
  try {
    // "worker listening": the primary says "keyward listening" once every worker is.
    keyward = await startKeyward({ config, logger, store, metricLabels: { worker: String(slot) }, listeningMessage: "worker listening", exposition });
    send({ type: "keyward:listening", url: keyward.url });
    await ctx.stop;
    await keyward.stop();
    return 0;
  } catch (err) {
    if (!ctx.stopping()) throw err;
    logger.error({ err }, "shutdown failed");
    return 1;
  } finally {
    await store.close();
  }
}
