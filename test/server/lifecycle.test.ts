// The real `keyward` process: configuration checks, embedded PostgreSQL that keeps its
// data across restarts, graceful shutdown on SIGTERM, and unreachable databases.
import { describe, expect, test } from "@jest/globals";
import { existsSync, mkdtempSync, chmodSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, startServe } from "../cli.ts";

describe("configuration", () => {
  test.each([
    ["PORT", "abc"],
    ["PORT", "70000"],
    ["HOST", "not a host!"],
    ["DATABASE_URL", "not a url"],
    ["DATABASE_URL", "mysql://u@h/db"],
    ["LOG_LEVEL", "loud"],
    ["KEYWARD_OIDC_ISSUERS", "http://evil.example.com"],
    ["KEYWARD_KEY_PREFIX", "Bad_Prefix"],
  ])("when %s=%s, then serve stops with a message naming the variable", async (name, value) => {
    const { code, stderr, stdout } = await runCli(["serve"], { [name]: value }, 30_000);
    expect(code).toBe(1);
    expect(stderr).toContain(name);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stdout).not.toContain("keyward listening");
  });

  test("when the database cannot be reached, then one clear line without the password, exit 1", async () => {
    const { code, stderr } = await runCli(["serve"], { DATABASE_URL: "postgres://kw:hunter2secret@127.0.0.1:1/keyward" }, 30_000);
    expect(code).toBe(1);
    expect(stderr).toMatch(/cannot connect to PostgreSQL/);
    expect(stderr).not.toContain("hunter2secret");
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  test("when the command is unknown, then usage and exit 2", async () => {
    const { code, stderr } = await runCli(["frobnicate"], {}, 30_000);
    expect(code).toBe(2);
    expect(stderr).toContain("usage: keyward");
  });
});

describe("embedded PostgreSQL", () => {
  test("when keyward restarts on the same data folder, then its data is still there; SIGTERM shuts it down cleanly", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "keyward-lifecycle-"));
    chmodSync(dataDir, 0o755);
    try {
      const env = { KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info" };
      const first = await startServe(env, 90_000);
      expect(first.output()).toContain("initialising a new embedded PostgreSQL cluster");
      expect(first.output()).toContain("applied migration");
      const health = await fetch(`${first.url}/healthz`);
      expect(health.status).toBe(200);
      first.child.kill("SIGTERM");
      expect(await first.exited).toBe(0);
      expect(first.output()).toContain("keyward stopped");
      expect(existsSync(join(dataDir, "pg", "postmaster.pid"))).toBe(false);

      const second = await startServe(env, 90_000);
      expect(second.output()).not.toContain("initialising a new embedded PostgreSQL cluster");
      expect(second.output()).not.toContain("applied migration");
      second.child.kill("SIGTERM");
      expect(await second.exited).toBe(0);

      const migrate = await runCli(["migrate"], env, 90_000);
      expect(migrate.code).toBe(0);
      expect(migrate.stdout).toContain("migrations up to date");
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 240_000);
});
