// Recognises failures that mean "the database cannot be reached right now", so callers get
// UNAVAILABLE (retry later) rather than INTERNAL.
import { ConnectionException } from "@mikro-orm/core";

/** Socket errors and PostgreSQL SQLSTATEs (classes 08 and 57P) that mean the server is gone. */
const unavailableCodes = new Set([
  "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENOTFOUND",
  "08000", "08001", "08003", "08004", "08006", "57P01", "57P02", "57P03",
]);

/** True when `e` (or its cause) says PostgreSQL is unreachable or shutting down. */
export function isDatabaseUnavailable(e: unknown): boolean {
  for (let err = e, depth = 0; err instanceof Error && depth < 5; err = err.cause, depth++) {
    if (err instanceof ConnectionException) return true;
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && unavailableCodes.has(code)) return true;
    if (/timeout exceeded when trying to connect|Connection terminated/i.test(err.message)) return true;
  }
  return false;
}
