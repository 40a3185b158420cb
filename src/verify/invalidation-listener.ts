// Cross-replica invalidation of the VerifyKey cache (DESIGN.md §3). Database triggers append
// every verdict-changing write to `credential_change` and NOTIFY `keyward_credential_change`
// in the same transaction (Migration20261130000007CredentialChanges.ts). Each replica LISTENs
// on a dedicated connection (never the pool: PgBouncer's transaction mode cannot LISTEN) and,
// on each notification, reads the log past its position (one indexed query) and evicts. On
// (re)connect it replays from that position, so a lost connection loses no change; while the
// connection is lost the cache answers for at most the grace (credential-cache.ts). After each
// of its own writes a replica catches up before answering, so it is consistent at once.
//
// The position is a transaction id, not a row id: row ids are taken before commit, so a
// transaction holding a smaller id may commit after one holding a larger. Each catch-up reads
// the rows of every transaction at or after the previous read's snapshot xmin (the oldest
// transaction still running then, so every row invisible to that read comes from one of them),
// skips the rows it applied already, and moves the position to its own snapshot's xmin.
import pg from "pg";
import type { Clock } from "../clock.ts";
import { describeDatabaseFailure } from "../db/database-errors.ts";
import { describeDatabaseUrl, type Database } from "../db/orm.ts";
import type { Logger } from "../logger.ts";
import { StartupError } from "../startup-error.ts";
import type { InvalidationTarget } from "./credential-cache.ts";

/** The NOTIFY channel the triggers use. */
export const credentialChangeChannel = "keyward_credential_change";

/** Most change rows one catch-up applies one by one; past this, it forgets the whole cache instead. */
const maxRowsPerCatchUp = 10_000;
/** How often the LISTEN connection is checked (by a catch-up on it), in ms: a hung connection is found within this plus the query bound. */
const heartbeatMs = 5_000;
/** Reconnect backoff bounds, in ms (doubling, with jitter). */
const reconnectMinMs = 100;
const reconnectMaxMs = 5_000;
/** A replica disconnected longer than this (ms) forgets its cache on reconnect rather than replay (the log keeps a day). */
const replayHorizonMs = 60 * 60_000;
/** How long change rows are kept, and how often (ms) and how many at a time old ones are deleted. */
const retention = "1 day";
const pruneEveryMs = 10 * 60_000;
const pruneBatch = 10_000;
/** Change ids remembered for hasApplied (the oldest are forgotten first). */
const maxRememberedIds = 50_000;
/** How long stop() waits for the LISTEN connection to say goodbye, in ms. */
const closeTimeoutMs = 1_000;

/** The listener's state, for metrics and tests (a snapshot). */
export type InvalidationState = Readonly<{
  /** LISTENing and caught up. */
  connected: boolean;
  /** The server process id of the LISTEN connection (null while disconnected). */
  backendPid: number | null;
  /** Connections made after the first. */
  reconnects: number;
}>;

/** One change row as applied, for subscribers (onChanges). */
export type AppliedChange = Readonly<{
  /** The row's id (bigserial, as decimal text). */
  id: string;
  /** The writing transaction's id (xid8, as a bigint). */
  txid: bigint;
  tenantId: string;
  scope: "key" | "tenant";
  /** The key id for scope "key", else null. */
  keyId: string | null;
  /** When the row was written (by the database's clock). */
  createdAt: Date;
}>;

/**
 * What one catch-up applied, for subscribers: its rows (each once, across catch-ups), the
 * listener's position after it (every change of a transaction below `position` is applied),
 * and `reset`: changes were skipped rather than applied one by one (too many, or a long
 * disconnection), so a subscriber must treat every tenant as changed.
 */
export type AppliedChanges = Readonly<{ changes: readonly AppliedChange[]; position: bigint; reset: boolean }>;

/** The listener. */
export type InvalidationListener = {
  /** Connects, LISTENs and takes the log's current position; throws StartupError when the connection cannot be made. */
  start(): Promise<void>;
  /**
   * Applies every change committed before the call, then resolves (after the replica's own
   * writes, and for tests after a write from elsewhere). Concurrent calls share one read.
   * Rejects when the database cannot be read.
   */
  catchUp(): Promise<void>;
  state(): InvalidationState;
  /**
   * True when the change row `id` has been applied, or was committed before the listener
   * started (its cache was empty then). For tests: "has this replica heard of my change".
   */
  hasApplied(id: number): boolean;
  /** Deletes change rows older than the retention now (otherwise every 10 minutes); returns how many went. */
  prune(): Promise<number>;
  /**
   * Calls `fn` synchronously after every catch-up that moved or applied something (heartbeats
   * included, every 5 s while connected), so in-process subscribers (WatchInvalidations
   * streams) follow the log without reading it themselves. Returns the unsubscribe function.
   * A throwing subscriber is logged and does not stop the others.
   */
  onChanges(fn: (applied: AppliedChanges) => void): () => void;
  /** Stops listening and closes the connection. */
  stop(): Promise<void>;
};

type ChangeRow = { xmin: string; max_id?: string | null; id: string | null; txid: string | null; tenant_id: string | null; scope: "key" | "tenant" | null; key_id: string | null; lag_ms: number | null; created_ms?: number | null };
/** Runs the catch-up query (`?` placeholders) on some connection. */
type Reader = (cursor: string) => Promise<ChangeRow[]>;

const positionQuery = `select pg_snapshot_xmin(pg_current_snapshot())::text as xmin, (select max(id) from credential_change)::text as max_id`;
// The snapshot's xmin and the rows of every transaction at or after the position, oldest first.
const changesQuery = `
select s.xmin::text as xmin, c.id::text as id, c.txid::text as txid, c.tenant_id::text as tenant_id, c.scope, c.key_id,
       (extract(epoch from clock_timestamp() - c.created_at) * 1000)::float8 as lag_ms,
       (extract(epoch from c.created_at) * 1000)::float8 as created_ms
  from (select pg_snapshot_xmin(pg_current_snapshot()) as xmin) s
  left join lateral (
    select * from credential_change where txid >= $1::xid8 order by id limit ${maxRowsPerCatchUp + 1}
  ) c on true`;
const pruneQuery = `
delete from credential_change where id in (
  select id from credential_change where created_at < now() - interval '${retention}' limit ${pruneBatch})`;

/** What the listener needs besides its connection URL and its target (shared with createVerificationCache). */
export type InvalidationListenerDeps = {
  db: Database;
  clock: Clock;
  logger: Logger;
  /** The LISTEN connection's connect and query bounds, in ms. */
  timeouts: { connectMs: number; queryMs: number };
  /** Called with each applied change's lag in seconds (change row written → evicted here), for `keyward_invalidation_lag_seconds`. */
  observeLag?: ((seconds: number) => void) | undefined;
};

/** Creates the listener (start() connects). `url`: KEYWARD_LISTEN_DATABASE_URL or the database's URL. */
export function createInvalidationListener(deps: InvalidationListenerDeps & { url: string; target: InvalidationTarget }): InvalidationListener {
  const { target, clock } = deps;
  const logger = deps.logger.child({ component: "invalidation" });
  const pool = deps.db.orm.driver.getConnection();

  let stopped = false;
  let active: pg.Client | undefined;
  const clients = new Set<pg.Client>();
  let backendPid: number | null = null;
  /** performance.now() when the connection was lost (for the replay horizon; real time, whatever the clock). */
  let lostAtMonotonic: number | undefined;
  let lastConfirmedAt = clock.now();
  let reconnecting = false;
  let wake: (() => void) | undefined;

  /** The position: the snapshot xmin of the last catch-up (undefined before the first). */
  let cursor: bigint | undefined;
  /** Rows applied whose transaction is at or after the position (they are read again until it passes them). */
  const applied = new Map<string, bigint>();
  /** Changes committed before the first position was taken (the cache was empty then). */
  let baselineId = 0;
  const appliedIds = new Set<number>();
  const subscribers = new Set<(applied: AppliedChanges) => void>();
  /** Set when changes were skipped (cache cleared): the next publish says reset. */
  let resetPending = false;
  function publish(changes: AppliedChange[]): void {
    if (subscribers.size === 0 || cursor === undefined) {
      resetPending = false;
      return;
    }
    const applied: AppliedChanges = { changes, position: cursor, reset: resetPending };
    resetPending = false;
    for (const fn of subscribers) {
      try {
        fn(applied);
      } catch (e) {
        logger.error({ err: e }, "a credential change subscriber failed");
      }
    }
  }
  let reconnects = 0;

  /** Reads the log past the position and evicts what changed; moves the position. */
  async function apply(read: Reader): Promise<void> {
    if (cursor === undefined) {
      const rows = await read("");
      cursor = BigInt(rows[0]!.xmin);
      baselineId = Math.max(baselineId, Number(rows[0]!.max_id ?? 0));
      publish([]);
      return;
    }
    const published: AppliedChange[] = [];
    const rows = await read(cursor.toString());
    const xmin = BigInt(rows[0]!.xmin);
    const changes = rows.filter((r) => r.id !== null);
    if (changes.length > maxRowsPerCatchUp) {
      logger.warn({ changes: changes.length }, "too many credential changes to apply one by one: the verification cache starts empty");
      forgetAll();
      baselineId = Math.max(baselineId, ...changes.map((r) => Number(r.id)));
    } else {
      for (const row of changes) {
        if (applied.has(row.id!)) continue;
        applied.set(row.id!, BigInt(row.txid!));
        if (row.scope === "key") target.evictKey(row.key_id!);
        else target.evictTenant(row.tenant_id!);
        remember(Number(row.id));
        if (row.lag_ms !== null) deps.observeLag?.(Number(row.lag_ms) / 1000);
        published.push({ id: row.id!, txid: BigInt(row.txid!), tenantId: row.tenant_id!, scope: row.scope!, keyId: row.key_id, createdAt: new Date(Number(row.created_ms ?? 0)) });
      }
    }
    if (xmin > cursor) cursor = xmin;
    for (const [id, txid] of applied) if (txid < cursor) applied.delete(id);
    publish(published);
  }

  /**
   * Skips changes rather than applying them one by one (too many, or too long disconnected):
   * the cache empties, subscribers are told to reset, and everything up to the new baseline
   * counts as applied (an empty cache reflects it).
   */
  function forgetAll(): void {
    target.clear();
    applied.clear();
    appliedIds.clear();
    resetPending = true;
  }

  function remember(id: number): void {
    appliedIds.add(id);
    if (appliedIds.size <= maxRememberedIds) return;
    let drop = maxRememberedIds / 10;
    for (const old of appliedIds) {
      if (drop-- <= 0) break;
      appliedIds.delete(old);
    }
  }

  const readVia = (client: pg.Client): Reader => async (position) =>
    (await client.query<ChangeRow>(position === "" ? positionQuery : changesQuery, position === "" ? [] : [position])).rows;
  const readViaPool: Reader = (position) =>
    pool.execute<ChangeRow[]>(position === "" ? positionQuery : changesQuery.replace("$1", "?"), position === "" ? [] : [position], "all");

  // Catch-ups run one at a time; a call joins the one queued (not yet started) if there is one.
  let chain: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;
  function exclusive(fn: () => Promise<void>): Promise<void> {
    const run = chain.then(fn);
    chain = run.catch(() => undefined);
    return run;
  }

  /**
   * One catch-up, on the LISTEN connection when there is one (it then also proves it alive).
   * Without one (or when it fails), through the pool only if `viaPool` (after the replica's own
   * writes); notifications and heartbeats need none: the reconnect replays.
   */
  async function catchUpNow(viaPool: boolean): Promise<void> {
    const client = active;
    if (client !== undefined) {
      try {
        await apply(readVia(client));
        lastConfirmedAt = clock.now();
        return;
      } catch (e) {
        connectionLost(client, e);
      }
    }
    if (viaPool) await apply(readViaPool);
  }

  let queuedViaPool = false;
  /** Runs a catch-up after every one running now; joins the one queued if it has not started. */
  function schedule(viaPool: boolean): Promise<void> {
    queuedViaPool ||= viaPool;
    queued ??= exclusive(async () => {
      const pool = queuedViaPool;
      queued = undefined;
      queuedViaPool = false;
      await catchUpNow(pool);
    });
    return queued;
  }

  /** Opens a connection, LISTENs, replays from the position, and makes it the active one. */
  async function connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: deps.url,
      connectionTimeoutMillis: deps.timeouts.connectMs,
      query_timeout: deps.timeouts.queryMs,
      keepAlive: true,
      application_name: "keyward-listen",
    });
    clients.add(client);
    client.on("error", (e) => connectionLost(client, e));
    client.on("end", () => connectionLost(client, undefined));
    try {
      await client.connect();
      const pid = (await client.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid;
      await client.query(`listen ${credentialChangeChannel}`);
      client.on("notification", () => {
        schedule(false).catch((e: unknown) => logger.debug({ reason: describeDatabaseFailure(e) }, "could not read the credential change log"));
      });
      // Listening first, then replaying: nothing committed in between is missed.
      await exclusive(async () => {
        if (lostAtMonotonic !== undefined && performance.now() - lostAtMonotonic > replayHorizonMs) {
          logger.warn("the change notification connection was lost for over an hour: the verification cache starts empty");
          forgetAll();
          cursor = undefined;
        }
        await apply(readVia(client));
      });
      if (stopped) throw new Error("stopped");
      active = client;
      backendPid = pid;
      lastConfirmedAt = clock.now();
      lostAtMonotonic = undefined;
      target.connectionRestored();
    } catch (e) {
      close(client);
      throw e;
    }
  }

  /** The active connection broke (or answered no more): the grace starts, reconnecting begins. */
  function connectionLost(client: pg.Client, e: unknown): void {
    if (client !== active) return;
    active = undefined;
    backendPid = null;
    lostAtMonotonic = performance.now();
    target.connectionLost(lastConfirmedAt);
    close(client);
    if (stopped) return;
    logger.warn({ reason: e === undefined ? "connection closed" : describeDatabaseFailure(e) }, "lost the change notification connection; reconnecting (the verification cache answers within its grace meanwhile)");
    void reconnect();
  }

  /** Waits `ms`, or until stop() wakes it. */
  async function pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    wake = undefined;
  }

  async function reconnect(): Promise<void> {
    if (reconnecting) return;
    reconnecting = true;
    try {
      for (let delay = reconnectMinMs, attempt = 1; !stopped; delay = Math.min(delay * 2, reconnectMaxMs), attempt++) {
        await pause(delay / 2 + (Math.random() * delay) / 2);
        if (stopped) return;
        try {
          await connect();
          reconnects += 1;
          logger.info({ attempt }, "change notification connection restored; missed changes replayed");
          return;
        } catch (e) {
          if (stopped) return;
          (attempt === 1 ? logger.warn.bind(logger) : logger.debug.bind(logger))({ attempt, reason: describeDatabaseFailure(e) }, "could not restore the change notification connection; retrying");
        }
      }
    } finally {
      reconnecting = false;
    }
  }

  /** Ends a connection, bounded: a hung server never answers the goodbye. */
  function close(client: pg.Client): Promise<void> {
    if (!clients.delete(client)) return Promise.resolve();
    client.removeAllListeners("notification");
    let timer: NodeJS.Timeout | undefined;
    const ended = client.end().catch(() => undefined);
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
        resolve();
      }, closeTimeoutMs);
    });
    return Promise.race([ended, bound]).finally(() => clearTimeout(timer));
  }

  async function prune(): Promise<number> {
    const result = await pool.execute<{ affectedRows: number }>(pruneQuery, [], "run");
    return result.affectedRows;
  }

  const heartbeat = setInterval(() => {
    if (active !== undefined) schedule(false).catch(() => undefined);
  }, heartbeatMs);
  heartbeat.unref();
  const pruning = setInterval(() => {
    prune().then(
      (n) => (n > 0 ? logger.debug({ deleted: n }, "deleted old credential change rows") : undefined),
      (e: unknown) => logger.warn({ reason: describeDatabaseFailure(e) }, "could not delete old credential change rows; retrying at the next run"),
    );
  }, pruneEveryMs);
  pruning.unref();

  return {
    async start() {
      try {
        await connect();
      } catch (e) {
        const reason = describeDatabaseFailure(e);
        // pg's own messages (authentication, unknown database) name no secret.
        const detail = reason === "database error" && e instanceof Error ? e.message : reason;
        throw new StartupError(`cannot LISTEN for credential changes at ${describeDatabaseUrl(deps.url)}: ${detail} (check KEYWARD_LISTEN_DATABASE_URL)`);
      }
    },
    catchUp: () => schedule(true),
    state() {
      return { connected: active !== undefined, backendPid, reconnects };
    },
    hasApplied: (id) => id <= baselineId || appliedIds.has(id),
    prune,
    onChanges(fn) {
      subscribers.add(fn);
      return () => subscribers.delete(fn);
    },
    async stop() {
      stopped = true;
      clearInterval(heartbeat);
      clearInterval(pruning);
      wake?.();
      active = undefined;
      await Promise.all([...clients].map(close));
    },
  };
}
