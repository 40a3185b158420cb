// The caller's deadline ends the call: connect-node aborts the handler context's signal when
// the deadline (grpc-timeout / connect-timeout-ms) passes or the client goes away, but it
// still waits for the handler before answering. This interceptor answers at that moment.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { loggerKey } from "./context.ts";

/**
 * Races each call against its signal: when the deadline passes the caller gets
 * DeadlineExceeded at once (Canceled if it went away), instead of whenever the work behind
 * it ends. The abandoned work still runs to its own bound (every database query has one,
 * see src/db/orm.ts); its late outcome is logged at debug and dropped.
 */
export function createDeadlineInterceptor(): Interceptor {
  return (next) => async (req) => {
    const signal = req.signal;
    if (signal.aborted) throw abortError(signal);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(abortError(signal));
      signal.addEventListener("abort", onAbort, { once: true });
    });
    const call = next(req);
    try {
      return await Promise.race([call, aborted]);
    } finally {
      if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
      aborted.catch(() => undefined);
      if (signal.aborted) {
        call.catch((e: unknown) => req.contextValues.get(loggerKey)?.debug({ err: e }, "call failed after its deadline or cancellation"));
      }
    }
  };
}

/** The error a call whose signal aborted answers with: the deadline's own DeadlineExceeded, else Canceled. */
function abortError(signal: AbortSignal): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError && (reason.code === Code.DeadlineExceeded || reason.code === Code.Canceled)) return reason;
  return new ConnectError("the call was cancelled", Code.Canceled);
}
