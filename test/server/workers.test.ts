// `keyward serve --workers N` (issue 12, item 3): N processes share one port, each a whole
// keyward that answers calls; a worker that dies is replaced (a bounded number of times);
// SIGTERM to the primary drains every worker, then stops the embedded PostgreSQL, exit 0,
// nothing left behind; workers whose primary was killed do not outlive it; each worker has its
// own cache and sees a revocation made through the other.
import { describe, expect, test } from "@jest/globals";
import http from "node:http";
import { availableParallelism } from "node:os";
import { randomUUID } from "node:crypto";
import { bootstrapCli, exitWithin, isAlive, killLeftovers, postgresProcesses, postmasterPid, startServe, waitForExit, withDataDir, type ServeProcess } from "../cli.ts";
import { testDatabaseUrl } from "../harness.ts";
import { until } from "../wait.ts";
import { maxRestarts, workerCount } from "../../src/workers.ts";

const json = { KEYWARD_LOG_FORMAT: "json", LOG_LEVEL: "info", HOST: "127.0.0.1" };

/** The `worker listening` lines so far: slot and pid, in order. */
function listeningWorkers(out: string): { worker: number; pid: number }[] {
  return out
    .split("\n")
    .filter((l) => l.includes('"msg":"worker listening"'))
    .map((l) => JSON.parse(l) as { worker: number; pid: number })
    .map(({ worker, pid }) => ({ worker, pid }));
}

/** Checks the primary's "keyward listening" line (written once every worker listens); returns the workers' slots and pids. */
async function allListening(serve: ServeProcess, n: number): Promise<Map<number, number>> {
  expect(serve.output()).toMatch(new RegExp(`"worker":0,"url":"http://[^"]+","workers":${n},"msg":"keyward listening"`));
  // Each worker writes its own line to the shared output: it may arrive just after the primary's.
  await until(() => new Set(listeningWorkers(serve.output()).map((w) => w.worker)).size >= n, 5_000, `the ${n} workers' "worker listening" lines`);
  return new Map(listeningWorkers(serve.output()).map((w) => [w.worker, w.pid]));
}

/** VerifyKey over HTTP/1.1 JSON on a new connection (cluster hands out connections in turn); returns the request id. */
async function verifyOnNewConnection(url: string, key = "not-a-key"): Promise<string> {
  return (await verifyResultOnNewConnection(url, key)).requestId;
}

/** VerifyKey of `key` over HTTP/1.1 JSON on a new connection (no keep-alive); returns the request id and the result. */
function verifyResultOnNewConnection(url: string, key: string): Promise<{ requestId: string; result: string | undefined }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: hostname, port, path: "/keyward.v1.KeyService/VerifyKey", method: "POST", agent: false, headers: { "content-type": "application/json" }, timeout: 5000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve({ requestId: String(res.headers["x-request-id"]), result: (JSON.parse(body) as { result?: string }).result })
            : reject(new Error(`HTTP ${res.statusCode}: ${body}`)),
        );
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("no answer")));
    req.end(JSON.stringify({ key }));
  });
}

/** The worker slot whose `rpc` line carries `requestId`. */
function workerOf(out: string, requestId: string): number | undefined {
  const line = out.split("\n").find((l) => l.includes(`"requestId":"${requestId}"`) && l.includes('"msg":"rpc"'));
  return line === undefined ? undefined : (JSON.parse(line) as { worker?: number }).worker;
}

/** Calls until every one of `slots` has answered at least once (bounded); returns who answered. */
async function answeringWorkers(serve: ServeProcess, slots: number): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < 40 && seen.size < slots; i++) {
    const id = await verifyOnNewConnection(serve.url);
    await until(() => workerOf(serve.output(), id) !== undefined, 5_000, `the rpc line of ${id}`);
    seen.add(workerOf(serve.output(), id)!);
  }
  return seen;
}

/**
 * Verifies `key` on new connections until every one of `slots` has answered `expected` at least
 * once (bounded by `attempts` calls); returns each worker's answers in order. A worker's answers
 * other than `expected` are recorded (before an invalidation reaches it, a worker may still answer
 * from its cache); the caller asserts on them.
 */
async function answersUntilEach(serve: ServeProcess, key: string, expected: string, slots: number, attempts: number): Promise<Map<number, { result: string; sentAt: number }[]>> {
  const answers = new Map<number, { result: string; sentAt: number }[]>();
  const done = () => [...answers.values()].filter((a) => a.some((x) => x.result === expected)).length >= slots;
  for (let i = 0; i < attempts && !done(); i++) {
    const sentAt = performance.now();
    const { requestId, result } = await verifyResultOnNewConnection(serve.url, key);
    await until(() => workerOf(serve.output(), requestId) !== undefined, 5_000, `the rpc line of ${requestId}`);
    const worker = workerOf(serve.output(), requestId)!;
    answers.set(worker, [...(answers.get(worker) ?? []), { result: String(result), sentAt }]);
  }
  return answers;
}

describe("how many workers", () => {
  test("when neither --workers nor KEYWARD_WORKERS is given, then it is one per core; the flag wins over the variable", () => {
    expect(workerCount(undefined, {})).toBe(Math.min(256, availableParallelism()));
    expect(workerCount(undefined, { KEYWARD_WORKERS: "3" })).toBe(3);
    expect(workerCount("1", { KEYWARD_WORKERS: "3" })).toBe(1);
  });

  test.each([["0"], ["-2"], ["two"], ["1.5"], ["257"], [" 4x"]])("when the count is %j, then startup is refused naming the source", (raw) => {
    expect(() => workerCount(raw, {})).toThrow(/^invalid --workers=.*: expected a number of processes from 1 to 256/);
    expect(() => workerCount(undefined, { KEYWARD_WORKERS: raw })).toThrow(/^invalid KEYWARD_WORKERS=/);
  });
});

describe("serve with workers", () => {
  test("when serve runs 2 workers on its own embedded PostgreSQL, then both answer on one port with metrics of their own, and SIGTERM stops them all, then PostgreSQL, exit 0", async () => {
    await withDataDir("keyward-workers-", async (dataDir) => {
      let serve: ServeProcess | undefined;
      try {
        serve = await startServe({ ...json, KEYWARD_DATA_DIR: dataDir, KEYWARD_WORKERS: "2" }, 90_000);
        const pids = await allListening(serve, 2);
        expect([...pids.keys()].sort()).toEqual([1, 2]);
        expect(new Set(pids.values()).size).toBe(2);
        for (const pid of pids.values()) expect(pid).not.toBe(serve.child.pid);
        expect(await answeringWorkers(serve, 2)).toEqual(new Set([1, 2]));
        // Each worker counts its own calls, labelled with its slot; a scrape of either shows both, each family once.
        for (let i = 0; i < 2; i++) {
          const res = await fetch(`${serve.url}/metrics`, { signal: AbortSignal.timeout(5000) });
          const metrics = await res.text();
          for (const w of ["1", "2"]) {
            expect(metrics).toMatch(new RegExp(`keyward_rpc_calls_total\\{method="keyward\\.v1\\.KeyService/VerifyKey",code="OK",worker="${w}"\\} [1-9]`));
            expect(metrics).toMatch(new RegExp(`process_resident_memory_bytes\\{worker="${w}"\\} [1-9]`));
          }
          const types = metrics.split("\n").filter((l) => l.startsWith("# TYPE "));
          expect(types.length).toBe(new Set(types).size);
        }
        const postmaster = postmasterPid(dataDir);
        expect(postmaster).toBeDefined();

        serve.child.kill("SIGTERM");
        expect(await exitWithin(serve, 30_000)).toBe(0);
        for (const pid of pids.values()) expect({ pid, gone: await waitForExit(pid, 10_000) }).toEqual({ pid, gone: true });
        expect(postgresProcesses(dataDir)).toEqual([]);
        const out = serve.output();
        // Every worker drained before PostgreSQL stopped.
        const stoppedAt = out.split("\n").filter((l) => l.includes('"msg":"keyward stopped"')).length;
        expect(stoppedAt).toBe(2);
        expect(out.indexOf('"msg":"embedded PostgreSQL stopped"')).toBeGreaterThan(out.lastIndexOf('"msg":"keyward stopped"'));
      } finally {
        await killLeftovers(serve?.child, dataDir);
      }
    });
  }, 150_000);

  test("when a worker is killed, then it is replaced in its slot and the port keeps answering; past the restart bound the primary exits 1", async () => {
    await withDataDir("keyward-workers-", async (dataDir) => {
      let serve: ServeProcess | undefined;
      try {
        serve = await startServe({ ...json, DATABASE_URL: testDatabaseUrl(), KEYWARD_DATA_DIR: dataDir, KEYWARD_WORKERS: "2" }, 90_000);
        const s = serve;
        const first = await allListening(s, 2);
        const victim = first.get(2)!;
        process.kill(victim, "SIGKILL");
        await until(() => listeningWorkers(s.output()).filter((w) => w.worker === 2).length === 2, 30_000, "worker 2 replaced");
        const replacement = listeningWorkers(s.output()).filter((w) => w.worker === 2)[1]!.pid;
        expect(replacement).not.toBe(victim);
        expect(s.output()).toMatch(/"worker":0[^\n]*"slot":2[^\n]*"signal":"SIGKILL"[^\n]*"msg":"worker 2 exited unexpectedly: starting a new one"/);
        expect(await answeringWorkers(s, 2)).toEqual(new Set([1, 2]));

        // The restart bound: the (maxRestarts + 1)th death within a minute stops everything.
        for (let deaths = 2; deaths <= maxRestarts + 1; deaths++) {
          const current = listeningWorkers(s.output()).filter((w) => w.worker === 2).at(-1)!.pid;
          process.kill(current, "SIGKILL");
          if (deaths <= maxRestarts) await until(() => listeningWorkers(s.output()).filter((w) => w.worker === 2).length === deaths + 1, 30_000, `replacement ${deaths}`);
        }
        expect(await exitWithin(s, 30_000)).toBe(1);
        expect(s.output()).toContain(`the ${maxRestarts + 1}th time within 60 s: shutting down with exit code 1`);
        for (const { pid } of listeningWorkers(s.output())) expect({ pid, gone: await waitForExit(pid, 10_000) }).toEqual({ pid, gone: true });
      } finally {
        await killLeftovers(serve?.child, dataDir);
      }
    });
  }, 180_000);

  test("when both workers have a key cached and it is revoked through one of them, then both answer REVOKED for it", async () => {
    await withDataDir("keyward-workers-", async (dataDir) => {
      let serve: ServeProcess | undefined;
      try {
        const env = { ...json, DATABASE_URL: testDatabaseUrl(), KEYWARD_DATA_DIR: dataDir };
        serve = await startServe({ ...env, KEYWARD_WORKERS: "2" }, 90_000);
        const s = serve;
        await allListening(s, 2);
        const tenant = `workers-${randomUUID().slice(0, 8)}`;
        const { secret: adminKey } = await bootstrapCli(env, tenant);
        const admin = { "content-type": "application/json", authorization: `Bearer ${adminKey}` };
        const created = await fetch(`${s.url}/keyward.v1.KeyService/CreateKey`, {
          method: "POST",
          headers: admin,
          body: JSON.stringify({ parent: `tenants/${tenant}`, displayName: "cached by both workers", permissions: ["keys:read"], expireDays: 30 }),
          signal: AbortSignal.timeout(5000),
        });
        expect(created.status).toBe(200);
        const { key, secret } = (await created.json()) as { key: { name: string }; secret: string };

        // Both workers answer VALID, so both have the key in their cache (TTL 300 s by default).
        const before = await answersUntilEach(s, secret, "VERIFY_RESULT_VALID", 2, 40);
        expect([...before.keys()].sort()).toEqual([1, 2]);
        for (const [worker, answers] of before) expect({ worker, results: [...new Set(answers.map((a) => a.result))] }).toEqual({ worker, results: ["VERIFY_RESULT_VALID"] });

        const revoked = await fetch(`${s.url}/keyward.v1.KeyService/RevokeKey`, {
          method: "POST",
          headers: admin,
          body: JSON.stringify({ name: key.name, reason: "workers test" }),
          signal: AbortSignal.timeout(5000),
        });
        expect(revoked.status).toBe(200);
        const revokedAt = performance.now();

        // Every worker answers REVOKED: the one that revoked at once, the other once the notification
        // has reached it: until then it may still answer VALID from its cache, never after, and never
        // to a call sent more than `window` ms after the revocation returned. The window is well below
        // the listener's 5 s heartbeat catch-up, so a worker that ignored notifications would, most
        // of the time, still answer VALID past it.
        const window = 1_000;
        const after = await answersUntilEach(s, secret, "VERIFY_RESULT_REVOKED", 2, 400);
        expect([...after.keys()].sort()).toEqual([1, 2]);
        for (const [worker, answers] of after) {
          const results = answers.map((a) => a.result);
          expect({ worker, answeredRevoked: results.includes("VERIFY_RESULT_REVOKED") }).toEqual({ worker, answeredRevoked: true });
          const first = results.indexOf("VERIFY_RESULT_REVOKED");
          expect({ worker, from: results.slice(first) }).toEqual({ worker, from: results.slice(first).map(() => "VERIFY_RESULT_REVOKED") });
          const stale = answers.slice(0, first);
          expect({ worker, before: [...new Set(stale.map((a) => a.result))].filter((r) => r !== "VERIFY_RESULT_VALID") }).toEqual({ worker, before: [] });
          const late = stale.filter((a) => a.sentAt - revokedAt > window).map((a) => Math.round(a.sentAt - revokedAt));
          expect({ worker, validAnswersToCallsSentPastTheWindowMs: late }).toEqual({ worker, validAnswersToCallsSentPastTheWindowMs: [] });
        }
        expect(s.output()).not.toMatch(/"level":(50|60)/);
      } finally {
        await killLeftovers(serve?.child, dataDir);
      }
    });
  }, 150_000);

  test("when the primary is killed (kill -9), then its workers notice, drain and exit on their own", async () => {
    await withDataDir("keyward-workers-", async (dataDir) => {
      let serve: ServeProcess | undefined;
      try {
        serve = await startServe({ ...json, DATABASE_URL: testDatabaseUrl(), KEYWARD_DATA_DIR: dataDir, KEYWARD_WORKERS: "2" }, 90_000);
        const pids = await allListening(serve, 2);
        serve.child.kill("SIGKILL");
        for (const pid of pids.values()) expect({ pid, gone: await waitForExit(pid, 20_000) }).toEqual({ pid, gone: true });
        expect(serve.output()).toMatch(/"signal":"primary exited"/);
      } finally {
        await killLeftovers(serve?.child, dataDir);
        for (const { pid } of listeningWorkers(serve?.output() ?? "")) if (isAlive(pid)) process.kill(pid, "SIGKILL");
      }
    });
  }, 120_000);
});
