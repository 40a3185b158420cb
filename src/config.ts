// Environment → one frozen, validated configuration object. Every bad value stops the
// service with a message naming the variable.
import { isAbsolute, resolve } from "node:path";
import { isLoopbackUrl } from "./common/loopback-url.ts";
import { StartupError } from "./startup-error.ts";

/** The log levels pino accepts, for LOG_LEVEL. */
const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** The default permission categories (DESIGN.md §1), plus keyward's own. */
export const defaultPermissionCategories = [
  "harden_runner",
  "orchestrate_security",
  "workflow_run_policies",
  "oss_package_security",
  "apps_and_pats",
  "secure_registry",
  "keys",
  "policies",
  "directory",
  "audit",
] as const;

/** keyward's configuration, validated once at start. */
export type Config = Readonly<{
  host: string;
  port: number;
  /** Unset: start an embedded PostgreSQL under `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  audienceDomain: string;
  /** Issuers whose OIDC ID tokens ExchangeToken accepts (KEYWARD_OIDC_ISSUERS): https, or http on loopback. */
  oidcIssuers: readonly string[];
  /** The `iss` of tokens keyward mints (KEYWARD_TOKEN_ISSUER, default `https://<audience domain>`). */
  tokenIssuer: string;
  /**
   * The key-encryption key that seals the private parts of keyward's signing keys
   * (KEYWARD_KEY_ENCRYPTION_KEY: 32 bytes, base64 or base64url). Unset: generated once into
   * `<dataDir>/key-encryption-key` (mode 600); replicas sharing a database must share it.
   * Never logged.
   */
  keyEncryptionKey: Buffer | undefined;
  /**
   * keyward's public base URL as CI workflows reach it (KEYWARD_PUBLIC_URL: http(s), no
   * trailing slash, no query), written into every policy's workflow snippet. Unset: the
   * snippet reads the repository variable `vars.KEYWARD_URL`.
   */
  publicUrl: string | undefined;
  logLevel: (typeof logLevels)[number];
  /** `json`, `pretty`, or `auto` (pretty when stdout is a terminal). */
  logFormat: "json" | "pretty" | "auto";
  /** Largest request message accepted, in bytes. */
  maxRequestBytes: number;
  /**
   * WatchInvalidations: heartbeat interval in ms (KEYWARD_WATCH_HEARTBEAT_MS, default 10000),
   * most open streams per process (KEYWARD_WATCH_MAX_STREAMS, default 1000) and per tenant in
   * a process (KEYWARD_WATCH_MAX_STREAMS_PER_TENANT, default 100: one tenant cannot take them all).
   */
  watch: Readonly<{ heartbeatMs: number; maxStreams: number; maxStreamsPerTenant: number }>;
  /** Whether common VerifyKey calls are answered by the fast path (KEYWARD_VERIFY_FAST_PATH, default 1; 0 turns it off). */
  verifyFastPath: boolean;
  /** Prefix of every API key, before the kind (e.g. `kw` → `kw_admin_...`). */
  keyPrefix: string;
  /** Optional server pepper: when set, secrets are hashed with HMAC-SHA-256. */
  keyPepper: string | undefined;
  permissionCategories: readonly string[];
  /** Per-call metrics recording (KEYWARD_METRICS, default on; `0` turns it off, to measure its cost). */
  metricsEnabled: boolean;
  /** How long shutdown waits for in-flight calls before closing connections. */
  shutdownGraceMs: number;
  /** Connection limits of the listener (slow, idle and too many clients), see ServerLimits. */
  limits: ServerLimits;
  /** Bound on opening a database connection and on waiting for a free pooled one, in ms (KEYWARD_DB_CONNECT_TIMEOUT_MS). */
  dbConnectTimeoutMs: number;
  /** Bound on every database query (client side, whatever the server does), in ms (KEYWARD_DB_QUERY_TIMEOUT_MS). */
  dbQueryTimeoutMs: number;
  /** How often the database monitor runs `select 1`, in ms (KEYWARD_DB_HEALTH_INTERVAL_MS). */
  dbHealthIntervalMs: number;
  /** How long the monitor's `select 1` may take before the database counts as unavailable, in ms (KEYWARD_DB_HEALTH_TIMEOUT_MS). */
  dbHealthTimeoutMs: number;
  /** The VerifyKey cache and its invalidation (DESIGN.md §3), see VerifyCacheConfig. */
  verifyCache: VerifyCacheConfig;
}>;

/** The verification cache (src/verify/credential-cache.ts) and its LISTEN/NOTIFY invalidation. */
export type VerifyCacheConfig = Readonly<{
  /** Most credential records held (KEYWARD_VERIFY_CACHE_ENTRIES). */
  maxEntries: number;
  /** Most bytes the held records take, estimated per record (KEYWARD_VERIFY_CACHE_MAX_BYTES). */
  maxBytes: number;
  /**
   * How long a record is held at most, in ms, as a backstop to invalidation
   * (KEYWARD_VERIFY_CACHE_TTL_SECONDS); 0 disables the cache (every verification reads the
   * database, and no LISTEN connection is opened).
   */
  ttlMs: number;
  /**
   * How long a replica that lost its LISTEN connection keeps answering from its cache, in ms
   * (KEYWARD_VERIFY_STALE_SECONDS); then verifications answer Unavailable until it is back.
   * 0: Unavailable as soon as the connection is lost.
   */
  staleMs: number;
  /**
   * Where the LISTEN connection goes (KEYWARD_LISTEN_DATABASE_URL): a direct connection to
   * PostgreSQL when DATABASE_URL goes through PgBouncer in transaction mode. Unset: the
   * database URL (DATABASE_URL or the embedded server's).
   */
  listenDatabaseUrl: string | undefined;
}>;

/**
 * Bounds on what one client connection may hold, so that slow, silent or too many clients
 * cannot exhaust the server's sockets. All times are in milliseconds.
 */
export type ServerLimits = Readonly<{
  /** A new connection must send its first bytes, and every request its whole header block, within this. */
  headersTimeoutMs: number;
  /**
   * A request (headers and body) must be fully received within this. Only the request is
   * bounded: a long response (a server stream such as health Watch) is not cut.
   */
  requestTimeoutMs: number;
  /** An HTTP/1.1 keep-alive connection between requests, or an HTTP/2 session with no open stream, is closed after this. */
  idleTimeoutMs: number;
  /** Most connections open at once; more are closed as soon as they are accepted. */
  maxConnections: number;
}>;

type Env = Readonly<Record<string, string | undefined>>;

/** Reads and validates the configuration; throws StartupError naming the bad variable. */
export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const dataDir = str(env, "KEYWARD_DATA_DIR") ?? ".keyward";
  const audienceDomain = domain(env, "KEYWARD_AUDIENCE_DOMAIN") ?? "keyward.localhost";
  return Object.freeze({
    host: host(env, "HOST") ?? "127.0.0.1",
    port: integer(env, "PORT", 8080, 0, 65535),
    databaseUrl: postgresUrl(env, "DATABASE_URL"),
    dataDir: isAbsolute(dataDir) ? dataDir : resolve(cwd, dataDir),
    audienceDomain,
    oidcIssuers: Object.freeze(issuers(env, "KEYWARD_OIDC_ISSUERS") ?? ["https://token.actions.githubusercontent.com"]),
    tokenIssuer: tokenIssuer(env, "KEYWARD_TOKEN_ISSUER") ?? `https://${audienceDomain}`,
    keyEncryptionKey: encryptionKey(env, "KEYWARD_KEY_ENCRYPTION_KEY"),
    publicUrl: publicUrl(env, "KEYWARD_PUBLIC_URL"),
    logLevel: oneOf(env, "LOG_LEVEL", logLevels) ?? "info",
    logFormat: oneOf(env, "KEYWARD_LOG_FORMAT", ["json", "pretty", "auto"] as const) ?? "auto",
    maxRequestBytes: integer(env, "KEYWARD_MAX_REQUEST_BYTES", 256 * 1024, 1024, 64 * 1024 * 1024),
    verifyFastPath: integer(env, "KEYWARD_VERIFY_FAST_PATH", 1, 0, 1) === 1,
    watch: Object.freeze({
      heartbeatMs: integer(env, "KEYWARD_WATCH_HEARTBEAT_MS", 10_000, 10, 600_000),
      maxStreams: integer(env, "KEYWARD_WATCH_MAX_STREAMS", 1000, 1, 1_000_000),
      maxStreamsPerTenant: integer(env, "KEYWARD_WATCH_MAX_STREAMS_PER_TENANT", 100, 1, 1_000_000),
    }),
    keyPrefix: pattern(env, "KEYWARD_KEY_PREFIX", /^[a-z][a-z0-9]{1,7}$/, "2 to 8 lowercase letters or digits, starting with a letter") ?? "kw",
    keyPepper: pepper(env, "KEYWARD_KEY_PEPPER"),
    permissionCategories: Object.freeze(categories(env, "KEYWARD_PERMISSION_CATEGORIES") ?? [...defaultPermissionCategories]),
    metricsEnabled: (oneOf(env, "KEYWARD_METRICS", ["0", "1"] as const) ?? "1") === "1",
    shutdownGraceMs: integer(env, "KEYWARD_SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
    // Database bounds (README "Database timeouts"): every wait on PostgreSQL ends within these.
    dbConnectTimeoutMs: integer(env, "KEYWARD_DB_CONNECT_TIMEOUT_MS", 3000, 100, 600_000),
    dbQueryTimeoutMs: integer(env, "KEYWARD_DB_QUERY_TIMEOUT_MS", 5000, 100, 3_600_000),
    dbHealthIntervalMs: integer(env, "KEYWARD_DB_HEALTH_INTERVAL_MS", 1000, 100, 60_000),
    dbHealthTimeoutMs: integer(env, "KEYWARD_DB_HEALTH_TIMEOUT_MS", 2000, 100, 60_000),
    limits: serverLimits(env),
    verifyCache: Object.freeze({
      maxEntries: integer(env, "KEYWARD_VERIFY_CACHE_ENTRIES", 100_000, 1, 10_000_000),
      // A key record takes about 1.2 KB of heap (measured): 128 MiB holds the default 100000 entries.
      maxBytes: integer(env, "KEYWARD_VERIFY_CACHE_MAX_BYTES", 128 * 1024 * 1024, 1024 * 1024, 16 * 1024 * 1024 * 1024),
      ttlMs: integer(env, "KEYWARD_VERIFY_CACHE_TTL_SECONDS", 300, 0, 86_400) * 1000,
      staleMs: integer(env, "KEYWARD_VERIFY_STALE_SECONDS", 30, 0, 3_600) * 1000,
      listenDatabaseUrl: postgresUrl(env, "KEYWARD_LISTEN_DATABASE_URL"),
    }),
  });
}

/** The listener's timeouts and connection cap (README "Operations" documents the defaults). */
function serverLimits(env: Env): ServerLimits {
  const headersTimeoutMs = integer(env, "KEYWARD_HEADERS_TIMEOUT_MS", 10_000, 100, 600_000);
  const requestTimeoutMs = integer(env, "KEYWARD_REQUEST_TIMEOUT_MS", 30_000, 100, 3_600_000);
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new StartupError(
      `invalid KEYWARD_HEADERS_TIMEOUT_MS=${headersTimeoutMs}: must not exceed KEYWARD_REQUEST_TIMEOUT_MS=${requestTimeoutMs} (the headers are part of the request)`,
    );
  }
  return Object.freeze({
    headersTimeoutMs,
    requestTimeoutMs,
    // Longer than the 60 s idle timeout of common load balancers, so that they, not
    // keyward, close a pooled upstream connection (no race on a connection being reused).
    idleTimeoutMs: integer(env, "KEYWARD_IDLE_TIMEOUT_MS", 65_000, 100, 3_600_000),
    maxConnections: integer(env, "KEYWARD_MAX_CONNECTIONS", 4_096, 1, 1_000_000),
  });
}

function invalid(name: string, value: string, why: string): StartupError {
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return new StartupError(`invalid ${name}=${JSON.stringify(shown)}: ${why}`);
}

function str(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw invalid(name, raw, `expected a whole number from ${min} to ${max}`);
  const value = Number(raw);
  if (value < min || value > max) throw invalid(name, raw, `expected a whole number from ${min} to ${max}`);
  return value;
}

function host(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  if (!/^[A-Za-z0-9.\-:\[\]]+$/.test(raw)) throw invalid(name, raw, "expected a host name or IP address");
  return raw;
}

function postgresUrl(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  // Never echo the value: it may carry the database password.
  const url = URL.parse(raw);
  if (url === null) throw new StartupError(`invalid ${name}: not a URL (expected postgres://user:password@host:port/database)`);
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new StartupError(`invalid ${name}: scheme must be postgres:// or postgresql://, got ${url.protocol}//`);
  }
  if (url.hostname === "") throw new StartupError(`invalid ${name}: no host (expected postgres://user:password@host:port/database)`);
  return raw;
}

function domain(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  if (!/^(?=.{1,200}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(raw)) {
    throw invalid(name, raw, "expected a lowercase DNS domain such as api.example.com");
  }
  return raw;
}

function issuers(env: Env, name: string): string[] | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  const list = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const issuer of list) {
    const url = URL.parse(issuer);
    if (url === null) throw invalid(name, issuer, "each issuer must be an https:// URL (comma-separated)");
    if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackUrl(url))) {
      throw invalid(name, issuer, "each issuer must be an https:// URL (http:// only on loopback, for tests)");
    }
  }
  if (list.length === 0) throw invalid(name, raw, "expected at least one issuer URL");
  // Written as tokens carry `iss` (GitHub's has no trailing slash); the verifier ignores a
  // trailing slash on either side, so `https://token.actions.githubusercontent.com/` works too.
  return list.map((issuer) => issuer.replace(/\/+$/, ""));
}

function tokenIssuer(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  const url = URL.parse(raw);
  if (url === null || (url.protocol !== "https:" && url.protocol !== "http:")) throw invalid(name, raw, "expected an https:// (or http://) URL");
  return raw;
}

function publicUrl(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  const expected = "an http(s) base URL such as https://keyward.example.com (no query, no credentials)";
  const url = URL.parse(raw);
  if (url === null) throw invalid(name, raw, `expected ${expected}`);
  // Credentials in the URL are refused without echoing them.
  if (url.username !== "" || url.password !== "") throw new StartupError(`invalid ${name}: expected ${expected}`);
  if ((url.protocol !== "https:" && url.protocol !== "http:") || raw.includes("?") || raw.includes("#")) {
    throw invalid(name, raw, `expected ${expected}`);
  }
  // Paths are kept (keyward may sit under a prefix behind a proxy); one trailing slash or more is dropped.
  return url.href.replace(/\/+$/, "");
}

function encryptionKey(env: Env, name: string): Buffer | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  // Never echo the value: it is a secret.
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(raw) ? Buffer.from(raw.replaceAll("-", "+").replaceAll("_", "/"), "base64") : Buffer.alloc(0);
  if (bytes.length !== 32) throw new StartupError(`invalid ${name}: expected 32 random bytes in base64 (e.g. \`openssl rand -base64 32\`)`);
  return bytes;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[]): T | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  const value = raw.toLowerCase();
  if (!(allowed as readonly string[]).includes(value)) throw invalid(name, raw, `expected one of ${allowed.join(", ")}`);
  return value as T;
}

function pattern(env: Env, name: string, re: RegExp, what: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  if (!re.test(raw)) throw invalid(name, raw, `expected ${what}`);
  return raw;
}

function pepper(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  // Never echo the value: it is a secret.
  if (raw.length < 32) throw new StartupError(`invalid ${name}: must be at least 32 characters of random data`);
  return raw;
}

function categories(env: Env, name: string): string[] | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  const list = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const c of list) {
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(c)) throw invalid(name, c, "each category must be lowercase letters, digits and _");
  }
  for (const own of ["keys", "policies", "directory", "audit"]) if (!list.includes(own)) list.push(own);
  return [...new Set(list)];
}
