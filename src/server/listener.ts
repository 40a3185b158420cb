// One cleartext port for HTTP/1.1 and HTTP/2: peek at the first bytes of each connection
// and hand the socket to an http or an http2 server running the same request handler.
// (node:http2's allowHTTP1 only works over TLS.)
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Logger } from "../logger.ts";

/** A request handler usable by both node:http and node:http2. */
export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** A listening server that can shut down gracefully. */
export type Listener = {
  readonly port: number;
  readonly host: string;
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then closes. */
  close(graceMs: number): Promise<void>;
};

/** The start of the HTTP/2 connection preface (RFC 9113 §3.4). */
const h2Preface = Buffer.from("PRI * HTTP/2.0");
/** A connection that sends nothing for this long is dropped. */
const firstBytesTimeoutMs = 10_000;

/** Starts listening on host:port (port 0 picks a free one). */
export async function listen(opts: { host: string; port: number; handler: RequestHandler; logger: Logger }): Promise<Listener> {
  const { handler, logger } = opts;
  const h1Sockets = new Map<net.Socket, number>();
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  let closing = false;
  let onDrained: (() => void) | undefined;

  const checkDrained = () => {
    if (closing && h1Sockets.size === 0 && h2Sessions.size === 0) onDrained?.();
  };

  const h1 = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 60_000, headersTimeout: 20_000 }, (req, res) => {
    const socket = req.socket;
    h1Sockets.set(socket, (h1Sockets.get(socket) ?? 0) + 1);
    if (closing) res.setHeader("connection", "close");
    res.once("close", () => {
      const left = (h1Sockets.get(socket) ?? 1) - 1;
      h1Sockets.set(socket, left);
      if (closing && left === 0) socket.end();
    });
    handler(req, res);
  });
  const h2 = http2.createServer({ maxSessionMemory: 32, settings: { maxConcurrentStreams: 1000 } }, handler);
  h2.on("session", (session) => {
    h2Sessions.add(session);
    session.once("close", () => {
      h2Sessions.delete(session);
      checkDrained();
    });
    if (closing) session.close();
  });
  h1.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });

  // noDelay: without it, Nagle and delayed ACKs add tens of milliseconds to small RPCs.
  const server = net.createServer({ noDelay: true, keepAlive: true }, (socket) => {
    socket.on("error", (err) => logger.debug({ err }, "connection error"));
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), firstBytesTimeoutMs);
    const route = (isH2: boolean) => {
      clearTimeout(timer);
      socket.off("readable", onReadable);
      socket.off("end", onEnd);
      socket.unshift(head);
      if (isH2) {
        // Do not resume: http2 reads the buffered bytes itself; resuming would lose them.
        h2.emit("connection", socket);
      } else {
        h1Sockets.set(socket, h1Sockets.get(socket) ?? 0);
        socket.once("close", () => {
          h1Sockets.delete(socket);
          checkDrained();
        });
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, h2Preface.length);
      const maybeH2 = head.subarray(0, n).equals(h2Preface.subarray(0, n));
      if (maybeH2 && head.length < h2Preface.length) return; // wait for more bytes
      route(maybeH2);
    };
    const onEnd = () => {
      clearTimeout(timer);
      socket.destroy();
    };
    socket.on("readable", onReadable);
    socket.on("end", onEnd);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;

  return {
    port: address.port,
    host: opts.host,
    async close(graceMs) {
      if (closing) return;
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of h2Sessions) session.close();
      for (const [socket, active] of h1Sockets) if (active === 0) socket.end();
      const drained = new Promise<void>((resolve) => {
        onDrained = resolve;
        checkDrained();
      });
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<"expired">((resolve) => {
        timer = setTimeout(() => resolve("expired"), graceMs);
      });
      const outcome = await Promise.race([drained, expired]);
      clearTimeout(timer);
      if (outcome === "expired") {
        logger.warn({ graceMs, h1: h1Sockets.size, h2: h2Sessions.size }, "shutdown grace period over; closing remaining connections");
        for (const session of h2Sessions) session.destroy();
        for (const socket of h1Sockets.keys()) socket.destroy();
      }
      await stopped;
    },
  };
}
