// Recognises failures that mean "the database cannot be reached right now", so callers get
// UNAVAILABLE (retry later) rather than INTERNAL: a server that is down, stopped, refusing
// connections or too slow to answer within the bound, and a PgBouncer in front of it that
// gives up on it.
import { ConnectionException } from "@mikro-orm/core";

/** Socket error codes (Node's `err.code`) of a connection that failed or broke. */
const unavailableSocketCodes = new Set([
  "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "EHOSTDOWN",
  "ENETUNREACH", "ENETDOWN", "ENOTFOUND", "EAI_AGAIN", "ENOTCONN",
]);

/**
 * SQLSTATE classes and codes that mean the server (or a pooler in front of it) cannot serve now:
 * 08 connection exception (PgBouncer reports its refusals as FATAL 08P01), 53 insufficient resources
 * (53300 too_many_connections), 57P0x shutdown / cannot connect now / idle session timeout,
 * 57014 query cancelled (statement_timeout), 58 system error, 25P03 idle-in-transaction timeout.
 */
const unavailableSqlStateClasses = new Set(["08", "53", "58"]);
const unavailableSqlStates = new Set(["57P01", "57P02", "57P03", "57P04", "57P05", "57014", "25P03"]);

/**
 * Messages of pg / pg-pool errors that carry no code (timeouts and broken connections), and of
 * PgBouncer refusals in case a proxy in between drops the SQLSTATE.
 */
const unavailableMessages = [
  /^Query read timeout$/,
  /^timeout expired$/,
  /timeout exceeded when trying to connect/i,
  /Connection terminated/i,
  /Client has encountered a connection error and is not queryable/i,
  /Client was closed and is not queryable/i,
  /query_wait_timeout|query_timeout|client_login_timeout|server_login_retry/i,
  /no more connections allowed/i,
  /server login has been failing/i,
  /pgbouncer cannot connect to server/i,
  /server conn crashed/i,
  /pgbouncer is shutting down|database .* is paused/i,
];

/** True when `e` (or its cause, or one of an AggregateError's errors) says PostgreSQL is unreachable, gone or too slow. */
export function isDatabaseUnavailable(e: unknown): boolean {
  return someError(e, (err) => {
    if (err instanceof ConnectionException) return true;
    // Any failed connect: also ENOENT / EACCES on a Unix socket (the embedded server's), which are
    // not network codes but mean the same: nobody is listening there now.
    if ((err as { syscall?: unknown }).syscall === "connect") return true;
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string") {
      if (unavailableSocketCodes.has(code) || unavailableSqlStates.has(code)) return true;
      // PostgreSQL itself also uses 08P01 for a malformed message (a bug, answered ERROR on a live
      // connection); PgBouncer's refusals are FATAL and close the connection.
      if (code === "08P01") return (err as { severity?: unknown }).severity === "FATAL" || unavailableMessages.some((re) => re.test(err.message));
      if (/^[0-9A-Z]{5}$/.test(code) && unavailableSqlStateClasses.has(code.slice(0, 2))) return true;
    }
    return unavailableMessages.some((re) => re.test(err.message));
  });
}

/** A short, secret-free phrase saying why the database is unavailable (for health reports and logs). */
export function describeDatabaseFailure(e: unknown, timeoutMs?: number): string {
  let phrase: string | undefined;
  someError(e, (err) => {
    const code = (err as { code?: unknown }).code;
    if (code === "ECONNREFUSED") phrase = "connection refused";
    else if (code === "ENOENT" && (err as { syscall?: unknown }).syscall === "connect") phrase = "connection refused (no socket)";
    else if (code === "ENOTFOUND" || code === "EAI_AGAIN") phrase = "host not found";
    else if (code === "ECONNRESET" || /Connection terminated unexpectedly/i.test(err.message)) phrase = "connection lost";
    else if (/timeout|timed out/i.test(err.message) || code === "ETIMEDOUT") phrase = timeoutMs === undefined ? "no answer in time" : `no answer within ${Math.round(timeoutMs / 100) / 10} s`;
    else if (/no more connections allowed/i.test(err.message) || code === "53300") phrase = "too many connections";
    else if (typeof code === "string" && /^57P0[1-3]$/.test(code)) phrase = "server shutting down or starting";
    else if (/pgbouncer|server login/i.test(err.message)) phrase = "connection pooler cannot reach the server";
    return phrase !== undefined;
  });
  return phrase ?? "database error";
}

/**
 * Walks `e`, its causes and an AggregateError's errors (bounded depth), until `test` holds.
 * Errors are recognised by shape, not `instanceof Error`: Node's socket errors come from
 * another realm when the code runs in a vm context (as under Jest).
 */
function someError(e: unknown, test: (err: Error) => boolean, depth = 0): boolean {
  if (!isErrorLike(e) || depth > 5) return false;
  if (test(e)) return true;
  const inner = (e as { errors?: unknown }).errors;
  if (Array.isArray(inner) && inner.slice(0, 10).some((one) => someError(one, test, depth + 1))) return true;
  return someError(e.cause, test, depth + 1);
}

function isErrorLike(e: unknown): e is Error {
  return typeof e === "object" && e !== null && typeof (e as { message?: unknown }).message === "string";
}
