// Prometheus metrics of one keyward instance, served at `GET /metrics` (DESIGN.md §8).
//
// Each instance has its own prom-client Registry (never the global default one), so several
// servers in one process (the tests) do not collide; the process metrics (CPU, memory, event
// loop, GC) describe the process, not an instance, and live in one registry per process.
//
// The hot path (one count and one duration per RPC, one count per VerifyKey verdict) adds
// to plain numbers: prom-client's labelled `inc`/`observe` hash their labels on every call
// (about 0.4 µs per call here, a few percent of a cached VerifyKey). The numbers become
// prom-client metrics only when scraped, through `collect` callbacks.
//
// Labels carry bounded, secret-free values only: procedure names of served RPCs (or
// `unknown`), code names, verdict names, pool states. Never a path, key, token or tenant.
import { Code } from "@connectrpc/connect";
import type { Pool } from "pg";
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { VerifyResultName } from "./verify/verifier.ts";

/** The `method` label of requests to paths that name no RPC this server serves. */
export const unknownMethod = "unknown";

/** Upper bounds (seconds) of the RPC duration buckets: a cached VerifyKey takes well under a millisecond. */
const durationBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
/** Upper bounds (seconds) of the invalidation lag buckets: commit in one replica to eviction in another. */
const lagBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;
/** Upper bounds of the last-used batch size buckets (keys per write). */
const batchBuckets = [1, 10, 100, 1_000, 10_000, 100_000] as const;

/** Code names by number (connect's Code has no OK: index 0 stands for it), as in the `rpc` log line. */
const codeNames: readonly string[] = Array.from({ length: 17 }, (_, i) => (i === 0 ? "OK" : (Code[i] ?? `code_${i}`)));

/** Records the outcome of one finished call of one procedure: its code (undefined = OK) and how long it took. */
export type RpcRecorder = (code: Code | undefined, seconds: number) => void;

/** The metrics of one keyward instance. */
export type Metrics = {
  /** The instance's registry (register more metrics here, e.g. with registerCacheMetrics). */
  readonly registry: Registry;
  /** The recorder of one procedure (`keyward.v1.KeyService/VerifyKey`), created once and kept: call it per call. */
  rpc(procedure: string): RpcRecorder;
  /** Counts one VerifyKey verdict (`keyward_verify_results_total`). */
  verifyResult(result: VerifyResultName): void;
  /** Records the number of keys one last-used write carried (`keyward_last_used_batch_size`). */
  lastUsedBatch(size: number): void;
  /** The exposition (Prometheus text format 0.0.4): the instance's metrics and the process's. */
  exposition(): Promise<string>;
  /** The same metrics as data (prom-client's `getMetricsAsJSON`, labels included), for exposition by another worker. */
  snapshot(): Promise<MetricsSnapshot>;
};

/** The metrics of one process as data (structured-clonable), see `exposeSnapshots`. */
export type MetricsSnapshot = readonly object[];

/** The content type of `Metrics.exposition()`. */
export const metricsContentType = Registry.PROMETHEUS_CONTENT_TYPE;

/** Counts and durations of one procedure, kept as plain numbers. */
type ProcedureStats = { calls: Float64Array; buckets: Float64Array; sum: number; count: number; record: RpcRecorder };

/**
 * Creates the metrics of one instance. `labels` are added to every instance metric (e.g.
 * `{ worker: "2" }` under `serve --workers N`): bounded values only.
 */
export function createMetrics(opts: { labels?: Readonly<Record<string, string>>; enabled?: boolean } = {}): Metrics {
  const registry = new Registry();
  const processes = processRegistry();
  if (opts.labels !== undefined) {
    registry.setDefaultLabels({ ...opts.labels });
    // Only a worker passes labels, and a worker process runs one instance.
    processes.setDefaultLabels({ ...opts.labels });
  }
  const procedures = new Map<string, ProcedureStats>();
  const verdicts = new Map<string, number>();

  new Counter({
    name: "keyward_rpc_calls_total",
    help: "RPCs answered, by procedure (unknown for paths that name none) and code (OK or the Connect/gRPC code name), including calls refused before a handler ran.",
    labelNames: ["method", "code"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [method, stats] of procedures) {
        for (let c = 0; c < stats.calls.length; c++) {
          const n = stats.calls[c] ?? 0;
          if (n > 0) this.inc({ method, code: codeNames[c] ?? String(c) }, n);
        }
      }
    },
  });
  new PrecountedHistogram({
    name: "keyward_rpc_duration_seconds",
    help: "Time from receiving an RPC to its outcome (for a stream: to its end), by procedure.",
    labelNames: ["method"],
    buckets: [...durationBuckets],
    registers: [registry],
    // Procedures never called are left out (as in keyward_rpc_calls_total): dozens of empty histograms otherwise.
    values: () => [...procedures].filter(([, s]) => s.count > 0).map(([method, s]) => ({ labels: { method }, buckets: s.buckets, sum: s.sum, count: s.count })),
  });
  new Counter({
    name: "keyward_verify_results_total",
    help: "VerifyKey verdicts (valid, not_found, revoked, expired, insufficient_permissions, …).",
    labelNames: ["result"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [result, n] of verdicts) this.inc({ result }, n);
    },
  });
  const batches = new Histogram({
    name: "keyward_last_used_batch_size",
    help: "Keys whose last-used time one batched write carried.",
    buckets: [...batchBuckets],
    registers: [registry],
  });

  const statsOf = (procedure: string): ProcedureStats => {
    let stats = procedures.get(procedure);
    if (stats === undefined) {
      const s: ProcedureStats = {
        calls: new Float64Array(codeNames.length),
        buckets: new Float64Array(durationBuckets.length),
        sum: 0,
        count: 0,
        record(code, seconds) {
          s.calls[code ?? 0]! += 1;
          let i = 0;
          while (i < durationBuckets.length && seconds > durationBuckets[i]!) i++;
          if (i < durationBuckets.length) s.buckets[i]! += 1;
          s.sum += seconds;
          s.count += 1;
        },
      };
      procedures.set(procedure, s);
      stats = s;
    }
    return stats;
  };

  // KEYWARD_METRICS=0: per-call recording does nothing (to measure what it costs); the
  // exposition still answers, with what is read at scrape time (cache, pool, process).
  const enabled = opts.enabled ?? true;
  const ignore = () => {};
  return {
    registry,
    rpc: enabled ? (procedure) => statsOf(procedure).record : () => ignore,
    verifyResult: enabled
      ? (result) => {
          verdicts.set(result, (verdicts.get(result) ?? 0) + 1);
        }
      : ignore,
    lastUsedBatch: (size) => batches.observe(size),
    async exposition() {
      const [own, process] = await Promise.all([registry.metrics(), processes.metrics()]);
      return `${own}\n${process}`;
    },
    async snapshot() {
      const [own, process] = await Promise.all([registry.getMetricsAsJSON(), processes.getMetricsAsJSON()]);
      return [...own, ...process];
    },
  };
}

/**
 * One exposition of the snapshots of several processes (the workers of `serve --workers N`),
 * each labelled with its own `worker`: series are listed side by side, never added up
 * (prom-client's cluster aggregation with every metric's aggregator set to `sum`, which
 * only adds series whose labels are equal, and the labels differ by `worker`).
 */
export function exposeSnapshots(snapshots: readonly MetricsSnapshot[]): Promise<string> {
  const all = snapshots.map((metrics) => metrics.map((m) => ({ ...m, aggregator: "sum" })));
  return AggregatorRegistry.aggregate(all).metrics();
}

let processMetrics: Registry | undefined;

/** The process metrics (prom-client's defaults, `process_*` and `nodejs_*`), collected once per process. */
function processRegistry(): Registry {
  if (processMetrics === undefined) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

/** One labelled series of a PrecountedHistogram: per-bucket counts (not cumulative), their sum and count. */
type PrecountedSeries = { labels: Record<string, string>; buckets: ArrayLike<number>; sum: number; count: number };

/**
 * A histogram whose counts are kept elsewhere as plain numbers and read when scraped
 * (prom-client's `observe` hashes its labels on every call). `values` returns one entry
 * per label set, with a count per bucket of `buckets` (values above the last bound count
 * only in `count`).
 */
class PrecountedHistogram<T extends string> extends Histogram<T> {
  readonly #name: string;
  readonly #help: string;
  readonly #bounds: readonly number[];
  readonly #values: () => PrecountedSeries[];

  constructor(config: { name: string; help: string; labelNames: T[]; buckets: number[]; registers: Registry[]; values: () => PrecountedSeries[] }) {
    const { values, ...rest } = config;
    super(rest);
    this.#name = config.name;
    this.#help = config.help;
    this.#bounds = config.buckets;
    this.#values = values;
  }

  override async get(): ReturnType<Histogram<T>["get"]> {
    const values = [];
    for (const series of this.#values()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += series.buckets[i] ?? 0;
        values.push({ metricName: `${this.#name}_bucket`, labels: { ...series.labels, le: this.#bounds[i] }, value: cumulative });
      }
      values.push({ metricName: `${this.#name}_bucket`, labels: { ...series.labels, le: "+Inf" }, value: series.count });
      values.push({ metricName: `${this.#name}_sum`, labels: series.labels, value: series.sum });
      values.push({ metricName: `${this.#name}_count`, labels: series.labels, value: series.count });
    }
    return { name: this.#name, help: this.#help, type: "histogram", values, aggregator: "sum" } as unknown as Awaited<ReturnType<Histogram<T>["get"]>>;
  }

  /** The registry formats what this returns (prom-client prefers it to get()). */
  getForPromString(): ReturnType<Histogram<T>["get"]> {
    return this.get();
  }
}

/** What the verification cache reports when scraped (counts since start, sizes now). */
export type CacheStats = { hits: number; misses: number; evictions: number; entries: number; bytes: number };

/**
 * Registers the verification cache's metrics, read from `stats` at each scrape:
 * `keyward_verify_cache_{hits,misses,evictions}_total`, `keyward_verify_cache_entries`,
 * `keyward_verify_cache_bytes`.
 */
export function registerCacheMetrics(registry: Registry, stats: () => CacheStats): void {
  const counter = (name: string, help: string, read: (s: CacheStats) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read(stats()));
      },
    });
  const gauge = (name: string, help: string, read: (s: CacheStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(stats()));
      },
    });
  counter("keyward_verify_cache_hits_total", "Verifications answered from the cache (negative entries included).", (s) => s.hits);
  counter("keyward_verify_cache_misses_total", "Verifications that read the database.", (s) => s.misses);
  counter("keyward_verify_cache_evictions_total", "Cache entries evicted (size bound, TTL or invalidation).", (s) => s.evictions);
  gauge("keyward_verify_cache_entries", "Entries in the verification cache now.", (s) => s.entries);
  gauge("keyward_verify_cache_bytes", "Estimated bytes held by the verification cache now.", (s) => s.bytes);
}

/** What the invalidation listener reports when scraped. */
export type InvalidationState = { connected: boolean; reconnects?: number };

/** Records one invalidation's lag: seconds from the change's commit to its eviction here (negative clock skew counts as 0). */
export type InvalidationLagObserver = (seconds: number) => void;

/**
 * Registers the invalidation metrics: `keyward_listen_connected` (1 while the LISTEN
 * connection is up), `keyward_listen_reconnects_total` (when `state` reports it), and the
 * `keyward_invalidation_lag_seconds` histogram, fed by the returned observer.
 */
export function registerInvalidationMetrics(registry: Registry, state: () => InvalidationState): { observeInvalidationLag: InvalidationLagObserver } {
  new Gauge({
    name: "keyward_listen_connected",
    help: "1 while the LISTEN connection that receives invalidations is up, 0 otherwise.",
    registers: [registry],
    collect() {
      this.set(state().connected ? 1 : 0);
    },
  });
  new Counter({
    name: "keyward_listen_reconnects_total",
    help: "Times the LISTEN connection was re-established (each replays the change log).",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(state().reconnects ?? 0);
    },
  });
  const lag = new Histogram({
    name: "keyward_invalidation_lag_seconds",
    help: "Seconds from a change's commit (in any replica) to its eviction from this instance's cache.",
    buckets: [...lagBuckets],
    registers: [registry],
  });
  return { observeInvalidationLag: (seconds) => lag.observe(Math.max(0, seconds)) };
}

/**
 * Registers the database pool's use, read at each scrape: `keyward_db_pool_connections`
 * by state (`idle`, `in_use`), `keyward_db_pool_waiting` (requests waiting for a
 * connection) and `keyward_db_pool_max_connections`. `pool` is the `pg` Pool behind
 * MikroORM (`await db.orm.driver.getConnection().getNativeClient()`).
 */
export function registerPoolMetrics(registry: Registry, pool: Pick<Pool, "totalCount" | "idleCount" | "waitingCount"> & { options?: { max?: number } }): void {
  new Gauge({
    name: "keyward_db_pool_connections",
    help: "Open connections of the database pool, by state (idle, in_use).",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      this.set({ state: "idle" }, pool.idleCount);
      this.set({ state: "in_use" }, pool.totalCount - pool.idleCount);
    },
  });
  new Gauge({
    name: "keyward_db_pool_waiting",
    help: "Queries waiting for a free connection of the database pool.",
    registers: [registry],
    collect() {
      this.set(pool.waitingCount);
    },
  });
  new Gauge({
    name: "keyward_db_pool_max_connections",
    help: "The most connections the database pool opens.",
    registers: [registry],
    collect() {
      this.set(pool.options?.max ?? 10);
    },
  });
}
