// Context keys shared by the transport guard, the interceptors and handlers, declared once.
import { createContextKey } from "@connectrpc/connect";
import type { Logger } from "../logger.ts";
import type { VerifyResultName } from "../verify/verifier.ts";

/** The id of the current request (from a sane `x-request-id` header, or random); set by the transport guard. */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/** The per-RPC child logger (request id, procedure); set by the logging interceptor. */
export const loggerKey = createContextKey<Logger | undefined>(undefined, { description: "per-RPC logger" });

/**
 * True once keyward's interceptor chain has taken the call: from then on the logging
 * interceptor writes its line and the error interceptor maps its failures. The transport
 * guard logs and maps what connect refused before that (unreadable requests).
 */
export const interceptedKey = createContextKey<boolean>(false, { description: "seen by the interceptors" });

/** The VerifyKey verdict (`valid`, `not_found` …), set by the handler so the RPC log line carries it. */
export const verdictKey = createContextKey<VerifyResultName | undefined>(undefined, { description: "VerifyKey verdict" });

/**
 * Says whether the client of this call went away: it reset the HTTP/2 stream, or the
 * HTTP/1.1 request or connection was torn down before the answer was complete. Read at the
 * moment a call's outcome is logged (an abort signal would only fire after that moment);
 * set by the RPC handler from the Node request and response.
 */
export const clientGoneKey = createContextKey<() => boolean>(() => false, { description: "the client went away" });
