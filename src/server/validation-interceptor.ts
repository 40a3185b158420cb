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
    if (req.method.methodKind === "server_streaming") {
      // The one request message of a server stream is checked before authentication too
      // (otherwise a stream's messages are only read once the handler runs, behind it).
      const iterator = req.message[Symbol.asyncIterator]();
      const first = await iterator.next();
      if (first.done !== true) assertValid(req.method.input, first.value);
      return next({ ...req, message: replayed(first, iterator) });
    }
    return next({ ...req, message: validated(req.method.input, req.message) });
  };
}

/** The first result read already, then the rest of the iterator (connect still checks there is exactly one). */
async function* replayed<M>(first: IteratorResult<M>, rest: AsyncIterator<M>): AsyncIterable<M> {
  if (first.done === true) return;
  yield first.value;
  for (let r = await rest.next(); r.done !== true; r = await rest.next()) yield r.value;
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
