// The VerifyKey cache (DESIGN.md §3): the records the verifier judges, held in memory so a
// warm verification reads no database. API keys by key id (unknown ids too, briefly), minted
// tokens by `jti` until they expire. Records, not verdicts: the verifier judges every call
// against the clock, so expiry needs no invalidation. Everything else that changes a verdict
// reaches the cache as an eviction from the change log (invalidation-listener.ts); while that
// feed is lost the cache answers for at most the configured grace, then refuses (UNAVAILABLE).
import { LRUCache } from "lru-cache";
import type { Clock } from "../clock.ts";
import { ErrorKind, KeywardError } from "../errors.ts";
import type { KeyLookup, KeyLookupRecord } from "./key-lookup.ts";
import type { TokenLookup, TokenLookupRecord } from "./token-lookup.ts";

/** How long an unknown key id is remembered as unknown, in ms (a flood of one id costs one read per this). */
export const negativeTtlMs = 30_000;
/** Most database reads of one miss when invalidations keep racing it; the last read is answered uncached. */
const maxLoadAttempts = 3;
/** Invalidations remembered for reads in flight to check against (a read older than all of them is not stored). */
const maxRecentInvalidations = 4096;

/** The reason of the UNAVAILABLE error answered past the grace of a lost LISTEN connection. */
export const invalidationUnavailableReason = "INVALIDATION_UNAVAILABLE";

/** Sizes and lifetimes of the cache (Config.verifyCache). */
export type CredentialCacheOptions = Readonly<{
  /** Most records held. */
  maxEntries: number;
  /** Most bytes held, by each record's estimated size. */
  maxBytes: number;
  /** Longest a record is held, in ms (a backstop: invalidation normally evicts first). Must be > 0. */
  ttlMs: number;
  /** How long the cache keeps answering after its invalidation feed was lost, in ms (0: not at all). */
  staleMs: number;
}>;

/** Counters and sizes, for metrics (read, never reset). */
export type CredentialCacheStats = Readonly<{
  /** Lookups answered from memory (negative entries included). */
  hits: number;
  /** Lookups that had to wait for a database read (their own, or one in flight for the same id). */
  misses: number;
  /** Database reads made (concurrent misses of one id share one). */
  loads: number;
  /** Records dropped to stay within the entry and byte bounds. */
  evictions: number;
  /** Records dropped because the change log said they changed (a tenant-wide invalidation counts once). */
  invalidations: number;
  /** Lookups refused because the invalidation feed was lost for longer than the grace. */
  refusals: number;
  /** Records held now (including records of tenants invalidated as a whole, dropped lazily). */
  size: number;
  /** Their estimated bytes. */
  bytes: number;
}>;

/** What the invalidation listener tells the cache. */
export type InvalidationTarget = {
  /** The key `keyId` changed (or appeared, or went). */
  evictKey(keyId: string): void;
  /** Something every credential of the tenant may depend on changed. */
  evictTenant(tenantId: string): void;
  /** Forget everything (the change log could not be replayed). */
  clear(): void;
  /** The feed was lost at `at` (the last moment it was known to work): the grace starts. */
  connectionLost(at: Date): void;
  /** The feed is back and caught up. */
  connectionRestored(): void;
};

/** What a test may pause: called after each database read, before its result is stored. */
export type CredentialCacheHooks = { afterLoad?: ((load: Readonly<{ kind: "key" | "token"; id: string }>) => Promise<void>) | undefined };

/** The cache: lookups with the verifier's signatures, the invalidation target, and stats. */
export type CredentialCache = InvalidationTarget & {
  /** KeyLookup through the cache. Throws UNAVAILABLE past the grace of a lost feed. */
  lookupKey: KeyLookup;
  /** TokenLookup through the cache (unknown jtis are not remembered). Throws UNAVAILABLE past the grace. */
  lookupToken: TokenLookup;
  stats(): CredentialCacheStats;
  /** For tests only. */
  readonly hooks: CredentialCacheHooks;
};

/** One held record; `generation` is its tenant's generation when it was read. */
type Entry =
  | { kind: "key"; record: KeyLookupRecord; generation: number }
  | { kind: "token"; record: TokenLookupRecord; generation: number }
  | { kind: "unknown" };

/** A database read in flight, shared by every concurrent miss of one id. */
type Flight<T> = { promise: Promise<T>; controller: AbortController; waiters: number };

/** Creates the cache over the uncached lookups. */
export function createCredentialCache(deps: { keyLookup: KeyLookup; tokenLookup: TokenLookup; clock: Clock; options: CredentialCacheOptions }): CredentialCache {
  const { clock, options } = deps;
  let evictions = 0;
  const entries = new LRUCache<string, Entry>({
    max: options.maxEntries,
    maxSize: options.maxBytes,
    sizeCalculation: sizeOf,
    ttl: options.ttlMs,
    dispose: (_value, _key, reason) => {
      if (reason === "evict") evictions += 1;
    },
  });
  const counters = { hits: 0, misses: 0, loads: 0, invalidations: 0, refusals: 0 };
  /**
   * Bumped by every invalidation, each also logged (the last few thousand): a read that started
   * before an invalidation of its key (or its tenant, or everything) and ends after it may hold
   * what the invalidation was about, so it is never stored (read again instead).
   */
  let epoch = 0;
  const recent: { epoch: number; cacheKey?: string; tenantId?: string }[] = [];
  /** Per-tenant generations: a tenant-wide invalidation is one increment, its records are dropped when next met. */
  const tenantGenerations = new Map<string, number>();
  /** When the invalidation feed was lost (undefined while it works). */
  let lostAt: Date | undefined;
  const flights = new Map<string, Flight<Entry | undefined>>();
  const hooks: CredentialCacheHooks = {};

  const generationOf = (tenantId: string) => tenantGenerations.get(tenantId) ?? 0;

  /** Throws UNAVAILABLE when the feed has been lost for longer than the grace. */
  function assertFresh(): void {
    if (lostAt === undefined || clock.now().getTime() - lostAt.getTime() < options.staleMs) return;
    counters.refusals += 1;
    throw new KeywardError(
      ErrorKind.UNAVAILABLE,
      invalidationUnavailableReason,
      "credential verification is unavailable: this replica lost its connection for change notifications; retry shortly",
    );
  }

  /** The held entry of `cacheKey`, if it is still current. */
  function current(cacheKey: string): Entry | undefined {
    const entry = entries.get(cacheKey);
    if (entry === undefined || entry.kind === "unknown" || entry.generation === generationOf(entry.record.tenantId)) return entry;
    entries.delete(cacheKey);
    return undefined;
  }

  /**
   * Reads `id` from the database and stores what it read, unless an invalidation happened
   * while it read (then reads again, up to maxLoadAttempts, the last read answered unstored).
   */
  async function load(cacheKey: string, kind: "key" | "token", id: string, signal: AbortSignal): Promise<Entry | undefined> {
    for (let attempt = 1; ; attempt++) {
      const started = epoch;
      counters.loads += 1;
      const entry = kind === "key" ? keyEntry(await deps.keyLookup(id, signal)) : tokenEntry(await deps.tokenLookup(id, signal));
      await hooks.afterLoad?.({ kind, id });
      if (!invalidatedSince(started, cacheKey, entry === undefined || entry.kind === "unknown" ? undefined : entry.record.tenantId)) {
        store(cacheKey, entry);
        return entry;
      }
      if (attempt >= maxLoadAttempts) return entry;
    }
  }

  /** True when an invalidation after `started` concerned `cacheKey`, `tenantId`, or everything (or the log no longer reaches back). */
  function invalidatedSince(started: number, cacheKey: string, tenantId: string | undefined): boolean {
    if (epoch === started) return false;
    if (recent.length === 0 || recent[0]!.epoch > started + 1) return true;
    for (let i = recent.length - 1; i >= 0 && recent[i]!.epoch > started; i--) {
      const change = recent[i]!;
      if (change.cacheKey === undefined && change.tenantId === undefined) return true;
      if (change.cacheKey === cacheKey || (tenantId !== undefined && change.tenantId === tenantId)) return true;
    }
    return false;
  }

  function keyEntry(record: KeyLookupRecord | undefined): Entry {
    return record === undefined ? { kind: "unknown" } : { kind: "key", record, generation: generationOf(record.tenantId) };
  }

  function tokenEntry(record: TokenLookupRecord | undefined): Entry | undefined {
    return record === undefined ? undefined : { kind: "token", record, generation: generationOf(record.tenantId) };
  }

  function store(cacheKey: string, entry: Entry | undefined): void {
    if (entry === undefined) return;
    let ttl = options.ttlMs;
    if (entry.kind === "unknown") ttl = Math.min(ttl, negativeTtlMs);
    // A token is held until it expires (by the injected clock, as the verifier judges it).
    if (entry.kind === "token") ttl = Math.min(ttl, entry.record.expiresAt.getTime() - clock.now().getTime());
    if (ttl <= 0) return;
    entries.set(cacheKey, entry, { ttl });
  }

  /** The read of `cacheKey` in flight, started if there is none. */
  function flightOf(cacheKey: string, kind: "key" | "token", id: string): Flight<Entry | undefined> {
    const running = flights.get(cacheKey);
    if (running !== undefined) return running;
    const controller = new AbortController();
    const started: Flight<Entry | undefined> = {
      controller,
      waiters: 0,
      promise: load(cacheKey, kind, id, controller.signal).finally(() => {
        if (flights.get(cacheKey) === started) flights.delete(cacheKey);
      }),
    };
    // A read every waiter left fails with nobody to tell.
    started.promise.catch(() => undefined);
    flights.set(cacheKey, started);
    return started;
  }

  /** Joins (or starts) the read of `cacheKey`; the read is cancelled only when every waiter has left. */
  function join(cacheKey: string, kind: "key" | "token", id: string, signal: AbortSignal | undefined): Promise<Entry | undefined> {
    signal?.throwIfAborted();
    const joined = flightOf(cacheKey, kind, id);
    joined.waiters += 1;
    if (signal === undefined) return joined.promise;
    return new Promise((resolve, reject) => {
      // A waiter leaves once: when its signal aborts, or else when the read ends.
      const onAbort = () => {
        joined.waiters -= 1;
        if (joined.waiters === 0) {
          if (flights.get(cacheKey) === joined) flights.delete(cacheKey);
          joined.controller.abort(signal.reason);
        }
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      void joined.promise.then(resolve, reject).finally(() => {
        if (signal.aborted) return;
        joined.waiters -= 1;
        signal.removeEventListener("abort", onAbort);
      });
    });
  }

  /** The entry of `cacheKey`: held, or read (once for all concurrent callers). */
  async function lookup(cacheKey: string, kind: "key" | "token", id: string, signal: AbortSignal | undefined): Promise<Entry | undefined> {
    assertFresh();
    const held = current(cacheKey);
    if (held !== undefined) {
      counters.hits += 1;
      return held;
    }
    counters.misses += 1;
    const entry = await join(cacheKey, kind, id, signal);
    // The read may have been long: the feed may have been lost meanwhile.
    assertFresh();
    return entry;
  }

  function invalidate(change: { cacheKey?: string; tenantId?: string }): void {
    epoch += 1;
    recent.push({ epoch, ...change });
    if (recent.length > maxRecentInvalidations) recent.splice(0, recent.length - maxRecentInvalidations / 2);
  }

  return {
    hooks,
    async lookupKey(keyId, signal) {
      const entry = await lookup(`k:${keyId}`, "key", keyId, signal);
      return entry?.kind === "key" ? entry.record : undefined;
    },
    async lookupToken(jti, signal) {
      const entry = await lookup(`t:${jti}`, "token", jti, signal);
      return entry?.kind === "token" ? entry.record : undefined;
    },
    evictKey(keyId) {
      const cacheKey = `k:${keyId}`;
      invalidate({ cacheKey });
      if (entries.delete(cacheKey)) counters.invalidations += 1;
    },
    evictTenant(tenantId) {
      invalidate({ tenantId });
      tenantGenerations.set(tenantId, generationOf(tenantId) + 1);
      counters.invalidations += 1;
    },
    clear() {
      invalidate({});
      counters.invalidations += entries.size;
      entries.clear();
    },
    connectionLost(at) {
      lostAt ??= at;
    },
    connectionRestored() {
      lostAt = undefined;
    },
    stats() {
      return { ...counters, evictions, size: entries.size, bytes: entries.calculatedSize };
    },
  };
}

/**
 * A record's estimated heap size in bytes: a fixed overhead (the objects, arrays, dates and
 * the hash's buffer) plus its strings at two bytes a character; about 1.2 KB for a typical key
 * record, as measured with V8's heap statistics.
 */
function sizeOf(entry: Entry): number {
  if (entry.kind === "unknown") return 64;
  const r = entry.record;
  let chars = 0;
  for (const value of Object.values(r)) {
    if (typeof value === "string") chars += value.length;
    else if (Array.isArray(value)) for (const item of value as unknown[]) chars += Array.isArray(item) ? item.join().length + 16 : String(item).length + 16;
  }
  const bytes = "secretHash" in r ? r.secretHash.byteLength : 0;
  return 640 + 2 * chars + bytes;
}
