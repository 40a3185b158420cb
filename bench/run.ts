// `npm run bench` (issue 12 items 6–7): every server under test and every load generator is
// its own process on 127.0.0.1, so the server's RSS and CPU are its own. One run measures
// the references (the bare node:http2 limit, connect-node's no-op ceiling, a raw pg server)
// and VerifyKey (warm, cold, unknown, garbage; 10k and 1M keys in the table; 1 and N workers;
// gRPC, Connect binary and JSON over HTTP/2 and HTTP/1.1), and the SDK (issue 13: a guarded
// no-op endpoint against the same endpoint unguarded, and revocation → guard refusal, see
// bench/sdk.ts), then prints a table, the ratios against the issues' targets, and JSON (also
// written to bench/results.json, or --out).
//
// Modes: default (full, < 5 min on 2 cores), --quick (fewer, shorter cases, for CI),
// --smoke (a few hundred requests per case, two VerifyKey cases and the SDK's node:http pair,
// fewer trials: for the test suite).
// Options: --seconds=N (measured seconds per case), --out=PATH, --workers=N,
// --only=propagation (the revocation propagation step alone, see bench/propagation.ts),
// --only=sdk (the SDK step alone: guard throughput and revocation → guard refusal).
// Env: BENCH_KEYWARD_NODE_FLAGS adds node flags to every keyward started (e.g. "--cpu-prof
// --cpu-prof-dir=/tmp/p" to profile it; each process writes its profile when it stops).
// Single-process cases run keyward with KEYWARD_WORKERS=1 (serve's default is one per core).
// DATABASE_URL is ignored: the run seeds up to 1M keys, so it always uses a throwaway
// embedded PostgreSQL under the system temp dir.
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Writable } from "node:stream";
import { createHash } from "node:crypto";
import pg from "pg";
import { HealthCheckRequestSchema } from "../gen/health/v1/health_pb.ts";
import { VerifyKeyRequestSchema } from "../gen/keyward/v1/key_service_pb.ts";
import { createAuditLog } from "../src/audit/audit-log.ts";
import { systemClock } from "../src/clock.ts";
import { loadConfig } from "../src/config.ts";
import { openStore, type Store } from "../src/db/store.ts";
import { createUnitsOfWork } from "../src/db/unit-of-work.ts";
import { bootstrapTenant } from "../src/directory/bootstrap.ts";
import { withChecksum } from "../src/keys/key-format.ts";
import { createLogger } from "../src/logger.ts";
import { grpcFrame, quantile, writeBodies, type LatencySummary, type LoadResult } from "./bodies.ts";
import type { H1LoadOptions } from "./h1-load.ts";
import type { H2LoadOptions } from "./h2-load.ts";
import { formatPropagation, measurePropagation, propagationTargetMs, type PropagationResult } from "./propagation.ts";
import { formatGuardRevocation, guardRevocationTargetMs, guardThroughputTarget, measureGuardRevocation, type GuardRevocationResult } from "./sdk.ts";
import { createKeywardClient } from "../sdk/src/index.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bench = join(root, "bench");
const started = performance.now();
/** Other work on the machine skews every number: the 1-minute load average is reported with them. */
const loadAtStart = Number(os.loadavg()[0]!.toFixed(2));

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean" },
    smoke: { type: "boolean" },
    seconds: { type: "string" },
    out: { type: "string" },
    workers: { type: "string" },
    only: { type: "string" },
  },
});
/** `--only=propagation` runs the revocation propagation step alone (also `node bench/propagation.ts`); `--only=sdk` the SDK step (also `node bench/sdk.ts`). */
const only = args.only;
if (only !== undefined && only !== "propagation" && only !== "sdk") {
  process.stderr.write(`bench: unknown --only=${only}: the steps that run alone are "propagation" and "sdk"\n`);
  process.exit(2);
}
const mode = args.smoke === true ? "smoke" : args.quick === true ? "quick" : "full";
/** Measured seconds per case, and the warm-up before it. */
const seconds = Number(args.seconds ?? (mode === "full" ? 4 : 2));
const warmupSeconds = mode === "smoke" ? 0 : 1;
/** Smoke runs are bounded by count; the others by time (the count is only a safety bound). */
const maxRequests = mode === "smoke" ? 300 : 5_000_000;
const outPath = resolve(args.out ?? join(bench, "results.json"));
const workersN = Number(args.workers ?? Math.max(2, os.availableParallelism()));
/** Concurrency: HTTP/2 = connections × streams each; HTTP/1.1 = connections. */
const h2Connections = 4;
const h2Streams = 16;
const h1Connections = 32;
const warmKeys = mode === "smoke" ? 300 : 10_000;
const bigTable = 1_000_000;
const cachedKeys = 100_000;
/** Revocation propagation trials (one key each); the target asks for at least 200. Plus warm-up trials, not measured. */
const propagationTrials = mode === "smoke" ? 20 : 250;
const propagationWarmup = mode === "smoke" ? 2 : 20;
/** Revocation → SDK guard refusal trials (one key each, created through CreateKey); the target asks for 200. Plus warm-up trials. */
const guardTrials = mode === "smoke" ? 20 : 200;
const guardWarmup = mode === "smoke" ? 2 : 10;
/** Cases that would start after this many seconds are skipped (with a note): the run stays under 5 minutes. */
const budgetSeconds = mode === "full" ? 255 : 120;

const h2loadPath = "/usr/bin/h2load";
const prefix = "kw";
const verifyPath = "/keyward.v1.KeyService/VerifyKey";
const healthPath = "/grpc.health.v1.Health/Check";

// ---------------------------------------------------------------- processes we started
const children = new Set<ChildProcess>();
/** Set once SIGINT/SIGTERM arrived: the database going away is then expected. */
let stopping = false;
function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) c.kill("SIGKILL");
}
process.on("exit", killAll);
for (const s of ["SIGINT", "SIGTERM"] as const) {
  process.on(s, () => {
    stopping = true;
    killAll();
    // The embedded PostgreSQL runs in a session of its own and would outlive process.exit:
    // stop it and remove the work folder first, bounded (a second signal's exit is the same).
    const bound = setTimeout(() => process.exit(130), 15_000);
    void (async () => {
      try {
        await store?.close();
      } catch {
        // a signal before the store existed, or a failed stop: the folder goes anyway
      }
      try {
        rmSync(work, { recursive: true, force: true });
      } catch {
        // a signal before the folder existed
      }
      clearTimeout(bound);
      process.exit(130);
    })();
  });
}

function log(line: string): void {
  if (mode !== "smoke") process.stderr.write(`${line}\n`);
}

/** Runs a child to completion (bounded), returning stdout; throws with stderr on failure. */
function runChild(cmd: string, argv: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      if (code === 0) resolveRun(out);
      else reject(new Error(`${cmd} ${argv[0] ?? ""} exited with ${code ?? signal}: ${err.trim().slice(-1500)}`));
    });
  });
}

/** A server under test: its URL, its process, and the directory its statement counts go to. */
type Server = { name: string; url: string; child: ChildProcess; queryDir: string; stderr: () => string };

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Starts a server script that prints {"port":N} when listening (limit, raw pg and SDK guard
 * servers). `countQueries: false` leaves out the statement counter (servers without a database).
 */
async function startScript(name: string, script: string, env: NodeJS.ProcessEnv, countQueries = true): Promise<Server> {
  const queryDir = mkdtempSync(join(work, "q-"));
  const child = spawn(process.execPath, [...(countQueries ? ["--import", join(bench, "count-queries.ts")] : []), join(bench, script)], {
    env: { ...env, BENCH_QUERY_COUNT_DIR: queryDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const port = await new Promise<number>((resolvePort, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 30 s: ${err}`)), 30_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line !== undefined) {
        clearTimeout(timer);
        resolvePort((JSON.parse(line) as { port: number }).port);
      }
    });
    child.on("exit", (code) => reject(new Error(`${name} exited with ${code}: ${err}`)));
  });
  return { name, url: `http://127.0.0.1:${port}`, child, queryDir, stderr: () => err };
}

/** Starts `keyward serve` as a real child process on a free port, and waits for /healthz. */
async function startKeyward(name: string, extraEnv: Record<string, string>, extraArgs: string[] = []): Promise<Server> {
  const port = await freePort();
  const queryDir = mkdtempSync(join(work, "q-"));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env["PATH"],
    HOME: process.env["HOME"],
    PORT: String(port),
    HOST: "127.0.0.1",
    DATABASE_URL: databaseUrl,
    KEYWARD_DATA_DIR: keywardDataDir,
    LOG_LEVEL: "warn",
    KEYWARD_LOG_FORMAT: "json",
    BENCH_QUERY_COUNT_DIR: queryDir,
    // `serve` defaults to one worker per core (plus a primary): the single-process cases must
    // say so, or they measure 2 workers with half-primed caches and sum 3 processes' RSS.
    // `--workers N` (the workers case) wins over this variable.
    KEYWARD_WORKERS: "1",
    ...extraEnv,
  };
  // BENCH_KEYWARD_NODE_FLAGS: extra node flags for keyward only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p" to profile it.
  const nodeFlags = (process.env["BENCH_KEYWARD_NODE_FLAGS"] ?? "").split(/\s+/).filter((f) => f !== "");
  const child = spawn(process.execPath, [...nodeFlags, "--import", join(bench, "count-queries.ts"), join(root, "src/cli.ts"), "serve", ...extraArgs], {
    env,
    cwd: root,
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(child);
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name}: keyward exited with ${child.exitCode}: ${err}`);
    if (Date.now() > deadline) throw new Error(`${name}: keyward not healthy within 30 s: ${err}`);
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  servers.push({ name, rssAfterStartMB: Number(rssMB(child.pid!).toFixed(1)) });
  return { name, url, child, queryDir, stderr: () => err };
}
/** Each keyward started, and its RSS once healthy (before any load). */
const servers: { name: string; rssAfterStartMB: number }[] = [];

/** The pids of a process's descendants (cluster workers), from /proc. */
function descendants(pid: number, depth = 0): number[] {
  if (depth > 3) return [];
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter((c) => c !== "").map(Number);
    return kids.flatMap((k) => [k, ...descendants(k, depth + 1)]);
  } catch {
    return [];
  }
}

/** SIGTERM, then SIGKILL after 10 s; workers the server forked and left behind are killed too. */
async function stop(server: Server): Promise<void> {
  const c = server.child;
  if (c.exitCode !== null || c.signalCode !== null) return;
  const forked = descendants(c.pid!);
  const exited = new Promise((r) => c.once("exit", r));
  c.kill("SIGTERM");
  const timer = setTimeout(() => c.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
  children.delete(c);
  for (const pid of forked) {
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      continue; // gone, as it should be
    }
    if (cmdline.includes("cli.ts")) {
      notes.push(`${server.name}: a forked process (${pid}) outlived its primary and was killed`);
      process.kill(pid, "SIGKILL");
    }
  }
}

/** Resident memory (VmRSS) of a process and its descendants (cluster workers), in MB. */
function rssMB(pid: number): number {
  let kb = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      kb += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return kb / 1024;
}

/** Statements sent to PostgreSQL so far by a server's processes (count-queries.ts). */
async function statements(server: Server): Promise<number> {
  await new Promise((r) => setTimeout(r, 250)); // the preload writes every 100 ms
  let n = 0;
  for (const f of readdirSync(server.queryDir)) if (!f.endsWith(".tmp")) n += Number(readFileSync(join(server.queryDir, f), "utf8")) || 0;
  return n;
}

// ---------------------------------------------------------------- load generators
type Protocol = "grpc" | "connect-proto" | "connect-json" | "json";
type Transport = "h2" | "h1";
type Tool = "h2load" | "h2-load" | "autocannon";
const contentTypes: Record<Protocol, string> = {
  grpc: "application/grpc",
  "connect-proto": "application/proto",
  "connect-json": "application/json",
  json: "application/json",
};

let bodyFileCount = 0;
function bodiesFile(bodies: readonly Uint8Array[]): string {
  const path = join(work, `bodies-${bodyFileCount++}.bin`);
  writeBodies(path, bodies);
  return path;
}

/** `headers`: more request headers (autocannon only), e.g. the SDK cases' authorization. */
type Load = { tool: Tool; transport: Transport; protocol: Protocol; path: string; bodies: readonly Uint8Array[]; seconds?: number; warmup?: number; max?: number; headers?: Record<string, string> };

async function h2load(url: string, load: Load, secs: number, warmup: number, max: number): Promise<LoadResult> {
  const body = join(work, "h2load-body.bin");
  writeFileSync(body, load.bodies[0]!);
  const headers = ["-H", `content-type: ${contentTypes[load.protocol]}`, ...(load.protocol === "grpc" ? ["-H", "te: trailers"] : [])];
  const common = ["-c", String(h2Connections), "-m", String(h2Streams), "-t", "1", "-d", body, ...headers];
  // The warm-up is a run of its own; its answers count in `completed` (the statement count spans both).
  const warmOut = warmup > 0 ? await runChild(h2loadPath, [...common, "-D", String(warmup), url + load.path], (warmup + 30) * 1000) : "";
  const warmDone = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(warmOut)?.[1] ?? 0);
  const logFile = join(work, "h2load.log");
  rmSync(logFile, { force: true });
  const bound = max < 1_000_000 ? ["-n", String(Math.max(max, h2Connections))] : ["-D", String(secs)];
  const out = await runChild(h2loadPath, [...common, ...bound, "--log-file", logFile, url + load.path], (secs + 60) * 1000);
  const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(out);
  const reqs = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded/.exec(out);
  if (finished === null || reqs === null) throw new Error(`cannot parse h2load output:\n${out}`);
  const lat = readFileSync(logFile, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => Number(l.split("\t")[2]) / 1000);
  const sorted = Float64Array.from(lat).sort();
  const done = Number(reqs[2]);
  const secsTaken = Number(finished[1]) / (finished[2] === "ms" ? 1000 : 1);
  return {
    tool: "h2load",
    requests: done,
    completed: warmDone + done,
    errors: done - Number(reqs[3]),
    seconds: secsTaken,
    perSecond: Number(finished[3]),
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
  };
}

async function generate(url: string, load: Load): Promise<LoadResult> {
  const secs = load.seconds ?? seconds;
  const warmup = load.warmup ?? warmupSeconds;
  const max = load.max ?? maxRequests;
  if (load.tool === "h2load") return h2load(url, load, secs, warmup, max);
  const file = bodiesFile(load.bodies);
  if (load.tool === "h2-load") {
    const opts: H2LoadOptions = {
      url,
      path: load.path,
      contentType: contentTypes[load.protocol],
      grpc: load.protocol === "grpc",
      bodiesFile: file,
      connections: h2Connections,
      streams: h2Streams,
      seconds: secs,
      warmupSeconds: warmup,
      maxRequests: max,
    };
    return JSON.parse(await runChild(process.execPath, [join(bench, "h2-load.ts"), JSON.stringify(opts)], (secs + warmup + 60) * 1000)) as LoadResult;
  }
  const opts: H1LoadOptions = {
    url: url + load.path,
    contentType: contentTypes[load.protocol],
    bodiesFile: file,
    connections: h1Connections,
    seconds: secs,
    warmupSeconds: warmup,
    maxRequests: max,
    ...(load.headers === undefined ? {} : { headers: load.headers }),
  };
  return JSON.parse(await runChild(process.execPath, [join(bench, "h1-load.ts"), JSON.stringify(opts)], (secs + warmup + 60) * 1000)) as LoadResult;
}

// ---------------------------------------------------------------- cases
type CaseResult = {
  id: string;
  label: string;
  server: string;
  protocol: Protocol;
  transport: Transport;
  tool: Tool;
  keysInTable: number | null;
  workers: number;
  requests: number;
  errors: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  serverRssMB: number;
  /** Statements the server sent to PostgreSQL per completed request (see count-queries.ts); null when it has no database. */
  dbStatementsPerRequest: number | null;
};
const results: CaseResult[] = [];
const notes: string[] = [];

async function runCase(
  id: string,
  label: string,
  server: Server,
  load: Load,
  meta: { keysInTable: number | null; workers?: number; database?: boolean },
): Promise<CaseResult | undefined> {
  const elapsed = (performance.now() - started) / 1000;
  if (elapsed > budgetSeconds) {
    notes.push(`${id}: skipped, the run had used ${elapsed.toFixed(0)} s of its ${budgetSeconds} s budget`);
    return undefined;
  }
  const before = await statements(server);
  const r = await generate(server.url, load);
  const after = await statements(server);
  if (r.errors > 0) notes.push(`${id}: ${r.errors} of ${r.requests} answers were errors (HTTP status ≠ 200, grpc-status ≠ 0, or transport)`);
  return record(id, label, server, load, meta, r, meta.database === false ? null : r.completed > 0 ? (after - before) / r.completed : null);
}

/** Adds a measured case to the results (and the table). */
function record(id: string, label: string, server: Server, load: Load, meta: { keysInTable: number | null; workers?: number }, r: LoadResult, dbStatementsPerRequest: number | null): CaseResult {
  const result: CaseResult = {
    id,
    label,
    server: server.name,
    protocol: load.protocol,
    transport: load.transport,
    tool: load.tool,
    keysInTable: meta.keysInTable,
    workers: meta.workers ?? 1,
    requests: r.requests,
    errors: r.errors,
    perSecond: r.perSecond,
    p50Ms: r.p50,
    p99Ms: r.p99,
    serverRssMB: rssMB(server.child.pid!),
    dbStatementsPerRequest,
  };
  results.push(result);
  log(formatRow(result));
  return result;
}

/** One side of an interleaved pair (see runPair). */
type PairSide = { id: string; label: string; server: Server; load: Load };

/**
 * Two cases compared by a ratio, measured interleaved so that the machine's load (shared,
 * noisy) weighs on both alike: A B B A (smoke) or A B B A A B B A, each run a share of the
 * case's seconds (and of its request bound); each side's first run has the warm-up. Per side:
 * requests, errors and seconds summed, req/s = requests ÷ seconds, p50 the request-weighted
 * mean of the runs' p50, p99 the largest. Servers without a database (no statement count).
 */
async function runPair(a: PairSide, b: PairSide, meta: { keysInTable: number | null }): Promise<[CaseResult | undefined, CaseResult | undefined]> {
  const elapsed = (performance.now() - started) / 1000;
  if (elapsed > budgetSeconds) {
    notes.push(`${a.id}, ${b.id}: skipped, the run had used ${elapsed.toFixed(0)} s of its ${budgetSeconds} s budget`);
    return [undefined, undefined];
  }
  const runsPerSide = mode === "smoke" ? 2 : 4;
  const share = (load: Load, warm: boolean): Load => ({
    ...load,
    seconds: (load.seconds ?? seconds) / runsPerSide,
    warmup: warm ? (load.warmup ?? warmupSeconds) : 0,
    max: Math.max(1, Math.floor((load.max ?? maxRequests) / runsPerSide)),
  });
  const runs = new Map<PairSide, LoadResult[]>([
    [a, []],
    [b, []],
  ]);
  for (let i = 0; i < 2 * runsPerSide; i++) {
    const side = i % 4 === 0 || i % 4 === 3 ? a : b;
    const list = runs.get(side)!;
    list.push(await generate(side.server.url, share(side.load, list.length === 0)));
  }
  const combined = (rs: LoadResult[]): LoadResult => {
    const requests = rs.reduce((n, r) => n + r.requests, 0);
    const secs = rs.reduce((n, r) => n + r.seconds, 0);
    return {
      tool: rs[0]!.tool,
      requests,
      completed: rs.reduce((n, r) => n + r.completed, 0),
      errors: rs.reduce((n, r) => n + r.errors, 0),
      seconds: secs,
      perSecond: secs > 0 ? requests / secs : 0,
      p50: requests > 0 ? rs.reduce((n, r) => n + r.p50 * r.requests, 0) / requests : 0,
      p99: Math.max(...rs.map((r) => r.p99)),
    };
  };
  return [a, b].map((side) => {
    const r = combined(runs.get(side)!);
    if (r.errors > 0) notes.push(`${side.id}: ${r.errors} of ${r.requests} answers were errors (HTTP status ≠ 200, or transport)`);
    return record(side.id, side.label, side.server, side.load, meta, r, null);
  }) as [CaseResult, CaseResult];
}

function formatRow(r: CaseResult): string {
  const q = r.dbStatementsPerRequest === null ? "    –" : r.dbStatementsPerRequest.toFixed(2).padStart(5);
  return [
    r.id.padEnd(26),
    `${r.protocol}/${r.transport}`.padEnd(17),
    r.tool.padEnd(10),
    String(r.keysInTable ?? "–").padStart(7),
    String(r.workers).padStart(2),
    r.perSecond.toFixed(0).padStart(7),
    r.p50Ms.toFixed(2).padStart(7),
    r.p99Ms.toFixed(2).padStart(7),
    r.serverRssMB.toFixed(0).padStart(5),
    q,
    r.errors > 0 ? ` ${r.errors} err` : "",
  ].join(" ");
}
const header = `${"case".padEnd(26)} ${"protocol".padEnd(17)} ${"tool".padEnd(10)} ${"keys".padStart(7)} ${"w".padStart(2)} ${"req/s".padStart(7)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} ${"RSS".padStart(5)} ${"SQL/r".padStart(5)}`;

// ---------------------------------------------------------------- keys and bodies
/** The raw key of seeded valid key i: key id `w` + 15 digits, a fixed 33-character secret. */
function validKey(i: number): string {
  const id = `w${String(i).padStart(15, "0")}`;
  return withChecksum(`${prefix}fg_${id}_${`s${String(i).padStart(15, "0")}`.padEnd(33, "x")}`);
}
/** Well-formed (right shape, right checksum) keys whose id is in no row. */
function unknownKey(i: number): string {
  const id = `u${String(i).padStart(15, "0")}`;
  return withChecksum(`${prefix}fg_${id}_${"y".repeat(33)}`);
}
/** The raw key of seeded propagation key i (id `p` + 15 digits): each is revoked once by the propagation step. */
function propagationKey(i: number): string {
  const id = `p${String(i).padStart(15, "0")}`;
  return withChecksum(`${prefix}fg_${id}_${`r${String(i).padStart(15, "0")}`.padEnd(33, "x")}`);
}
const garbageKey = `${prefix}fg_0123456789abcdef_${"z".repeat(33)}NOTSUM`;

function verifyBodies(keys: readonly string[], protocol: Protocol): Uint8Array[] {
  return keys.map((key) => {
    const msg = create(VerifyKeyRequestSchema, { key, requiredPermissions: ["keys:read"] });
    if (protocol === "grpc") return grpcFrame(toBinary(VerifyKeyRequestSchema, msg));
    if (protocol === "connect-proto") return toBinary(VerifyKeyRequestSchema, msg);
    return Buffer.from(toJsonString(VerifyKeyRequestSchema, msg));
  });
}
function healthBody(protocol: Protocol): Uint8Array[] {
  const msg = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}));
  return [protocol === "grpc" ? grpcFrame(msg) : protocol === "connect-proto" ? Buffer.from(msg) : Buffer.from("{}")];
}

/** Checks that a body gets the expected VerifyKey result before it is measured (Connect JSON). */
async function expectResult(url: string, key: string, expected: string): Promise<void> {
  const res = await fetch(url + verifyPath, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key, requiredPermissions: ["keys:read"] }),
  });
  const body = (await res.json()) as { result?: string };
  if (res.status !== 200 || body.result !== expected) throw new Error(`sanity check: expected ${expected}, got HTTP ${res.status} ${JSON.stringify(body)}`);
}

// ---------------------------------------------------------------- database and seeding
const silent = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const work = mkdtempSync(join(os.tmpdir(), "keyward-bench-"));
chmodSync(work, 0o755);
const pgDataDir = join(work, "pg");
const keywardDataDir = join(work, "keyward");
mkdirSync(keywardDataDir);
let store: Store | undefined;
let databaseUrl = "";

async function seed(client: pg.Client, template: string, from: number, to: number, keyOf: (i: number) => string = validKey): Promise<void> {
  // Valid keys: raw keys computed here (checksum, SHA-256), inserted with unnest.
  const ids: string[] = [];
  const hashes: Buffer[] = [];
  const hints: string[] = [];
  for (let i = from; i < to; i++) {
    const raw = keyOf(i);
    ids.push(raw.split("_")[1]!);
    hashes.push(createHash("sha256").update(raw).digest());
    hints.push(raw.slice(-4));
  }
  for (let at = 0; at < ids.length; at += 50_000) {
    await client.query(
      `insert into api_key (key_id, tenant_id, kind, slot, display_name, org_id, permissions, owner_id, creator_id, bounded_by,
                            secret_hash, hint, created_at, version)
       select u.id, t.tenant_id, 'fine_grained', null, 'bench ' || u.id, null, array['keys:read'], t.owner_id, t.owner_id, '{}',
              u.hash, u.hint, now(), 1
         from unnest($1::text[], $2::bytea[], $3::text[]) as u(id, hash, hint),
              (select tenant_id, owner_id from api_key where key_id = $4) t`,
      [ids.slice(at, at + 50_000), hashes.slice(at, at + 50_000), hints.slice(at, at + 50_000), template],
    );
  }
}

async function fill(client: pg.Client, template: string, from: number, to: number): Promise<void> {
  // Filler rows: ids `f` + 15 digits, hashes computed by PostgreSQL; no raw key matches them.
  // The foreign keys point at the bootstrap tenant and admin, which exist: their checks
  // (triggers) are skipped for the bulk insert (the embedded server's user is a superuser).
  await client.query("set session_replication_role = replica");
  await client.query(
    `insert into api_key (key_id, tenant_id, kind, slot, display_name, org_id, permissions, owner_id, creator_id, bounded_by,
                          secret_hash, hint, created_at, version)
     select 'f' || lpad(g::text, 15, '0'), t.tenant_id, 'fine_grained', null, 'filler ' || g, null, array['keys:read'],
            t.owner_id, t.owner_id, '{}', sha256(convert_to('f' || g, 'UTF8')), 'xxxx', now(), 1
       from generate_series($1::int, $2::int) g, (select tenant_id, owner_id from api_key where key_id = $3) t`,
    [from, to - 1, template],
  );
  await client.query("set session_replication_role = default");
  await client.query("analyze api_key");
}

// ---------------------------------------------------------------- revocation propagation
let propagation: PropagationResult | undefined;

/**
 * Seeds one key per trial, starts two keyward replicas (A, B) on the run's PostgreSQL, and
 * measures how long B takes to answer REVOKED after A's RevokeKey returns (bench/propagation.ts).
 */
async function propagationStep(db: pg.Client, boot: { tenant: string; secret: string; keyId: string }): Promise<void> {
  const elapsed = (performance.now() - started) / 1000;
  if (elapsed > budgetSeconds) {
    notes.push(`propagation: skipped, the run had used ${elapsed.toFixed(0)} s of its ${budgetSeconds} s budget`);
    return;
  }
  await seed(db, boot.keyId, 0, propagationWarmup + propagationTrials, propagationKey);
  const keys = Array.from({ length: propagationWarmup + propagationTrials }, (_, i) => {
    const raw = propagationKey(i);
    return { raw, name: `tenants/${boot.tenant}/keys/${raw.split("_")[1]!}` };
  });
  // Started together (a failed start leaves the other to killAll at exit).
  const [a, b] = await Promise.all([startKeyward("keyward replica A", {}), startKeyward("keyward replica B", {})]);
  try {
    const t0 = performance.now();
    propagation = await measurePropagation({ a: a.url, b: b.url, adminKey: boot.secret, keys, warmupTrials: propagationWarmup, requiredPermissions: ["keys:read"] });
    log(formatPropagation(propagation));
    notes.push(`propagation: ${propagation.trials} trials in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const e of propagation.errors) notes.push(`propagation failure: ${e}`);
  } finally {
    await Promise.all([stop(a), stop(b)]);
  }
}

// ---------------------------------------------------------------- the SDK (issue 13)
let guardRevocation: GuardRevocationResult | undefined;
/** Per guarded SDK case: what its verifier did during the measured load (from the guard server's GET /__stats). */
const guardStats: { case: string; requests: number; verifyRpcs: number; cacheHits: number; streamUp: boolean }[] = [];

type VerifierCounters = { rpcs?: number; hits?: number; streamUp?: boolean };
async function verifierStats(server: Server): Promise<VerifierCounters> {
  return (await (await fetch(`${server.url}/__stats`, { signal: AbortSignal.timeout(5_000) })).json()) as VerifierCounters;
}

/** Status of one request to a (guarded or not) SDK server; throws unless it is `expected`. */
async function expectStatus(url: string, body: string, headers: Record<string, string>, expected: number, what: string): Promise<void> {
  const res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  if (res.status !== expected) throw new Error(`sanity check (${what}): expected HTTP ${expected}, got ${res.status} ${text.slice(0, 200)}`);
}

/**
 * The SDK step: one keyward (KEYWARD_WORKERS=1), and per server kind (node:http with
 * keywardMiddleware; Connect with keywardInterceptor, not in smoke) the same no-op endpoint
 * unguarded and guarded (bench/sdk-server.ts, one process each, createVerifier with its
 * stream up), loaded by autocannon with one valid key as bearer, interleaved (runPair). The
 * guard's cache is warm: a request with the key precedes the load (and the load's warm-up).
 * Then revocation → guard refusal (bench/sdk.ts) against the node:http guard.
 */
async function sdkStep(boot: { tenant: string; secret: string }): Promise<void> {
  const elapsed = (performance.now() - started) / 1000;
  if (elapsed > budgetSeconds) {
    notes.push(`sdk: skipped, the run had used ${elapsed.toFixed(0)} s of its ${budgetSeconds} s budget`);
    return;
  }
  const keyward = await startKeyward("keyward for the SDK", {});
  const sdkServers: Server[] = [];
  try {
    const kw = createKeywardClient({ baseUrl: keyward.url, apiKey: boot.secret, retries: 0, timeoutMs: 10_000 });
    const permissions = ["keys:read"];
    const loadKey = (await kw.keys.createKey({ parent: `tenants/${boot.tenant}`, displayName: `bench sdk load ${Date.now().toString(36)}`, permissions, expireDays: 1 })).secret;
    const auth = { authorization: `Bearer ${loadKey}` };
    const kinds = mode === "smoke" ? (["http"] as const) : (["http", "connect"] as const);
    let httpGuard: Server | undefined;
    for (const kind of kinds) {
      const path = kind === "http" ? "/noop" : healthPath;
      const protocol: Protocol = kind === "http" ? "json" : "connect-json";
      const body = "{}"; // Connect JSON: an empty HealthCheckRequest
      const env = { PATH: process.env["PATH"], BENCH_SDK_SERVER: kind, BENCH_SDK_PERMISSIONS: permissions.join(","), KEYWARD_URL: keyward.url, BENCH_SDK_API_KEY: boot.secret };
      const open = await startScript(`sdk ${kind} unguarded`, "sdk-server.ts", { ...env, BENCH_SDK_GUARD: "0" }, false);
      sdkServers.push(open);
      const guarded = await startScript(`sdk ${kind} guarded`, "sdk-server.ts", { ...env, BENCH_SDK_GUARD: "1" }, false);
      sdkServers.push(guarded);
      const json = { "content-type": "application/json" };
      await expectStatus(open.url + path, body, json, 200, `${kind} unguarded, no key`);
      await expectStatus(guarded.url + path, body, json, 401, `${kind} guarded, no key`);
      await expectStatus(guarded.url + path, body, { ...json, ...auth }, 200, `${kind} guarded, valid key`); // the guard's cache now holds it
      const label = kind === "http" ? "node:http no-op" : "Connect Health/Check no-op";
      const load: Load = { tool: "autocannon", transport: "h1", protocol, path, bodies: [Buffer.from(body)], headers: auth };
      const before = await verifierStats(guarded);
      const [, g] = await runPair(
        { id: `sdk/${kind} unguarded`, label: `${label}, no guard`, server: open, load },
        { id: `sdk/${kind} guarded`, label: `${label}, ${kind === "http" ? "keywardMiddleware" : "keywardInterceptor"}`, server: guarded, load },
        { keysInTable: null },
      );
      const after = await verifierStats(guarded);
      if (g !== undefined) {
        const s = { case: g.id, requests: g.requests, verifyRpcs: (after.rpcs ?? 0) - (before.rpcs ?? 0), cacheHits: (after.hits ?? 0) - (before.hits ?? 0), streamUp: after.streamUp === true };
        guardStats.push(s);
        notes.push(`${g.id}: the verifier made ${s.verifyRpcs} VerifyKey calls and served ${s.cacheHits} answers from its cache (warm-up included) for ${g.requests} measured requests; stream ${s.streamUp ? "up" : "DOWN"}`);
      }
      // The node:http guard stays for the revocation trials; the others stop now (fewer processes on the cores).
      await stop(open);
      if (kind === "http") httpGuard = guarded;
      else await stop(guarded);
    }
    const elapsedNow = (performance.now() - started) / 1000;
    if (httpGuard === undefined) return;
    if (elapsedNow > budgetSeconds) {
      notes.push(`sdk revocation: skipped, the run had used ${elapsedNow.toFixed(0)} s of its ${budgetSeconds} s budget`);
      return;
    }
    const t0 = performance.now();
    guardRevocation = await measureGuardRevocation({
      keyward: keyward.url,
      guard: `${httpGuard.url}/noop`,
      adminKey: boot.secret,
      tenant: boot.tenant,
      permissions,
      trials: guardTrials,
      warmupTrials: guardWarmup,
      stepBoundMs: mode === "smoke" ? 30_000 : 120_000,
    });
    log(formatGuardRevocation(guardRevocation));
    notes.push(`sdk revocation: ${guardRevocation.ran + guardRevocation.warmupTrials} trials in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const e of guardRevocation.errors) notes.push(`sdk revocation failure: ${e}`);
  } finally {
    for (const s of sdkServers) await stop(s);
    await stop(keyward);
  }
}

// ---------------------------------------------------------------- features of this checkout
const configSource = readFileSync(join(root, "src/config.ts"), "utf8");
const cacheSwitch = configSource.includes("KEYWARD_VERIFY_CACHE_TTL_SECONDS");
const metricsSwitch = configSource.includes("KEYWARD_METRICS\"") || /["']KEYWARD_METRICS["']/.test(configSource);
// The CLI refuses options it does not know (parseArgs is strict) and prints its usage on --help.
const workersFlag = spawnSync(process.execPath, [join(root, "src/cli.ts"), "serve", "--workers", "2", "--help"], { cwd: root, stdio: "ignore", timeout: 20_000 }).status === 0;

// ---------------------------------------------------------------- the run
const needH2load = mode !== "smoke" && only === undefined;
if (needH2load && !existsSync(h2loadPath)) {
  process.stderr.write(`bench: ${h2loadPath} not found. Install it with: sudo apt-get install nghttp2-client\n`);
  process.exit(2);
}

let exitCode = 0;
try {
  log(`bench (${mode}): ${seconds} s per case after ${warmupSeconds} s warm-up; work dir ${work}`);
  const config = loadConfig({ KEYWARD_DATA_DIR: pgDataDir, LOG_LEVEL: "silent" }, root);
  store = await openStore(config, silent);
  databaseUrl = store.url;
  const units = createUnitsOfWork(store.db);
  const audit = createAuditLog({ units, clock: systemClock, logger: silent });
  const boot = await bootstrapTenant({ units, clock: systemClock, audit, minting: config }, "bench");
  const db = new pg.Client({ connectionString: databaseUrl });
  // An idle client's error is fatal, except while a signal stops the database under it.
  db.on("error", (e) => {
    if (!stopping) throw e;
  });
  await db.connect();
  try {
    await seed(db, boot.keyId, 0, warmKeys);
    await db.query("analyze api_key");
    const tableSmall = warmKeys + 1;
    log(`seeded ${warmKeys} valid keys`);

    const warm = Array.from({ length: warmKeys }, (_, i) => validKey(i));
    const unknown = Array.from({ length: warmKeys }, (_, i) => unknownKey(i));
    const mixed = warm.flatMap((k, i) => [k, unknown[i]!]);
    const h2 = (tool: Tool, protocol: Protocol, path: string, bodies: readonly Uint8Array[], extra: Partial<Load> = {}): Load => ({ tool, transport: "h2", protocol, path, bodies, ...extra });
    const h1 = (protocol: Protocol, path: string, bodies: readonly Uint8Array[], extra: Partial<Load> = {}): Load => ({ tool: "autocannon", transport: "h1", protocol, path, bodies, ...extra });
    /** One pass over every body (each key's first miss), not measured. */
    // Without a cache every call reads PostgreSQL, so a priming pass would only cost time.
    const prime = async (server: Server, bodies: readonly Uint8Array[]) => {
      // Bounded by 10 s: at a slow miss rate part of the keys stay cold and the warm case pays their first miss.
      if (cacheSwitch && (performance.now() - started) / 1000 < budgetSeconds) {
        await generate(server.url, { tool: "h2-load", transport: "h2", protocol: "grpc", path: verifyPath, bodies, seconds: 10, warmup: 0, max: bodies.length });
      }
    };
    /** A fresh server's first seconds run colder code (JIT): load it a little before measuring. */
    const heat = async (server: Server) => {
      if (mode !== "smoke") await generate(server.url, { tool: "h2-load", transport: "h2", protocol: "grpc", path: healthPath, bodies: healthBody("grpc"), seconds: 1.5, warmup: 0 });
    };
    const full = mode === "full";
    const quick = mode !== "smoke";

    if (only === "propagation") await propagationStep(db, boot);
    else if (only === "sdk") await sdkStep(boot);
    else {
      // The references.
      const limit = await startScript("limit", "limit-server.ts", { PATH: process.env["PATH"] });
      try {
        if (quick) await runCase("limit", "bare node:http2, fixed answer", limit, h2("h2load", "grpc", verifyPath, verifyBodies([warm[0]!], "grpc")), { keysInTable: null, database: false });
        await runCase("limit/h2-load", "generator ceiling", limit, h2("h2-load", "grpc", verifyPath, verifyBodies(warm, "grpc")), { keysInTable: null, database: false });
      } finally {
        await stop(limit);
      }
      if (quick) {
        const raw = await startScript("raw-pg", "pg-server.ts", { PATH: process.env["PATH"], DATABASE_URL: databaseUrl });
        try {
          await runCase("raw-pg", "node:http + 1 SELECT", raw, h1("json", "/", verifyBodies(warm, "json")), { keysInTable: tableSmall });
        } finally {
          await stop(raw);
        }
        // The same server sending the statement the way keyward does (unprepared, planned per call).
        const unprepared = await startScript("raw-pg unprepared", "pg-server.ts", { PATH: process.env["PATH"], DATABASE_URL: databaseUrl, BENCH_PG_PREPARED: "0" });
        try {
          await runCase("raw-pg unprepared", "node:http + 1 SELECT, planned per call", unprepared, h1("json", "/", verifyBodies(warm, "json")), { keysInTable: tableSmall });
        } finally {
          await stop(unprepared);
        }
      }

      // keyward, 10k keys, default settings.
      let keyward = await startKeyward("keyward", {});
      await heat(keyward);
      const metricsEndpoint = await fetch(`${keyward.url}/metrics`).then((r) => r.ok, () => false);
      try {
        await expectResult(keyward.url, warm[0]!, "VERIFY_RESULT_VALID");
        await expectResult(keyward.url, unknown[0]!, "VERIFY_RESULT_NOT_FOUND");
        await expectResult(keyward.url, garbageKey, "VERIFY_RESULT_MALFORMED");
        if (quick) {
          if (full) await runCase("ceiling/grpc h2load", "Health/Check (no-op)", keyward, h2("h2load", "grpc", healthPath, healthBody("grpc")), { keysInTable: tableSmall });
          await runCase("ceiling/grpc", "Health/Check (no-op)", keyward, h2("h2-load", "grpc", healthPath, healthBody("grpc")), { keysInTable: tableSmall });
          if (full) {
            await runCase("ceiling/connect-proto h2", "Health/Check (no-op)", keyward, h2("h2-load", "connect-proto", healthPath, healthBody("connect-proto")), { keysInTable: tableSmall });
            await runCase("ceiling/connect-json h2", "Health/Check (no-op)", keyward, h2("h2-load", "connect-json", healthPath, healthBody("connect-json")), { keysInTable: tableSmall });
            await runCase("ceiling/connect-proto h1", "Health/Check (no-op)", keyward, h1("connect-proto", healthPath, healthBody("connect-proto")), { keysInTable: tableSmall });
          }
          await runCase("ceiling/connect-json h1", "Health/Check (no-op)", keyward, h1("connect-json", healthPath, healthBody("connect-json")), { keysInTable: tableSmall });
        }
        // Every mode primes the cache first (smoke too: its warm case then measures hits, as its test checks).
        await prime(keyward, verifyBodies(warm, "grpc"));
        if (full) await runCase("warm/grpc 1 key h2load", "VerifyKey, one valid key", keyward, h2("h2load", "grpc", verifyPath, verifyBodies([warm[0]!], "grpc")), { keysInTable: tableSmall });
        await runCase("warm/grpc", "VerifyKey, 10k valid keys", keyward, h2("h2-load", "grpc", verifyPath, verifyBodies(warm, "grpc")), { keysInTable: tableSmall });
        if (full) {
          await runCase("warm/connect-proto h2", "VerifyKey, 10k valid keys", keyward, h2("h2-load", "connect-proto", verifyPath, verifyBodies(warm, "connect-proto")), { keysInTable: tableSmall });
          await runCase("warm/connect-json h2", "VerifyKey, 10k valid keys", keyward, h2("h2-load", "connect-json", verifyPath, verifyBodies(warm, "connect-json")), { keysInTable: tableSmall });
          await runCase("warm/connect-proto h1", "VerifyKey, 10k valid keys", keyward, h1("connect-proto", verifyPath, verifyBodies(warm, "connect-proto")), { keysInTable: tableSmall });
        }
        if (quick) {
          await runCase("warm/connect-json h1", "VerifyKey, 10k valid keys", keyward, h1("connect-json", verifyPath, verifyBodies(warm, "connect-json")), { keysInTable: tableSmall });
          await prime(keyward, verifyBodies(unknown, "grpc"));
          await runCase("unknown/grpc", "VerifyKey, 10k unknown ids", keyward, h2("h2-load", "grpc", verifyPath, verifyBodies(unknown, "grpc")), { keysInTable: tableSmall });
        }
        if (full) {
          await runCase("mixed/grpc", "1 valid : 1 unknown", keyward, h2("h2-load", "grpc", verifyPath, verifyBodies(mixed, "grpc")), { keysInTable: tableSmall });
          await runCase("garbage/grpc h2load", "VerifyKey, bad checksum", keyward, h2("h2load", "grpc", verifyPath, verifyBodies([garbageKey], "grpc")), { keysInTable: tableSmall });
        }
      } finally {
        await stop(keyward);
      }

      const coldEnv = { KEYWARD_VERIFY_CACHE_TTL_SECONDS: "0" };
      if (!cacheSwitch) notes.push("no verification cache in this checkout (KEYWARD_VERIFY_CACHE_TTL_SECONDS unknown to src/config.ts): warm = cold, every call reads PostgreSQL");
      if (quick) {
        keyward = await startKeyward("keyward cold", coldEnv);
        await heat(keyward);
        try {
          await runCase("cold/grpc", "VerifyKey, cache off", keyward, h2("h2-load", "grpc", verifyPath, verifyBodies(warm, "grpc")), { keysInTable: tableSmall });
          await runCase("cold/connect-json h1", "VerifyKey, cache off", keyward, h1("connect-json", verifyPath, verifyBodies(warm, "connect-json")), { keysInTable: tableSmall });
        } finally {
          await stop(keyward);
        }
      }

      if (full && metricsSwitch) {
        keyward = await startKeyward("keyward no metrics", { KEYWARD_METRICS: "0" });
        await heat(keyward);
        try {
          await prime(keyward, verifyBodies(warm, "grpc"));
          await runCase("warm/grpc metrics off", "VerifyKey, KEYWARD_METRICS=0", keyward, h2("h2-load", "grpc", verifyPath, verifyBodies(warm, "grpc")), { keysInTable: tableSmall });
        } finally {
          await stop(keyward);
        }
      } else if (full) {
        notes.push(`metrics cost not measured: ${metricsEndpoint ? "/metrics exists but" : "no /metrics and"} no KEYWARD_METRICS switch in src/config.ts`);
      }

      // Revocation propagation to a second replica (bench/propagation.ts).
      await propagationStep(db, boot);

      // The SDK's guard: throughput guarded ÷ unguarded, revocation → refusal (bench/sdk.ts).
      await sdkStep(boot);

      // 1M keys in the table.
      if (full) {
        const t0 = performance.now();
        await seed(db, boot.keyId, warmKeys, cachedKeys);
        await fill(db, boot.keyId, 0, bigTable - cachedKeys);
        const tableBig = Number((await db.query<{ n: string }>("select count(*) as n from api_key")).rows[0]!.n);
        notes.push(`seeded the table to ${tableBig} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        keyward = await startKeyward("keyward 1M", {});
        await heat(keyward);
        try {
          await prime(keyward, verifyBodies(warm, "grpc"));
          await runCase("warm/grpc 1M", "VerifyKey, 10k valid keys", keyward, h2("h2-load", "grpc", verifyPath, verifyBodies(warm, "grpc")), { keysInTable: tableBig });
          const all = Array.from({ length: cachedKeys }, (_, i) => validKey(i));
          await runCase("spread/grpc 1M 100k", "one pass over 100k valid keys", keyward, h2("h2-load", "grpc", verifyPath, verifyBodies(all, "grpc"), { seconds: 25, warmup: 0, max: cachedKeys }), { keysInTable: tableBig });
        } finally {
          await stop(keyward);
        }
        keyward = await startKeyward("keyward 1M cold", coldEnv);
        await heat(keyward);
        try {
          await runCase("cold/grpc 1M", "VerifyKey, cache off", keyward, h2("h2-load", "grpc", verifyPath, verifyBodies(warm, "grpc")), { keysInTable: tableBig });
        } finally {
          await stop(keyward);
        }
        if (workersFlag) {
          keyward = await startKeyward(`keyward ${workersN} workers`, {}, ["--workers", String(workersN)]);
        await heat(keyward);
          try {
            await prime(keyward, verifyBodies(warm, "grpc"));
            await prime(keyward, verifyBodies(warm, "grpc")); // each worker has its own cache
            await runCase(`warm/grpc 1M ${workersN}w`, "VerifyKey, 10k valid keys", keyward, h2("h2-load", "grpc", verifyPath, verifyBodies(warm, "grpc")), { keysInTable: tableBig, workers: workersN });
          } finally {
            await stop(keyward);
          }
        } else {
          notes.push("workers not measured: `keyward serve --workers N` is not in this checkout (src/cli.ts --help)");
        }
      }
    }
  } finally {
    await db.end();
  }
} catch (e) {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}\n`);
  exitCode = 1;
} finally {
  killAll();
  await store?.close();
  rmSync(work, { recursive: true, force: true });
}

// ---------------------------------------------------------------- ratios and report
type Ratio = { name: string; value: number | null; target: string; pass: boolean | null; note?: string };
const byId = (id: string) => results.find((r) => r.id === id);
function ratio(name: string, num: string, den: string, min: number, target: string, note?: string): Ratio {
  const a = byId(num);
  const b = byId(den);
  if (a === undefined || b === undefined || b.perSecond === 0) return { name, value: null, target, pass: null, note: note ?? `not measured in this mode (${a === undefined ? num : den})` };
  const value = a.perSecond / b.perSecond;
  return { name, value, target, pass: value >= min, ...(note === undefined ? {} : { note }) };
}
const ratios: Ratio[] = [
  ratio("warm gRPC ÷ limit (same generator, h2-load)", "warm/grpc", "limit/h2-load", 0.6, "≥ 0.6"),
  ratio("warm gRPC 1 key ÷ limit (h2load)", "warm/grpc 1 key h2load", "limit", 0.6, "≥ 0.6"),
  ratio("warm gRPC ÷ ceiling gRPC", "warm/grpc", "ceiling/grpc", 0.9, "≥ 0.9 (if the fast path does not take it)"),
  ratio("warm Connect binary h2 ÷ its ceiling", "warm/connect-proto h2", "ceiling/connect-proto h2", 0.9, "≥ 0.9 (if the fast path does not take it)"),
  ratio("warm Connect JSON h2 ÷ its ceiling", "warm/connect-json h2", "ceiling/connect-json h2", 0.9, "≥ 0.9 (if the fast path does not take it)"),
  ratio("warm Connect binary h1 ÷ its ceiling", "warm/connect-proto h1", "ceiling/connect-proto h1", 0.9, "≥ 0.9 (if the fast path does not take it)"),
  ratio("warm Connect JSON h1 ÷ its ceiling", "warm/connect-json h1", "ceiling/connect-json h1", 0.9, "≥ 0.9 (if the fast path does not take it)"),
  ratio("cold Connect JSON h1 ÷ raw pg (both autocannon, JSON over HTTP/1.1)", "cold/connect-json h1", "raw-pg", 0.8, "≥ 0.8"),
  ratio("cold Connect JSON h1 ÷ raw pg unprepared (the same statement protocol as keyward)", "cold/connect-json h1", "raw-pg unprepared", 0, "(no target: shows what the prepared statement is worth)"),
  ratio("unknown ÷ warm (gRPC, after each id's first miss)", "unknown/grpc", "warm/grpc", 0.8, "≥ 0.8"),
  ratio("1:1 valid+unknown mix ÷ all valid (gRPC)", "mixed/grpc", "warm/grpc", 0.8, "≥ 0.8 (flood slows < 20%)"),
  ratio("warm 1M ÷ warm 10k (gRPC)", "warm/grpc 1M", "warm/grpc", 0.9, "≥ 0.9"),
  ratio("cold 1M ÷ cold 10k (gRPC)", "cold/grpc 1M", "cold/grpc", 0.9, "≥ 0.9"),
  ratio("warm metrics on ÷ metrics off (gRPC)", "warm/grpc", "warm/grpc metrics off", 0.97, "≥ 0.97"),
  ratio(`warm ${workersN} workers ÷ 1 worker (gRPC, 1M)`, `warm/grpc 1M ${workersN}w`, "warm/grpc 1M", 0, "(no target)"),
  ratio("SDK guard, node:http: guarded ÷ unguarded no-op (warm cache)", "sdk/http guarded", "sdk/http unguarded", guardThroughputTarget, `≥ ${guardThroughputTarget}`),
  ratio("SDK guard, Connect: guarded ÷ unguarded no-op (warm cache)", "sdk/connect guarded", "sdk/connect unguarded", 0, "(no target)"),
];
const spread = byId("spread/grpc 1M 100k");
ratios.push(
  spread === undefined
    ? { name: "server RSS, 1M keys in table, 100k seen (MB)", value: null, target: "< 200", pass: null, note: "not measured in this mode" }
    : { name: "server RSS, 1M keys in table, 100k seen (MB)", value: spread.serverRssMB, target: "< 200", pass: spread.serverRssMB < 200, note: `${spread.requests} of ${cachedKeys} keys verified in the bounded pass` },
);
/** The p99 line of a timed trial series (PASS needs its own pass and at least 200 timed trials). */
function p99Ratio(name: string, targetMs: number, r: (LatencySummary & { pass: boolean | null; trials: number; failures: number }) | undefined, timed: number, verb: string): Ratio {
  const target = `< ${targetMs} over ≥ 200 trials`;
  if (r === undefined) return { name, value: null, target, pass: null, note: "not measured in this run" };
  return {
    name,
    value: r.p99Ms,
    target,
    pass: r.pass === null ? null : r.pass && timed >= 200,
    note: `${timed}/${r.trials} ${verb}, ${r.failures} failed; p50 ${r.p50Ms.toFixed(1)}, p95 ${r.p95Ms.toFixed(1)}, max ${r.maxMs.toFixed(1)} ms`,
  };
}
ratios.push(p99Ratio("revocation seen by a second replica, p99 (ms)", propagationTargetMs, propagation, propagation?.seen ?? 0, "seen"));
ratios.push(p99Ratio("revocation → SDK guard refusal, p99 (ms)", guardRevocationTargetMs, guardRevocation, guardRevocation?.refused ?? 0, "refused"));
notes.push("SQL/r = statements the server process(es) sent to PostgreSQL per completed request, counted in the process by bench/count-queries.ts (pg.Client#query); it includes the ~1/s health probe and last-used writes");

const cpus = os.cpus();
const loadAtEnd = os.loadavg();
const report = {
  mode,
  date: new Date().toISOString(),
  machine: { loadAverage1mAtStart: loadAtStart, loadAverage1mAtEnd: Number(loadAtEnd[0]!.toFixed(2)), cpus: cpus.length, model: cpus[0]?.model ?? "?", memoryGB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` },
  settings: { seconds, warmupSeconds, h2: { connections: h2Connections, streamsPerConnection: h2Streams }, h1: { connections: h1Connections }, warmKeys },
  features: { cacheSwitch, metricsSwitch, workersFlag },
  servers,
  cases: results,
  propagation: propagation ?? null,
  sdk: { guards: guardStats, revocation: guardRevocation ?? null },
  ratios,
  notes,
  elapsedSeconds: (performance.now() - started) / 1000,
};
writeFileSync(outPath, `${JSON.stringify(report, null, 2)}\n`);
if (mode !== "smoke") {
  const lines = [
    `keyward bench (${mode}) — ${report.machine.cpus} × ${report.machine.model}, ${report.machine.memoryGB} GB, Node ${process.version}`,
    `load average (1 min) ${loadAtStart} at start, ${report.machine.loadAverage1mAtEnd} at end (the bench alone keeps it near 2)`,
    `HTTP/2: ${h2Connections} connections × ${h2Streams} streams; HTTP/1.1: ${h1Connections} connections; ${seconds} s per case after ${warmupSeconds} s warm-up`,
    "",
    header,
    ...results.map(formatRow),
    ...(propagation === undefined ? [] : ["", formatPropagation(propagation)]),
    ...(guardRevocation === undefined ? [] : [...(propagation === undefined ? [""] : []), formatGuardRevocation(guardRevocation)]),
    "",
    ...ratios.map((r) => `${(r.pass === null ? "  –  " : r.pass ? "PASS " : "MISS ")} ${r.name.padEnd(70)} ${r.value === null ? "–" : r.value.toFixed(2)}  target ${r.target}${r.note === undefined ? "" : `  (${r.note})`}`),
    "",
    ...notes.map((n) => `note: ${n}`),
    `keyward RSS once healthy, before load (MB): ${servers.map((s) => `${s.name} ${s.rssAfterStartMB}`).join(", ")}`,
    "",
    `JSON: ${outPath}  (${report.elapsedSeconds.toFixed(0)} s)`,
  ];
  process.stdout.write(`${lines.join("\n")}\n${JSON.stringify(report)}\n`);
}
process.exit(exitCode);
