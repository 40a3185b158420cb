// The real `keyward` process: configuration checks, embedded PostgreSQL that keeps its
// data across restarts, graceful shutdown on SIGTERM, and unreachable databases.
import { describe, expect, test } from "@jest/globals";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/db/embedded-postgres.ts";
import { createLogger } from "../../src/logger.ts";
import { bootstrapCli, killLeftovers, runCli, startServe, waitForExit, withDataDir, verifyOverHttp, type ServeProcess } from "../cli.ts";

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
  test("when keyward restarts on the same data folder, then its data is still there; bootstrap works with and without a running server; SIGTERM shuts down cleanly", async () => {
    await withDataDir("keyward-lifecycle-", async (dataDir) => {
      const env = { KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info" };
      const first = await startServe(env, 90_000);
      expect(first.output()).toContain("initialising a new embedded PostgreSQL cluster");
      expect(first.output()).toContain("applied migration");
      // Without a terminal, the first start creates no tenant and says how to.
      expect(first.output()).toContain("keyward bootstrap --tenant");
      const health = await fetch(`${first.url}/healthz`);
      expect(health.status).toBe(200);

      // bootstrap attaches to the embedded PostgreSQL the running server started.
      const boot = await runCli(["bootstrap", "--tenant", "acme", "--json"], env, 60_000);
      expect(boot.code).toBe(0);
      const made = JSON.parse(boot.stdout) as { tenant: string; tenantCreated: boolean; slot: string; secret: string };
      expect(made).toMatchObject({ tenant: "acme", tenantCreated: true, slot: "primary" });
      expect(made.secret).toMatch(/^kwadm_/);
      expect(await verifyOverHttp(first.url, made.secret)).toBe("VERIFY_RESULT_VALID");
      expect(first.output()).not.toContain(made.secret);

      first.child.kill("SIGTERM");
      expect(await first.exited).toBe(0);
      expect(first.output()).toContain("keyward stopped");
      expect(existsSync(join(dataDir, "pg", "postmaster.pid"))).toBe(false);

      // bootstrap with no server running starts (and stops) the embedded PostgreSQL itself.
      const again = await runCli(["bootstrap", "--tenant", "acme"], env, 90_000);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain("exists");
      expect(again.stdout).toContain("secondary slot");
      const secondKey = /\n  (kwadm_\S+)\n/.exec(again.stdout)?.[1];
      expect(secondKey).toBeDefined();
      expect(existsSync(join(dataDir, "pg", "postmaster.pid"))).toBe(false);

      const second = await startServe(env, 90_000);
      expect(second.output()).not.toContain("initialising a new embedded PostgreSQL cluster");
      expect(second.output()).not.toContain("applied migration");
      expect(await verifyOverHttp(second.url, made.secret)).toBe("VERIFY_RESULT_VALID");
      expect(await verifyOverHttp(second.url, secondKey!)).toBe("VERIFY_RESULT_VALID");
      second.child.kill("SIGTERM");
      expect(await second.exited).toBe(0);

      const migrate = await runCli(["migrate"], env, 90_000);
      expect(migrate.code).toBe(0);
      expect(migrate.stdout).toContain("migrations up to date");

      const bad = await runCli(["bootstrap", "--tenant", "Not A Slug"], env, 30_000);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain("invalid tenant slug");
    });
  }, 300_000);

  // keyward's own embedded PostgreSQL dying ends keyward (exit 1, see embedded-outage.test.ts);
  // a database behind DATABASE_URL is someone else's to restart, so keyward stays up and says so.
  test("when the PostgreSQL behind DATABASE_URL dies under a running server, then calls answer Unavailable (not Internal), keyward stays up, and SIGTERM still stops it", async () => {
    await withDataDir("keyward-dbdown-", async (dataDir) => {
      let pg: EmbeddedDatabase | undefined;
      let served: ServeProcess | undefined;
      try {
        pg = await startEmbeddedPostgres({ dataDir, logger: createLogger({ level: "silent", pretty: false }) });
        const env = { DATABASE_URL: pg.url, LOG_LEVEL: "info" };
        served = await startServe(env, 90_000);
        const { secret } = await bootstrapCli(env);
        process.kill(pg.pid, "SIGKILL");
        expect(await waitForExit(pg.pid)).toBe(true);
        const call = async (path: string, body: unknown, key?: string) => {
          const res = await fetch(`${served!.url}/keyward.v1.${path}`, {
            method: "POST",
            headers: { "content-type": "application/json", ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) },
            body: JSON.stringify(body),
          });
          return ((await res.json()) as { code?: string }).code;
        };
        expect(await call("KeyService/VerifyKey", { key: secret })).toBe("unavailable");
        expect(await call("KeyService/ListKeys", {}, secret)).toBe("unavailable");
        expect((await fetch(`${served.url}/healthz`)).status).toBe(503);
        expect(served.child.exitCode).toBeNull();
        served.child.kill("SIGTERM");
        expect(await served.exited).toBe(0);
        expect(served.output()).not.toContain("exited unexpectedly");
      } finally {
        await killLeftovers(served?.child, dataDir);
        await pg?.stop();
      }
    });
  }, 120_000);

  test("when the first start on an empty embedded database has a terminal, then it prints the default tenant's admin key there and not in the JSON log", async () => {
    await withDataDir("keyward-firststart-", async (dataDir) => {
      // `script` gives the process a pseudo-terminal, as `npm start` in a shell has.
      const served = await startServe({ KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info", KEYWARD_LOG_FORMAT: "json" }, 90_000, { terminal: true });
      const out = served.output();
      const key = /\n  (kwadm_\S+)/.exec(out.replace(/\r/g, ""))?.[1];
      expect(key).toBeDefined();
      expect(out).toContain('Created tenant "default"');
      expect(await verifyOverHttp(served.url, key!)).toBe("VERIFY_RESULT_VALID");
      const jsonLines = out.replace(/\r/g, "").split("\n").filter((l) => l.startsWith("{"));
      expect(jsonLines.length).toBeGreaterThan(0);
      for (const line of jsonLines) expect(line).not.toContain(key!);
      served.child.kill("SIGTERM");
      await served.exited;
      // The terminal hangs up; keyward shuts down and stops its PostgreSQL.
      for (let i = 0; i < 100 && existsSync(join(dataDir, "pg", "postmaster.pid")); i++) await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(join(dataDir, "pg", "postmaster.pid"))).toBe(false);
    });
  }, 120_000);
});
