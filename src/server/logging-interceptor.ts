// One log line per RPC: procedure, code, duration, request id, for authenticated calls the
// tenant and key id, and for VerifyKey the verdict. Never the request body. Streams are
// logged when they end, with the code they ended with. Requests connect refuses before
// this interceptor runs are logged by the transport guard instead. The same moment
// counts the call in the metrics (procedure, code, duration, verdict), once per call.
import { Code, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import { interceptedKey, loggerKey, requestIdKey, verdictKey } from "./context.ts";
import { codeOfError, type ErrorClassifier } from "./error-interceptor.ts";
import { callerKey } from "./auth-interceptor.ts";
import { isClientGone } from "./client-gone.ts";

/** Codes that mean the server failed (logged at error level); the others are the caller's doing. */
export function isServerFailure(code: Code | undefined): boolean {
  return code === Code.Internal || code === Code.Unknown || code === Code.DataLoss || code === Code.Unavailable;
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
      const elapsedMs = performance.now() - started;
      const durationMs = Math.round(elapsedMs * 1000) / 1000;
      const caller = req.contextValues.get(callerKey);
      const verdict = req.contextValues.get(verdictKey);
      metrics.rpc(procedure)(code, elapsedMs / 1000);
      if (verdict !== undefined) metrics.verifyResult(verdict);
      const fields = {
        code: code === undefined ? "OK" : Code[code],
        durationMs,
        ...(caller === undefined ? {} : { tenant: caller.tenantSlug, credential: caller.credentialId }),
        ...(verdict === undefined ? {} : { verdict }),
      };
      if (isServerFailure(code)) log.error(fields, "rpc");
      else log.info(fields, "rpc");
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
