// An HTTP/2 load generator for bodies that vary per request (h2load sends one body per run):
// `connections` sessions × `streams` concurrent streams, each stream followed by the next as
// soon as it ends, bodies taken in rotation from a bodies file (bodies.ts). Runs in its own
// process; bounded by time (warm-up + measured seconds) and by a request count.
// Usage: node bench/h2-load.ts '<json H2LoadOptions>'; prints one LoadResult JSON line.
// An answer counts as an error unless it is HTTP 200 and, for gRPC, grpc-status 0.
import http2 from "node:http2";
import { readBodies, quantile, type LoadResult } from "./bodies.ts";

export type H2LoadOptions = {
  url: string;
  path: string;
  contentType: string;
  grpc: boolean;
  bodiesFile: string;
  connections: number;
  streams: number;
  seconds: number;
  warmupSeconds: number;
  /** Stop after this many measured requests even if time remains. */
  maxRequests: number;
};

const opts = JSON.parse(process.argv[2] ?? "{}") as H2LoadOptions;
const bodies = readBodies(opts.bodiesFile);
if (bodies.length === 0) throw new Error(`no bodies in ${opts.bodiesFile}`);
const headers: http2.OutgoingHttpHeaders = {
  ":method": "POST",
  ":path": opts.path,
  "content-type": opts.contentType,
  ...(opts.grpc ? { te: "trailers" } : {}),
};
const latencyCap = Math.min(opts.maxRequests, 4_000_000);
const latencies = new Float64Array(latencyCap);
let measured = 0;
let completed = 0;
let errors = 0;
let next = 0;
let measuring = false;
let stopped = false;
let measureStart = 0;
let measureEnd = 0;

function fire(session: http2.ClientHttp2Session): void {
  if (stopped || session.destroyed) return;
  const body = bodies[next++ % bodies.length]!;
  const t0 = performance.now();
  let ok = true;
  let grpcStatus: string | undefined;
  const req = session.request(headers);
  req.on("response", (h) => {
    if (h[":status"] !== 200) ok = false;
    if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
  });
  req.on("trailers", (t) => {
    if (t["grpc-status"] !== undefined) grpcStatus = String(t["grpc-status"]);
  });
  req.on("data", () => {});
  req.on("error", () => (ok = false));
  req.on("close", () => {
    if (opts.grpc && grpcStatus !== "0") ok = false;
    completed += 1;
    if (measuring) {
      if (measured < latencyCap) latencies[measured] = performance.now() - t0;
      measured += 1;
      if (!ok) errors += 1;
      if (measured >= opts.maxRequests) stop();
    }
    fire(session);
  });
  req.end(body);
}

function stop(): void {
  if (stopped) return;
  stopped = true;
  measuring = false;
  measureEnd = performance.now();
}

const sessions = Array.from({ length: opts.connections }, () => {
  const s = http2.connect(opts.url, { peerMaxConcurrentStreams: opts.streams });
  s.on("error", () => {});
  return s;
});
for (const s of sessions) for (let i = 0; i < opts.streams; i++) fire(s);
setTimeout(() => {
  measuring = true;
  measureStart = performance.now();
  setTimeout(stop, opts.seconds * 1000).unref();
}, opts.warmupSeconds * 1000);
// Hard bound: whatever happens, report and exit.
const deadline = setTimeout(stop, (opts.warmupSeconds + opts.seconds) * 1000 + 30_000);
deadline.unref();
const poll = setInterval(() => {
  if (!stopped) return;
  clearInterval(poll);
  clearTimeout(deadline);
  const seconds = (measureEnd - measureStart) / 1000;
  const recorded = latencies.subarray(0, Math.min(measured, latencyCap)).sort();
  const result: LoadResult = {
    tool: "h2-load (node:http2)",
    requests: measured,
    completed,
    errors,
    seconds,
    perSecond: seconds > 0 ? measured / seconds : 0,
    p50: quantile(recorded, 0.5),
    p99: quantile(recorded, 0.99),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  for (const s of sessions) s.destroy();
  process.exit(0);
}, 20);
