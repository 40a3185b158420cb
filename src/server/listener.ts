// One cleartext port for HTTP/1.1 and HTTP/2: peek at the first bytes of each connection
// and hand the socket to an http or an http2 server running the same request handler.
// (node:http2's allowHTTP1 only works over TLS.)
//
// The node:http server is the one that listens (its connection listener is swapped for the
// sniffer), because Node runs its header and request timeout checks, and counts connections
// for maxConnections, only on a server that was listen()ed. HTTP/2 gets the same bounds
// from timers here: a stream must deliver its request within the request timeout, and a
// session with no open stream is closed (GOAWAY) after the idle timeout.
//
// Answers are bounded too, on both protocols: output that waits to be sent (an HTTP/2
// stream blocked by flow control because the client sends no WINDOW_UPDATE, an HTTP/1.1
// socket whose client does not read) and does not shrink for the request timeout is cut
// (RST_STREAM CANCEL, or the socket is destroyed). A stream with nothing to send (a health
// Watch waiting for a change) is not stalled, whatever its age. An HTTP/2 session whose
// socket ended or closed (the client went away) is destroyed at once, streams and all.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { ServerLimits } from "../config.ts";
import type { Logger } from "../logger.ts";
import { StartupError } from "../startup-error.ts";

/** A request handler usable by both node:http and node:http2. */
export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** What the listener holds right now (for tests and diagnostics). */
export type ListenerStats = Readonly<{
  /** Accepted sockets not yet closed, whatever their protocol. */
  open: number;
  /** Sockets whose first bytes have not yet told HTTP/1.1 from HTTP/2. */
  sniffing: number;
  /** HTTP/1.1 connections. */
  http1: number;
  /** HTTP/2 sessions. */
  http2: number;
}>;

/** A listening server that can shut down gracefully. */
export type Listener = {
  readonly port: number;
  readonly host: string;
  /**
   * Drains and stops: stops accepting, closes idle connections at once, lets in-flight calls
   * finish (HTTP/1.1 answers carry `Connection: close`, HTTP/2 sessions get GOAWAY) and
   * resolves as soon as the last connection is closed, or after `graceMs` by closing what is
   * left. Calling it again returns the same promise.
   */
  close(graceMs: number): Promise<void>;
  /** Counts of what is open now. */
  stats(): ListenerStats;
};

/** The start of the HTTP/2 connection preface (RFC 9113 §3.4). */
const h2Preface = Buffer.from("PRI * HTTP/2.0");
/** The shortest time between two "connection cap reached" warnings. */
const dropLogIntervalMs = 10_000;

/**
 * Write progress of one socket or stream: how many bytes waited to be sent at the last look,
 * and since when (ms) they have not shrunk.
 */
type Progress = { pending: number; since: number };
/** Per HTTP/1.1 connection: the responses not yet finished, and its write progress. */
type H1State = { responses: Set<http.ServerResponse>; progress: Progress };
/** Per HTTP/2 session: open streams with their write progress, and the idle timer armed while there are none. */
type H2State = { streams: Map<http2.ServerHttp2Stream, Progress>; idleTimer: NodeJS.Timeout | undefined };

/**
 * Records the bytes waiting to be sent now (`pending`) and says whether they have waited,
 * without shrinking, for `boundMs` or longer. Nothing pending, or less than last time, is progress.
 */
function isStalled(p: Progress, pending: number, now: number, boundMs: number): boolean {
  if (pending === 0 || pending < p.pending) p.since = now;
  p.pending = pending;
  return pending > 0 && now - p.since >= boundMs;
}

/**
 * Starts listening on host:port (port 0 picks a free one), with the timeouts and the
 * connection cap of `limits`. Throws StartupError when the address is in use or unusable.
 */
export async function listen(opts: { host: string; port: number; handler: RequestHandler; logger: Logger; limits: ServerLimits }): Promise<Listener> {
  const { handler, logger, limits } = opts;
  const open = new Set<net.Socket>();
  const sniffing = new Set<net.Socket>();
  const h1Sockets = new Map<net.Socket, H1State>();
  const h2Sessions = new Map<http2.ServerHttp2Session, H2State>();
  let draining = false;

  /** Ends a connection that has nothing in flight; destroyed once our FIN is flushed. */
  const endSocket = (socket: net.Socket) => {
    if (socket.destroyed || socket.writableEnded) return;
    socket.end(() => socket.destroy());
  };

  const h1 = http.createServer(
    {
      maxHeaderSize: 16 * 1024,
      // noDelay: without it, Nagle and delayed ACKs add tens of milliseconds to small RPCs.
      noDelay: true,
      keepAlive: true,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.idleTimeoutMs,
      // How often Node checks the header and request timeouts: a quarter of the shorter one.
      connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    (req, res) => {
      const socket = req.socket;
      const state = h1Sockets.get(socket);
      if (state === undefined || socket.writableEnded) {
        // The drain already closed this connection (a request raced the close): no answer
        // can reach the client; it sees the connection closed, never a partial response.
        socket.destroy();
        return;
      }
      state.responses.add(res);
      if (draining) res.setHeader("connection", "close");
      res.once("close", () => {
        state.responses.delete(res);
        // A response whose headers went out before the drain began kept the connection alive.
        if (draining && state.responses.size === 0) endSocket(socket);
      });
      handler(req, res);
    },
  );
  h1.maxConnections = limits.maxConnections;
  // Malformed requests and header/request timeouts: answer like Node's default (unless an
  // answer is already on its way on this connection), then close.
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    logger.debug({ code: err.code }, "HTTP/1.1 client error");
    const state = h1Sockets.get(socket as net.Socket);
    const answering = state !== undefined && [...state.responses].some((r) => r.headersSent);
    if (socket.writable && !answering) socket.write(`HTTP/1.1 ${clientErrorStatus(err.code)}\r\nconnection: close\r\n\r\n`);
    socket.destroy();
  });
  let dropped = 0;
  let droppedLoggedAt = 0;
  h1.on("drop", () => {
    dropped += 1;
    const now = Date.now();
    if (now - droppedLoggedAt >= dropLogIntervalMs) {
      logger.warn({ dropped, maxConnections: limits.maxConnections }, "connection cap reached: closing new connections");
      dropped = 0;
      droppedLoggedAt = now;
    }
  });

  const h2 = http2.createServer({ maxSessionMemory: 32, settings: { maxConcurrentStreams: 1000 } }, handler);
  h2.on("session", (session) => {
    const state: H2State = { streams: new Map(), idleTimer: undefined };
    h2Sessions.set(session, state);
    const armIdle = () => {
      clearTimeout(state.idleTimer);
      state.idleTimer = setTimeout(() => {
        logger.debug({ idleTimeoutMs: limits.idleTimeoutMs }, "closing idle HTTP/2 session");
        session.close();
      }, limits.idleTimeoutMs);
    };
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      state.streams.set(stream, { pending: 0, since: Date.now() });
      clearTimeout(state.idleTimer);
      const requestTimer = setTimeout(() => {
        logger.debug({ requestTimeoutMs: limits.requestTimeoutMs }, "HTTP/2 request not received in time: cancelling the stream");
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }, limits.requestTimeoutMs);
      // The request is in once its side of the stream has ended; the response may go on.
      stream.once("end", () => clearTimeout(requestTimer));
      stream.once("close", () => {
        clearTimeout(requestTimer);
        state.streams.delete(stream);
        if (state.streams.size === 0 && !session.closed && !session.destroyed) armIdle();
      });
    });
    session.once("close", () => {
      clearTimeout(state.idleTimer);
      h2Sessions.delete(session);
    });
    // The client went away (its socket ended or failed): nothing more can be sent to it or
    // read from it (not even a WINDOW_UPDATE), so the session and its streams go now rather
    // than leaving the socket half-closed with a stalled answer.
    const gone = () => {
      if (!session.destroyed) session.destroy();
    };
    session.socket.once("end", gone);
    session.socket.once("close", gone);
    session.on("error", (err) => {
      logger.debug({ err }, "HTTP/2 session error");
      gone();
    });
    if (draining) session.close();
    else armIdle();
  });

  // Output that waits without shrinking for the request timeout is cut (see the header).
  const stallCheck = setInterval(
    () => {
      const now = Date.now();
      for (const [socket, state] of h1Sockets) {
        if (!isStalled(state.progress, socket.writableLength, now, limits.requestTimeoutMs)) continue;
        logger.debug({ requestTimeoutMs: limits.requestTimeoutMs, pendingBytes: state.progress.pending }, "HTTP/1.1 client does not read its answer: closing the connection");
        socket.destroy();
      }
      for (const state of h2Sessions.values()) {
        for (const [stream, progress] of state.streams) {
          if (stream.closed || !isStalled(progress, stream.bufferSize, now, limits.requestTimeoutMs)) continue;
          logger.debug({ requestTimeoutMs: limits.requestTimeoutMs, pendingBytes: progress.pending }, "HTTP/2 answer blocked by the client's flow control: cancelling the stream");
          stream.close(http2.constants.NGHTTP2_CANCEL);
        }
      }
    },
    Math.max(10, Math.min(1_000, Math.floor(limits.requestTimeoutMs / 4))),
  );
  stallCheck.unref();

  // Node's own connection listener of the http server; the sniffer calls it for HTTP/1.1.
  const h1ConnectionListeners = h1.listeners("connection") as ((socket: net.Socket) => void)[];
  const h1Connection = h1ConnectionListeners[0];
  if (h1ConnectionListeners.length !== 1 || h1Connection === undefined) {
    throw new Error(`node:http has ${h1ConnectionListeners.length} connection listeners; the one-port listener expects exactly one`);
  }
  h1.removeListener("connection", h1Connection);
  h1.on("connection", (socket: net.Socket) => {
    open.add(socket);
    let timer: NodeJS.Timeout | undefined;
    socket.once("close", () => {
      clearTimeout(timer);
      open.delete(socket);
      sniffing.delete(socket);
      h1Sockets.delete(socket);
    });
    socket.on("error", (err) => logger.debug({ err }, "connection error"));
    if (draining) {
      socket.destroy();
      return;
    }
    sniffing.add(socket);
    let head = Buffer.alloc(0);
    timer = setTimeout(() => socket.destroy(), limits.headersTimeoutMs);
    const route = (isH2: boolean) => {
      clearTimeout(timer);
      sniffing.delete(socket);
      socket.off("readable", onReadable);
      socket.off("end", onEnd);
      socket.unshift(head);
      if (isH2) {
        // Do not resume: http2 reads the buffered bytes itself; resuming would lose them.
        h2.emit("connection", socket);
      } else {
        h1Sockets.set(socket, { responses: new Set(), progress: { pending: 0, since: Date.now() } });
        h1Connection.call(h1, socket);
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
    const onEnd = () => socket.destroy();
    socket.on("readable", onReadable);
    socket.on("end", onEnd);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      h1.once("error", reject);
      h1.listen(opts.port, opts.host, () => {
        h1.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    clearInterval(stallCheck);
    throw listenError(e, opts.host, opts.port);
  }
  // After listening, the server reports accept failures (e.g. out of file descriptors).
  h1.on("error", (err) => logger.error({ err }, "listener error"));
  const address = h1.address() as net.AddressInfo;

  let closing: Promise<void> | undefined;
  const drain = async (graceMs: number) => {
    draining = true;
    h1.once("close", () => clearInterval(stallCheck));
    const closed = new Promise<void>((resolve) => h1.close(() => resolve()));
    for (const socket of sniffing) socket.destroy();
    for (const session of h2Sessions.keys()) session.close();
    for (const [socket, state] of h1Sockets) {
      if (state.responses.size === 0) endSocket(socket);
      else for (const res of state.responses) if (!res.headersSent) res.setHeader("connection", "close");
    }
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => {
      timer = setTimeout(() => resolve("expired"), graceMs);
    });
    const outcome = await Promise.race([closed, expired]);
    clearTimeout(timer);
    if (outcome === "expired") {
      logger.warn({ graceMs, http1: h1Sockets.size, http2: h2Sessions.size }, "shutdown grace period over; closing remaining connections");
      for (const session of h2Sessions.keys()) session.destroy();
      for (const socket of open) socket.destroy();
      await closed;
    }
  };

  return {
    port: address.port,
    host: opts.host,
    close(graceMs) {
      closing ??= drain(graceMs);
      return closing;
    },
    stats: () => ({ open: open.size, sniffing: sniffing.size, http1: h1Sockets.size, http2: h2Sessions.size }),
  };
}

/**
 * Fails fast, before anything else starts, when host:port cannot be listened on (in use,
 * not an address of this machine, not permitted): binds it and lets it go at once. Port 0
 * always succeeds. Throws the same StartupError as listen().
 */
export async function ensurePortAvailable(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once("error", reject);
      probe.listen({ port, host, exclusive: true }, () => resolve());
    });
  } catch (e) {
    throw listenError(e, host, port);
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

/** The status line of Node's own answer to a client error (see node:http). */
function clientErrorStatus(code: string | undefined): string {
  switch (code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return "408 Request Timeout";
    case "HPE_HEADER_OVERFLOW":
      return "431 Request Header Fields Too Large";
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return "413 Payload Too Large";
    default:
      return "400 Bad Request";
  }
}

/** One line for the operator when the port cannot be listened on; other errors pass through. */
function listenError(e: unknown, host: string, port: number): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "EADDRINUSE":
      return new StartupError(`port ${port} on ${host} is already in use (set PORT to a free port, or stop the process that holds it)`, e);
    case "EADDRNOTAVAIL":
      return new StartupError(`address ${host} is not an address of this machine (set HOST, e.g. 127.0.0.1 or 0.0.0.0)`, e);
    case "EACCES":
      return new StartupError(`not permitted to listen on port ${port} on ${host} (ports below 1024 need privileges: set PORT to 1024 or above)`, e);
    default:
      return e;
  }
}
