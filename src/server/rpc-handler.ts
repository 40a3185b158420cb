// The Node request handler for the RPCs (gRPC, gRPC-Web, Connect): connect's router, each
// method's handler wrapped in the transport guard, served the way connect-node's
// connectNodeAdapter serves them. Built here rather than with connectNodeAdapter because
// the adapter offers no place that sees a request connect refuses before the interceptors.
import { Code, ConnectError, createConnectRouter, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type http from "node:http";
import type http2 from "node:http2";
import { clientGoneKey } from "./context.ts";
import type { Logger } from "../logger.ts";
import { unknownMethod, type Metrics } from "../metrics.ts";
import type { RequestHandler } from "./listener.ts";
import { writeRpcLine } from "./logging-interceptor.ts";
import { requestIdFrom } from "./request-id.ts";
import { guardHandler, requestIdHeader } from "./transport-guard.ts";

/** What the RPC handler serves and how. */
export type RpcHandlerOptions = {
  /** Registers the services. */
  routes: (router: ConnectRouter) => void;
  /** Interceptors, outermost first. */
  interceptors: Interceptor[];
  /** Largest request message accepted, in bytes (after decompression); larger is ResourceExhausted. */
  readMaxBytes: number;
  /** Receives the log lines of requests refused before the interceptors, and failed writes. */
  logger: Logger;
  /** Counts the calls refused before the interceptors, and requests to paths that name no RPC (as `unknown`). */
  metrics: Pick<Metrics, "rpc">;
};

/** The compressions requests may use and responses are offered in (the fast path negotiates the same). */
export const rpcCompressions = [compressionGzip, compressionBrotli];
/** JSON is read strictly: an unknown key is refused (connect's default ignores it). */
export const rpcJsonOptions = { ignoreUnknownFields: false } as const;

/**
 * Creates the handler for every RPC path; other paths answer 404. JSON requests are read
 * strictly: an unknown key or enum name is InvalidArgument (connect's default ignores them).
 */
export function createRpcHandler(opts: RpcHandlerOptions): RequestHandler {
  const router = createConnectRouter({
    interceptors: opts.interceptors,
    readMaxBytes: opts.readMaxBytes,
    acceptCompression: rpcCompressions,
    jsonOptions: rpcJsonOptions,
  });
  opts.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, guardHandler(handler, opts.logger, opts.metrics, opts.readMaxBytes));
  const recordUnknown = opts.metrics.rpc(unknownMethod);

  return (req, res) => {
    const handler = paths.get((req.url ?? "").split("?", 2)[0] ?? "");
    if (handler === undefined) {
      // Not an RPC this server serves. The path is not logged (nor a metric label): it may hold anything, a key too.
      recordUnknown(Code.Unimplemented, 0);
      const requestId = requestIdOf(req);
      opts.logger.info({ requestId, method: req.method, httpStatus: 404 }, "unknown path");
      return endPlain(res, 404, "", requestId);
    }
    let uReq;
    try {
      const values = createContextValues();
      values.set(clientGoneKey, () => nodeClientGone(req, res));
      uReq = universalRequestFromNodeRequest(req, res, undefined, values);
    } catch {
      // No authority (an HTTP/1.0 request without Host) or one that is not a host name:
      // not a request connect can serve.
      const requestId = requestIdOf(req);
      const procedure = `${handler.service.typeName}/${handler.method.name}`;
      opts.metrics.rpc(procedure)(Code.InvalidArgument, 0);
      writeRpcLine(opts.logger, { procedure, code: Code.InvalidArgument, durationMs: 0, httpStatus: 400 }, requestId);
      return endPlain(res, 400, "bad request", requestId);
    }
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return; // the client went away
        opts.logger.warn({ err: reason, procedure: `${handler.service.typeName}/${handler.method.name}` }, "rpc response failed");
      });
  };
}

/** Ends a response with a status, the request id and a short plain-text body. */
function endPlain(res: Parameters<RequestHandler>[1], status: number, text: string, requestId: string): void {
  const h1 = res as http.ServerResponse;
  h1.writeHead(status, {
    [requestIdHeader]: requestId,
    ...(text === "" ? {} : { "content-type": "text/plain", "content-length": Buffer.byteLength(text) }),
  });
  h1.end(text);
}

/** The request id of a Node request: its `x-request-id` (first value) when acceptable, else a new one (request-id.ts). */
export function requestIdOf(req: Parameters<RequestHandler>[0]): string {
  const v = req.headers[requestIdHeader];
  return requestIdFrom(Array.isArray(v) ? v[0] : v);
}

/**
 * True when the client went away before the answer was complete: the HTTP/2 stream was
 * reset or closed, or the HTTP/1.1 socket or response was destroyed before the answer finished.
 */
export function nodeClientGone(req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1]): boolean {
  if ("stream" in req) {
    const stream = (req as http2.Http2ServerRequest).stream;
    return stream.closed || stream.destroyed;
  }
  const h1req = req as http.IncomingMessage;
  const h1res = res as http.ServerResponse;
  // Not the request's own `destroyed`: connect destroys a request it stops reading early.
  return (h1res.destroyed && !h1res.writableFinished) || h1req.socket?.destroyed === true;
}
