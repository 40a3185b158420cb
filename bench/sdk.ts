// Revocation → guard refusal (issue 13, "Measure": "the time from RevokeKey returning to the
// guard refusing the key, p99 over 200 trials, target < 1 s"). A guarded server
// (bench/sdk-server.ts: createVerifier + keywardMiddleware, its own process) verifies through
// keyward (its own process). Per trial, through the SDK client with the admin key: CreateKey
// (a fresh key holding the guard's permissions), one request to the guard with it (200: the
// verifier has cached it), RevokeKey, then the guard is polled with the key every
// `pollIntervalMs` until it answers 401. The time measured runs from RevokeKey's response to
// the first 401, so it includes one poll's round trip; a trial without a 401 within `boundMs`
// is a failure, counted and never timed. The trials stop early (counted as not run) once the
// step has used `stepBoundMs`.
//
// `measureGuardRevocation` is called by bench/run.ts (which starts keyward and the guard).
// Run alone: `node bench/sdk.ts [--smoke|--quick] [--out=PATH]` = `node bench/run.ts --only=sdk …`
// (also measures the guard's throughput).
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createKeywardClient } from "../sdk/src/index.ts";
import { pollUntil, summarize, type LatencySummary } from "./bodies.ts";

/** The target: p99 under this many ms. */
export const guardRevocationTargetMs = 1_000;
/** The throughput target: guarded ÷ unguarded no-op, warm cache. */
export const guardThroughputTarget = 0.9;

/** What one run measured; latencies in ms, over the trials that saw a 401. */
export type GuardRevocationResult = LatencySummary & {
  /** Measured trials asked for (warm-up not included). */
  trials: number;
  warmupTrials: number;
  /** Measured trials that ran (fewer than `trials` when the step bound stopped them). */
  ran: number;
  /** Measured trials in which the guard answered 401 within the bound. */
  refused: number;
  /** Trials (warm-up included) that failed: no 401 within the bound, or a call went wrong (see `errors`). */
  failures: number;
  /** The first few failures, described (key names only, never a secret). */
  errors: string[];
  /** Guard requests after RevokeKey per measured trial, on average (the first 401 included). */
  pollsPerTrial: number;
  /** Measured trials whose first poll already got 401. */
  firstPollRefused: number;
  pollIntervalMs: number;
  boundMs: number;
  targetMs: number;
  /** p99 < target, no failure, every trial ran; null when nothing was measured. */
  pass: boolean | null;
};

export type GuardRevocationOptions = {
  /** keyward's base URL (CreateKey, RevokeKey through the SDK client, Connect protocol). */
  keyward: string;
  /** A URL of the guarded server: any path it guards. */
  guard: string;
  /** The admin key's raw secret (creates and revokes the trial keys). */
  adminKey: string;
  /** Tenant slug the keys are created in. */
  tenant: string;
  /** Permissions each trial key gets (those the guard requires). */
  permissions: readonly string[];
  trials: number;
  warmupTrials?: number;
  /** Pause between polls, ms (default 2). */
  pollIntervalMs?: number;
  /** How long a trial waits for 401 after RevokeKey, ms (default 3000). */
  boundMs?: number;
  /** Trials stop starting after this many ms of the step (default 120 000). */
  stepBoundMs?: number;
};

/** One request to the guard with `key` as bearer; its HTTP status. */
async function guardStatus(url: string, key: string): Promise<number> {
  const res = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: "{}", signal: AbortSignal.timeout(5_000) });
  await res.arrayBuffer();
  return res.status;
}

/** Runs the trials one after the other. Never throws for a failed trial: it counts it. */
export async function measureGuardRevocation(opts: GuardRevocationOptions): Promise<GuardRevocationResult> {
  const pollIntervalMs = opts.pollIntervalMs ?? 2;
  const boundMs = opts.boundMs ?? 3_000;
  const stepBoundMs = opts.stepBoundMs ?? 120_000;
  const warmup = opts.warmupTrials ?? 0;
  const kw = createKeywardClient({ baseUrl: opts.keyward, apiKey: opts.adminKey, retries: 0, timeoutMs: 10_000 });
  const parent = `tenants/${opts.tenant}`;
  const latencies: number[] = [];
  const errors: string[] = [];
  let failures = 0;
  let polls = 0;
  let firstPollRefused = 0;
  let ran = 0;
  const t0 = performance.now();
  const run = `${Date.now().toString(36)}`;
  for (let i = 0; i < warmup + opts.trials && performance.now() - t0 < stepBoundMs; i++) {
    const measured = i >= warmup;
    if (measured) ran++;
    let name = "(not created)";
    try {
      const created = await kw.keys.createKey({ parent, displayName: `bench sdk ${run} ${i}`, permissions: [...opts.permissions], expireDays: 1 });
      name = created.key?.name ?? name;
      const before = await guardStatus(opts.guard, created.secret);
      if (before !== 200) throw new Error(`before the revocation the guard answered ${before}`);
      await kw.keys.revokeKey({ name, reason: "bench: guard revocation trial" });
      const revoked = performance.now();
      let trialPolls = 0;
      const refusedAt = await pollUntil(
        async () => {
          const status = await guardStatus(opts.guard, created.secret);
          trialPolls++;
          if (status === 401) return true;
          if (status !== 200) throw new Error(`after the revocation the guard answered ${status}`);
          return false;
        },
        revoked,
        boundMs,
        pollIntervalMs,
      );
      if (refusedAt === undefined) throw new Error(`the guard still let the key through ${boundMs} ms after RevokeKey returned`);
      if (measured) {
        latencies.push(refusedAt - revoked);
        polls += trialPolls;
        if (trialPolls === 1) firstPollRefused++;
      }
    } catch (e) {
      failures++;
      if (errors.length < 5) errors.push(`trial ${i} (${name}): ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const summary = summarize(latencies);
  return {
    trials: opts.trials,
    warmupTrials: warmup,
    ran,
    refused: latencies.length,
    failures,
    errors,
    ...summary,
    pollsPerTrial: latencies.length > 0 ? polls / latencies.length : 0,
    firstPollRefused,
    pollIntervalMs,
    boundMs,
    targetMs: guardRevocationTargetMs,
    pass: latencies.length > 0 ? failures === 0 && ran === opts.trials && summary.p99Ms < guardRevocationTargetMs : null,
  };
}

/** One line for the bench's table. */
export function formatGuardRevocation(r: GuardRevocationResult): string {
  const verdict = r.pass === null ? "  –  " : r.pass ? "PASS " : "MISS ";
  return (
    `${verdict} revocation → SDK guard refusal: ${r.refused}/${r.trials} trials, p50 ${r.p50Ms.toFixed(1)} ms, p95 ${r.p95Ms.toFixed(1)} ms, ` +
    `p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms, ${r.failures} failed${r.ran < r.trials ? `, ${r.trials - r.ran} not run (step bound)` : ""}  target p99 < ${r.targetMs} ms ` +
    `(after ${r.warmupTrials} warm-up trials; polled every ${r.pollIntervalMs} ms, ${r.pollsPerTrial.toFixed(1)} polls per trial, 401 at the first poll in ${r.firstPollRefused})`
  );
}

if (import.meta.main) {
  const runTs = join(dirname(fileURLToPath(import.meta.url)), "run.ts");
  const child = spawnSync(process.execPath, [runTs, "--only=sdk", ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(child.status ?? 1);
}
