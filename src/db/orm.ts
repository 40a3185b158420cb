// MikroORM over PostgreSQL: one root EntityManager for the process (forked per unit of work
// by unit-of-work.ts only),
// a statically listed set of entities and migrations, and the ORM's own logs sent to pino.
import {
  MetadataProvider,
  type LogContext,
  type Logger as OrmLogger,
  type LoggerNamespace,
  type MikroORM as CoreMikroORM,
} from "@mikro-orm/core";
import { Migrator } from "@mikro-orm/migrations";
import { MikroORM, type EntityManager, type PostgreSqlDriver } from "@mikro-orm/postgresql";
import type { Logger } from "../logger.ts";
import { StartupError } from "../startup-error.ts";
import { entities } from "./entities.ts";
import { migrations } from "./migrations/index.ts";

/** The MikroORM instance keyward uses (PostgreSQL driver and entity manager). */
export type Orm = CoreMikroORM<PostgreSqlDriver, EntityManager>;

/** An open database: the ORM, its root EntityManager and the way to close it. */
export type Database = {
  orm: Orm;
  /** The root EntityManager: global context is disallowed; services get forks through createUnitsOfWork (unit-of-work.ts). */
  em: EntityManager;
  /** Closes the connection pool. Safe to call twice. */
  close(): Promise<void>;
};

/** Bounds on waiting for PostgreSQL, in milliseconds (see README "Database timeouts"). */
export type DatabaseTimeouts = {
  /** Opening a connection, and waiting for a free one in the pool. */
  connectMs: number;
  /** Any one query, measured by the client: a server (or pooler) that does not answer cannot hold a call longer. */
  queryMs: number;
};

/** The bounds used when the caller gives none (the configuration's defaults). */
const defaultDatabaseTimeouts: DatabaseTimeouts = { connectMs: 3000, queryMs: 5000 };

/** The message pg gives a query that ran past `query_timeout`. */
const queryReadTimeout = "Query read timeout";
/** ORM log namespaces sent to pino at debug. Not "query-params": parameters may hold secrets. */
const debugNamespaces: LoggerNamespace[] = ["query", "info", "discovery", "schema"];

/** Initialises the ORM and checks the database answers; throws StartupError if it cannot be reached. */
export async function openDatabase(opts: { url: string; logger: Logger; poolMax?: number; timeouts?: DatabaseTimeouts }): Promise<Database> {
  const logger = opts.logger.child({ component: "orm" });
  const timeouts = opts.timeouts ?? defaultDatabaseTimeouts;
  const where = describeDatabaseUrl(opts.url);
  let parsed: URL;
  try {
    parsed = new URL(opts.url);
  } catch {
    throw new StartupError("invalid database URL: expected postgres://user:password@host:port/database (check DATABASE_URL)");
  }
  if (opts.poolMax !== undefined && opts.poolMax < 2) {
    // Migrating holds one connection for its lock/transaction while the migrator uses another.
    throw new StartupError(`database pool size ${opts.poolMax} is too small: at least 2 connections are needed`);
  }

  const orm = await MikroORM.init<PostgreSqlDriver, EntityManager>({
    clientUrl: opts.url,
    entities,
    // defineEntity carries all metadata itself: the base provider needs neither reflect-metadata
    // nor ts-morph, and there is nothing worth caching to disk.
    metadataProvider: MetadataProvider,
    metadataCache: { enabled: false },
    preferTs: false,
    discovery: { warnWhenNoEntities: true },
    extensions: [Migrator],
    migrations: {
      migrationsList: migrations,
      transactional: true,
      allOrNothing: true,
      // No snapshot file: it would be written next to the sources at runtime.
      snapshot: false,
    },
    allowGlobalContext: false,
    // The database must exist already (the embedded server creates it); never CREATE DATABASE here.
    ensureDatabase: false,
    pool: opts.poolMax === undefined ? {} : { max: opts.poolMax },
    // MikroORM 7 hands these to `new pg.Pool(...)` (PostgreSqlConnection.mapOptions), and pg-pool
    // to every `new pg.Client(...)`.
    driverOptions: {
      // MikroORM reads only host, port, user, password and database from clientUrl; letting pg parse the
      // URL as well honours its query parameters (sslmode, application_name, ...).
      ...(parsed.search === "" ? {} : { connectionString: opts.url }),
      // Give up on a connection attempt (and on waiting for a free pooled connection) after a few
      // seconds instead of hanging until the OS gives up on an unanswered TCP connect.
      connectionTimeoutMillis: timeouts.connectMs,
      // Client-side bound on every query: works against a stopped server and behind PgBouncer
      // (which would otherwise queue the query for query_wait_timeout, 120 s by default).
      // Server-side statement_timeout / idle_in_transaction_session_timeout are not sent as startup
      // parameters: PgBouncer refuses unknown startup parameters ("unsupported startup parameter").
      query_timeout: timeouts.queryMs,
      keepAlive: true,
      onPoolCreated: dropConnectionsOnQueryTimeout,
    },
    colors: false,
    debug: logger.isLevelEnabled("debug") ? debugNamespaces : false,
    loggerFactory: (options) => new PinoOrmLogger(logger, options.debugMode ?? false),
  });

  const failure = await checkConnection(orm, timeouts);
  if (failure !== undefined) {
    await Promise.race([orm.close(true).catch(() => undefined), sleep(1000)]);
    const reason = scrub(failure.reason, opts.url);
    logger.debug({ error: failure.error === undefined ? undefined : scrubError(failure.error, opts.url) }, "database connection check failed");
    throw new StartupError(`cannot connect to PostgreSQL at ${where}: ${reason} (check DATABASE_URL)`);
  }
  logger.debug({ database: where }, "connected to PostgreSQL");

  let closing: Promise<void> | undefined;
  return {
    orm,
    em: orm.em,
    close() {
      closing ??= orm.close();
      return closing;
    },
  };
}

/** The pieces of a pooled `pg` client this module touches (@types/pg is not installed). */
type PgPooledClient = {
  query(...args: unknown[]): unknown;
  connection?: { stream?: { destroy(): void } };
};

/**
 * Closes a pooled connection whose query ran past `query_timeout`. pg rejects the query but keeps
 * the connection, still waiting for the answer (and, in a transaction whose ROLLBACK then also
 * timed out, still inside it); handed to the next caller it would queue behind the lost query or
 * run inside a transaction nobody owns. Closing it makes the pool discard it and the server roll
 * the transaction back.
 */
function dropConnectionsOnQueryTimeout(pool: { on(event: "connect", listener: (client: PgPooledClient) => void): void }): void {
  pool.on("connect", (client) => {
    const query = client.query.bind(client);
    client.query = (...args: unknown[]): unknown => {
      const result = query(...args);
      if (result instanceof Promise) {
        result.catch((e: unknown) => {
          if ((e as { message?: unknown } | null)?.message === queryReadTimeout) client.connection?.stream?.destroy();
        });
      }
      return result;
    };
  });
}

/** Connects and runs `select 1`, giving up after the connect and query bounds; returns why it failed, if it did. */
async function checkConnection(orm: Orm, timeouts: DatabaseTimeouts): Promise<{ reason: string; error?: unknown } | undefined> {
  const noAnswer = `no answer within ${formatSeconds(timeouts.connectMs + timeouts.queryMs)}`;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ reason: string }>((res) => {
    timer = setTimeout(() => res({ reason: noAnswer }), timeouts.connectMs + timeouts.queryMs + 1000);
  });
  const check = (async (): Promise<{ reason: string; error?: unknown } | undefined> => {
    try {
      await orm.connect();
      const result = await orm.checkConnection();
      return result.ok ? undefined : { reason: explain(result.error, result.reason, noAnswer), error: result.error };
    } catch (e) {
      return { reason: explain(e, e instanceof Error ? e.message : String(e), noAnswer), error: e };
    }
  })();
  try {
    return await Promise.race([check, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** "2 s", "0.5 s": a duration in ms for messages. */
function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/** Turns a pg / network error into a short phrase an operator can act on. */
function explain(error: unknown, fallback: string, noAnswer: string): string {
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
  const message = error instanceof Error && error.message !== "" ? error.message : fallback;
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "host not found";
    case "ETIMEDOUT":
      return "connection timed out";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "host unreachable";
    case "ECONNRESET":
      return "connection reset by the server";
    default:
      if (/timeout|timed out/i.test(message)) return noAnswer;
      return message === "" ? "unknown error" : message;
  }
}

/** `host:port/database` (or the socket folder) of a database URL, for messages: never the user or password. */
export function describeDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
    // A `host` parameter naming a folder (the embedded server's socket) wins over the URL's host.
    const socketDir = u.searchParams.get("host");
    if (socketDir?.startsWith("/") === true) return `${socketDir} (socket)/${database}`;
    return `${u.hostname}:${u.port === "" ? "5432" : u.port}/${database}`;
  } catch {
    return "the configured database";
  }
}

/** Removes the URL's password (raw and decoded) from a text, in case a driver echoes it. */
function scrub(text: string, url: string): string {
  let password = "";
  try {
    password = new URL(url).password;
  } catch {
    return text;
  }
  let out = text.replaceAll(url, "[database url]");
  // Very short "passwords" would mangle ordinary words; the drivers do not echo passwords anyway.
  for (const p of new Set([password, safeDecode(password)])) if (p.length >= 6) out = out.replaceAll(p, "[redacted]");
  return out;
}

function scrubError(error: unknown, url: string): { message: string; code?: string } {
  const message = scrub(error instanceof Error ? error.message : String(error), url);
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
  return code === undefined ? { message } : { message, code };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/** MikroORM's Logger interface on top of pino: ORM output at debug, warnings and errors at their level. */
class PinoOrmLogger implements OrmLogger {
  readonly #logger: Logger;
  #debugMode: boolean | LoggerNamespace[];

  constructor(logger: Logger, debugMode: boolean | LoggerNamespace[]) {
    this.#logger = logger;
    this.#debugMode = debugMode;
  }

  log(namespace: string, message: string, context?: LogContext): void {
    if (!this.isEnabled(namespace as LoggerNamespace, context)) return;
    const fields = { namespace, ...(context?.label === undefined ? {} : { label: context.label }) };
    const text = clean(message);
    if (context?.level === "error") this.#logger.error(fields, text);
    else if (context?.level === "warning") this.#logger.warn(fields, text);
    else this.#logger.debug(fields, text);
  }

  error(namespace: string, message: string, context?: LogContext): void {
    this.log(namespace, message, { ...context, level: "error" });
  }

  warn(namespace: string, message: string, context?: LogContext): void {
    this.log(namespace, message, { ...context, level: "warning" });
  }

  logQuery(context: LogContext): void {
    const namespace = context.namespace ?? "query";
    if (!this.isEnabled(namespace, context) || context.query === undefined) return;
    // Failed queries arrive with level "error"; the caller gets the exception, so debug is enough here.
    this.#logger.debug(
      { namespace, took: context.took, results: context.results, affected: context.affected },
      clean(context.query),
    );
  }

  setDebugMode(debugMode: boolean | LoggerNamespace[]): void {
    this.#debugMode = debugMode;
  }

  isEnabled(namespace: LoggerNamespace, context?: LogContext): boolean {
    if (context?.level === "warning" || context?.level === "error") {
      // Queries that failed are reported to the caller; only non-query warnings always show.
      if (context.query === undefined) return true;
    }
    if (context?.enabled !== undefined) return context.enabled;
    if (namespace === "deprecated") return true;
    const mode = context?.debugMode ?? this.#debugMode;
    return mode === true || (Array.isArray(mode) && mode.includes(namespace));
  }
}

/** One line, no ANSI colours. */
function clean(message: string): string {
  // eslint-disable-next-line no-control-regex
  return message.replace(/\x1b\[[0-9;]*m/g, "").replace(/\s*\n\s*/g, " ").trim();
}
