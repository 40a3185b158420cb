// Revocation propagation to a second replica (issue 12, item 7: "revocation seen by a second
// replica: p99 < 100 ms over at least 200 trials"). Two keyward processes share one
// PostgreSQL; per trial a valid key is verified on replica B (so B has it cached), revoked
// through replica A (RevokeKey, Connect JSON, the admin key), and B is polled until its
// VerifyKey answers REVOKED. The time measured runs from A's RevokeKey response (the commit
// happened before it) to B's first REVOKED answer, so it includes one poll's round trip; a
// trial that sees no REVOKED within the bound is a failure, reported as such and never timed.
//
// `measurePropagation` is called by bench/run.ts (which starts the servers on its embedded
// PostgreSQL and seeds the keys). Run alone, this file runs that step only:
// `node bench/propagation.ts [--smoke] [--out=PATH]` = `node bench/run.ts --only=propagation …`.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { pollUntil, summarize, type LatencySummary } from "./bodies.ts";

/** The target: p99 under this many ms. */
export const propagationTargetMs = 100;

/** What one run measured; latencies in ms, over the trials that saw REVOKED. */
export type PropagationResult = LatencySummary & {
  /** Measured trials (the warm-up trials not included). */
  trials: number;
  /** Trials run before, not measured, each still required to see REVOKED. */
  warmupTrials: number;
  /** Trials in which B answered REVOKED within the bound. */
  seen: number;
  /** Trials (warm-up included) that failed: B never answered REVOKED within the bound, or a call went wrong (see `errors`). */
  failures: number;
  /** The first few failures, described. */
  errors: string[];
  /** B's VerifyKey calls after the revocation per trial, on average (the first REVOKED included). */
  pollsPerTrial: number;
  /** Trials in which B's first poll already answered REVOKED. */
  firstPollRevoked: number;
  pollIntervalMs: number;
  boundMs: number;
  targetMs: number;
  /** p99 < target and no failures; null when nothing was measured. */
  pass: boolean | null;
};

export type PropagationOptions = {
  /** Base URL of replica A (where keys are revoked) and B (where they are verified). */
  a: string;
  b: string;
  /** The admin key's raw secret (Authorization: Bearer), allowed to revoke `keys`. */
  adminKey: string;
  /** Keys valid before the run, one per trial: the raw key (for VerifyKey) and its resource name (for RevokeKey). */
  keys: readonly { raw: string; name: string }[];
  /** Trials run first and left out of every figure (fresh processes run cold code), at most 10% of `keys`; default 0. */
  warmupTrials?: number;
  /** Permissions asked of VerifyKey (the keys must hold them). */
  requiredPermissions: readonly string[];
  /** Pause between B's polls, in ms (default 1). */
  pollIntervalMs?: number;
  /** How long a trial waits for REVOKED, in ms (default 2000). */
  boundMs?: number;
};

const verifyPath = "/keyward.v1.KeyService/VerifyKey";
const revokePath = "/keyward.v1.KeyService/RevokeKey";

/** One Connect JSON call (HTTP/1.1 keep-alive through fetch); throws on a non-200 answer. */
async function call(url: string, body: unknown, bearer?: string): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`HTTP ${res.status} from ${new URL(url).pathname}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/**
 * Runs one trial per key, one after the other. Each key must be valid and not yet revoked;
 * the run revokes every one of them. Never throws for a failed trial: it counts it.
 */
export async function measurePropagation(opts: PropagationOptions): Promise<PropagationResult> {
  const pollIntervalMs = opts.pollIntervalMs ?? 1;
  const boundMs = opts.boundMs ?? 2_000;
  const verify = (raw: string) => call(opts.b + verifyPath, { key: raw, requiredPermissions: opts.requiredPermissions });
  const latencies: number[] = [];
  const errors: string[] = [];
  let failures = 0;
  let polls = 0;
  let firstPollRevoked = 0;
  const warmup = Math.min(opts.warmupTrials ?? 0, Math.floor(opts.keys.length / 10));
  for (const [i, key] of opts.keys.entries()) {
    if (i === warmup) {
      latencies.length = 0;
      polls = 0;
      firstPollRevoked = 0;
    }
    try {
      const before = await verify(key.raw);
      if (before["result"] !== "VERIFY_RESULT_VALID") throw new Error(`before the revocation B answered ${JSON.stringify(before["result"])}`);
      await call(opts.a + revokePath, { name: key.name, reason: "bench: propagation trial" }, opts.adminKey);
      const committed = performance.now();
      let trialPolls = 0;
      const seenAt = await pollUntil(
        async () => {
          const answer = await verify(key.raw);
          polls++;
          trialPolls++;
          if (answer["result"] === "VERIFY_RESULT_REVOKED") return true;
          if (answer["result"] !== "VERIFY_RESULT_VALID") throw new Error(`after the revocation B answered ${JSON.stringify(answer["result"])}`);
          return false;
        },
        committed,
        boundMs,
        pollIntervalMs,
      );
      if (seenAt === undefined) throw new Error(`B still answered VALID ${boundMs} ms after A's RevokeKey response`);
      if (trialPolls === 1) firstPollRevoked++;
      latencies.push(seenAt - committed);
    } catch (e) {
      failures++;
      if (errors.length < 5) errors.push(`trial ${i} (${key.name}): ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const summary = summarize(latencies);
  return {
    trials: opts.keys.length - warmup,
    warmupTrials: warmup,
    seen: latencies.length,
    failures,
    errors,
    ...summary,
    pollsPerTrial: opts.keys.length > warmup ? polls / (opts.keys.length - warmup) : 0,
    firstPollRevoked,
    pollIntervalMs,
    boundMs,
    targetMs: propagationTargetMs,
    pass: latencies.length > 0 ? failures === 0 && summary.p99Ms < propagationTargetMs : null,
  };
}

/** One line for the bench's table. */
export function formatPropagation(r: PropagationResult): string {
  const verdict = r.pass === null ? "  –  " : r.pass ? "PASS " : "MISS ";
  return (
    `${verdict} revocation seen by a second replica: ${r.seen}/${r.trials} trials, p50 ${r.p50Ms.toFixed(1)} ms, p95 ${r.p95Ms.toFixed(1)} ms, ` +
    `p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms, ${r.failures} failed  target p99 < ${r.targetMs} ms, no failure ` +
    `(after ${r.warmupTrials} warm-up trials; polled every ${r.pollIntervalMs} ms, ${r.pollsPerTrial.toFixed(1)} polls per trial, REVOKED at the first poll in ${r.firstPollRevoked})`
  );
}

if (import.meta.main) {
  const run = join(dirname(fileURLToPath(import.meta.url)), "run.ts");
  const child = spawnSync(process.execPath, [run, "--only=propagation", ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(child.status ?? 1);
}
