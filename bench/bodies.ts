// Request bodies shared by the orchestrator and the load generators: a file of
// length-prefixed bodies (u32 big-endian length, then the bytes), so a generator in another
// process sends exactly what the orchestrator built, rotating through them.
import { readFileSync, writeFileSync } from "node:fs";

/** Writes bodies to `path` as [u32 length][bytes]… */
export function writeBodies(path: string, bodies: readonly Uint8Array[]): void {
  const total = bodies.reduce((n, b) => n + 4 + b.length, 0);
  const out = Buffer.alloc(total);
  let at = 0;
  for (const b of bodies) {
    out.writeUInt32BE(b.length, at);
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  writeFileSync(path, out);
}

/** Reads the bodies written by writeBodies (at most `limit` of them). */
export function readBodies(path: string, limit = 10_000_000): Buffer[] {
  const data = readFileSync(path);
  const bodies: Buffer[] = [];
  for (let at = 0; at + 4 <= data.length && bodies.length < limit; ) {
    const n = data.readUInt32BE(at);
    bodies.push(data.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return bodies;
}

/** A gRPC length-prefixed message: flag 0 (uncompressed), u32 length, the protobuf bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** The q-quantile (0..1) of sorted values; 0 when there are none. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Quantiles of latencies in ms (all 0 when there are none). */
export type LatencySummary = { p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number };

/** p50, p95, p99 and the largest of `latencies` (ms, any order). */
export function summarize(latencies: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(latencies).sort();
  if (sorted.length === 0) return { p50Ms: 0, p95Ms: 0, p99Ms: 0, maxMs: 0 };
  return { p50Ms: quantile(sorted, 0.5), p95Ms: quantile(sorted, 0.95), p99Ms: quantile(sorted, 0.99), maxMs: sorted[sorted.length - 1]! };
}

/**
 * Calls `seen()` until it answers true, pausing `pollIntervalMs` ms between calls, while less than
 * `boundMs` ms have passed since `since` (a performance.now()); a throw from `seen` ends the wait
 * with that error. Returns performance.now() at the first true, or undefined when the bound passed first.
 */
export async function pollUntil(seen: () => Promise<boolean>, since: number, boundMs: number, pollIntervalMs: number): Promise<number | undefined> {
  while (performance.now() - since < boundMs) {
    if (await seen()) return performance.now();
    await new Promise((r) => setTimeout(r, pollIntervalMs));
  }
  return undefined;
}

/** What every load generator is given (as its JSON argument). Times in seconds. */
export type LoadOptions = {
  url: string;
  contentType: string;
  bodiesFile: string;
  connections: number;
  seconds: number;
  warmupSeconds: number;
  /** Stop after this many measured requests even if time remains. */
  maxRequests: number;
};

/** What every load generator prints (one JSON line on stdout). Latencies in milliseconds. */
export type LoadResult = {
  tool: string;
  requests: number;
  /** Every answer received, warm-up included (what the server's statement count is divided by). */
  completed: number;
  /** Answers that were not a success: HTTP status ≠ 200, grpc-status ≠ 0, or transport errors. */
  errors: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p99: number;
};
