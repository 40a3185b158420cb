// A call whose client went away (RST_STREAM, a closed connection, a request body cut short)
// ends with code Canceled: it is logged at info level without a stack, whatever error the
// handler or connect raised on the way out (a "Premature close" from the request stream, a
// unary gRPC request missing its message, a stream that simply stopped).
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import { clientGoneKey } from "./context.ts";

/** Node error codes that only a vanished peer causes while a request is being read or answered. */
const peerGoneCodes = new Set(["ERR_STREAM_PREMATURE_CLOSE", "ECONNRESET", "EPIPE", "ERR_STREAM_DESTROYED", "ERR_HTTP2_STREAM_ERROR", "ERR_HTTP2_INVALID_STREAM", "ERR_HTTP2_STREAM_CANCEL"]);

/**
 * True when the client of this call went away (its stream was reset or its connection
 * closed, see clientGoneKey), or `e` (an error of the call, optional) is a
 * cancellation by the peer or a Node stream error only a vanished peer causes.
 */
export function isClientGone(values: ContextValues, e?: unknown): boolean {
  if (values.get(clientGoneKey)()) return true;
  if (e instanceof ConnectError && e.code === Code.Canceled) return true;
  for (let cause = e, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code !== undefined && peerGoneCodes.has(code)) return true;
  }
  return false;
}

/** The error a call whose client went away ends with; carries nothing from the original failure. */
export function clientGoneError(): ConnectError {
  return new ConnectError("canceled: the client went away", Code.Canceled);
}
