// `npm run bench -- --smoke`: the benchmark's machinery end to end (its own PostgreSQL, a
// seeded key table, the bare limit server and keyward as child processes, the HTTP/2 load
// generator, statement counting, the JSON report), with 300 requests per case and two cases,
// 20 revocation propagation trials between two keyward replicas, and the SDK step: the same
// no-op node:http endpoint unguarded and behind the SDK's guard (300 requests each), and 20
// revocation → guard refusal trials.
// It checks the report's shape and that what it measured is real, never the speed.
import { describe, expect, it } from "@jest/globals";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../cli.ts";

type Case = { id: string; server: string; requests: number; errors: number; perSecond: number; p50Ms: number; p99Ms: number; serverRssMB: number; dbStatementsPerRequest: number | null };
type Propagation = { trials: number; seen: number; failures: number; errors: string[]; p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number; pollsPerTrial: number };
type GuardRevocation = { trials: number; ran: number; refused: number; failures: number; errors: string[]; p50Ms: number; p99Ms: number; maxMs: number; pollsPerTrial: number };
type Sdk = { guards: { case: string; requests: number; verifyRpcs: number; cacheHits: number; streamUp: boolean }[]; revocation: GuardRevocation | null };
type Report = { mode: string; machine: { cpus: number }; cases: Case[]; propagation: Propagation | null; sdk: Sdk; ratios: { name: string; value: number | null; pass: boolean | null; target: string }[]; notes: string[] };

function runBench(out: string, timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(repoRoot, "node_modules", ".bin", "node"), [join(repoRoot, "bench", "run.ts"), "--smoke", `--out=${out}`], {
      cwd: repoRoot,
      env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/root" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // Past the bound: SIGTERM, so the bench stops what it started (servers, its embedded
    // PostgreSQL, in a session of its own); SIGKILL if it has not exited 20 s later.
    let kill: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      kill = setTimeout(() => child.kill("SIGKILL"), 20_000);
      reject(new Error(`bench --smoke did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      clearTimeout(kill);
      resolve({ code, stderr });
    });
  });
}

describe("npm run bench -- --smoke", () => {
  it("when run, then it measures the limit, warm VerifyKey, revocation propagation and the SDK's guard from other processes and writes the JSON report", async () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-bench-test-"));
    chmodSync(dir, 0o755);
    try {
      const out = join(dir, "results.json");
      const { code, stderr } = await runBench(out, 80_000);
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      const report = JSON.parse(readFileSync(out, "utf8")) as Report;
      expect(report.mode).toBe("smoke");
      expect(report.machine.cpus).toBeGreaterThan(0);
      expect(report.cases.map((c) => c.id)).toEqual(["limit/h2-load", "warm/grpc", "sdk/http unguarded", "sdk/http guarded"]);
      for (const c of report.cases) {
        // The count-bounded run (300 requests, cut short by its time bound on a loaded
        // machine) answered, and answered well.
        expect({ id: c.id, errors: c.errors }).toEqual({ id: c.id, errors: 0 });
        expect(c.requests).toBeGreaterThan(0);
        expect(c.requests).toBeLessThanOrEqual(300);
        expect(c.perSecond).toBeGreaterThan(0);
        expect(c.p50Ms).toBeGreaterThan(0);
        expect(c.p99Ms).toBeGreaterThanOrEqual(c.p50Ms);
        expect(c.serverRssMB).toBeGreaterThan(10);
      }
      const [limit, warm, open, guarded] = report.cases as [Case, Case, Case, Case];
      expect(limit.dbStatementsPerRequest).toBeNull();
      // The cache was primed before the warm case: its statements per request are counted, and fewer than one read per call.
      expect(typeof warm.dbStatementsPerRequest).toBe("number");
      expect(warm.dbStatementsPerRequest).toBeGreaterThanOrEqual(0);
      expect(warm.dbStatementsPerRequest).toBeLessThan(1);
      const ratio = report.ratios.find((r) => r.name.startsWith("warm gRPC ÷ limit (same generator"));
      expect(ratio?.value).toBeCloseTo(warm.perSecond / limit.perSecond, 6);
      expect(ratio?.pass).toBe((ratio?.value ?? 0) >= 0.6);
      // Revocation propagation: every trial's revocation through replica A was seen by replica B (within 2 s), timed.
      const p = report.propagation;
      expect(p === null ? null : { trials: p.trials, seen: p.seen, failures: p.failures, errors: p.errors }).toEqual({ trials: 20, seen: 20, failures: 0, errors: [] });
      expect(p!.p50Ms).toBeGreaterThan(0);
      expect(p!.p99Ms).toBeGreaterThanOrEqual(p!.p95Ms);
      expect(p!.maxMs).toBeGreaterThanOrEqual(p!.p99Ms);
      expect(p!.maxMs).toBeLessThan(2_000);
      expect(p!.pollsPerTrial).toBeGreaterThanOrEqual(1);
      const seen = report.ratios.find((r) => r.name.startsWith("revocation seen by a second replica"));
      expect(seen?.value).toBe(p!.p99Ms);
      // The SDK: both sides answered 200 to every request (errors 0 above); the guarded side was
      // served from the verifier's warm cache, its invalidation stream up, and the ratio is theirs.
      expect([open.dbStatementsPerRequest, guarded.dbStatementsPerRequest]).toEqual([null, null]);
      expect(report.sdk.guards.map((s) => ({ ...s, cacheHits: s.cacheHits >= guarded.requests }))).toEqual([{ case: "sdk/http guarded", requests: guarded.requests, verifyRpcs: 0, cacheHits: true, streamUp: true }]);
      const guardRatio = report.ratios.find((r) => r.name.startsWith("SDK guard, node:http"));
      expect(guardRatio?.value).toBeCloseTo(guarded.perSecond / open.perSecond, 6);
      expect(guardRatio?.pass).toBe((guardRatio?.value ?? 0) >= 0.9);
      // Revocation → guard refusal: every trial's key, accepted before, refused within the bound after RevokeKey returned.
      const g = report.sdk.revocation;
      expect(g === null ? null : { trials: g.trials, ran: g.ran, refused: g.refused, failures: g.failures, errors: g.errors }).toEqual({ trials: 20, ran: 20, refused: 20, failures: 0, errors: [] });
      expect(g!.p50Ms).toBeGreaterThan(0);
      expect(g!.maxMs).toBeGreaterThanOrEqual(g!.p99Ms);
      expect(g!.maxMs).toBeLessThan(3_000);
      expect(g!.pollsPerTrial).toBeGreaterThanOrEqual(1);
      expect(report.ratios.find((r) => r.name.startsWith("revocation → SDK guard refusal"))?.value).toBe(g!.p99Ms);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
