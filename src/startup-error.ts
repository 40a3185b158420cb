// The error that stops the service before it serves: bad configuration, unreachable
// database, unusable data folder. Its message is one line meant for the operator.

/** A failure to start whose message tells the operator what is wrong and what to do. */
export class StartupError extends Error {
  /** The underlying error, kept for debug logging (its text may be less clear, or leak details). */
  override readonly cause: unknown;

  constructor(message: string, cause?: unknown) {
    super(message);
    this.name = "StartupError";
    this.cause = cause;
  }
}
