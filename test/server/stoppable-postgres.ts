// A PostgreSQL of the test's own (never the run's shared one) that the test may freeze
// (SIGSTOP), kill and restart, and a PgBouncer to put in front of it.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/db/embedded-postgres.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";
import { openDatabase } from "../../src/db/orm.ts";
import { createLogger } from "../../src/logger.ts";
import { startTestServer, type TestServer } from "../harness.ts";

const quiet = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });

/** An own embedded PostgreSQL, migrated, that can be frozen, thawed, killed and restarted at the same address. */
export type StoppablePostgres = {
  /** Its URL (over the Unix socket in the data folder; the same after a restart). */
  readonly url: string;
  /** SIGSTOP the postmaster and every backend: connections stay open, nothing answers. */
  freeze(): void;
  /** SIGCONT whatever freeze() stopped. Safe to call when not frozen. */
  thaw(): void;
  /** Stops the server (connections refused from then on). */
  kill(): Promise<void>;
  /** Starts it again on the same data (same socket, same URL). */
  restart(): Promise<void>;
  /** Thaws, stops and deletes everything. Safe to call twice. */
  close(): Promise<void>;
};

/** Starts and migrates an own PostgreSQL in a fresh temp folder. */
export async function startStoppablePostgres(): Promise<StoppablePostgres> {
  const dataDir = mkdtempSync(join(tmpdir(), "keyward-stoppable-"));
  chmodSync(dataDir, 0o755);
  let pg: EmbeddedDatabase | undefined = await startEmbeddedPostgres({ dataDir, logger: quiet });
  const url = pg.url;
  const db = await openDatabase({ url, logger: quiet });
  try {
    await migrateDatabase(db, quiet);
  } finally {
    await db.close();
  }
  let frozen: number[] = [];
  const thaw = (): void => {
    for (const pid of frozen.reverse()) signal(pid, "SIGCONT");
    frozen = [];
  };
  return {
    url,
    freeze() {
      if (pg === undefined) throw new Error("not running");
      const postmaster = pg.pid;
      // The postmaster first, so it forks nothing new while its children are being stopped.
      signal(postmaster, "SIGSTOP");
      frozen.push(postmaster);
      for (const child of childrenOf(postmaster)) {
        signal(child, "SIGSTOP");
        frozen.push(child);
      }
    },
    thaw,
    async kill() {
      thaw();
      await pg?.stop();
      pg = undefined;
    },
    async restart() {
      pg ??= await startEmbeddedPostgres({ dataDir, logger: quiet });
    },
    async close() {
      thaw();
      await pg?.stop();
      pg = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/** Pids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // Exited meanwhile.
    }
  }
  return out;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      s.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Where Debian's pgbouncer package puts the binary. */
export const pgbouncerBinary = "/usr/sbin/pgbouncer";

/** A PgBouncer (transaction pooling) in front of `postgresUrl`. */
export type Bouncer = { readonly url: string; stop(): Promise<void> };

/** Starts PgBouncer on a free port in front of `postgresUrl`; waits (bounded) until it listens. */
export async function startPgBouncer(postgresUrl: string, settings: Record<string, string> = {}): Promise<Bouncer> {
  const target = new URL(postgresUrl);
  // The embedded server listens on a Unix socket only: ?host=<folder>, the file is .s.PGSQL.5432.
  const socketDir = target.searchParams.get("host");
  const server = socketDir === null ? `host=${target.hostname} port=${target.port || "5432"}` : `host=${socketDir} port=5432`;
  const dir = mkdtempSync(join(tmpdir(), "keyward-pgbouncer-"));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const database = target.pathname.slice(1);
  const config = [
    "[databases]",
    `${database} = ${server} dbname=${database} user=${decodeURIComponent(target.username)} password=${decodeURIComponent(target.password)}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    "unix_socket_dir =",
    "auth_type = any",
    "pool_mode = transaction",
    "server_login_retry = 1",
    ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
  ].join("\n");
  const file = join(dir, "pgbouncer.ini");
  writeFileSync(file, config + "\n", { mode: 0o644 });
  // PgBouncer refuses to run as root; -u drops to the postgres user the embedded server runs as.
  const args = process.getuid?.() === 0 ? ["-u", "postgres", file] : [file];
  const child: ChildProcess = spawn(pgbouncerBinary, args, { stdio: ["ignore", "pipe", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => done(new Error(`pgbouncer did not start within 10 s: ${seen.slice(-500)}`)), 10_000);
    const done = (e?: Error): void => {
      clearTimeout(timer);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      if (e) reject(e);
      else resolve();
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString("utf8");
      if (/listening on 127\.0\.0\.1:\d+/.test(seen)) done();
    };
    const onExit = (code: number | null): void => done(new Error(`pgbouncer exited with ${code}: ${seen.slice(-500)}`));
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
  });
  child.stderr?.resume();
  child.stdout?.resume();
  const url = `postgres://${target.username}:${target.password}@127.0.0.1:${port}/${database}`;
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A keyward test server on an own PostgreSQL, and how to tear both down. */
export type ServerOnOwnPostgres = { own: StoppablePostgres; server: TestServer; close(): Promise<void> };

/**
 * Starts an own PostgreSQL and a keyward test server on it (`env` adds configuration).
 * close() thaws PostgreSQL first (a frozen one would hold the server's stop), then stops both.
 */
export async function startServerOnOwnPostgres(env: Record<string, string> = {}): Promise<ServerOnOwnPostgres> {
  const own = await startStoppablePostgres();
  let server: TestServer;
  try {
    server = await startTestServer({ env: { DATABASE_URL: own.url, ...env } });
  } catch (e) {
    await own.close();
    throw e;
  }
  return {
    own,
    server,
    async close() {
      own.thaw();
      await server.stop();
      await own.close();
    },
  };
}
