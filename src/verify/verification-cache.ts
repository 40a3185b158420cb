// Wires the VerifyKey cache to its invalidation listener (DESIGN.md §3), or, with
// KEYWARD_VERIFY_CACHE_TTL_SECONDS=0, leaves both out: every verification then reads the
// database (the "cold" mode), and no LISTEN connection is opened.
import type { VerifyCacheConfig } from "../config.ts";
import { describeDatabaseFailure } from "../db/database-errors.ts";
import { createCredentialCache, type CredentialCache } from "./credential-cache.ts";
import { createInvalidationListener, type InvalidationListener, type InvalidationListenerDeps } from "./invalidation-listener.ts";
import { createKeyLookup, type KeyLookup } from "./key-lookup.ts";
import { createTokenLookup, type TokenLookup } from "./token-lookup.ts";

/** The lookups the verifier uses, and the cache and listener behind them (undefined when disabled). */
export type VerificationCache = {
  lookupKey: KeyLookup;
  lookupToken: TokenLookup;
  /** Undefined when the cache is disabled. Its stats() are for metrics. */
  cache: CredentialCache | undefined;
  /** Undefined when the cache is disabled. Its state() is for metrics. */
  listener: InvalidationListener | undefined;
  /** Applies every committed credential change now (after the replica's own writes); never throws, logs a failure. */
  afterCommit(): Promise<void>;
  /** Opens the LISTEN connection (StartupError when it cannot). */
  start(): Promise<void>;
  stop(): Promise<void>;
};

/** Creates the lookups; `databaseUrl` is the URL the store connected to (DATABASE_URL or the embedded server's). */
export function createVerificationCache(deps: InvalidationListenerDeps & { config: VerifyCacheConfig; databaseUrl: string }): VerificationCache {
  const { config, db, clock, logger } = deps;
  if (config.ttlMs === 0) {
    return {
      lookupKey: createKeyLookup(db),
      lookupToken: createTokenLookup(db),
      cache: undefined,
      listener: undefined,
      afterCommit: async () => {},
      start: async () => {},
      stop: async () => {},
    };
  }
  const cache = createCredentialCache({
    keyLookup: createKeyLookup(db),
    tokenLookup: createTokenLookup(db),
    clock,
    options: { maxEntries: config.maxEntries, maxBytes: config.maxBytes, ttlMs: config.ttlMs, staleMs: config.staleMs },
  });
  const listener = createInvalidationListener({ ...deps, url: config.listenDatabaseUrl ?? deps.databaseUrl, target: cache });
  return {
    lookupKey: cache.lookupKey,
    lookupToken: cache.lookupToken,
    cache,
    listener,
    async afterCommit() {
      try {
        await listener.catchUp();
      } catch (e) {
        // The write is committed: its caller gets its answer; other replicas still hear of it.
        logger.warn({ reason: describeDatabaseFailure(e) }, "could not read the credential change log after a write; this replica's cache catches up at the next notification");
      }
    },
    start: () => listener.start(),
    stop: () => listener.stop(),
  };
}
