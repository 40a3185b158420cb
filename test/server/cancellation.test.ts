// A client that goes away cancels its call (issue 10, item 5, review): an RST_STREAM CANCEL
// on a reflection or health Watch stream, or on a unary gRPC call whose body was cut short,
// is logged once with code Canceled at info level, never as OK, Unimplemented or an
// Internal "Premature close" with a stack. Real HTTP/2 streams against the real server.
import { describe, expect, test } from "@jest/globals";
import { create, toBinary } from "@bufbuild/protobuf";
import http2 from "node:http2";
import { randomUUID } from "node:crypto";
import { HealthCheckRequestSchema } from "../../gen/health/v1/health_pb.ts";
import { ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import { startTestServer } from "../harness.ts";
import { server, useServer } from "../rpc.ts";
import { frame } from "./raw-http.ts";

useServer();

/** The log lines (parsed) that carry `requestId`. */
function linesOf(requestId: string): Record<string, unknown>[] {
  return server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l["requestId"] === requestId);
}

/** Waits (bounded) until the `rpc` line of `requestId` is written, and returns all its lines. */
async function rpcLogged(requestId: string): Promise<Record<string, unknown>[]> {
  for (let waited = 0; !linesOf(requestId).some((l) => l["msg"] === "rpc"); waited += 10) {
    if (waited >= 5_000) throw new Error(`no rpc line for ${requestId} within 5 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return linesOf(requestId);
}

/**
 * Opens a gRPC stream on `path` and sends `first` (ending the request when `end`); resolves
 * once the first response data arrived (`data`) or the bytes are written to the socket (`sent`).
 */
async function openStream(
  path: string,
  first: Buffer,
  requestId: string,
  opts: { end: boolean; ready: "data" | "sent" },
): Promise<{ session: http2.ClientHttp2Session; stream: http2.ClientHttp2Stream }> {
  const session = http2.connect(server.url);
  session.on("error", () => {});
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc+proto", te: "trailers", "x-request-id": requestId });
  stream.on("error", () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${path}: not ${opts.ready} within 5 s`)), 5_000);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      if (opts.ready === "data") stream.once("data", done);
      if (opts.end) stream.end(first, opts.ready === "sent" ? done : undefined);
      else stream.write(first, opts.ready === "sent" ? done : undefined);
    });
  } catch (e) {
    session.destroy();
    throw e;
  }
  return { session, stream };
}

/** Opens a stream (as `openStream`), resets it and checks the call was logged Canceled (`expectCanceled`); the session is closed either way. */
async function expectResetLoggedCanceled(path: string, first: Buffer, requestId: string, opts: { end: boolean; ready: "data" | "sent" }): Promise<void> {
  const { session, stream } = await openStream(path, first, requestId, opts);
  try {
    reset(stream);
    expectCanceled(await rpcLogged(requestId));
  } finally {
    session.close();
  }
}

/**
 * Sends RST_STREAM CANCEL without ending the request first (what a gRPC client does when a
 * call is cancelled): `close()` would send END_STREAM before the reset.
 */
function reset(stream: http2.ClientHttp2Stream): void {
  stream.destroy();
}

/** Asserts one `rpc` line with code Canceled at info level, and no error-level line or stack. */
function expectCanceled(lines: Record<string, unknown>[]): void {
  const rpc = lines.filter((l) => l["msg"] === "rpc");
  expect(rpc).toHaveLength(1);
  expect(rpc[0]).toMatchObject({ code: "Canceled", level: 30 });
  expect(lines.filter((l) => Number(l["level"]) >= 50)).toEqual([]);
  expect(JSON.stringify(lines)).not.toMatch(/Premature close|stack/);
}

describe("when the client resets its stream", () => {
  test("when a reflection stream waiting for the next request gets RST_STREAM CANCEL, then it is logged Canceled (not Internal Premature close)", async () => {
    const requestId = randomUUID();
    const list = toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }));
    await expectResetLoggedCanceled("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", frame(0, list), requestId, { end: false, ready: "data" });
  });

  test("when a health Watch stream gets RST_STREAM CANCEL, then it is logged Canceled (not OK)", async () => {
    const requestId = randomUUID();
    const check = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }));
    await expectResetLoggedCanceled("/grpc.health.v1.Health/Watch", frame(0, check), requestId, { end: true, ready: "data" });
  });

  test("when a unary gRPC call is cancelled in the middle of its body, then it is logged Canceled (not Unimplemented)", async () => {
    const requestId = randomUUID();
    // The frame promises 100 bytes; 10 arrive, then the client cancels.
    await expectResetLoggedCanceled("/keyward.v1.KeyService/VerifyKey", frame(0, Buffer.alloc(10), 100), requestId, { end: false, ready: "sent" });
  });
});

describe("when the client closes its HTTP/1.1 connection", () => {
  test("when a Connect Watch stream over HTTP/1.1 is aborted by its client, then it is logged Canceled (not OK)", async () => {
    const requestId = randomUUID();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error("no first message within 5 s")), 5_000);
    const res = await fetch(`${server.url}/grpc.health.v1.Health/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", "x-request-id": requestId },
      body: frame(0, "{}"),
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    await reader.read(); // the first status: the stream is open and waiting for changes
    clearTimeout(timer);
    abort.abort();
    await reader.cancel().catch(() => {});
    expectCanceled(await rpcLogged(requestId));
  });
});

describe("a client that never reads its answer (the review's input, against the whole server)", () => {
  test("when a Health/Check answer is blocked by a zero flow-control window, then the stream is cancelled after the request timeout, the call is logged once, and shutdown does not wait for it", async () => {
    const own = await startTestServer({ env: { KEYWARD_HEADERS_TIMEOUT_MS: "500", KEYWARD_REQUEST_TIMEOUT_MS: "1000", KEYWARD_IDLE_TIMEOUT_MS: "800", KEYWARD_SHUTDOWN_GRACE_MS: "10000" } });
    try {
      const requestId = randomUUID();
      const session = http2.connect(own.url, { settings: { initialWindowSize: 0 } });
      session.on("error", () => {});
      const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/json", "x-request-id": requestId });
      stream.on("error", () => {});
      stream.end("{}");
      const started = Date.now();
      const rstCode = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("stalled answer not cancelled within 5 s")), 5_000);
        stream.once("close", () => {
          clearTimeout(timer);
          resolve(stream.rstCode);
        });
      });
      expect(rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      const lines = own.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l["requestId"] === requestId && l["msg"] === "rpc");
      expect(lines).toEqual([expect.objectContaining({ procedure: "grpc.health.v1.Health/Check" })]);
      // The client process "exits" with its session still open: shutdown must not wait the grace period.
      session.socket.destroy();
      const stopping = Date.now();
      await own.stop();
      expect(Date.now() - stopping).toBeLessThan(5_000);
      expect(own.logs.some((l) => l.includes("grace period over"))).toBe(false);
    } finally {
      await own.stop();
    }
  });
});
