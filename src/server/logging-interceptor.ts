// One log line per RPC: procedure, code, duration, request id, for authenticated calls the
// tenant and key id, and for VerifyKey the verdict. Never the request body. Streams are
// logged when they end, with the code they ended with. Requests connect refuses before
// this interceptor runs are logged by the transport guard instead. The same moment
// counts the call in the metrics (procedure, code, duration, verdict), once per call.
import { Code, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import type { VerifyResultName } from "../verify/verifier.ts";
import { interceptedKey, loggerKey, requestIdKey, verdictKey } from "./context.ts";
import { codeOfError, type ErrorClassifier } from "./error-interceptor.ts";
import { callerKey } from "./auth-interceptor.ts";
import { isClientGone } from "./client-gone.ts";

/** Codes that mean the server failed (logged at error level); the others are the caller's doing. */
function isServerFailure(code: Code | undefined): boolean {
  return code === Code.Internal || code === Code.Unknown || code === Code.DataLoss || code === Code.Unavailable;
}

/** How one RPC ended, for its log line and the metrics hook. */
export type RpcOutcome = Readonly<{
  /** `package.Service/Method`. */
  procedure: string;
  /** Undefined for OK. */
  code: Code | undefined;
  /** From the moment keyward's code took the call, in ms (3 decimals). */
  durationMs: number;
  /** The authenticated caller of a management call. */
  caller?: { readonly tenantSlug: string; readonly credentialId: string } | undefined;
  /** VerifyKey's verdict (`valid`, `not_found` …), once known. */
  verdict?: VerifyResultName | undefined;
  /** For a request refused before the interceptors (transport-guard.ts): the ErrorInfo reason. */
  reason?: string | undefined;
  /** For a request refused before the interceptors: the HTTP status, when it is not 200. */
  httpStatus?: number | undefined;
}>;

/** Milliseconds since `started` (a performance.now() reading), rounded to 3 decimals. */
export function elapsedMs(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}

/**
 * Writes the one `rpc` line of a call (error level for server failures, info otherwise)
 * and counts it in `metrics` (calls by procedure and code, duration, VerifyKey verdict).
 * `log` is the per-RPC child logger that already carries `requestId` and `procedure`; a
 * caller without one passes `requestId`, and both are then written into the line (the same
 * fields either way). Both the connect path and the VerifyKey fast path end here.
 */
export function logRpcOutcome(log: Logger, metrics: Pick<Metrics, "rpc" | "verifyResult">, outcome: RpcOutcome, requestId?: string): void {
  writeRpcLine(log, outcome, requestId);
  metrics.rpc(outcome.procedure)(outcome.code, outcome.durationMs / 1000);
  if (outcome.verdict !== undefined) metrics.verifyResult(outcome.verdict);
}

/** Writes the `rpc` line of logRpcOutcome alone (for a caller that counts the call itself). */
export function writeRpcLine(log: Logger, outcome: RpcOutcome, requestId?: string): void {
  const { code, caller, verdict, reason, httpStatus } = outcome;
  const fields = {
    ...(requestId === undefined ? {} : { requestId, procedure: outcome.procedure }),
    code: code === undefined ? "OK" : Code[code],
    ...(reason === undefined ? {} : { reason }),
    ...(httpStatus === undefined ? {} : { httpStatus }),
    durationMs: outcome.durationMs,
    ...(caller === undefined ? {} : { tenant: caller.tenantSlug, credential: caller.credentialId }),
    ...(verdict === undefined ? {} : { verdict }),
  };
  if (isServerFailure(code)) log.error(fields, "rpc");
  else log.info(fields, "rpc");
}

/** Logs and counts every call once it has an outcome, and gives handlers a per-RPC child logger. */
export function createLoggingInterceptor(logger: Logger, classifier: ErrorClassifier, metrics: Pick<Metrics, "rpc" | "verifyResult">): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    req.contextValues.set(interceptedKey, true);
    const requestId = req.contextValues.get(requestIdKey);
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const log = logger.child({ requestId, procedure });
    req.contextValues.set(loggerKey, log);
    let logged = false;
    const done = (outcome: Code | undefined, e?: unknown) => {
      if (logged) return;
      logged = true;
      // A client that went away cancelled the call, whatever the handler ended with.
      const code = isClientGone(req.contextValues, e) ? Code.Canceled : outcome;
      logRpcOutcome(log, metrics, { procedure, code, durationMs: elapsedMs(started), caller: req.contextValues.get(callerKey), verdict: req.contextValues.get(verdictKey) });
    };
    const input = req.method.input;
    try {
      const res = await next(req);
      if (!res.stream) {
        done(undefined);
        return res;
      }
      return { ...res, message: loggedStream(res.message, done, (e) => codeOfError(e, classifier, input)) };
    } catch (e) {
      done(codeOfError(e, classifier, input), e);
      throw e;
    }
  };
}

/** Passes a response stream through and reports the code it ended with (Canceled when its reader stopped early). */
async function* loggedStream<T>(messages: AsyncIterable<T>, ended: (code: Code | undefined, e?: unknown) => void, codeOf: (e: unknown) => Code): AsyncIterable<T> {
  let outcome: { code: Code | undefined; error?: unknown } | undefined;
  try {
    yield* messages;
    outcome = { code: undefined };
  } catch (e) {
    outcome = { code: codeOf(e), error: e };
    throw e;
  } finally {
    if (outcome === undefined) ended(Code.Canceled);
    else ended(outcome.code, outcome.error);
  }
}
