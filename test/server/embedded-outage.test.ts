// keyward serve when its own embedded PostgreSQL dies or hangs: it must not stay up serving
// nothing, and its stop must fit in the bound README gives supervisors.
import { describe, expect, test } from "@jest/globals";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { maxStopMs } from "../../src/db/embedded-postgres.ts";
import { closeTimeoutMs } from "../../src/db/store.ts";
import { flushBoundMs } from "../../src/main.ts";
import { bootstrapCli, exitWithin, killLeftovers, postgresProcesses, postmasterPid, startServe, withDataDir, verifyOverHttp, type ServeProcess } from "../cli.ts";

/** The log lines at error level (50) or above. */
function errorLines(out: string): string[] {
  return out.split("\n").filter((l) => /"level":(50|60)/.test(l));
}

describe("keyward serve when its embedded PostgreSQL dies", () => {
  test("when the postmaster is SIGKILLed, then keyward logs one error line, drains and exits 1 within seconds, and the next start serves the same data", async () => {
    await withDataDir("keyward-pgdies-", async (dataDir) => {
      const env = { KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info" };
      let first: ServeProcess | undefined;
      let next: ServeProcess | undefined;
      try {
        first = await startServe(env, 90_000);
        const { secret } = await bootstrapCli(env);
        const postmaster = postmasterPid(dataDir)!;

        process.kill(postmaster, "SIGKILL");
        // Watcher (0.5 s) + drain with nothing in flight + closing: well under 10 s.
        expect(await exitWithin(first, 10_000)).toBe(1);
        const out = first.output();
        expect(errorLines(out)).toHaveLength(1);
        expect(errorLines(out)[0]).toContain(`the embedded PostgreSQL (pid ${postmaster}) exited unexpectedly`);
        expect(errorLines(out)[0]).toContain("shutting down with exit code 1");
        expect(out).toContain("keyward stopped");
        expect(out).not.toMatch(/\n\s+at /);
        expect(existsSync(join(dataDir, "keyward.lock"))).toBe(false);

        // What a supervisor does next: start again; it serves the same data.
        next = await startServe(env, 90_000);
        expect((await fetch(`${next.url}/healthz`)).status).toBe(200);
        expect(await verifyOverHttp(next.url, secret)).toBe("VERIFY_RESULT_VALID");
        next.child.kill("SIGTERM");
        expect(await exitWithin(next, 30_000)).toBe(0);
        expect(postgresProcesses(dataDir)).toEqual([]);
      } finally {
        await killLeftovers(first?.child, dataDir);
        await killLeftovers(next?.child, dataDir);
      }
    });
  }, 300_000);

  test("when DATABASE_URL is not set and keyward is stopped normally, then it exits 0 without the error line", async () => {
    await withDataDir("keyward-pgnormal-", async (dataDir) => {
      let served: ServeProcess | undefined;
      try {
        served = await startServe({ KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info" }, 90_000);
        served.child.kill("SIGTERM");
        expect(await exitWithin(served, 30_000)).toBe(0);
        expect(served.output()).not.toContain("exited unexpectedly");
        expect(errorLines(served.output())).toEqual([]);
      } finally {
        await killLeftovers(served?.child, dataDir);
      }
    });
  }, 120_000);
});

describe("keyward serve when its embedded PostgreSQL hangs", () => {
  test("when PostgreSQL is frozen (SIGSTOP, postmaster and children) and keyward gets SIGTERM, then it exits within grace + flush bound + close + database stop bound, says in one line how many last-used times were lost, and leaves no PostgreSQL process", async () => {
    await withDataDir("keyward-pghung-", async (dataDir) => {
      const graceMs = 2_000;
      const env = { KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info", KEYWARD_SHUTDOWN_GRACE_MS: String(graceMs) };
      let served: ServeProcess | undefined;
      try {
        served = await startServe(env, 90_000);
        const { secret } = await bootstrapCli(env);
        expect(await verifyOverHttp(served.url, secret)).toBe("VERIFY_RESULT_VALID"); // a last-used time to flush

        const frozen = postgresProcesses(dataDir);
        expect(frozen.length).toBeGreaterThan(1); // the postmaster and its children
        for (const pid of frozen) process.kill(pid, "SIGSTOP");
        const started = Date.now();
        served.child.kill("SIGTERM");
        // The documented bound (README, "Under a supervisor"), with the default database timeouts,
        // plus a second for the process to start exiting.
        const bound = graceMs + flushBoundMs({ dbConnectTimeoutMs: 3_000, dbQueryTimeoutMs: 5_000 }) + closeTimeoutMs + maxStopMs + 1_000;
        expect(await exitWithin(served, bound)).toBe(0);
        expect(Date.now() - started).toBeLessThan(bound);

        const out = served.output();
        expect(out).toMatch(/could not record last-used times: 1 key\(s\)' times lost/);
        expect(out).not.toMatch(/\n\s+at /);
        expect(out).not.toContain('"stack"');
        expect(out).toContain("killing the embedded PostgreSQL (SIGKILL)");
        expect(out).toContain("keyward stopped");
        expect(postgresProcesses(dataDir)).toEqual([]);
        expect(existsSync(join(dataDir, "keyward.lock"))).toBe(false);
      } finally {
        await killLeftovers(served?.child, dataDir);
      }
    });
  }, 300_000);
});
