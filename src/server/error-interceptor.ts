// The one place where failures become Connect errors: KeywardError.kind → Code, with a
// google.rpc.ErrorInfo detail; anything unexpected is logged and answered "internal error".
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { ErrorKind, isKeywardError, type KeywardError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { loggerKey, requestIdKey } from "./context.ts";

/** The ErrorInfo domain of every keyward error. */
const errorDomain = "keyward";

const codeOfKind: Record<ErrorKind, Code> = {
  [ErrorKind.INVALID_ARGUMENT]: Code.InvalidArgument,
  [ErrorKind.NOT_FOUND]: Code.NotFound,
  [ErrorKind.ALREADY_EXISTS]: Code.AlreadyExists,
  [ErrorKind.FAILED_PRECONDITION]: Code.FailedPrecondition,
  [ErrorKind.PERMISSION_DENIED]: Code.PermissionDenied,
  [ErrorKind.UNAUTHENTICATED]: Code.Unauthenticated,
  [ErrorKind.ABORTED]: Code.Aborted,
  [ErrorKind.RESOURCE_EXHAUSTED]: Code.ResourceExhausted,
  [ErrorKind.UNAVAILABLE]: Code.Unavailable,
};

/** Converts a domain error to the ConnectError the client sees. */
function keywardErrorToConnect(e: KeywardError): ConnectError {
  return new ConnectError(e.message, codeOfKind[e.kind], undefined, [
    { desc: ErrorInfoSchema, value: { reason: e.reason, domain: errorDomain, metadata: { ...e.metadata } } },
  ]);
}

/** The status code a failure will be answered with (for logging before the mapping). */
export function codeOfError(e: unknown, classifier: ErrorClassifier): Code {
  if (isKeywardError(e)) return codeOfKind[e.kind];
  if (e instanceof ConnectError && e.code !== Code.Unknown) return e.code;
  return classifier.isUnavailable(e) ? Code.Unavailable : Code.Internal;
}

/** Tells infrastructure failures apart; injected so the transport knows no ORM. */
export type ErrorClassifier = { isUnavailable(e: unknown): boolean };

/** Maps any failure to a safe ConnectError and returns the request id in `x-request-id`; the outermost interceptor. */
export function createErrorInterceptor(fallbackLogger: Logger, classifier: ErrorClassifier): Interceptor {
  return (next) => async (req) => {
    const requestId = req.contextValues.get(requestIdKey);
    try {
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      return res;
    } catch (e) {
      const err = toConnectError(e, req.contextValues.get(loggerKey) ?? fallbackLogger, classifier);
      err.metadata.set("x-request-id", requestId);
      throw err;
    }
  };
}

/** The ConnectError the client sees for any failure; never the raw message of an unexpected one. */
function toConnectError(e: unknown, logger: Logger, classifier: ErrorClassifier): ConnectError {
  if (isKeywardError(e)) return keywardErrorToConnect(e);
  // Errors the framework raised itself (decode failures, size limits, unimplemented,
  // cancellation) carry no secrets and a deliberate code.
  if (e instanceof ConnectError && e.code !== Code.Internal && e.code !== Code.Unknown) return e;
  if (classifier.isUnavailable(e)) {
    logger.error({ err: e }, "database unavailable");
    return new ConnectError("service unavailable: the database cannot be reached, retry later", Code.Unavailable);
  }
  logger.error({ err: e }, "unexpected error");
  return new ConnectError("internal error", Code.Internal);
}
