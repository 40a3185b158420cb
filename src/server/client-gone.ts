// A call whose client went away (RST_STREAM, a closed connection, a request body cut short)
// ends with code Canceled: it is logged at info level without a stack, whatever error the
// handler or connect raised on the way out (a "Premature close" from the request stream, a
// unary gRPC request missing its message, a stream that simply stopped).
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import { clientGoneKey } from "./context.ts";

/**
 * True when the client of this call went away (its stream was reset or its connection
 * closed, see clientGoneKey), or `e` (an error of the call, optional) is connect's
 * cancellation of the call for a client's RST_STREAM CANCEL. Node error codes such as
 * ECONNRESET are deliberately not read: a database connection fails with them too, and that
 * is the server's failure, not the client's leaving.
 */
export function isClientGone(values: ContextValues, e?: unknown): boolean {
  if (values.get(clientGoneKey)()) return true;
  return e instanceof ConnectError && e.code === Code.Canceled;
}

/** The error a call whose client went away ends with; carries nothing from the original failure. */
export function clientGoneError(): ConnectError {
  return new ConnectError("canceled: the client went away", Code.Canceled);
}
