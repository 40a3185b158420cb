// Slow, silent, idle and too many clients cannot hold the listener: header, request and
// idle timeouts on HTTP/1.1 and HTTP/2, the connection cap, and bookkeeping that leaves
// nothing behind. Short limits, raw sockets on 127.0.0.1, every wait bounded.
import { afterEach, describe, expect, test } from "@jest/globals";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Writable } from "node:stream";
import type { ServerLimits } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { ensurePortAvailable, listen, type Listener, type RequestHandler } from "../../src/server/listener.ts";
import { StartupError } from "../../src/startup-error.ts";
import { until, within } from "../wait.ts";

const logger = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const short: ServerLimits = { headersTimeoutMs: 300, requestTimeoutMs: 600, idleTimeoutMs: 300, maxConnections: 1_000 };

let listener: Listener | undefined;
afterEach(async () => {
  await listener?.close(100);
  listener = undefined;
});

/** Answers "ok" after reading the whole request body (as the Connect adapter does). */
const okHandler: RequestHandler = (req, res) => {
  req.resume();
  req.on("end", () => res.end("ok"));
};

/** A raw TCP client: what it received, and a promise of its close. */
type RawClient = { socket: net.Socket; received: () => string; closed: Promise<void> };

function rawClient(port: number, send = ""): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    socket.on("error", () => {}); // a reset shows as close, which is what the tests wait for
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    socket.once("connect", () => {
      if (send !== "") socket.write(send);
      resolve({ socket, received: () => received, closed });
    });
    socket.once("error", reject);
  });
}

async function startListener(limits: ServerLimits, handler: RequestHandler = okHandler): Promise<Listener> {
  listener = await listen({ host: "127.0.0.1", port: 0, handler, logger, limits });
  return listener;
}

const partialHeaders = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

describe("HTTP/1.1 header and request timeouts", () => {
  test("when a client sends half a header block and goes silent, then it gets 408 and is disconnected after the headers timeout", async () => {
    const l = await startListener(short);
    const started = Date.now();
    const client = await rawClient(l.port, partialHeaders);
    await within(5_000, client.closed, "slow client disconnected");
    expect(Date.now() - started).toBeGreaterThanOrEqual(short.headersTimeoutMs - 50);
    expect(client.received()).toMatch(/^HTTP\/1\.1 408 /);
    await until(() => l.stats().open === 0, 2_000, "server side closed");
    expect(l.stats()).toEqual({ open: 0, sniffing: 0, http1: 0, http2: 0 });
  });

  test("when a client connects and sends nothing, then it is disconnected after the headers timeout", async () => {
    const l = await startListener(short);
    const client = await rawClient(l.port);
    await within(5_000, client.closed, "silent client disconnected");
    expect(client.received()).toBe("");
    await until(() => l.stats().open === 0, 2_000, "server side closed");
  });

  test("when a request body arrives slower than the request timeout, then 408 and disconnected", async () => {
    const l = await startListener(short);
    const client = await rawClient(l.port, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n123456789");
    await within(5_000, client.closed, "slow body disconnected");
    expect(client.received()).toMatch(/^HTTP\/1\.1 408 /);
    await until(() => l.stats().open === 0, 2_000, "server side closed");
  });

  test("when 200 clients send partial headers and 50 send nothing, then all are cut off and the listener holds no socket", async () => {
    const l = await startListener(short);
    const clients = await Promise.all([
      ...Array.from({ length: 200 }, () => rawClient(l.port, partialHeaders)),
      ...Array.from({ length: 50 }, () => rawClient(l.port)),
    ]);
    await until(() => l.stats().open === 250 || clients.some((c) => c.socket.destroyed), 5_000, "all accepted");
    await within(10_000, Promise.all(clients.map((c) => c.closed)), "all slow clients disconnected");
    await until(() => l.stats().open === 0, 2_000, "server side closed");
    expect(l.stats()).toEqual({ open: 0, sniffing: 0, http1: 0, http2: 0 });
  });

  test("when a keep-alive connection stays idle past the idle timeout, then the server closes it", async () => {
    const l = await startListener(short);
    const client = await rawClient(l.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await until(() => client.received().endsWith("ok"), 2_000, "answered");
    expect(client.received()).toMatch(/keep-alive/i);
    // Node adds its keep-alive buffer (1 s) to the advertised idle timeout.
    await within(5_000, client.closed, "idle keep-alive connection closed");
    await until(() => l.stats().open === 0, 2_000, "server side closed");
  });
});

describe("the 25 truncated bodies of issue 10", () => {
  test("when 25 requests declare content-length 100, send 9 bytes and close, then the listener keeps no entry and close() returns at once", async () => {
    const l = await startListener({ ...short, headersTimeoutMs: 30_000, requestTimeoutMs: 30_000, idleTimeoutMs: 30_000 });
    for (let i = 0; i < 25; i++) {
      const client = await rawClient(l.port, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"key\":\"k");
      await until(() => l.stats().http1 === 1, 2_000, "request received");
      client.socket.destroy();
      await client.closed;
    }
    await until(() => l.stats().open === 0, 2_000, "server side closed");
    expect(l.stats()).toEqual({ open: 0, sniffing: 0, http1: 0, http2: 0 });
    const started = Date.now();
    await within(2_000, l.close(30_000), "close() with nothing open");
    expect(Date.now() - started).toBeLessThan(1_000);
    listener = undefined;
  });
});

describe("HTTP/2 idle sessions", () => {
  test("when an HTTP/2 session has no open stream for the idle timeout, then it gets GOAWAY and is closed", async () => {
    const l = await startListener(short);
    const session = http2.connect(`http://127.0.0.1:${l.port}`);
    session.on("error", () => {});
    const goaway = new Promise<void>((r) => session.once("goaway", () => r()));
    const closed = new Promise<void>((r) => session.once("close", () => r()));
    const answered = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ":path": "/" });
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => resolve(body));
      req.on("error", reject);
      req.end();
    });
    expect(answered).toBe("ok");
    const idleSince = Date.now();
    await within(5_000, goaway, "GOAWAY");
    expect(Date.now() - idleSince).toBeGreaterThanOrEqual(short.idleTimeoutMs - 50);
    await within(5_000, closed, "session closed");
    await until(() => l.stats().open === 0, 2_000, "server side closed");
  });

  test("when an HTTP/2 stream never ends its request, then the stream is cancelled after the request timeout", async () => {
    const l = await startListener(short);
    const session = http2.connect(`http://127.0.0.1:${l.port}`);
    session.on("error", () => {});
    const req = session.request({ ":path": "/", ":method": "POST" });
    req.on("error", () => {});
    req.write("partial");
    const rstCode = await within(5_000, new Promise<number>((r) => req.once("close", () => r(req.rstCode))), "stream cancelled");
    expect(rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    session.close();
  });
});

describe("long-lived responses are not cut", () => {
  test("when a server stream is open on HTTP/2 and on HTTP/1.1, then neither the request nor the idle timeout ends it, while idle and slow clients are cut off", async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const streaming: RequestHandler = (req, res) => {
      if (req.url !== "/stream") return okHandler(req, res);
      req.resume();
      const out = res as http.ServerResponse; // the same calls on both protocols' responses
      out.writeHead(200, { "content-type": "text/plain" });
      out.write("first;");
      void released.then(() => out.end("last"));
    };
    const l = await startListener({ ...short, requestTimeoutMs: 300 }, streaming);
    const url = `http://127.0.0.1:${l.port}`;

    // HTTP/2 server stream.
    const h2Session = http2.connect(url);
    h2Session.on("error", () => {});
    let h2Body = "";
    const h2Stream = h2Session.request({ ":path": "/stream" });
    h2Stream.end();
    const h2Done = new Promise<string>((resolve, reject) => {
      h2Stream.on("data", (d: Buffer) => (h2Body += d.toString()));
      h2Stream.on("end", () => resolve(h2Body));
      h2Stream.on("error", reject);
    });
    await until(() => h2Body === "first;", 2_000, "h2 stream started");

    // HTTP/1.1 streaming response.
    let h1Body = "";
    const h1Done = new Promise<string>((resolve, reject) => {
      http
        .get(`${url}/stream`, { agent: false }, (res) => {
          res.on("data", (d: Buffer) => (h1Body += d.toString()));
          res.on("end", () => resolve(h1Body));
        })
        .on("error", reject);
    });
    await until(() => h1Body === "first;", 2_000, "h1 stream started");

    // Opened after the streams: an idle HTTP/2 session and a slow HTTP/1.1 client. When
    // they are cut off, the streams have been open longer than every timeout.
    const idleSession = http2.connect(url);
    idleSession.on("error", () => {});
    const idleClosed = new Promise<void>((r) => idleSession.once("close", () => r()));
    const slow = await rawClient(l.port, partialHeaders);
    await within(5_000, Promise.all([idleClosed, slow.closed]), "idle session and slow client cut off");

    expect(h2Session.closed || h2Session.destroyed).toBe(false);
    expect(h2Stream.closed).toBe(false);
    release();
    expect(await within(5_000, h2Done, "h2 stream ended")).toBe("first;last");
    expect(await within(5_000, h1Done, "h1 stream ended")).toBe("first;last");
    // Without an open stream, that session is now idle: it gets GOAWAY too.
    await within(5_000, new Promise<void>((r) => h2Session.once("close", () => r())), "h2 session closed when idle");
  });
});

describe("answers the client does not read", () => {
  /** Answers 100 bytes once the request is in. */
  const smallAnswer: RequestHandler = (req, res) => {
    req.resume();
    req.on("end", () => res.end(Buffer.alloc(100)));
  };

  /** An HTTP/2 client that grants no flow-control window, so no DATA frame can reach it. */
  function stalledClient(port: number): { session: http2.ClientHttp2Session; stream: http2.ClientHttp2Stream; gotHeaders: Promise<void> } {
    const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
    session.on("error", () => {});
    const stream = session.request({ ":path": "/grpc.health.v1.Health/Check", ":method": "POST" });
    stream.on("error", () => {});
    stream.end("{}");
    const gotHeaders = new Promise<void>((r) => stream.once("response", () => r()));
    return { session, stream, gotHeaders };
  }

  test("when an HTTP/2 client never opens its flow-control window, then the stalled answer is cancelled after the request timeout", async () => {
    const l = await startListener(short, smallAnswer);
    const started = Date.now();
    const { session, stream, gotHeaders } = stalledClient(l.port);
    await within(2_000, gotHeaders, "answer headers");
    const rstCode = await within(5_000, new Promise<number>((r) => stream.once("close", () => r(stream.rstCode))), "stalled stream cancelled");
    expect(rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(Date.now() - started).toBeGreaterThanOrEqual(short.requestTimeoutMs - 50);
    // With no open stream the session is idle, and goes too.
    await within(5_000, new Promise<void>((r) => (session.closed ? r() : session.once("close", () => r()))), "idle session closed");
    await until(() => l.stats().open === 0, 2_000, "server side closed");
  });

  test("when the client of a stalled HTTP/2 answer goes away, then its session is torn down at once, not left half-closed", async () => {
    const l = await startListener({ ...short, requestTimeoutMs: 30_000, idleTimeoutMs: 30_000 }, smallAnswer);
    const { session, gotHeaders } = stalledClient(l.port);
    await within(2_000, gotHeaders, "answer headers");
    expect(l.stats()).toMatchObject({ open: 1, http2: 1 });
    session.socket.destroy();
    await until(() => l.stats().open === 0 && l.stats().http2 === 0, 2_000, "server session and socket closed");
    // Nothing left for a drain to wait on.
    const closing = Date.now();
    await l.close(10_000);
    expect(Date.now() - closing).toBeLessThan(1_000);
  });

  test("when an HTTP/1.1 client never reads a large answer, then the connection is closed after the request timeout", async () => {
    const big: RequestHandler = (req, res) => {
      req.resume();
      req.on("end", () => {
        const out = res as http.ServerResponse;
        out.writeHead(200, { "content-type": "application/octet-stream" });
        const chunk = Buffer.alloc(1 << 20);
        let sent = 0;
        // Writes 64 MiB, waiting for drain (as the Connect adapter does); far more than socket buffers hold.
        const pump = () => {
          while (sent < 64 && !out.destroyed) {
            sent += 1;
            if (!out.write(chunk)) return void out.once("drain", pump);
          }
          out.end();
        };
        pump();
      });
    };
    const l = await startListener(short, big);
    const client = await rawClient(l.port, "GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    client.socket.pause();
    client.socket.removeAllListeners("data");
    await until(() => l.stats().http1 === 1, 2_000, "request in");
    await until(() => l.stats().open === 0, 5_000, "server closed the connection of the client that does not read");
    client.socket.destroy();
  });

  test("when an HTTP/2 answer keeps making progress for longer than the request timeout, then it is not cut", async () => {
    const trickle: RequestHandler = (req, res) => {
      req.resume();
      const out = res as http.ServerResponse;
      out.writeHead(200, { "content-type": "application/octet-stream" });
      let n = 0;
      const timer = setInterval(() => {
        n += 1;
        out.write(Buffer.alloc(16 * 1024));
        if (n === 30) {
          clearInterval(timer);
          out.end();
        }
      }, 50);
    };
    const l = await startListener({ ...short, requestTimeoutMs: 300 }, trickle);
    const session = http2.connect(`http://127.0.0.1:${l.port}`);
    session.on("error", () => {});
    const stream = session.request({ ":path": "/trickle" });
    stream.end();
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      stream.on("data", (d: Buffer) => (received += d.byteLength));
      stream.on("end", () => resolve());
      stream.on("error", reject);
    });
    await within(10_000, done, "trickled answer complete");
    expect(received).toBe(30 * 16 * 1024);
    expect(stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    session.close();
  });
});

describe("connection cap", () => {
  test("when the cap is reached, then new connections are closed at once while the open ones are still served", async () => {
    const l = await startListener({ headersTimeoutMs: 30_000, requestTimeoutMs: 30_000, idleTimeoutMs: 30_000, maxConnections: 5 });
    const request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    const held = await Promise.all(Array.from({ length: 5 }, () => rawClient(l.port, request)));
    for (const c of held) await until(() => c.received().endsWith("ok"), 2_000, "held connection answered");

    const over = await rawClient(l.port, request);
    await within(2_000, over.closed, "connection over the cap closed");
    expect(over.received()).toBe("");

    // The held connections still work.
    const first = held[0]!;
    const before = first.received().length;
    first.socket.write(request);
    await until(() => first.received().length > before && first.received().endsWith("ok"), 2_000, "held connection answered again");

    // Closing one makes room for one more.
    first.socket.destroy();
    await until(() => l.stats().open === 4, 2_000, "server saw the close");
    const next = await rawClient(l.port, request);
    await until(() => next.received().endsWith("ok"), 2_000, "new connection answered");
    for (const c of [...held, next]) c.socket.destroy();
  });
});

describe("port in use", () => {
  test("when the port is taken, then listen() and ensurePortAvailable() fail with one line naming port and host", async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const expected = `port ${port} on 127.0.0.1 is already in use`;
      const fromProbe = await ensurePortAvailable("127.0.0.1", port).then(() => undefined, (e: unknown) => e);
      expect(fromProbe).toBeInstanceOf(StartupError);
      expect((fromProbe as Error).message).toContain(expected);
      const fromListen = await listen({ host: "127.0.0.1", port, handler: okHandler, logger, limits: short }).then(() => undefined, (e: unknown) => e);
      expect(fromListen).toBeInstanceOf(StartupError);
      expect((fromListen as Error).message).toContain(expected);
      expect((fromListen as Error).message).not.toContain("\n");
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
    // A free port passes the probe and stays free.
    await ensurePortAvailable("127.0.0.1", port);
    await ensurePortAvailable("127.0.0.1", port);
  });
});
