// Composition root: config → logger → database → services → server → listen.
import { createAuditLog } from "./audit/audit-log.ts";
import { createAuditService } from "./audit/audit-service.ts";
import { createRefusalFold } from "./audit/refusal-fold.ts";
import { systemClock, type Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import { createDatabaseMonitor, createDatabaseProbe } from "./db/database-monitor.ts";
import { openStore, type Store } from "./db/store.ts";
import { createUnitsOfWork } from "./db/unit-of-work.ts";
import { createAuthenticator } from "./directory/authenticator.ts";
import { createDirectoryService } from "./directory/directory-service.ts";
import { createKeyService } from "./keys/key-service.ts";
import { createInvalidationWatch } from "./keys/invalidation-watch.ts";
import { createOidcVerifier } from "./oidc/oidc-verifier.ts";
import { createExchangeService } from "./tokens/exchange-service.ts";
import { createPolicyService } from "./policies/policy-service.ts";
import type { Logger } from "./logger.ts";
import { createMetrics, registerCacheMetrics, registerInvalidationMetrics, registerPoolMetrics, type Metrics } from "./metrics.ts";
import { createAuditHandlers } from "./server/audit-handlers.ts";
import { createAuthInterceptor } from "./server/auth-interceptor.ts";
import { createDirectoryHandlers } from "./server/directory-handlers.ts";
import { createErrorInterceptor } from "./server/error-interceptor.ts";
import { createDeadlineInterceptor } from "./server/deadline-interceptor.ts";
import { createHealthStatus } from "./server/health.ts";
import { withHttpRoutes } from "./server/http-routes.ts";
import { createKeyHandlers } from "./server/key-handlers.ts";
import { createPolicyHandlers } from "./server/policy-handlers.ts";
import { listen } from "./server/listener.ts";
import { createLoggingInterceptor } from "./server/logging-interceptor.ts";
import { createRoutes } from "./server/routes.ts";
import { createRpcHandler } from "./server/rpc-handler.ts";
import { createTokenHandlers } from "./server/token-handlers.ts";
import { createValidationInterceptor } from "./server/validation-interceptor.ts";
import { withVerifyFastPath, type FastPathStats } from "./server/verify-fast-path.ts";
import { createKeyEncryption, loadKeyEncryptionKey } from "./tokens/key-encryption.ts";
import { signingKeyRepository } from "./tokens/signing-key-repository.ts";
import { startSigningKeys, type SigningKeys } from "./tokens/signing-keys.ts";
import { startTokenCleanup } from "./tokens/token-cleanup.ts";
import { createTokenMinter } from "./tokens/token-minter.ts";
import { createTokenService } from "./tokens/token-service.ts";
import { createLastUsedRecorder } from "./verify/last-used.ts";
import { createTokenRecognizer } from "./verify/token-recognition.ts";
import { createVerificationCache, type VerificationCache } from "./verify/verification-cache.ts";
import { createVerifier } from "./verify/verifier.ts";

/** A running keyward instance. */
export type Keyward = {
  readonly url: string;
  readonly port: number;
  readonly store: Store;
  /** This instance's metrics (served at GET /metrics); register more on `metrics.registry`. */
  readonly metrics: Metrics;
  /** The VerifyKey cache and its invalidation listener (for metrics and tests; both undefined when the cache is disabled). */
  readonly verification: Pick<VerificationCache, "cache" | "listener">;
  /** Writes the collected last-used times now (they are otherwise written every few seconds). */
  flushLastUsed(): Promise<void>;
  /** Adds the folded `auth.refused` counts collected in memory to their audit events now (otherwise every few seconds). */
  flushRefusals(): Promise<void>;
  /** How many VerifyKey calls the fast path answered and handed to connect (zeros when KEYWARD_VERIFY_FAST_PATH=0). */
  verifyFastPathStats(): FastPathStats;
  /** Graceful shutdown: stop accepting, finish in-flight calls, close the database. */
  stop(): Promise<void>;
};

/**
 * The most the final writes of a stop (last-used times, folded refusal counts) take, in ms:
 * one connection plus one query, and a second for the failure to be logged. README's "Under a
 * supervisor" counts it in the stop timeout.
 */
export function flushBoundMs(config: Pick<Config, "dbConnectTimeoutMs" | "dbQueryTimeoutMs">): number {
  return config.dbConnectTimeoutMs + config.dbQueryTimeoutMs + 1_000;
}

/** The domain services of one keyward instance, wired to one database. */
function createServices(opts: { config: Config; logger: Logger; clock: Clock; store: Store; signingKeys: SigningKeys; metrics: Metrics }) {
  const { config, logger, clock, store, signingKeys, metrics } = opts;
  const db = store.db;
  // The cache first: every committed write catches it up with the change log before returning.
  // Invalidation metrics read the listener at scrape time: it is made inside the verification
  // cache. (No cache, no listener: KEYWARD_VERIFY_CACHE_TTL_SECONDS=0 registers neither.)
  const observeInvalidationLag = config.verifyCache.ttlMs === 0
    ? undefined
    : registerInvalidationMetrics(metrics.registry, () => verification.listener?.state() ?? { connected: false }).observeInvalidationLag;
  const verification = createVerificationCache({
    config: config.verifyCache, db, databaseUrl: store.url, clock, logger, timeouts: { connectMs: config.dbConnectTimeoutMs, queryMs: config.dbQueryTimeoutMs },
    observeLag: observeInvalidationLag,
  });
  const { cache, listener } = verification;
  if (cache !== undefined) {
    registerCacheMetrics(metrics.registry, () => {
      const s = cache.stats();
      return { hits: s.hits, misses: s.misses, evictions: s.evictions + s.invalidations, entries: s.size, bytes: s.bytes };
    });
  }
  const units = createUnitsOfWork(db, { afterCommit: verification.afterCommit });
  const catalogue = { categories: config.permissionCategories };
  const audit = createAuditLog({ units, clock, logger });
  const lastUsed = createLastUsedRecorder({ db, logger, onBatch: metrics.lastUsedBatch });
  const tokenRecognizer = createTokenRecognizer({
    lookup: verification.lookupToken, signingKeys, clock, catalogue, tokenIssuer: config.tokenIssuer, audienceDomain: config.audienceDomain,
  });
  const verifier = createVerifier({ lookup: verification.lookupKey, clock, catalogue, keyPrefix: config.keyPrefix, keyPepper: config.keyPepper, lastUsed, tokens: tokenRecognizer });
  const minter = createTokenMinter({ signingKeys, clock, tokenIssuer: config.tokenIssuer, audienceDomain: config.audienceDomain });
  const refusals = createRefusalFold({ db, clock, logger });
  // ID tokens of CI workflows, from the configured issuers only (DESIGN.md §4).
  const idTokens = createOidcVerifier({ issuers: config.oidcIssuers, clock, logger });
  return {
    audit,
    verification,
    lastUsed,
    refusals,
    verifier,
    authenticate: createAuthenticator({ verifier, refusals }),
    keys: createKeyService({ units, audit, clock, catalogue, keyPrefix: config.keyPrefix, keyPepper: config.keyPepper }),
    watch: createInvalidationWatch({ db, listener, catalogue, logger, ...config.watch }),
    directory: createDirectoryService({ units, audit, clock, catalogue }),
    policies: createPolicyService({ units, audit, clock, catalogue, audienceDomain: config.audienceDomain, publicUrl: config.publicUrl, idTokens }),
    auditReader: createAuditService({ audit, catalogue }),
    tokens: createTokenService({ units, audit, clock, catalogue, minter, signingKeys }),
    idTokens,
    exchange: createExchangeService({ units, audit, clock, catalogue, audienceDomain: config.audienceDomain, idTokens, minter, refusals }),
  };
}

/**
 * Starts keyward with the given configuration (tests inject a logger and a clock).
 * `metricLabels` go on every metric of this instance (`serve --workers N` adds `worker`).
 */
export async function startKeyward(opts: {
  config: Config;
  logger: Logger;
  clock?: Clock;
  store?: Store;
  metricLabels?: Readonly<Record<string, string>>;
  /** The log message once listening (default "keyward listening"; a worker of `serve --workers N` says "worker listening"). */
  listeningMessage?: string;
  /** What GET /metrics answers (default: this instance's `metrics.exposition()`; workers answer for all workers). */
  exposition?: (own: Metrics) => Promise<string>;
}): Promise<Keyward> {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const store = opts.store ?? (await openStore(config, logger));
  const metrics = createMetrics({ ...(opts.metricLabels === undefined ? {} : { labels: opts.metricLabels }), enabled: config.metricsEnabled });
  let signingKeys: SigningKeys;
  try {
    registerPoolMetrics(metrics.registry, await store.db.orm.driver.getConnection().getNativeClient());
    const units = createUnitsOfWork(store.db);
    const { kek, source } = await loadKeyEncryptionKey(config, logger, () => units.read({}, (uow) => signingKeyRepository.sealedUnder(uow)));
    signingKeys = await startSigningKeys({ units, clock, logger, encryption: createKeyEncryption(kek, source) });
  } catch (e) {
    if (!opts.store) await store.close();
    throw e;
  }
  const services = createServices({ config, logger, clock, store, signingKeys, metrics });
  const tokenCleanup = startTokenCleanup({ db: store.db, logger });
  // Health follows the database: a periodic probe, and every request whose query finds it unavailable.
  const health = createHealthStatus();
  const monitor = createDatabaseMonitor({ probe: createDatabaseProbe(store.db), intervalMs: config.dbHealthIntervalMs, timeoutMs: config.dbHealthTimeoutMs, logger });
  monitor.onChange((state) => health.setComponent("database", state));
  const errorClassifier = { isUnavailable: (e: unknown) => monitor.report(e) };

  const connectHandler = createRpcHandler({
    routes: createRoutes({
      health,
      keys: createKeyHandlers({ keys: services.keys, verifier: services.verifier, watch: services.watch }),
      policies: createPolicyHandlers({ policies: services.policies }),
      directory: createDirectoryHandlers({ directory: services.directory, audienceDomain: config.audienceDomain }),
      audit: createAuditHandlers({ audit: services.auditReader }),
      tokens: createTokenHandlers({ tokens: services.tokens, exchange: services.exchange }),
    }),
    // Order matters: errors (outermost) → logging → deadline → validation → authentication.
    // The deadline interceptor answers at the caller's deadline whatever is still running
    // below it. A request with unknown fields or undefined enum values is refused before its
    // credential is looked at, whoever sends it (the refusal says nothing about credentials).
    interceptors: [
      createErrorInterceptor(logger, errorClassifier),
      createLoggingInterceptor(logger, errorClassifier, metrics),
      createDeadlineInterceptor(),
      createValidationInterceptor(),
      createAuthInterceptor(services.authenticate),
    ],
    readMaxBytes: config.maxRequestBytes,
    logger,
    metrics,
  });

  // VerifyKey's common shapes are answered before connect (issue 12; verify-fast-path.ts).
  const fastPath = config.verifyFastPath ? withVerifyFastPath(connectHandler, { verifier: services.verifier, logger, metrics, readMaxBytes: config.maxRequestBytes, classifier: errorClassifier }) : undefined;

  let listener;
  try {
    await services.verification.start();
    listener = await listen({
      host: config.host,
      port: config.port,
      handler: withHttpRoutes(fastPath ?? connectHandler, { health: () => health.report(), jwks: () => services.tokens.jwks(), metrics: () => (opts.exposition ?? ((m: Metrics) => m.exposition()))(metrics), logger }),
      logger,
      limits: config.limits,
    });
  } catch (e) {
    monitor.stop();
    signingKeys.stop();
    services.idTokens.stop();
    tokenCleanup.stop();
    await services.verification.stop();
    await services.lastUsed.stop();
    await services.refusals.stop();
    if (!opts.store) await store.close();
    throw e;
  }
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${listener.port}`;
  logger.info({ url, embeddedDatabase: store.embedded }, opts.listeningMessage ?? "keyward listening");

  let stopping: Promise<void> | undefined;
  return {
    url,
    port: listener.port,
    store,
    metrics,
    verification: { cache: services.verification.cache, listener: services.verification.listener },
    flushLastUsed: () => services.lastUsed.flush(),
    flushRefusals: () => services.refusals.flush(),
    verifyFastPathStats: () => fastPath?.stats() ?? { answered: 0, fellBack: 0, verifying: 0 },
    stop() {
      stopping ??= (async () => {
        health.shutdown();
        // WatchInvalidations streams end (OK) now, like health watches: the drain does not wait for them.
        services.watch.shutdown();
        monitor.stop();
        signingKeys.stop();
        services.idTokens.stop();
        tokenCleanup.stop();
        await listener.close(config.shutdownGraceMs);
        // Both final writes at once, and no longer than one connection plus one query (and a
        // margin for the failure to be logged): a hung database must not hold the stop.
        // The LISTEN connection closes meanwhile (bounded on its own).
        const verificationStopped = services.verification.stop();
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise((r) => (timer = setTimeout(r, flushBoundMs(config))));
        await Promise.race([Promise.all([services.lastUsed.stop(), services.refusals.stop()]), bound]);
        clearTimeout(timer);
        await verificationStopped;
        if (!opts.store) await store.close();
        logger.info("keyward stopped");
      })();
      return stopping;
    },
  };
}
