// The VerifyKey fast path (issue 12 item 4): the common shapes of a unary VerifyKey call
// are answered straight on node:http / node:http2, without connect-node's router,
// interceptors and async-iterable pipeline, which cost most of a call's time. What it takes:
// - gRPC over HTTP/2: `POST /keyward.v1.KeyService/VerifyKey`, `content-type:
//   application/grpc` or `application/grpc+proto`, `te: trailers`, no `grpc-encoding`
//   other than identity, exactly one uncompressed frame (flags 0) of at most
//   KEYWARD_MAX_REQUEST_BYTES, an optional valid `grpc-timeout`;
// - Connect unary over HTTP/1.1 and HTTP/2: `content-type: application/proto` or
//   `application/json`, no `content-encoding` other than identity, `connect-protocol-version`
//   absent or 1, an optional valid `connect-timeout-ms`, a body of at most the limit.
// Everything else goes to connect-node untouched (the body it already read is replayed):
// another content type, gRPC-Web, GET, compression, a query string, frames that are not one
// plain frame, a body that does not decode (protobuf-es with connect's own serializers and
// options) or carries unknown fields / undefined enum values (message-validation.ts): the
// normal path then gives the exact answer it always gives. A verifier that throws (an
// unknown permission is InvalidArgument, a database failure Unavailable) is answered here,
// mapped, classified and logged by the error interceptor's own functions (codeOfError,
// toConnectError): falling back would run the verification, and wait on the database, twice.
//
// What the fast path answers is what the normal path answers, byte for byte where it
// matters: the same response message (verify-response.ts), content type, `x-request-id`,
// negotiated response compression (connect's negotiation, connect's compressors, the same
// 1 KiB threshold), trailers, and the same `rpc` log line and metrics hook
// (logRpcOutcome). Deadlines work as in the deadline interceptor: the deadline runs from the
// moment the request's headers arrived; one already passed when the body is in, or passing
// while the verifier works, answers DeadlineExceeded "the operation timed out" at once; a
// client that goes away is logged Canceled and gets nothing.
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionNegotiate, createMethodSerializationLookup, mergeNonProtocolHeaders, validateUniversalHandlerOptions, type Compression } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type http from "node:http";
import { Readable } from "node:stream";
import { KeyService, VerifyKeyRequestSchema, type VerifyKeyRequest } from "../../gen/keyward/v1/key_service_pb.ts";
import type { Logger } from "../logger.ts";
import type { Verifier, VerifyOutcome, VerifyResultName } from "../verify/verifier.ts";
import type { RequestHandler } from "./listener.ts";
import { codeOfError, toConnectError, type ErrorClassifier } from "./error-interceptor.ts";
import { elapsedMs, logRpcOutcome } from "./logging-interceptor.ts";
import type { Metrics } from "../metrics.ts";
import { findMessageViolation } from "./message-validation.ts";
import { nodeClientGone, requestIdOf, rpcCompressions, rpcJsonOptions } from "./rpc-handler.ts";
import { requestIdHeader } from "./transport-guard.ts";
import { verifyKeyResponseOf } from "./verify-response.ts";

const method = KeyService.method.verifyKey;
const procedure = `${method.parent.typeName}/${method.name}`;
const requestPath = `/${procedure}`;
/** setTimeout's longest delay; a longer deadline is left to the normal path. */
const maxTimerMs = 2 ** 31 - 1;

/** How often the fast path answered and handed a VerifyKey call on (for tests and diagnostics). */
export type FastPathStats = Readonly<{
  /** Calls the fast path answered itself (including DeadlineExceeded, and calls whose client went away). */
  answered: number;
  /** Requests to VerifyKey's path (any method, any query) handed to connect-node. */
  fellBack: number;
  /** Calls the fast path took that wait for the verifier right now. */
  verifying: number;
}>;

/** A request handler with the fast path in front, and its counts. */
export type VerifyFastPath = RequestHandler & { stats(): FastPathStats };

type Req = Parameters<RequestHandler>[0];
type Res = Parameters<RequestHandler>[1];

/** What the headers of a call the fast path takes say. */
type Shape = Readonly<{
  grpc: boolean;
  /** Protobuf binary (gRPC, application/proto) or JSON. */
  binary: boolean;
  /** The caller's deadline in ms from the headers' arrival, if it set one. */
  timeoutMs: number | undefined;
  /** The response compression connect would negotiate (used only at 1 KiB and more). */
  compression: Compression | null;
}>;

/**
 * Puts the VerifyKey fast path in front of `next` (the connect handler, which gets every
 * other request and every VerifyKey call the fast path does not take, with its body
 * intact). `readMaxBytes` is the router's request size limit.
 */
export function withVerifyFastPath(
  next: RequestHandler,
  deps: { verifier: Verifier; logger: Logger; metrics: Pick<Metrics, "rpc" | "verifyResult">; readMaxBytes: number; classifier: ErrorClassifier },
): VerifyFastPath {
  const { verifier, logger, classifier } = deps;
  const opt = validateUniversalHandlerOptions({ readMaxBytes: deps.readMaxBytes, acceptCompression: rpcCompressions, jsonOptions: rpcJsonOptions });
  // connect's own serializers with the router's options: the same decoding, the same limits.
  const serialization = createMethodSerializationLookup(method, opt.binaryOptions, opt.jsonOptions, opt);
  // VerifyKey's recorder, bound once: logRpcOutcome looks no procedure up per call.
  const recordRpc = deps.metrics.rpc(procedure);
  const metrics: Pick<Metrics, "rpc" | "verifyResult"> = { rpc: () => recordRpc, verifyResult: (verdict) => deps.metrics.verifyResult(verdict) };
  let answered = 0;
  let fellBack = 0;
  let verifying = 0;

  /** Hands the request to connect, replaying `chunks` (what was read) before the rest of the body. */
  const fallBack = (req: Req, res: Res, chunks: readonly Buffer[], complete: boolean) => {
    fellBack += 1;
    if (chunks.length > 0 || complete) replayBody(req, chunks, complete);
    next(req, res);
  };

  /** Decodes a complete body; undefined when the normal path must judge it. */
  const decode = (shape: Shape, body: Buffer): VerifyKeyRequest | undefined => {
    let bytes = body;
    if (shape.grpc) {
      if (body.byteLength < 5 || body[0] !== 0) return undefined;
      const length = body.readUInt32BE(1);
      if (length > opt.readMaxBytes || body.byteLength !== 5 + length) return undefined;
      bytes = body.subarray(5);
    }
    let message: VerifyKeyRequest;
    try {
      message = serialization.getI(shape.binary).parse(bytes) as VerifyKeyRequest;
    } catch {
      return undefined;
    }
    return findMessageViolation(VerifyKeyRequestSchema, message) === undefined ? message : undefined;
  };

  /** Verifies and answers a decoded call. */
  const serve = async (req: Req, res: Res, shape: Shape, message: VerifyKeyRequest, headersAt: number) => {
    const requestId = requestIdOf(req);
    const started = performance.now();
    const done = (code: Code | undefined, verdict?: VerifyResultName) => {
      answered += 1;
      const gone = nodeClientGone(req, res);
      logRpcOutcome(logger, metrics, { procedure, code: gone ? Code.Canceled : code, durationMs: elapsedMs(started), verdict }, requestId);
      return !gone;
    };
    const left = shape.timeoutMs === undefined ? undefined : shape.timeoutMs - (performance.now() - headersAt);
    if (left !== undefined && left <= 0) {
      if (done(Code.DeadlineExceeded)) await answer(res, shape, requestId, deadlineError());
      return;
    }
    let outcome: VerifyOutcome;
    const controller = new AbortController();
    const signal = controller.signal;
    const onClose = () => controller.abort(new ConnectError("the call was cancelled", Code.Canceled));
    res.once("close", onClose);
    const timer = left === undefined ? undefined : setTimeout(() => controller.abort(deadlineError()), left);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    const verified = verifier.verify({ key: message.key, requiredPermissions: message.requiredPermissions, org: message.org, signal });
    verifying += 1;
    try {
      outcome = await Promise.race([verified, aborted]);
    } catch (e) {
      if (signal.aborted) {
        verified.catch((late: unknown) => logger.debug({ err: late, requestId, procedure }, "call failed after its deadline or cancellation"));
        const reason: unknown = signal.reason;
        const timedOut = reason instanceof ConnectError && reason.code === Code.DeadlineExceeded;
        if (done(timedOut ? Code.DeadlineExceeded : Code.Canceled) && timedOut) await answer(res, shape, requestId, deadlineError());
        return;
      }
      // The verifier refused the request (an unknown permission is InvalidArgument) or
      // failed (the database): logged and answered as the logging and error interceptors do.
      const code = codeOfError(e, classifier, method.input);
      if (done(code)) await answer(res, shape, requestId, toConnectError(e, logger.child({ requestId, procedure }), classifier, method.input));
      return;
    } finally {
      verifying -= 1;
      clearTimeout(timer);
      res.off("close", onClose);
      if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
      aborted.catch(() => undefined);
    }
    if (done(undefined, outcome.result)) await answer(res, shape, requestId, serialization.getO(shape.binary).serialize(verifyKeyResponseOf(outcome)));
  };

  const handler: RequestHandler = (req, res) => {
    if (req.url !== requestPath || req.method !== "POST") {
      if (req.url?.startsWith(requestPath) === true) fellBack += 1;
      return next(req, res);
    }
    const headersAt = performance.now();
    const shape = shapeOf(req, opt.readMaxBytes);
    if (shape === undefined) {
      fellBack += 1;
      return next(req, res);
    }
    const limit = shape.grpc ? opt.readMaxBytes + 5 : opt.readMaxBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onCut);
      req.off("aborted", onCut);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size <= limit) return;
      // Too large: connect refuses it with its own words; it reads the rest.
      req.pause();
      stop();
      fallBack(req, res, chunks, false);
    };
    const onCut = () => {
      // The request ended before its body did (reset, closed): the normal path logs it.
      stop();
      fallBack(req, res, chunks, false);
    };
    const onEnd = () => {
      stop();
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
      const message = decode(shape, body);
      if (message === undefined) return fallBack(req, res, [body], true);
      serve(req, res, shape, message, headersAt).catch((e: unknown) => logger.warn({ err: e, procedure }, "rpc response failed"));
    };
    // Errors of the request stream reach whoever reads it (the replay, or nobody once the body is in).
    req.on("error", ignore);
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("close", onCut);
    req.on("aborted", onCut);
  };
  return Object.assign(handler, { stats: () => ({ answered, fellBack, verifying }) });
}

/** The shape of a call the fast path takes, from its headers; undefined for anything else. */
function shapeOf(req: Req, readMaxBytes: number): Shape | undefined {
  const h = req.headers;
  const contentType = h["content-type"];
  let grpc: boolean;
  let binary: boolean;
  let timeoutMs: number | undefined;
  let accepted: string | string[] | undefined;
  if (contentType === "application/grpc" || contentType === "application/grpc+proto") {
    if (req.httpVersionMajor !== 2 || h["te"] !== "trailers") return undefined;
    const encoding = h["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return undefined;
    const timeout = h["grpc-timeout"];
    if (timeout !== undefined) {
      timeoutMs = typeof timeout === "string" ? grpcTimeoutMs(timeout) : undefined;
      if (timeoutMs === undefined) return undefined;
    }
    grpc = true;
    binary = true;
    accepted = h["grpc-accept-encoding"];
  } else if (contentType === "application/proto" || contentType === "application/json") {
    const encoding = h["content-encoding"];
    if (encoding !== undefined && encoding !== "identity") return undefined;
    const version = h["connect-protocol-version"];
    if (version !== undefined && version !== "1") return undefined;
    const timeout = h["connect-timeout-ms"];
    if (timeout !== undefined) {
      if (typeof timeout !== "string" || !/^\d{1,10}$/.test(timeout)) return undefined;
      timeoutMs = Number(timeout);
    }
    const length = h["content-length"];
    if (length !== undefined && !(/^\d{1,10}$/.test(length) && Number(length) <= readMaxBytes)) return undefined;
    grpc = false;
    binary = contentType === "application/proto";
    accepted = h["accept-encoding"];
  } else {
    return undefined;
  }
  if (timeoutMs !== undefined && timeoutMs > maxTimerMs) return undefined;
  if (accepted !== undefined && typeof accepted !== "string") return undefined;
  const compression = compressionNegotiate(rpcCompressions, null, accepted ?? null, grpc ? "grpc-accept-encoding" : "accept-encoding").response;
  return { grpc, binary, timeoutMs, compression };
}

/** A `grpc-timeout` value in ms (connect's rule: 1–8 digits and a unit), or undefined when invalid. */
function grpcTimeoutMs(value: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return undefined;
  const unit = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000001 }[m[2] as "H" | "M" | "S" | "m" | "u" | "n"];
  return unit * Number(m[1]);
}

/** The error of a call whose deadline passed: connect's own (createDeadlineSignal). */
function deadlineError(): ConnectError {
  return new ConnectError("the operation timed out", Code.DeadlineExceeded);
}

/**
 * Writes the answer the normal path writes for `result` (the serialized response message,
 * or an error): gRPC as one frame and `grpc-status` trailers, Connect unary as a body with
 * its length, or a JSON error with its HTTP status.
 */
async function answer(res: Res, shape: Shape, requestId: string, result: Uint8Array | ConnectError): Promise<void> {
  const out = res as http.ServerResponse;
  const compression = shape.compression;
  if (shape.grpc) {
    const header: Record<string, string> = { "content-type": "application/grpc+proto", [requestIdHeader]: requestId };
    if (compression !== null) header["grpc-encoding"] = compression.name;
    let trailer: Record<string, string> = okTrailer;
    let frame: Buffer | undefined;
    if (result instanceof ConnectError) {
      const t = new Headers();
      setTrailerStatus(t, result);
      trailer = Object.fromEntries(t);
    } else {
      const compress = compression !== null && result.byteLength >= minCompressBytes;
      const data = compress ? await compression.compress(result) : result;
      frame = Buffer.allocUnsafe(5 + data.byteLength);
      frame[0] = compress ? 1 : 0;
      frame.writeUInt32BE(data.byteLength, 1);
      frame.set(data, 5);
    }
    out.writeHead(200, header);
    out.addTrailers(trailer);
    out.end(frame);
    return;
  }
  if (!(result instanceof ConnectError) && (compression === null || result.byteLength < minCompressBytes)) {
    // The common answer, without a Headers object.
    out.writeHead(200, { "content-type": shape.binary ? "application/proto" : "application/json", [requestIdHeader]: requestId, "content-length": String(result.byteLength) });
    out.end(result);
    return;
  }
  const header = new Headers({ "content-type": shape.binary ? "application/proto" : "application/json", [requestIdHeader]: requestId });
  let status = 200;
  let body: Uint8Array;
  if (result instanceof ConnectError) {
    status = codeToHttpStatus(result.code);
    header.set("content-type", "application/json");
    mergeNonProtocolHeaders(header, result.metadata);
    body = errorToJsonBytes(result, undefined);
  } else {
    body = result;
  }
  if (compression !== null && body.byteLength >= minCompressBytes) {
    body = await compression.compress(body);
    header.set("content-encoding", compression.name);
  }
  header.set("content-length", String(body.byteLength));
  out.writeHead(status, Object.fromEntries(header));
  out.end(body);
}

/** The trailers of a successful gRPC call. */
const okTrailer: Readonly<Record<string, string>> = { "grpc-status": "0" };

/** connect's compressMinBytes default: smaller answers are never compressed. */
const minCompressBytes = validateUniversalHandlerOptions({}).compressMinBytes;

/**
 * Makes `req` give connect `chunks` first when it reads the body (connect-node reads it with
 * `for await`), then, unless the body was read to its end, the rest of the stream.
 */
function replayBody(req: Req, chunks: readonly Buffer[], complete: boolean): void {
  const original = Readable.prototype[Symbol.asyncIterator];
  Object.defineProperty(req, Symbol.asyncIterator, {
    configurable: true,
    value: async function* replayed(): AsyncGenerator<Buffer> {
      yield* chunks;
      if (!complete) yield* original.call(req) as AsyncIterable<Buffer>;
    },
  });
}

function ignore(): void {}
