// An HTTP/2 load generator for bodies that vary per request (h2load sends one body per run).
// node:http2's client costs more per request than the servers it measures, so this one
// writes and reads HTTP/2 frames itself on plain TCP (cleartext, prior knowledge, RFC 9113):
// `connections` sockets × `streams` concurrent streams, each stream followed by the next as
// soon as it ends, bodies taken in rotation from a bodies file (bodies.ts). Runs in its own
// process; bounded by time (warm-up + measured seconds) and by a request count.
// Usage: node bench/h2-load.ts '<json H2LoadOptions>'; prints one LoadResult JSON line.
//
// What counts as an error without a full HPACK decoder: a response whose header block does
// not start with the static-table entry `:status: 200` (0x88, how nghttp2/node encode it),
// a RST_STREAM, a gRPC answer with no DATA (a trailers-only answer is how gRPC errors come),
// or a Connect answer whose body is a JSON error (`{"code"…` / a proto body starting `{`).
import net from "node:net";
import { readBodies, quantile, type LoadOptions, type LoadResult } from "./bodies.ts";

export type H2LoadOptions = LoadOptions & {
  path: string;
  grpc: boolean;
  streams: number;
};

const opts = JSON.parse(process.argv[2] ?? "{}") as H2LoadOptions;
const bodies = readBodies(opts.bodiesFile);
if (bodies.length === 0) throw new Error(`no bodies in ${opts.bodiesFile}`);
const url = new URL(opts.url);

// HPACK (RFC 7541), no Huffman, nothing indexed: the same header block for every request.
function str(s: string): Buffer {
  const b = Buffer.from(s, "latin1");
  if (b.length > 126) throw new Error("header value too long");
  return Buffer.concat([Buffer.from([b.length]), b]);
}
const headerBlock = Buffer.concat([
  Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static 3, 6)
  Buffer.from([0x04]), str(opts.path), // :path, literal without indexing, name = static 4
  Buffer.from([0x01]), str(url.host), // :authority, name = static 1
  Buffer.from([0x0f, 0x10]), str(opts.contentType), // content-type, name = static 31
  ...(opts.grpc ? [Buffer.from([0x00]), str("te"), str("trailers")] : []),
]);

function frameHeader(length: number, type: number, flags: number, stream: number): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return h;
}
const maxWindow = 2 ** 31 - 1;
const preface = Buffer.concat([
  Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
  // SETTINGS: ENABLE_PUSH 0, INITIAL_WINDOW_SIZE max (no stream of ours ever needs a WINDOW_UPDATE).
  frameHeader(12, 0x4, 0, 0),
  Buffer.from([0, 2, 0, 0, 0, 0, 0, 4, 0x7f, 0xff, 0xff, 0xff]),
  // The connection window: as large as allowed, topped up below.
  frameHeader(4, 0x8, 0, 0),
  (() => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(maxWindow - 65_535);
    return b;
  })(),
]);

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

type Stream = { t0: number; data: boolean; bad: boolean };

function connection(): net.Socket {
  const socket = net.connect({ host: url.hostname, port: Number(url.port), noDelay: true });
  const open = new Map<number, Stream>();
  let nextId = 1;
  /** Our connection-level send window (the server's receive window). */
  let sendWindow = 65_535;
  let received = 0;
  let pending: Buffer = Buffer.alloc(0);
  let out: Buffer[] = [];

  const request = () => {
    if (stopped) return;
    const body = bodies[next % bodies.length]!;
    if (body.length > sendWindow) return; // the server's WINDOW_UPDATE resumes it (see below)
    next += 1;
    sendWindow -= body.length;
    const id = nextId;
    nextId += 2;
    open.set(id, { t0: performance.now(), data: false, bad: false });
    out.push(frameHeader(headerBlock.length, 0x1, 0x4, id), headerBlock, frameHeader(body.length, 0x0, 0x1, id), body);
  };
  const finish = (id: number, bad: boolean) => {
    const s = open.get(id);
    if (s === undefined) return;
    open.delete(id);
    completed += 1;
    if (measuring) {
      if (measured < latencyCap) latencies[measured] = performance.now() - s.t0;
      measured += 1;
      if (bad || s.bad || (opts.grpc && !s.data)) errors += 1;
      if (measured >= opts.maxRequests) stop();
    }
    request();
  };
  const flush = () => {
    if (out.length > 0) socket.write(Buffer.concat(out));
    out = [];
  };

  socket.on("connect", () => {
    out.push(preface);
    for (let i = 0; i < opts.streams; i++) request();
    flush();
  });
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (pending.length - at >= 9) {
      const length = pending.readUIntBE(at, 3);
      if (pending.length - at < 9 + length) break;
      const type = pending[at + 3]!;
      const flags = pending[at + 4]!;
      const id = pending.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = pending.subarray(at + 9, at + 9 + length);
      at += 9 + length;
      switch (type) {
        case 0x0: {
          // DATA
          received += length;
          const s = open.get(id);
          if (s !== undefined && length > 0) {
            const padded = (flags & 0x8) !== 0 ? 1 + payload[0]! : 0;
            const first = payload[padded];
            if (!s.data && first === 0x7b && !opts.grpc) s.bad = opts.contentType !== "application/json" || payload.subarray(padded, padded + 7).toString() === '{"code"';
            s.data = true;
          }
          if ((flags & 0x1) !== 0) finish(id, false);
          break;
        }
        case 0x1: {
          // HEADERS: the response's, or (END_STREAM) the trailers
          const s = open.get(id);
          const skip = ((flags & 0x8) !== 0 ? 1 : 0) + ((flags & 0x20) !== 0 ? 5 : 0);
          if (s !== undefined && !s.data && payload[skip] !== 0x88 && !s.bad) {
            // The first header block must be `:status: 200`; trailers come after DATA.
            s.bad = true;
          }
          if ((flags & 0x1) !== 0) finish(id, false);
          break;
        }
        case 0x3: // RST_STREAM
          finish(id, true);
          break;
        case 0x4: // SETTINGS: acknowledge
          if ((flags & 0x1) === 0) out.push(frameHeader(0, 0x4, 0x1, 0));
          break;
        case 0x6: // PING: answer
          if ((flags & 0x1) === 0) out.push(frameHeader(8, 0x6, 0x1, 0), Buffer.from(payload));
          break;
        case 0x7: // GOAWAY
          stop();
          break;
        case 0x8: // WINDOW_UPDATE
          if (id === 0) {
            sendWindow += payload.readUInt32BE(0) & 0x7fffffff;
            // Streams held back for lack of window start again.
            for (let i = open.size; i < opts.streams && !stopped; i++) request();
          }
          break;
        default:
          break;
      }
    }
    pending = at === pending.length ? Buffer.alloc(0) : pending.subarray(at);
    if (received > 2 ** 30) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(received);
      out.push(frameHeader(4, 0x8, 0, 0), b);
      received = 0;
    }
    flush();
  });
  socket.on("error", () => stop());
  return socket;
}

function stop(): void {
  if (stopped) return;
  stopped = true;
  if (measuring) measureEnd = performance.now();
  measuring = false;
}

const sockets = Array.from({ length: opts.connections }, connection);
setTimeout(() => {
  if (stopped) return;
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
    tool: "h2-load (HTTP/2 frames on TCP)",
    requests: measured,
    completed,
    errors,
    seconds: Math.max(0, seconds),
    perSecond: seconds > 0 ? measured / seconds : 0,
    p50: quantile(recorded, 0.5),
    p99: quantile(recorded, 0.99),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  for (const s of sockets) s.destroy();
  process.exit(0);
}, 20);
