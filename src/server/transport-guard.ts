// The transport guard wraps each of connect's per-method handlers. It runs before connect
// reads anything, so it sees every request to a known method (unknown paths and requests
// without an authority are answered by rpc-handler.ts, also with a request id and a log
// line), including those connect
// refuses before keyward's interceptors run (a body that is not protobuf, a frame that
// lies about its length or compression, JSON with an unknown key, GET on a POST-only
// method). For every request it:
// - assigns the request id (a sane caller `x-request-id`, else random) and returns it in
//   the `x-request-id` response header;
// - refuses what connect would misread or answer as Internal: a gRPC / gRPC-Web request
//   frame with a flag other than "compressed" (connect ignores flags), and a Connect GET
//   whose `message` is not base64 (connect throws a plain Error on it);
// - for requests the interceptor chain never took: rewrites connect's mislabelled
//   refusals (Internal "parse binary: …", or the bare Internal "internal error" a plain
//   Error while reading the request becomes) into InvalidArgument with an ErrorInfo reason,
//   in the wire form of the protocol used (Connect unary JSON error body and HTTP status,
//   Connect end-stream frame, gRPC trailers, gRPC-Web trailer frame), and logs the one
//   `rpc` line the logging interceptor would have written (Canceled when the client went away),
//   and counts the call in the metrics as that interceptor would have.
// Requests the chain took are left alone: the error interceptor maps their failures and
// the logging interceptor logs them.
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { DescMessage } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { readAllBytes, type UniversalHandler, type UniversalServerRequest, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeFromHttpStatus, codeToHttpStatus, createEndStreamSerialization, endStreamFlag, endStreamFromJson, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { invalidArgument } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import { isClientGone } from "./client-gone.ts";
import { interceptedKey, requestIdKey } from "./context.ts";
import { keywardErrorToConnect } from "./error-interceptor.ts";
import { elapsedMs, writeRpcLine } from "./logging-interceptor.ts";
import { requestErrorOf } from "./request-errors.ts";
import { requestIdFrom } from "./request-id.ts";

/** The response header (and log field) that carries the request id. */
export const requestIdHeader = "x-request-id";

/** A refusal body larger than this is passed on unread (refusals are a few hundred bytes). */
const maxRefusalBytes = 64 * 1024;
/** The compressed bit of an envelope's flags. */
const compressedFlag = 0b00000001;

/** How a request the interceptors never saw ended, for its log line. */
type Outcome = { code: Code | undefined; reason?: string | undefined; httpStatus?: number };

/**
 * Wraps one of connect's UniversalHandlers (one RPC, every protocol) with the guard; the
 * result keeps the handler's properties (requestPath, method, protocols…), so it can be
 * served like the original. `logger` receives the lines of refused requests, `metrics` their
 * counts; `readMaxBytes` is the router's limit (a frame above it is left for connect to
 * refuse as too large).
 */
export function guardHandler(handler: UniversalHandler, logger: Logger, metrics: Pick<Metrics, "rpc">, readMaxBytes: number): UniversalHandler {
  const procedure = `${handler.service.typeName}/${handler.method.name}`;
  const recordRpc = metrics.rpc(procedure);
  const input = handler.method.input;
  async function guarded(req: UniversalServerRequest): Promise<UniversalServerResponse> {
    const started = performance.now();
    const requestId = requestIdFrom(req.header.get(requestIdHeader));
    const values = req.contextValues ?? createContextValues();
    values.set(requestIdKey, requestId);
    let logged = false;
    const log = (outcome: Outcome) => {
      if (logged) return;
      logged = true;
      // A client that went away (reset its stream, closed the connection) cancelled the call.
      const code = req.signal.aborted || isClientGone(values) ? Code.Canceled : outcome.code;
      const durationMs = elapsedMs(started);
      recordRpc(code, durationMs / 1000);
      writeRpcLine(logger, { procedure, code, durationMs, reason: outcome.reason, httpStatus: outcome.httpStatus }, requestId);
    };
    const getRefusal = connectGetRefusal(req, handler);
    if (getRefusal !== undefined) {
      const body = errorToJsonBytes(getRefusal, undefined);
      const status = codeToHttpStatus(getRefusal.code);
      log({ code: getRefusal.code, reason: reasonOf(getRefusal), httpStatus: status });
      const header = new Headers({ "content-type": "application/json", "content-length": String(body.byteLength), [requestIdHeader]: requestId });
      return { status, header, body: once(body) };
    }
    let res: UniversalServerResponse;
    try {
      res = await handler({ ...req, body: checkedRequestFrames(req, readMaxBytes), contextValues: values });
    } catch (e) {
      if (!values.get(interceptedKey)) log({ code: Code.Internal });
      throw e;
    }
    // connect hands back a Headers object: set the id in place (copy only a plain record).
    const header = res.header instanceof Headers ? res.header : new Headers(res.header);
    header.set(requestIdHeader, requestId);
    if (values.get(interceptedKey)) return { ...res, header };
    return refused({ ...res, header }, input, log);
  }
  return Object.assign(guarded, {
    requestPath: handler.requestPath,
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
    service: handler.service,
    method: handler.method,
  });
}

/** Rewrites (where needed) and logs the response to a request connect refused before the interceptors. */
async function refused(res: UniversalServerResponse & { header: Headers }, input: DescMessage, log: (o: Outcome) => void): Promise<UniversalServerResponse> {
  const contentType = res.header.get("content-type") ?? "";
  const body = res.body;
  if (res.status !== 200) {
    if (body !== undefined && contentType.startsWith("application/json") && !res.header.has("content-encoding")) {
      return connectUnaryRefusal({ ...res, body }, input, log);
    }
    // Refused by protocol negotiation (GET on a POST-only method, unsupported media type,
    // HTTP/1.1 for a bidi stream): no RPC error to rewrite.
    log({ code: protocolRefusalCode(res.status), httpStatus: res.status });
    return res;
  }
  if (body === undefined) {
    log({ code: undefined });
    return res;
  }
  if (contentType.startsWith("application/grpc-web")) return { ...res, body: rewriteFrames(body, trailerFlag, (data) => grpcWebTrailer(data, input), log) };
  if (contentType.startsWith("application/grpc")) {
    const trailer = res.trailer ?? new Headers();
    return { ...res, trailer, body: rewriteGrpcTrailer(body, trailer, input, log) };
  }
  if (contentType.startsWith("application/connect+")) return { ...res, body: rewriteFrames(body, endStreamFlag, (data) => connectEndStream(data, input), log) };
  log({ code: undefined });
  return res;
}

/** The code logged for a refusal of protocol negotiation (405, 415, 505): the procedure is not served that way. */
function protocolRefusalCode(status: number): Code {
  return status === 405 || status === 415 || status === 505 ? Code.Unimplemented : codeFromHttpStatus(status);
}

/**
 * The refusal a client gets instead of `e`, or undefined to keep `e`. Only called for calls
 * the interceptors never took: there, connect's bare `Internal "internal error"` can only
 * come from a plain Error thrown while reading the request (no keyward code ran), so it is
 * the request that is malformed.
 */
function replacementOf(e: ConnectError, input: DescMessage): ConnectError | undefined {
  const refusal = requestErrorOf(e, input);
  if (refusal !== undefined) return keywardErrorToConnect(refusal);
  if (e.code === Code.Internal && e.rawMessage === "internal error") {
    return keywardErrorToConnect(invalidArgument("MALFORMED_REQUEST", "malformed request: it cannot be read"));
  }
  return undefined;
}

/**
 * Connect GET (`?connect=v1&encoding=…&base64=1&message=…`) with a message that is not
 * base64: connect-node decodes it with a plain Error ("invalid base64 string") that it
 * answers as Internal. Refused here instead, as InvalidArgument MALFORMED_REQUEST, when
 * connect would get that far (GET allowed, a known encoding, no unknown compression).
 */
function connectGetRefusal(req: UniversalServerRequest, handler: UniversalHandler): ConnectError | undefined {
  if (req.method !== "GET" || !handler.allowedMethods.includes("GET")) return undefined;
  let params: URLSearchParams;
  try {
    params = new URL(req.url).searchParams;
  } catch {
    return undefined;
  }
  const encoding = params.get("encoding");
  const compression = params.get("compression");
  if (params.get("base64") !== "1" || (encoding !== "json" && encoding !== "proto")) return undefined;
  if (compression !== null && !["identity", "gzip", "br"].includes(compression)) return undefined;
  try {
    base64Decode(params.get("message") ?? "");
    return undefined;
  } catch {
    return keywardErrorToConnect(invalidArgument("MALFORMED_REQUEST", "malformed request: the message parameter is not base64", { field: "message" }));
  }
}

/** The ErrorInfo reason of an error, for the log line. */
function reasonOf(e: ConnectError): string | undefined {
  return e.findDetails(ErrorInfoSchema)[0]?.reason;
}

/** A Connect unary error: a JSON body and an HTTP status. */
async function connectUnaryRefusal(
  res: UniversalServerResponse & { header: Headers; body: AsyncIterable<Uint8Array> },
  input: DescMessage,
  log: (o: Outcome) => void,
): Promise<UniversalServerResponse> {
  let bytes: Uint8Array;
  try {
    bytes = await readAllBytes(res.body, maxRefusalBytes);
  } catch {
    log({ code: codeFromHttpStatus(res.status), httpStatus: res.status });
    return { ...res, body: (async function* () {})() };
  }
  const original = errorFromJsonBytes(bytes, undefined, new ConnectError("", codeFromHttpStatus(res.status)));
  const replacement = replacementOf(original, input);
  if (replacement === undefined) {
    log({ code: original.code, reason: reasonOf(original), httpStatus: res.status });
    return { ...res, body: once(bytes) };
  }
  const body = errorToJsonBytes(replacement, undefined);
  const status = codeToHttpStatus(replacement.code);
  res.header.set("content-length", String(body.byteLength));
  log({ code: replacement.code, reason: reasonOf(replacement), httpStatus: status });
  return { ...res, status, body: once(body) };
}

/** gRPC: the status is in the HTTP trailers, final once the body has ended. */
async function* rewriteGrpcTrailer(body: AsyncIterable<Uint8Array>, trailer: Headers, input: DescMessage, log: (o: Outcome) => void): AsyncIterable<Uint8Array> {
  let complete = false;
  try {
    yield* body;
    complete = true;
  } finally {
    // The body was not written to the end (the client went away): log what is known.
    if (!complete) log({ code: findTrailerError(trailer)?.code ?? Code.Canceled });
  }
  const original = findTrailerError(trailer);
  if (original === undefined) {
    log({ code: undefined });
    return;
  }
  const replacement = replacementOf(original, input);
  if (replacement === undefined) {
    log({ code: original.code, reason: reasonOf(original) });
    return;
  }
  for (const name of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) trailer.delete(name);
  setTrailerStatus(trailer, replacement);
  log({ code: replacement.code, reason: reasonOf(replacement) });
}

/** The rewritten data of a final frame and the code it ends the call with. */
type FinalFrame = { data: Uint8Array; error: ConnectError | undefined };

/**
 * gRPC-Web and the Connect streaming protocol end a response with a flagged frame (the
 * trailers, or the end-stream JSON). Buffers the response (a refusal is one small frame),
 * rewrites that frame with `rewrite` and logs how the call ended.
 */
async function* rewriteFrames(
  body: AsyncIterable<Uint8Array>,
  finalFlag: number,
  rewrite: (data: Uint8Array) => FinalFrame,
  log: (o: Outcome) => void,
): AsyncIterable<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const it = body[Symbol.asyncIterator]();
  for (let next = await it.next(); next.done !== true; next = await it.next()) {
    chunks.push(next.value);
    size += next.value.byteLength;
    if (size > maxRefusalBytes) {
      // Not a refusal: pass it on as it is.
      log({ code: undefined });
      yield* chunks;
      yield* { [Symbol.asyncIterator]: () => it };
      return;
    }
  }
  const bytes = Buffer.concat(chunks);
  const out: Uint8Array[] = [];
  let error: ConnectError | undefined;
  let offset = 0;
  while (offset + 5 <= bytes.byteLength) {
    const flags = bytes[offset] ?? 0;
    const length = bytes.readUInt32BE(offset + 1);
    const end = Math.min(offset + 5 + length, bytes.byteLength);
    const data = bytes.subarray(offset + 5, end);
    if ((flags & finalFlag) === finalFlag && (flags & compressedFlag) === 0 && end - offset - 5 === length) {
      const final = rewrite(data);
      error = final.error;
      out.push(envelope(flags, final.data));
    } else {
      out.push(bytes.subarray(offset, end));
    }
    offset = end;
  }
  if (offset < bytes.byteLength) out.push(bytes.subarray(offset));
  log({ code: error?.code, reason: error === undefined ? undefined : reasonOf(error) });
  yield* out;
}

/** A gRPC-Web trailer frame, rewritten when it carries a mislabelled refusal. */
function grpcWebTrailer(data: Uint8Array, input: DescMessage): FinalFrame {
  const trailer = trailerParse(data);
  const original = findTrailerError(trailer);
  if (original === undefined) return { data, error: undefined };
  const replacement = replacementOf(original, input);
  if (replacement === undefined) return { data, error: original };
  for (const name of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) trailer.delete(name);
  setTrailerStatus(trailer, replacement);
  return { data: trailerSerialize(trailer), error: replacement };
}

const endStreamSerialization = createEndStreamSerialization(undefined);

/** A Connect end-stream frame, rewritten when it carries a mislabelled refusal. */
function connectEndStream(data: Uint8Array, input: DescMessage): FinalFrame {
  let end;
  try {
    end = endStreamFromJson(data);
  } catch {
    return { data, error: undefined };
  }
  if (end.error === undefined) return { data, error: undefined };
  const replacement = replacementOf(end.error, input);
  if (replacement === undefined) return { data, error: end.error };
  return { data: endStreamSerialization.serialize({ metadata: end.metadata, error: replacement }), error: replacement };
}

/** One enveloped frame: flags, big-endian length, data. */
function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = Buffer.alloc(5 + data.byteLength);
  out[0] = flags;
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, 5);
  return out;
}

/**
 * The request body, with the flags of every gRPC and gRPC-Web request frame checked on the
 * way through: a client may only set the compressed bit (0x01). Anything else, such as the
 * trailer flag 0x80 that only a server sends, would be read as a plain message by connect;
 * it is refused as InvalidArgument instead. Other bodies pass untouched.
 */
function checkedRequestFrames(req: UniversalServerRequest, readMaxBytes: number): UniversalServerRequest["body"] {
  const body = req.body;
  const contentType = req.header.get("content-type") ?? "";
  if (!contentType.startsWith("application/grpc") || typeof body !== "object" || body === null || !(Symbol.asyncIterator in body)) return body;
  return checkFrameFlags(body as AsyncIterable<Uint8Array>, readMaxBytes);
}

/**
 * Passes the chunks through, following frame boundaries, and throws at the first frame with
 * a flag other than compressed. A frame longer than `readMaxBytes` is passed on unchecked:
 * connect refuses it as too large, the truer answer when a lying length misaligns the frames.
 */
async function* checkFrameFlags(body: AsyncIterable<Uint8Array>, readMaxBytes: number): AsyncIterable<Uint8Array> {
  let header = Buffer.alloc(0);
  let remaining = 0; // message bytes of the current frame not yet seen
  for await (const chunk of body) {
    let at = 0;
    while (at < chunk.byteLength) {
      if (remaining > 0) {
        const n = Math.min(remaining, chunk.byteLength - at);
        remaining -= n;
        at += n;
        continue;
      }
      const n = Math.min(5 - header.byteLength, chunk.byteLength - at);
      header = Buffer.concat([header, chunk.subarray(at, at + n)]);
      at += n;
      if (header.byteLength < 5) continue;
      remaining = header.readUInt32BE(1);
      if (((header[0] ?? 0) & ~compressedFlag) !== 0 && remaining <= readMaxBytes) {
        throw new ConnectError(`protocol error: a request frame has flags 0x${(header[0] ?? 0).toString(16)}; only 0x01 (compressed) is allowed`, Code.InvalidArgument);
      }
      header = Buffer.alloc(0);
    }
    yield chunk;
  }
}

/** A body of one chunk. */
async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
