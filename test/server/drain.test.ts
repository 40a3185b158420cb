// Graceful drain: calls in flight at close() finish (Connection: close on HTTP/1.1, GOAWAY
// on HTTP/2), idle connections are closed at once and cleanly, later requests are refused
// cleanly, and close() resolves as soon as the last call is done, far inside the grace.
import { afterEach, describe, expect, test } from "@jest/globals";
import { createClient } from "@connectrpc/connect";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Writable } from "node:stream";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.ts";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import type { ServerLimits } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { listen, type Listener, type RequestHandler } from "../../src/server/listener.ts";
import { startTestServer } from "../harness.ts";
import { within } from "../wait.ts";

const logger = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const limits: ServerLimits = { headersTimeoutMs: 30_000, requestTimeoutMs: 30_000, idleTimeoutMs: 30_000, maxConnections: 1_000 };
/** A grace far longer than any bound below: close() must never need it. */
const graceMs = 30_000;

let listener: Listener | undefined;
afterEach(async () => {
  await listener?.close(100);
  listener = undefined;
});

/** A handler whose `/slow` calls wait for release(); `entered` resolves when one has arrived. */
function gatedHandler() {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const arrived = new Promise<void>((r) => (entered = r));
  const handler: RequestHandler = (req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url === "/slow") {
        entered();
        void released.then(() => res.end("slow done"));
      } else {
        res.end("ok");
      }
    });
  };
  return { handler, release, arrived };
}

type H1Result = { status: number; connection: string | undefined; body: string; socket: net.Socket };

function h1Request(port: number, path: string, agent: http.Agent): Promise<H1Result> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: "POST", agent }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body, socket: req.socket as net.Socket }));
    });
    req.on("error", reject);
    req.end("{}");
  });
}

describe("HTTP/1.1 keep-alive drain", () => {
  test("when close() is called with a keep-alive call in flight and another keep-alive connection idle, then the call completes with Connection: close, the idle one is closed cleanly at once, a later request is refused cleanly, and close() resolves when the call is done", async () => {
    const gate = gatedHandler();
    listener = await listen({ host: "127.0.0.1", port: 0, handler: gate.handler, logger, limits });
    const { port } = listener;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const inFlight = h1Request(port, "/slow", agent);
      await within(5_000, gate.arrived, "slow call in the handler");
      const idle = await h1Request(port, "/fast", agent);
      expect(idle.status).toBe(200);
      expect(idle.connection).toBe("keep-alive");
      const idleErrors: Error[] = [];
      idle.socket.on("error", (e) => idleErrors.push(e));
      const idleClosed = new Promise<void>((r) => idle.socket.once("close", () => r()));
      expect(listener.stats()).toMatchObject({ http1: 2 });

      const closed = listener.close(graceMs);
      // The idle connection is closed at once, with a FIN (no reset, no error).
      await within(2_000, idleClosed, "idle keep-alive connection closed");
      expect(idleErrors).toEqual([]);
      // A request after the drain began: a clean refusal (the port no longer accepts).
      const late = await h1Request(port, "/fast", agent).then(
        () => "answered",
        (e: NodeJS.ErrnoException) => e.code,
      );
      expect(late).toBe("ECONNREFUSED");

      gate.release();
      const done = await within(5_000, inFlight, "in-flight call");
      expect(done).toMatchObject({ status: 200, connection: "close", body: "slow done" });
      const releasedAt = Date.now();
      await within(2_000, closed, "close() after the last call");
      expect(Date.now() - releasedAt).toBeLessThan(1_000);
      expect(listener.stats()).toEqual({ open: 0, sniffing: 0, http1: 0, http2: 0 });
      listener = undefined;
    } finally {
      agent.destroy();
    }
  });

  test("when close() is called while a connection has not sent its first bytes, then it is closed at once and close() does not wait for it", async () => {
    listener = await listen({ host: "127.0.0.1", port: 0, handler: gatedHandler().handler, logger, limits });
    const socket = net.connect(listener.port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise<void>((r) => socket.once("connect", () => r()));
    for (let i = 0; i < 200 && listener.stats().sniffing === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(listener.stats().sniffing).toBe(1);
    const socketClosed = new Promise<void>((r) => socket.once("close", () => r()));
    await within(2_000, listener.close(graceMs), "close() with a silent connection");
    await within(2_000, socketClosed, "silent connection closed");
    listener = undefined;
  });
});

describe("HTTP/2 drain", () => {
  test("when close() is called with an HTTP/2 call in flight and another session idle, then the call completes after GOAWAY, the idle session closes at once, and close() resolves when the call is done", async () => {
    const gate = gatedHandler();
    listener = await listen({ host: "127.0.0.1", port: 0, handler: gate.handler, logger, limits });
    const url = `http://127.0.0.1:${listener.port}`;
    const busy = http2.connect(url);
    busy.on("error", () => {});
    const goaway = new Promise<void>((r) => busy.once("goaway", () => r()));
    const stream = busy.request({ ":path": "/slow", ":method": "POST" });
    stream.end("{}");
    let status = 0;
    let body = "";
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("data", (d: Buffer) => (body += d.toString()));
    const streamDone = new Promise<void>((resolve, reject) => {
      stream.on("end", () => resolve());
      stream.on("error", reject);
    });
    await within(5_000, gate.arrived, "h2 call in the handler");

    const idle = http2.connect(url);
    idle.on("error", () => {});
    await new Promise<void>((r) => idle.once("connect", () => r()));
    const idleClosed = new Promise<void>((r) => idle.once("close", () => r()));
    for (let i = 0; i < 200 && listener.stats().http2 < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(listener.stats().http2).toBe(2);

    const closed = listener.close(graceMs);
    await within(2_000, goaway, "GOAWAY on the busy session");
    await within(2_000, idleClosed, "idle session closed");
    gate.release();
    await within(5_000, streamDone, "in-flight h2 call");
    expect({ status, body }).toEqual({ status: 200, body: "slow done" });
    const releasedAt = Date.now();
    await within(2_000, closed, "close() after the last call");
    expect(Date.now() - releasedAt).toBeLessThan(1_000);
    listener = undefined;
  });
});

describe("keyward stop()", () => {
  test("when stop() is called with health Watch streams open (gRPC over HTTP/2, Connect over HTTP/1.1), keep-alive connections idle and a pre-opened connection silent, then the streams end OK with NOT_SERVING and stop() resolves far inside the grace", async () => {
    const server = await startTestServer({ env: { KEYWARD_SHUTDOWN_GRACE_MS: String(graceMs) } });
    let stopped = false;
    try {
      const keys = server.client(KeyService);
      const grpcKeys = server.client(KeyService, server.grpcTransport);
      // Leave an idle keep-alive HTTP/1.1 connection and an idle HTTP/2 session.
      expect((await keys.verifyKey({ key: "kw_not_a_key" })).result).toBe(VerifyResult.MALFORMED);
      expect((await grpcKeys.verifyKey({ key: "kw_not_a_key" })).result).toBe(VerifyResult.MALFORMED);

      const watch = async (transport: typeof server.grpcTransport) => {
        const seen: HealthCheckResponse_ServingStatus[] = [];
        let onFirst!: () => void;
        const first = new Promise<void>((r) => (onFirst = r));
        const done = (async () => {
          for await (const res of createClient(Health, transport).watch({ service: "" })) {
            seen.push(res.status);
            onFirst();
          }
          return seen;
        })();
        await within(5_000, first, "first Watch status");
        return { done }; // wrapped: returning the promise itself would wait for the stream's end
      };
      const grpcWatch = await watch(server.grpcTransport);
      const connectWatch = await watch(server.connectTransport);
      // A connection that has sent nothing yet (as a load balancer pre-opens them).
      const silent = net.connect(server.port, "127.0.0.1");
      silent.on("error", () => {});
      await within(2_000, new Promise<void>((r) => silent.once("connect", () => r())), "silent connection");
      const silentClosed = new Promise<void>((r) => silent.once("close", () => r()));

      const started = Date.now();
      await within(5_000, server.stop(), "stop()");
      stopped = true;
      expect(Date.now() - started).toBeLessThan(3_000);
      await within(1_000, silentClosed, "silent connection closed");
      const ended = await within(2_000, Promise.all([grpcWatch.done, connectWatch.done]), "Watch streams ended");
      for (const seen of ended) {
        expect(seen[0]).toBe(HealthCheckResponse_ServingStatus.SERVING);
        expect(seen.at(-1)).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
      }
    } finally {
      if (!stopped) await server.stop();
    }
  });
});
