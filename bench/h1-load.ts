// The HTTP/1.1 load generator: autocannon (its API, in this child process), bodies taken in
// rotation from a bodies file (bodies.ts), a warm-up run first, then a measured run bounded
// by time and by a request count.
// Usage: node bench/h1-load.ts '<json H1LoadOptions>'; prints one LoadResult JSON line.
// An answer counts as an error unless it is 2xx (and the transport did not fail).
import autocannon from "autocannon";
import { readBodies, type LoadOptions, type LoadResult } from "./bodies.ts";

export type H1LoadOptions = LoadOptions & {
  /** More request headers (e.g. authorization), sent on every request. */
  headers?: Record<string, string>;
};

const opts = JSON.parse(process.argv[2] ?? "{}") as H1LoadOptions;
const bodies = readBodies(opts.bodiesFile);
let next = 0;

type Result = autocannon.Result;
function run(seconds: number, amount: number | undefined): Promise<Result> {
  return autocannon({
    url: opts.url,
    method: "POST",
    connections: opts.connections,
    pipelining: 1,
    ...(amount === undefined ? { duration: seconds } : { amount }),
    timeout: 10,
    headers: { ...opts.headers, "content-type": opts.contentType },
    requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, body: bodies[next++ % bodies.length] }) }],
  });
}

const warm = opts.warmupSeconds > 0 ? (await run(opts.warmupSeconds, undefined)).requests.total : 0;
const started = performance.now();
// autocannon bounds a run by time or by count, not both: by count when the count is the smaller bound.
const r = await run(opts.seconds, opts.maxRequests < 1_000_000 ? opts.maxRequests : undefined);
const seconds = (performance.now() - started) / 1000;
const total = r.requests.total;
const result: LoadResult = {
  tool: "autocannon",
  requests: total,
  completed: warm + total,
  errors: r.non2xx + r.errors + r.timeouts,
  seconds,
  perSecond: total / seconds,
  p50: r.latency.p50,
  p99: r.latency.p99,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
