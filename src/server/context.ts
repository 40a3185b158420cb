// Context keys shared by the interceptors and handlers, declared once.
import { createContextKey } from "@connectrpc/connect";
import type { Logger } from "../logger.ts";

/** The id of the current request (from a sane `x-request-id` header, or random). */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/** The per-RPC child logger (request id, procedure); set by the logging interceptor. */
export const loggerKey = createContextKey<Logger | undefined>(undefined, { description: "per-RPC logger" });
