// RPC failures in words for the person at the console (no DOM here: unit-tested in Node;
// errors.tsx renders them). keyward answers every refusal with a
// Connect code and a google.rpc.ErrorInfo (domain "keyward") whose `reason` is stable and whose
// metadata names what was wrong (src/errors.ts, src/server/error-interceptor.ts):
// PERMISSION_DENIED INSUFFICIENT_SCOPE carries `permission` (the one missing),
// PERMISSIONS_EXCEED_CALLER carries `exceeding` (comma-separated), INVALID_ARGUMENT carries
// `field` (src/directory/caller.ts, src/common/*).
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";

/** A sign-in that keyward refused (VerifyKey said other than VALID): `message` is for the user; `result` is the VerifyResult number. */
export class SignInRefused extends Error {
  readonly result: number;
  constructor(result: number, message: string) {
    super(message);
    this.name = "SignInRefused";
    this.result = result;
  }
}

/** What went wrong: the Connect code's name ("PermissionDenied"), ErrorInfo's reason, and a sentence. */
export type DescribedError = { code: string; reason: string | undefined; message: string };

const codeNames: Record<number, string> = {
  [Code.Canceled]: "Canceled",
  [Code.Unknown]: "Unknown",
  [Code.InvalidArgument]: "InvalidArgument",
  [Code.DeadlineExceeded]: "DeadlineExceeded",
  [Code.NotFound]: "NotFound",
  [Code.AlreadyExists]: "AlreadyExists",
  [Code.PermissionDenied]: "PermissionDenied",
  [Code.ResourceExhausted]: "ResourceExhausted",
  [Code.FailedPrecondition]: "FailedPrecondition",
  [Code.Aborted]: "Aborted",
  [Code.OutOfRange]: "OutOfRange",
  [Code.Unimplemented]: "Unimplemented",
  [Code.Internal]: "Internal",
  [Code.Unavailable]: "Unavailable",
  [Code.DataLoss]: "DataLoss",
  [Code.Unauthenticated]: "Unauthenticated",
};

/** A lead-in per code, before keyward's own message. */
const leads: Record<number, string> = {
  [Code.InvalidArgument]: "Check the form",
  [Code.NotFound]: "Not found",
  [Code.AlreadyExists]: "It already exists",
  [Code.FailedPrecondition]: "Not possible now",
  [Code.Aborted]: "Someone changed it meanwhile; reload and try again",
  [Code.ResourceExhausted]: "Too many requests or too many items",
  [Code.Unavailable]: "keyward is unavailable; try again shortly",
  [Code.DeadlineExceeded]: "keyward took too long to answer",
  [Code.Unauthenticated]: "Not signed in, or the credential is no longer valid",
  [Code.Internal]: "keyward failed to do this (internal error)",
  [Code.Unimplemented]: "keyward does not offer this",
  [Code.Canceled]: "Canceled",
};

/**
 * Describes any failure for the user. A ConnectError gives its code's name, ErrorInfo's
 * reason and keyward's message, led by words for the code; PermissionDenied names the missing
 * permission (ErrorInfo metadata `permission`) or the ones exceeding the caller's (`exceeding`).
 * A refused sign-in keeps its own sentence; a call that got no answer (keyward down or
 * unreachable: fetch's TypeError) says keyward could not be reached; anything else says the
 * request failed.
 */
export function describeError(err: unknown): DescribedError {
  if (err instanceof SignInRefused) return { code: "Refused", reason: undefined, message: err.message };
  if (!(err instanceof ConnectError)) {
    const text = err instanceof Error ? err.message : String(err);
    return { code: "Unknown", reason: undefined, message: `The request failed: ${text}` };
  }
  const info = err.findDetails(ErrorInfoSchema)[0];
  // No answer at all: connect-web wraps fetch's TypeError ("Failed to fetch") as Unknown.
  if (err.code === Code.Unknown && info === undefined && err.cause instanceof TypeError) {
    return { code: "Unknown", reason: undefined, message: `keyward could not be reached: check that it is running and that this computer can reach it, then try again (the browser said: ${err.cause.message}).` };
  }
  const reason = info?.reason === "" ? undefined : info?.reason;
  const metadata = info?.metadata ?? {};
  const code = codeNames[err.code] ?? String(err.code);
  const raw = err.rawMessage;
  let message: string;
  if (err.code === Code.PermissionDenied) {
    const permission = metadata["permission"];
    const exceeding = metadata["exceeding"];
    if (permission !== undefined && permission !== "") message = `Permission denied: this needs the permission ${permission}, which your credential does not hold.`;
    else if (exceeding !== undefined && exceeding !== "") message = `Permission denied: you do not hold ${exceeding.split(",").join(", ")}. ${raw}`;
    else message = `Permission denied: ${raw}`;
  } else {
    const lead = leads[err.code];
    message = lead === undefined ? raw : raw === "" ? `${lead}.` : `${lead}: ${raw}`;
  }
  return { code, reason, message };
}

