// Refuses request messages with unknown fields or undefined enum values on every method
// (keyward, health, reflection), before authentication: such a request is refused for
// what it says, whoever sends it, and the refusal tells nothing about credentials.
import type { DescMessage, Message } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { invalidArgument } from "../errors.ts";
import { findMessageViolation } from "./message-validation.ts";

/** The interceptor; runs after logging (so refusals are logged) and before authentication. */
export function createValidationInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!req.stream) {
      assertValid(req.method.input, req.message);
      return next(req);
    }
    return next({ ...req, message: validated(req.method.input, req.message) });
  };
}

/** Throws InvalidArgument (reason UNKNOWN_FIELD, INVALID_ENUM_VALUE or INVALID_TIMESTAMP, metadata `field`) for a bad message. */
function assertValid(schema: DescMessage, message: Message): void {
  const violation = findMessageViolation(schema, message);
  if (violation !== undefined) throw invalidArgument(violation.reason, violation.message, { field: violation.field });
}

/** Checks each message of a request stream as it arrives. */
async function* validated<M extends Message>(schema: DescMessage, messages: AsyncIterable<M>): AsyncIterable<M> {
  for await (const message of messages) {
    assertValid(schema, message);
    yield message;
  }
}
