// The process lifecycle as a supervisor or a container runtime sees it: SIGTERM sent to
// the pid of the documented command (`npm start`, `npx keyward serve`, the keyward bin)
// reaches the server, which drains and exits, leaving no process and no open port behind;
// and a port in use is reported in one line before any database starts.
import { describe, expect, test } from "@jest/globals";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { repoRoot, runCli, withDataDir } from "../cli.ts";
import { testDatabaseUrl } from "../harness.ts";
import { testKeyEncryptionKey } from "../kek.ts";
import { until } from "../wait.ts";

const systemNode = ["/usr/bin/node", "/usr/local/bin/node"].find((p) => existsSync(p));
const npm = ["/usr/bin/npm", "/usr/local/bin/npm"].find((p) => existsSync(p));

/** The parent pid of every live process (zombies count as gone). */
function parents(): Map<number, number> {
  const map = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses.
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (state !== "Z") map.set(Number(entry), Number(ppid));
  }
  return map;
}

/** `root` and every process below it. */
function processTree(root: number): number[] {
  const byParent = parents();
  const tree = [root];
  for (let i = 0; i < tree.length && i < 1_000; i++) {
    for (const [pid, ppid] of byParent) if (ppid === tree[i] && !tree.includes(pid)) tree.push(pid);
  }
  return tree;
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "";
  }
}

function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}

/** A command started in its own process group, with everything it printed. */
type Launched = { child: ChildProcess; output: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> };

function launch(command: string, args: string[], env: Record<string, string>): Launched {
  // A clean environment: nothing of the npm that runs jest (npm_* variables) leaks in.
  const fullEnv = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: process.env["HOME"] ?? "/root", ...env };
  const child = spawn(command, args, { cwd: repoRoot, env: fullEnv, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once("exit", (code, signal) => r({ code, signal })));
  return { child, output: () => out, exit };
}

/** Kills what is left of a launched command's process group (only the test's own processes). */
function killGroup(launched: Launched): void {
  try {
    if (launched.child.pid !== undefined) process.kill(-launched.child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * Starts `command`, waits for "keyward listening", sends `signal` to the top pid only, and
 * checks that the whole process tree is gone, the port refuses connections and keyward
 * drained ("keyward stopped"). Returns the top process's exit.
 */
async function signalTopPid(
  command: string,
  args: string[],
  signal: NodeJS.Signals,
  opts: { alsoToServer?: boolean; env?: Record<string, string> } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let result: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  await withDataDir("keyward-signals-", async (dataDir) => {
    const launched = launch(command, args, {
      DATABASE_URL: testDatabaseUrl(),
      // The shared database's signing keys are sealed under the tests' key-encryption key.
      KEYWARD_KEY_ENCRYPTION_KEY: testKeyEncryptionKey,
      KEYWARD_DATA_DIR: dataDir,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      KEYWARD_LOG_FORMAT: "json",
      ...opts.env,
    });
    let inFlight: net.Socket | undefined;
    try {
      const listening = /"url":"http:\/\/127\.0\.0\.1:(\d+)"[^\n]*"msg":"keyward listening"/;
      await until(() => listening.test(launched.output()) || launched.child.exitCode !== null, 60_000, `${command} listening`);
      const port = Number(listening.exec(launched.output())?.[1]);
      expect(port).toBeGreaterThan(0);
      const top = launched.child.pid!;
      const tree = processTree(top);
      // The server itself is in the tree (the bin, or src/cli.ts under the pinned Node).
      expect(tree.map(commandLine).filter((c) => / serve$/.test(c.trim())).join(" | ")).toMatch(/(src\/cli\.ts|bin\/keyward(\.js)?) serve/);

      if (opts.alsoToServer === true) {
        // A call still in flight (its body is not all there) keeps the drain open until the grace ends.
        inFlight = net.connect(port, "127.0.0.1");
        inFlight.on("error", () => {});
        inFlight.write("POST /keyward.v1.KeyService/VerifyKey HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{");
        await new Promise((r) => inFlight!.once("ready", r));
      }
      process.kill(top, signal);
      if (opts.alsoToServer === true) {
        // A terminal's Ctrl-C reaches every process of the group, and npm forwards its copy:
        // the server gets the signal twice, a moment apart.
        const server = tree.find((pid) => / serve$/.test(commandLine(pid).trim()) && pid !== top);
        expect(server).toBeDefined();
        process.kill(server!, signal);
      }
      let timer: NodeJS.Timeout | undefined;
      try {
        result = await Promise.race([
          launched.exit,
          new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`${command} did not exit after ${signal}`)), 30_000))),
        ]);
      } finally {
        clearTimeout(timer);
      }
      const live = () => tree.filter((pid) => parents().has(pid));
      await until(() => live().length === 0, 15_000, `processes left after ${signal}: ${live().map(commandLine).join(" | ")}`);
      expect(await portRefuses(port)).toBe(true);
      await until(() => launched.output().includes("keyward stopped"), 5_000, "keyward drained and said so");
    } finally {
      inFlight?.destroy();
      killGroup(launched);
    }
  });
  return result!;
}

describe("signals reach the server", () => {
  (npm === undefined ? test.skip : test)("when SIGTERM is sent to the pid of `npm start`, then the server drains and exits, no process is left and the port is closed", async () => {
    const exit = await signalTopPid(npm!, ["start"], "SIGTERM");
    expect(exit).toEqual({ code: 0, signal: null });
  }, 120_000);

  (npm === undefined ? test.skip : test)("when Ctrl-C stops `npm start` (SIGINT to npm, which forwards it, and to the server itself), then keyward takes the two as one request and still drains, exit 0", async () => {
    const exit = await signalTopPid(npm!, ["start"], "SIGINT", { alsoToServer: true, env: { KEYWARD_SHUTDOWN_GRACE_MS: "1500" } });
    expect(exit).toEqual({ code: 0, signal: null });
  }, 120_000);

  (npm === undefined ? test.skip : test)("when SIGTERM is sent to the pid of `npx keyward serve`, then the server drains and exits, no process is left and the port is closed", async () => {
    // --offline: the keyward package is this repository; nothing may be fetched.
    await signalTopPid(npm!.replace(/npm$/, "npx"), ["--offline", "keyward", "serve"], "SIGTERM");
  }, 120_000);

  (systemNode === undefined ? test.skip : test).each(["SIGTERM", "SIGHUP", "SIGINT"] as const)(
    "when %s is sent to the keyward bin running on an older system Node, then it reaches the server on the pinned Node, which drains and exits 0",
    async (signal) => {
      const exit = await signalTopPid(systemNode!, [join(repoRoot, "bin", "keyward.js"), "serve"], signal);
      expect(exit).toEqual({ code: 0, signal: null });
    },
    120_000,
  );
});

describe("port already in use", () => {
  test("when PORT is taken, then serve says so in one line and exits 1 before starting any PostgreSQL", async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      await withDataDir("keyward-portinuse-", async (dataDir) => {
        // No DATABASE_URL: without the early check this would initialise an embedded PostgreSQL.
        const started = Date.now();
        const { code, stdout, stderr } = await runCli(["serve"], { PORT: String(port), HOST: "127.0.0.1", KEYWARD_DATA_DIR: dataDir }, 30_000);
        expect(code).toBe(1);
        expect(stderr).toBe(`keyward: port ${port} on 127.0.0.1 is already in use (set PORT to a free port, or stop the process that holds it)\n`);
        expect(stdout).not.toContain("embedded");
        expect(readdirSync(dataDir)).toEqual([]);
        expect(Date.now() - started).toBeLessThan(10_000);
      });
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });
});
