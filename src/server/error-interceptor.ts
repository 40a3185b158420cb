// Where the failures of calls that reached the interceptors become Connect errors:
// KeywardError.kind → Code, with a google.rpc.ErrorInfo detail; anything unexpected is logged
// and answered "internal error". (Requests connect refuses before any interceptor runs are
// relabelled by the transport guard, with keywardErrorToConnect from here.)
import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { ErrorKind, isKeywardError, type KeywardError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { clientGoneError, isClientGone } from "./client-gone.ts";
import { loggerKey } from "./context.ts";
import { requestErrorOf } from "./request-errors.ts";

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

/** Converts a domain error to the ConnectError the client sees (code from its kind, ErrorInfo with its reason and metadata). */
export function keywardErrorToConnect(e: KeywardError): ConnectError {
  return new ConnectError(e.message, codeOfKind[e.kind], undefined, [
    { desc: ErrorInfoSchema, value: { reason: e.reason, domain: errorDomain, metadata: { ...e.metadata } } },
  ]);
}

/** The status code a failure will be answered with (for logging before the mapping); `input` is the method's request type. */
export function codeOfError(e: unknown, classifier: ErrorClassifier, input: DescMessage): Code {
  if (isKeywardError(e)) return codeOfKind[e.kind];
  if (e instanceof ConnectError) {
    const refusal = requestErrorOf(e, input);
    if (refusal !== undefined) return codeOfKind[refusal.kind];
    // As toConnectError: only a deliberate framework code passes as it is.
    if (e.code !== Code.Internal && e.code !== Code.Unknown) return e.code;
  }
  return classifier.isUnavailable(e) ? Code.Unavailable : Code.Internal;
}

/** Tells infrastructure failures apart; injected so the transport knows no ORM. */
export type ErrorClassifier = { isUnavailable(e: unknown): boolean };

/**
 * Maps any failure to a safe ConnectError; the outermost interceptor. Covers unary calls and
 * response streams (a stream that fails midway, e.g. on an unreadable request message, is
 * mapped the same way). The request id header is set by the transport guard.
 */
export function createErrorInterceptor(fallbackLogger: Logger, classifier: ErrorClassifier): Interceptor {
  return (next) => async (req) => {
    const map = (e: unknown) =>
      // The client went away: nothing reaches it, and its leaving is not a server failure to log.
      isClientGone(req.contextValues, e) ? clientGoneError() : toConnectError(e, req.contextValues.get(loggerKey) ?? fallbackLogger, classifier, req.method.input);
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: mappedStream(res.message, map) };
    } catch (e) {
      throw map(e);
    }
  };
}

/** Passes a response stream through, mapping the failure that ends it. */
async function* mappedStream<T>(messages: AsyncIterable<T>, map: (e: unknown) => ConnectError): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (e) {
    throw map(e);
  }
}

/**
 * The ConnectError the client sees for any failure of a call that reached keyward's code
 * (`input` is the method's request type); never the raw message of an unexpected one,
 * which is logged to `logger` (the call's logger) instead.
 */
export function toConnectError(e: unknown, logger: Logger, classifier: ErrorClassifier, input: DescMessage): ConnectError {
  if (isKeywardError(e)) return keywardErrorToConnect(e);
  if (e instanceof ConnectError) {
    // A request connect could not read (a message in a stream, for instance) is the client's error.
    const refusal = requestErrorOf(e, input);
    if (refusal !== undefined) return keywardErrorToConnect(refusal);
    // Errors the framework raised itself (size limits, unimplemented, cancellation) carry
    // no secrets and a deliberate code.
    if (e.code !== Code.Internal && e.code !== Code.Unknown) return e;
  }
  if (classifier.isUnavailable(e)) {
    logger.error({ err: e }, "database unavailable");
    return new ConnectError("service unavailable: the database cannot be reached, retry later", Code.Unavailable);
  }
  logger.error({ err: e }, "unexpected error");
  return new ConnectError("internal error", Code.Internal);
}
