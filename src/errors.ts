// The one error type domain code throws. The transport maps `kind` to a status code in
// one place (src/server/error-interceptor.ts).

/** Error categories, named after the gRPC codes they map to. */
export const ErrorKind = {
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  NOT_FOUND: "NOT_FOUND",
  ALREADY_EXISTS: "ALREADY_EXISTS",
  FAILED_PRECONDITION: "FAILED_PRECONDITION",
  PERMISSION_DENIED: "PERMISSION_DENIED",
  UNAUTHENTICATED: "UNAUTHENTICATED",
  ABORTED: "ABORTED",
  RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
  UNAVAILABLE: "UNAVAILABLE",
} as const;
/** One of the ErrorKind values. */
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind];

/** A failure with a stable machine-readable `reason` and the dynamic values in `metadata`. */
export class KeywardError extends Error {
  readonly kind: ErrorKind;
  readonly reason: string;
  readonly metadata: Readonly<Record<string, string>>;

  constructor(kind: ErrorKind, reason: string, message: string, metadata: Record<string, string> = {}) {
    super(message);
    this.name = "KeywardError";
    this.kind = kind;
    this.reason = reason;
    this.metadata = metadata;
  }
}

/** Shorthand for the commonest failure: a request field that is wrong. */
export function invalidArgument(reason: string, message: string, metadata: Record<string, string> = {}): KeywardError {
  return new KeywardError(ErrorKind.INVALID_ARGUMENT, reason, message, metadata);
}

/** True for errors raised deliberately by keyward code. */
export function isKeywardError(e: unknown): e is KeywardError {
  return e instanceof KeywardError;
}
