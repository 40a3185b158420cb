// Raw HTTP calls for the tests that send what no real client sends (garbage bodies, frames
// that lie, unknown JSON keys): Connect unary and streaming and gRPC-Web over HTTP/1.1
// (fetch), gRPC over HTTP/2 (node:http2). Each call is bounded in time. Answers are decoded
// with connect's own wire helpers into a ConnectError, so tests assert codes and reasons.
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, endStreamFromJson, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import http2 from "node:http2";

/** How long one raw call may take. */
const callTimeoutMs = 10_000;

/** One enveloped frame: flags, big-endian length (by default the true one), data. */
export function frame(flags: number, data: Uint8Array | string, length?: number): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(length ?? bytes.byteLength, 1);
  return Buffer.concat([head, bytes]);
}

/** Splits a body into its frames. */
export function splitFrames(body: Uint8Array): { flags: number; data: Buffer }[] {
  const bytes = Buffer.from(body);
  const out: { flags: number; data: Buffer }[] = [];
  let offset = 0;
  for (let n = 0; offset + 5 <= bytes.byteLength && n < 10_000; n++) {
    const length = bytes.readUInt32BE(offset + 1);
    out.push({ flags: bytes[offset] ?? 0, data: bytes.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return out;
}

/** What a raw call answered. */
export type RawAnswer = {
  status: number;
  headers: Headers;
  /** The RPC error the answer carries, or undefined for success. */
  error: ConnectError | undefined;
  /** The raw response body. */
  body: Buffer;
};

/** A Connect unary POST (or GET when `method` says so) over HTTP/1.1. */
export async function connectUnary(
  baseUrl: string,
  path: string,
  body: string | Uint8Array | undefined,
  opts: { contentType?: string; headers?: Record<string, string>; method?: string } = {},
): Promise<RawAnswer> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: opts.method ?? "POST",
    headers: { ...(opts.contentType === undefined ? {} : { "content-type": opts.contentType }), ...opts.headers },
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(callTimeoutMs),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  const isJson = (res.headers.get("content-type") ?? "").startsWith("application/json");
  const error =
    res.status === 200
      ? undefined
      : isJson && bytes.byteLength > 0
        ? errorFromJsonBytes(bytes, undefined, new ConnectError("", codeFromHttpStatus(res.status)))
        : new ConnectError(`HTTP ${res.status}`, codeFromHttpStatus(res.status));
  return { status: res.status, headers: res.headers, error, body: bytes };
}

/** A Connect streaming call over HTTP/1.1 (`application/connect+json` or `+proto`); the error is the end-stream's. */
export async function connectStream(baseUrl: string, path: string, body: Uint8Array, opts: { contentType: string; headers?: Record<string, string> }): Promise<RawAnswer> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": opts.contentType, ...opts.headers },
    body,
    signal: AbortSignal.timeout(callTimeoutMs),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  const end = splitFrames(bytes).find((f) => (f.flags & 0b10) !== 0);
  const error = res.status !== 200 ? new ConnectError(`HTTP ${res.status}`, codeFromHttpStatus(res.status)) : end === undefined ? undefined : endStreamFromJson(end.data).error;
  return { status: res.status, headers: res.headers, error, body: bytes };
}

/** A gRPC-Web call over HTTP/1.1; the error is the trailer frame's. */
export async function grpcWebCall(baseUrl: string, path: string, body: Uint8Array, opts: { contentType?: string; headers?: Record<string, string> } = {}): Promise<RawAnswer> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": opts.contentType ?? "application/grpc-web+proto", ...opts.headers },
    body,
    signal: AbortSignal.timeout(callTimeoutMs),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  const trailer = splitFrames(bytes).find((f) => (f.flags & 0x80) !== 0);
  const error = trailer === undefined ? findTrailerError(res.headers) : findTrailerError(trailerParse(trailer.data));
  return { status: res.status, headers: res.headers, error, body: bytes };
}

/** A gRPC call over HTTP/2 cleartext; the error is from the trailers (or a trailers-only header block). */
export async function grpcCall(baseUrl: string, path: string, body: Uint8Array, opts: { contentType?: string; headers?: Record<string, string> } = {}): Promise<RawAnswer> {
  const session = http2.connect(baseUrl);
  try {
    return await new Promise<RawAnswer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gRPC call to ${path} took more than ${callTimeoutMs} ms`)), callTimeoutMs);
      session.on("error", reject);
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": opts.contentType ?? "application/grpc+proto",
        te: "trailers",
        ...opts.headers,
      });
      const headers = new Headers();
      const trailers = new Headers();
      let status = 0;
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        status = Number(h[":status"]);
        for (const [k, v] of Object.entries(h)) if (!k.startsWith(":") && v !== undefined) headers.set(k, String(v));
      });
      stream.on("trailers", (t) => {
        for (const [k, v] of Object.entries(t)) if (!k.startsWith(":") && v !== undefined) trailers.set(k, String(v));
      });
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", reject);
      stream.on("close", () => {
        clearTimeout(timer);
        const error = findTrailerError(trailers) ?? findTrailerError(headers);
        resolve({ status, headers: mergeHeaders(headers, trailers), error, body: Buffer.concat(chunks) });
      });
      stream.end(Buffer.from(body));
    });
  } finally {
    session.close();
  }
}

function mergeHeaders(a: Headers, b: Headers): Headers {
  const out = new Headers(a);
  b.forEach((v, k) => out.set(k, v));
  return out;
}

export { Code };
