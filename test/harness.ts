// Starts a real keyward server on a free 127.0.0.1 port against the run's PostgreSQL,
// with its logs captured and its clock under the test's control, plus real clients.
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { Writable } from "node:stream";
import { loadConfig, type Config } from "../src/config.ts";
import type { Clock } from "../src/clock.ts";
import { createLogger } from "../src/logger.ts";
import { startKeyward, type Keyward } from "../src/main.ts";
import { createAuditLog } from "../src/audit/audit-log.ts";
import { bootstrapTenant } from "../src/directory/bootstrap.ts";
import { createUnitsOfWork } from "../src/db/unit-of-work.ts";
import { testKeyEncryptionKey } from "./kek.ts";

const silentLogger = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });

/** A clock the test moves by hand, so expiry is tested without sleeping. */
export type TestClock = Clock & { advance(ms: number): void; set(date: Date): void };

/** Creates a TestClock starting at the real current time. */
export function createTestClock(start: Date = new Date()): TestClock {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    advance: (ms) => {
      now += ms;
    },
    set: (date) => {
      now = date.getTime();
    },
  };
}

/** A running test server and ways to talk to it. */
export type TestServer = Keyward & {
  config: Config;
  clock: TestClock;
  /** Every log line the server wrote, raw. */
  logs: string[];
  /** Connect protocol (JSON) over HTTP/1.1. */
  connectTransport: Transport;
  /** gRPC over HTTP/2. */
  grpcTransport: Transport;
  /** A typed client on the Connect/HTTP 1.1 transport. */
  client<S extends DescService>(service: S, transport?: Transport): Client<S>;
};

/** The run's database, set by test/global-setup.ts. */
export function testDatabaseUrl(): string {
  const url = process.env["KEYWARD_TEST_DATABASE_URL"];
  if (url === undefined) throw new Error("KEYWARD_TEST_DATABASE_URL is unset: run the tests through jest (global setup)");
  return url;
}

/** Starts a server; `env` overrides configuration variables. */
export async function startTestServer(opts: { env?: Record<string, string>; clock?: TestClock } = {}): Promise<TestServer> {
  const config = loadConfig({
    PORT: "0", HOST: "127.0.0.1", DATABASE_URL: testDatabaseUrl(), LOG_LEVEL: "debug", KEYWARD_SHUTDOWN_GRACE_MS: "2000",
    // One KEK for every test server: the shared database's signing keys are sealed under it ("" in `env` unsets it).
    KEYWARD_KEY_ENCRYPTION_KEY: testKeyEncryptionKey,
    ...opts.env,
  });
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
      cb();
    },
  });
  const logger = createLogger({ level: config.logLevel, destination });
  const clock = opts.clock ?? createTestClock();
  const keyward = await startKeyward({ config, logger, clock });
  const connectTransport = createConnectTransport({ baseUrl: keyward.url, httpVersion: "1.1" });
  const grpcTransport = createGrpcTransport({ baseUrl: keyward.url });
  return {
    ...keyward,
    config,
    clock,
    logs,
    connectTransport,
    grpcTransport,
    client: (service, transport = connectTransport) => createClient(service, transport),
  };
}

let tenantCounter = 0;

/** A fresh tenant with its bootstrap admin key. */
export type TestTenant = { slug: string; adminKey: string };

/** Creates a tenant no other test uses (unique slug) and returns its admin key. */
export async function createTestTenant(server: TestServer, prefix = "t"): Promise<TestTenant> {
  tenantCounter += 1;
  const slug = `${prefix}-${process.pid}-${tenantCounter}-${Math.random().toString(36).slice(2, 8)}`.slice(0, 63).replace(/-+$/, "");
  return { slug, adminKey: await bootstrap(server, slug) };
}

/**
 * Runs `keyward bootstrap --tenant <slug>` against the server's database; returns the new admin
 * key. The server's verification cache then catches up with it (as on hearing of it), so the
 * next call sees it.
 */
export async function bootstrap(server: TestServer, slug: string): Promise<string> {
  const units = createUnitsOfWork(server.store.db);
  const audit = createAuditLog({ units, clock: server.clock, logger: silentLogger });
  const { secret } = await bootstrapTenant({ units, clock: server.clock, audit, minting: server.config }, slug);
  await server.verification.listener?.catchUp();
  return secret;
}

/** Transport options that send `Authorization: Bearer <key>`. */
export function withKey(key: string | undefined): { headers?: Record<string, string> } {
  return key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } };
}

/**
 * Runs `sql` in a transaction on the server's database and holds that transaction open
 * (with its locks) while `during` runs, then commits it; returns what `during` returned.
 */
export async function withOpenTransaction<T>(server: TestServer, sql: string, params: unknown[], during: () => Promise<T>): Promise<T> {
  const connection = server.store.db.orm.driver.getConnection();
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let applied!: () => void;
  const isApplied = new Promise<void>((resolve) => (applied = resolve));
  const holder = connection.transactional(async (trx) => {
    await connection.execute(sql, params, "run", trx);
    applied();
    await released;
  });
  await Promise.race([isApplied, holder]);
  try {
    return await during();
  } finally {
    release();
    await holder;
    // As on hearing of it: the server's verification cache sees the committed change.
    await server.verification.listener?.catchUp();
  }
}

/** How many backends (other than the asking one) wait on a lock, among those whose query matches `like`. */
export async function backendsWaitingOnLocks(server: TestServer, like = "%"): Promise<number> {
  const connection = server.store.db.orm.driver.getConnection();
  const rows = await connection.execute<{ n: string }[]>(
    `select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and pid <> pg_backend_pid() and query ilike ?`, [like], "all");
  return Number(rows[0]?.n ?? 0);
}
