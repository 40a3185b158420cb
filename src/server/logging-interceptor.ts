// One log line per RPC: procedure, code, duration, request id, and for authenticated calls
// the tenant and key id. Never the request body.
import { Code, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../logger.ts";
import { loggerKey, requestIdKey } from "./context.ts";
import { codeOfError, type ErrorClassifier } from "./error-interceptor.ts";
import { callerKey } from "./auth-interceptor.ts";

/** Logs every call once it has an outcome, and gives handlers a per-RPC child logger. */
export function createLoggingInterceptor(logger: Logger, classifier: ErrorClassifier): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const requestId = req.contextValues.get(requestIdKey);
    const log = logger.child({ requestId, procedure: `${req.service.typeName}/${req.method.name}` });
    req.contextValues.set(loggerKey, log);
    const done = (code: Code | undefined) => {
      const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      const caller = req.contextValues.get(callerKey);
      const fields = { code: code === undefined ? "OK" : Code[code], durationMs, ...(caller === undefined ? {} : { tenant: caller.tenantSlug, credential: caller.credentialId }) };
      if (code === Code.Internal || code === Code.Unknown || code === Code.DataLoss || code === Code.Unavailable) log.error(fields, "rpc");
      else log.info(fields, "rpc");
    };
    try {
      const res = await next(req);
      done(undefined);
      return res;
    } catch (e) {
      done(codeOfError(e, classifier));
      throw e;
    }
  };
}
