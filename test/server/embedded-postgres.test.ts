// The embedded PostgreSQL's lifecycle: a private Unix socket instead of TCP, a session of its
// own (Ctrl-C at a terminal reaches keyward only), one keyward per data folder, and a clean
// takeover after keyward was killed with SIGKILL.
import { describe, expect, test } from "@jest/globals";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { arch, platform } from "node:os";
import { join } from "node:path";
import { findRunningEmbeddedPostgres, startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/db/embedded-postgres.ts";
import { openDatabase } from "../../src/db/orm.ts";
import { createLogger } from "../../src/logger.ts";
import { StartupError } from "../../src/startup-error.ts";
import { bootstrapCli, isAlive, killLeftovers, postmasterPid, runCli, startServe, waitForExit, withDataDir, verifyOverHttp, type ServeProcess } from "../cli.ts";

const logger = createLogger({ level: "silent", pretty: false });
const binaries = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { pg_ctl: string };

/** Fields 5 and 6 of /proc/<pid>/stat: process group and session. */
function groupAndSession(pid: number): { pgrp: number; session: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { pgrp: Number(fields[2]), session: Number(fields[3]) };
}

async function query(url: string, sql: string): Promise<Record<string, unknown>[]> {
  const db = await openDatabase({ url, logger });
  try {
    return await db.em.fork().getConnection().execute<Record<string, unknown>[]>(sql);
  } finally {
    await db.close();
  }
}

describe("startEmbeddedPostgres", () => {
  test("when started, then it listens only on a 0700 socket folder inside the data folder, in a session of its own, and stop() ends it and frees the folder", async () => {
    await withDataDir("keyward-pg-socket-", async (dataDir) => {
      let pg: EmbeddedDatabase | undefined;
      try {
        pg = await startEmbeddedPostgres({ dataDir, logger });
        const run = join(dataDir, "run");
        expect(new URL(pg.url).searchParams.get("host")).toBe(run);
        expect(pg.pid).toBe(postmasterPid(dataDir));
        // postmaster.pid line 6: the TCP listen address; empty means no TCP socket at all.
        const lines = readFileSync(join(dataDir, "pg", "postmaster.pid"), "utf8").split("\n");
        expect(lines[4]).toBe(run);
        expect(lines[5]?.trim()).toBe("");
        expect(statSync(run).mode & 0o777).toBe(0o700);
        expect(statSync(join(dataDir, "postgres-password")).mode & 0o777).toBe(0o600);
        // Not in our process group or session: a terminal's Ctrl-C cannot reach it.
        const ours = groupAndSession(process.pid);
        const its = groupAndSession(pg.pid);
        expect(its.pgrp).not.toBe(ours.pgrp);
        expect(its.session).not.toBe(ours.session);
        expect(await query(pg.url, "select current_database() as db, inet_server_addr() as addr")).toEqual([{ db: "keyward", addr: null }]);
        expect(await findRunningEmbeddedPostgres(dataDir)).toBe(pg.url);
        // A wrong password is refused even over the private socket.
        const wrong = new URL(pg.url);
        wrong.password = "not-the-password";
        await expect(openDatabase({ url: wrong.toString(), logger })).rejects.toThrow(/password authentication failed/);

        await pg.stop();
        expect(await waitForExit(pg.pid)).toBe(true);
        expect(existsSync(join(dataDir, "pg", "postmaster.pid"))).toBe(false);
        expect(existsSync(join(dataDir, "keyward.lock"))).toBe(false);
        expect(await findRunningEmbeddedPostgres(dataDir)).toBeUndefined();
        await pg.stop(); // twice is fine
      } finally {
        await pg?.stop();
        await killLeftovers(undefined, dataDir);
      }
    });
  }, 120_000);

  test("when the postmaster is SIGSTOPped, then stop() still ends it, within its bound", async () => {
    await withDataDir("keyward-pg-sigstop-", async (dataDir) => {
      let pg: EmbeddedDatabase | undefined;
      try {
        pg = await startEmbeddedPostgres({ dataDir, logger });
        process.kill(pg.pid, "SIGSTOP");
        const started = Date.now();
        await pg.stop();
        expect(Date.now() - started).toBeLessThan(30_000);
        expect(await waitForExit(pg.pid)).toBe(true);
      } finally {
        if (pg !== undefined && isAlive(pg.pid)) process.kill(pg.pid, "SIGCONT");
        await pg?.stop();
        await killLeftovers(undefined, dataDir);
      }
    });
  }, 120_000);

  test("when keyward.lock names a live pid with another start time (a recycled pid), then the folder is taken over; when the password file is gone, then one clear line", async () => {
    await withDataDir("keyward-pg-lock-", async (dataDir) => {
      let pg: EmbeddedDatabase | undefined;
      try {
        pg = await startEmbeddedPostgres({ dataDir, logger });
        await pg.stop();
        writeFileSync(join(dataDir, "keyward.lock"), `${process.pid}\n1\n`);
        pg = await startEmbeddedPostgres({ dataDir, logger });
        await expect(startEmbeddedPostgres({ dataDir, logger })).rejects.toThrow(/data folder .* is in use by this process/);
        await pg.stop();

        rmSync(join(dataDir, "postgres-password"));
        const failure = startEmbeddedPostgres({ dataDir, logger });
        await expect(failure).rejects.toBeInstanceOf(StartupError);
        await expect(failure).rejects.toThrow(/postgres-password is missing or empty/);
        expect(existsSync(join(dataDir, "keyward.lock"))).toBe(false);
      } finally {
        await pg?.stop();
        await killLeftovers(undefined, dataDir);
      }
    });
  }, 120_000);

  test("when its postmaster was killed, then a new start on the same folder (same process) recovers the data", async () => {
    await withDataDir("keyward-pg-restart-", async (dataDir) => {
      let first: EmbeddedDatabase | undefined;
      let second: EmbeddedDatabase | undefined;
      try {
        first = await startEmbeddedPostgres({ dataDir, logger });
        await query(first.url, "create table survivor (n int); insert into survivor values (7)");
        process.kill(first.pid, "SIGKILL");
        expect(await waitForExit(first.pid)).toBe(true);
        second = await startEmbeddedPostgres({ dataDir, logger });
        expect(second.pid).not.toBe(first.pid);
        expect(await query(second.url, "select n from survivor")).toEqual([{ n: 7 }]);
        await first.stop(); // the dead one's stop() leaves the new one alone
        expect(isAlive(second.pid)).toBe(true);
        expect(existsSync(join(dataDir, "keyward.lock"))).toBe(true);
      } finally {
        await second?.stop();
        await first?.stop();
        await killLeftovers(undefined, dataDir);
      }
    });
  }, 120_000);

  test("when a PostgreSQL that keyward did not start this way (no socket in run/) serves pg/, then a start refuses with one line and leaves it running", async () => {
    await withDataDir("keyward-pg-foreign-", async (dataDir) => {
      let foreign: number | undefined;
      try {
        const pg = await startEmbeddedPostgres({ dataDir, logger });
        await pg.stop();
        rmSync(join(dataDir, "keyward.lock"), { force: true });
        // Its socket elsewhere than run/ (an older keyward listened on TCP and had none).
        const asPostgres = process.getuid?.() === 0 ? { uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })), gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" })) } : {};
        execFileSync(binaries.pg_ctl, ["start", "-D", join(dataDir, "pg"), "-w", "-t", "30", "-l", join(dataDir, "pg", "log", "foreign.log"), "-o", `-c listen_addresses= -c unix_socket_directories=${join(dataDir, "pg")}`], { ...asPostgres, stdio: "ignore", timeout: 60_000 });
        foreign = postmasterPid(dataDir)!;
        const failure = startEmbeddedPostgres({ dataDir, logger });
        await expect(failure).rejects.toThrow(`${join(dataDir, "pg")} is in use by a PostgreSQL (pid ${foreign}) that keyward did not start this way: stop it (kill ${foreign}) and start again`);
        expect(isAlive(foreign)).toBe(true);
        expect(existsSync(join(dataDir, "keyward.lock"))).toBe(false);
        expect(await findRunningEmbeddedPostgres(dataDir)).toBeUndefined();
      } finally {
        await killLeftovers(undefined, dataDir);
      }
    });
  }, 120_000);

  test("when the data folder cannot serve a cluster, then one clear StartupError line and nothing left running", async () => {
    await withDataDir("keyward-pg-bad-", async (dataDir) => {
      // pg/ holding something else than a cluster
      mkdirSync(join(dataDir, "pg"));
      writeFileSync(join(dataDir, "pg", "notes.txt"), "x");
      await expect(startEmbeddedPostgres({ dataDir, logger })).rejects.toThrow(/pg is not empty but holds no PostgreSQL cluster .*: remove it/);
      expect(existsSync(join(dataDir, "keyward.lock"))).toBe(false);

      // a path too long for a Unix socket
      const deep = join(dataDir, "d".repeat(100));
      await expect(startEmbeddedPostgres({ dataDir: deep, logger })).rejects.toThrow(/too long for PostgreSQL's Unix socket/);

      // as root, PostgreSQL's OS user must be able to enter every folder above the data folder
      if (process.getuid?.() === 0) {
        const closed = join(dataDir, "closed");
        mkdirSync(closed, { mode: 0o700 });
        chmodSync(closed, 0o700);
        const failure = startEmbeddedPostgres({ dataDir: join(closed, "data"), logger });
        await expect(failure).rejects.toBeInstanceOf(StartupError);
        await expect(failure).rejects.toThrow(`PostgreSQL runs as the OS user "postgres" and cannot enter ${closed} (mode 700`);
      }
    });
  }, 60_000);
});

describe("keyward serve with the embedded PostgreSQL", () => {
  test("when a second keyward starts on a data folder in use, then it is refused with one line naming the owner, and the first keeps serving", async () => {
    await withDataDir("keyward-second-", async (dataDir) => {
      const env = { KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info" };
      let first: ServeProcess | undefined;
      try {
        first = await startServe(env, 90_000);
        const postmaster = postmasterPid(dataDir);
        const second = await runCli(["serve"], { ...env, PORT: "0" }, 60_000);
        expect(second.code).toBe(1);
        expect(second.stderr.trim().split("\n")).toEqual([
          `keyward: the data folder ${dataDir} is in use by another keyward (pid ${first.child.pid}): stop it first, or give each keyward its own KEYWARD_DATA_DIR`,
        ]);
        expect(second.stdout).not.toContain("keyward listening");
        // The refused one touched nothing.
        expect(postmasterPid(dataDir)).toBe(postmaster);
        expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
        first.child.kill("SIGTERM");
        expect(await first.exited).toBe(0);
      } finally {
        await killLeftovers(first?.child, dataDir);
      }
    });
  }, 300_000);

  test("when keyward was killed with SIGKILL, then the next start stops the PostgreSQL it left running and serves the same data", async () => {
    await withDataDir("keyward-takeover-", async (dataDir) => {
      const env = { KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info" };
      let first: ServeProcess | undefined;
      let next: ServeProcess | undefined;
      try {
        first = await startServe(env, 90_000);
        const { secret } = await bootstrapCli(env);
        const orphan = postmasterPid(dataDir)!;
        first.child.kill("SIGKILL");
        await first.exited;
        expect(isAlive(orphan)).toBe(true); // what a supervisor finds after kill -9

        next = await startServe(env, 90_000);
        expect(next.output()).toContain("taking over the data folder from a keyward that is no longer running");
        expect(next.output()).toContain("stopping the embedded PostgreSQL left running by a keyward that is no longer running");
        expect(await waitForExit(orphan)).toBe(true);
        expect(postmasterPid(dataDir)).not.toBe(orphan);
        expect(await verifyOverHttp(next.url, secret)).toBe("VERIFY_RESULT_VALID");

        next.child.kill("SIGTERM");
        expect(await next.exited).toBe(0);
        expect(postmasterPid(dataDir)).toBeUndefined();
        expect(existsSync(join(dataDir, "keyward.lock"))).toBe(false);
      } finally {
        await killLeftovers(first?.child, dataDir);
        await killLeftovers(next?.child, dataDir);
      }
    });
  }, 300_000);

  test("when Ctrl-C reaches keyward's whole process group, then keyward drains, records last-used times, stops PostgreSQL itself and exits 0", async () => {
    await withDataDir("keyward-ctrlc-", async (dataDir) => {
      const env = { KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info" };
      let served: ServeProcess | undefined;
      let pg: EmbeddedDatabase | undefined;
      try {
        served = await startServe(env, 90_000, { detached: true });
        const { secret, keyId } = await bootstrapCli(env);
        const postmaster = postmasterPid(dataDir)!;
        expect(await verifyOverHttp(served.url, secret)).toBe("VERIFY_RESULT_VALID"); // a last-used time to flush

        process.kill(-served.child.pid!, "SIGINT"); // what the terminal does on Ctrl-C
        expect(await served.exited).toBe(0);
        const out = served.output();
        expect(out).toContain('"signal":"SIGINT"');
        expect(out).toContain("keyward stopped");
        expect(out).toContain("embedded PostgreSQL stopped");
        expect(out).not.toContain("could not record last-used times");
        expect(out).not.toMatch(/"level":(50|60)/);
        expect(out).not.toMatch(/\n\s+at /);
        expect(await waitForExit(postmaster)).toBe(true);
        expect(postmasterPid(dataDir)).toBeUndefined();

        // The last-used time reached the database before PostgreSQL stopped.
        pg = await startEmbeddedPostgres({ dataDir, logger });
        const rows = await query(pg.url, `select last_used_at from api_key where key_id = '${keyId}'`);
        expect(rows).toHaveLength(1);
        expect(rows[0]?.["last_used_at"]).not.toBeNull();
      } finally {
        await pg?.stop();
        await killLeftovers(served?.child, dataDir);
      }
    });
  }, 300_000);
});
