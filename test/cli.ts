// Runs the real `keyward` command line in a child process, for tests of startup,
// configuration, restart and shutdown.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testKeyEncryptionKey } from "./kek.ts";

/** The repository root. */
export const repoRoot = join(import.meta.dirname, "..");
const node = join(repoRoot, "node_modules", ".bin", "node");
const cli = join(repoRoot, "src", "cli.ts");

/**
 * The environment every CLI child starts from: PATH, HOME and the tests' key-encryption key
 * (a server on the shared database must open its signing keys; `""` in a test's env unsets it).
 */
function baseEnv(): Record<string, string> {
  return { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/root", KEYWARD_KEY_ENCRYPTION_KEY: testKeyEncryptionKey };
}

/** The outcome of a finished CLI run. */
export type CliResult = { code: number | null; stdout: string; stderr: string };

/** Runs `keyward <args>` to completion (bounded by `timeoutMs`). */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [cli, ...args], { env: { ...baseEnv(), ...env }, cwd: repoRoot });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`keyward ${args.join(" ")} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A `keyward serve` child process that has started listening. */
export type ServeProcess = { child: ChildProcess; url: string; output: () => string; exited: Promise<number | null> };

/**
 * Starts `keyward serve` and waits for its "keyward listening" log line. With `detached`, it
 * leads a process group of its own (as a shell's foreground job does): signal the whole group
 * with process.kill(-child.pid, …) to imitate Ctrl-C.
 */
export function startServe(env: Record<string, string>, timeoutMs = 60_000, opts: { terminal?: boolean; detached?: boolean } = {}): Promise<ServeProcess> {
  return new Promise((resolve, reject) => {
    const fullEnv = { ...baseEnv(), PORT: "0", ...env };
    // With `terminal`, util-linux `script` runs keyward on a pseudo-terminal (as a shell would).
    const child =
      opts.terminal === true
        ? spawn("script", ["-qfec", `${node} ${cli} serve`, "/dev/null"], { env: fullEnv, cwd: repoRoot })
        : spawn(node, [cli, "serve"], { env: fullEnv, cwd: repoRoot, detached: opts.detached === true });
    let out = "";
    const exited = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`keyward serve did not start in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      const match = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"keyward listening"/.exec(out);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve({ child, url: match[1], output: () => out, exited });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`keyward serve exited with ${code} before listening:\n${out}`));
    });
  });
}

/**
 * Runs `fn` with a fresh data folder that is removed afterwards. Mode 755: the embedded
 * PostgreSQL's OS user must be able to enter it (mkdtemp makes 700).
 */
export async function withDataDir(prefix: string, fn: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dataDir, 0o755);
  try {
    await fn(dataDir);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Whether a process with this pid exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return false;
  }
}

/** Waits until `pid` has exited; false if it is still there after `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs = 10_000): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; ) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !isAlive(pid);
}

/** The exit code of `serve` once it exits; rejects (with its output) if it has not within `ms`. */
export async function exitWithin(serve: ServeProcess, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([serve.exited, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no exit within ${ms} ms:\n${serve.output()}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The pid in `<dataDir>/pg/postmaster.pid`, if the file exists. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(join(dataDir, "pg", "postmaster.pid"), "utf8").split("\n")[0] ?? "", 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The live (not zombie) processes working in `<dataDir>/pg`: the embedded PostgreSQL's
 * postmaster and all its children (every PostgreSQL process works in its data folder).
 */
export function postgresProcesses(dataDir: string): number[] {
  const pg = join(dataDir, "pg");
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => pid !== process.pid && isAlive(pid) && runsIn(pid, pg));
}

/**
 * For finally blocks: SIGKILLs a keyward child (its whole group when it leads one) and the
 * embedded PostgreSQL on `dataDir` (postmaster and children, stopped or not), if still running.
 */
export async function killLeftovers(child: ChildProcess | undefined, dataDir: string): Promise<void> {
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, "SIGKILL");
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // not a group leader, or gone already
    }
  }
  // Only processes working in this cluster: a stale postmaster.pid's pid may belong to anyone by now.
  const pids = postgresProcesses(dataDir);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  for (const pid of pids) await waitForExit(pid, 10_000);
}

/** Whether `pid`'s working folder is `dir` (a PostgreSQL server works in its data folder). */
export function runsIn(pid: number, dir: string): boolean {
  try {
    return realpathSync(`/proc/${pid}/cwd`) === realpathSync(dir);
  } catch {
    return false;
  }
}

/** VerifyKey over plain HTTP/1.1 JSON (as curl would); returns the result's name. */
export async function verifyOverHttp(url: string, key: string): Promise<string> {
  const res = await fetch(`${url}/keyward.v1.KeyService/VerifyKey`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key }),
  });
  return ((await res.json()) as { result: string }).result;
}

/** What `keyward bootstrap --json` prints. */
export type BootstrapOutput = { tenant: string; tenantCreated: boolean; keyName: string; keyId: string; slot: string; replaced: string; secret: string };

/** Runs `keyward bootstrap --tenant <tenant> --json` with `env`; throws unless it succeeds. */
export async function bootstrapCli(env: Record<string, string>, tenant = "acme"): Promise<BootstrapOutput> {
  const boot = await runCli(["bootstrap", "--tenant", tenant, "--json"], env, 60_000);
  if (boot.code !== 0) throw new Error(`keyward bootstrap exited ${boot.code}: ${boot.stderr.trim()}`);
  return JSON.parse(boot.stdout) as BootstrapOutput;
}
