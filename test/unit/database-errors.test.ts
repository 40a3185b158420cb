// The classifier that turns "the database cannot answer" into Unavailable, fed the error
// shapes pg, pg-pool, Node sockets and a real PgBouncer 1.18 produce (captured from them).
import { describe, expect, test } from "@jest/globals";
import { ConnectionException, DriverException, UniqueConstraintViolationException } from "@mikro-orm/core";
import { describeDatabaseFailure, isDatabaseUnavailable } from "../../src/db/database-errors.ts";

/** The shape of pg's DatabaseError (name "error", SQLSTATE in `code`, `severity`). */
function pgError(message: string, code: string, severity = "ERROR"): Error {
  const e = new Error(message);
  Object.assign(e, { name: "error", code, severity, length: 100, detail: undefined, hint: undefined, routine: undefined });
  return e;
}

function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, errno: -111, syscall: "connect" });
}

describe("isDatabaseUnavailable", () => {
  const unavailable: Array<[string, unknown]> = [
    // PgBouncer 1.18 in transaction mode with PostgreSQL down (as pg reports them).
    ["PgBouncer query_wait_timeout", pgError("query_wait_timeout", "08P01", "FATAL")],
    ["PgBouncer server_login_retry", pgError("server login has been failing, try again later (server_login_retry)", "08P01", "FATAL")],
    ["PgBouncer client_login_timeout", pgError("client_login_timeout (server down)", "08P01", "FATAL")],
    ["PgBouncer max_client_conn", pgError("no more connections allowed (max_client_conn)", "08P01", "FATAL")],
    ["PgBouncer cannot connect", pgError("pgbouncer cannot connect to server", "08P01", "FATAL")],
    ["PgBouncer refusal without a SQLSTATE", new Error("query_wait_timeout")],
    // PostgreSQL itself.
    ["too many connections", pgError("sorry, too many clients already", "53300", "FATAL")],
    ["admin shutdown", pgError("terminating connection due to administrator command", "57P01", "FATAL")],
    ["crash shutdown", pgError("terminating connection because of crash of another server process", "57P02", "FATAL")],
    ["starting up", pgError("the database system is starting up", "57P03", "FATAL")],
    ["statement timeout", pgError("canceling statement due to statement timeout", "57014")],
    ["idle in transaction timeout", pgError("terminating connection due to idle-in-transaction timeout", "25P03", "FATAL")],
    ["connection failure", pgError("connection failure", "08006", "FATAL")],
    // pg / pg-pool without a code.
    ["pg query_timeout", new Error("Query read timeout")],
    ["pg-pool acquisition timeout", new Error("timeout exceeded when trying to connect")],
    ["pg-pool connect timeout", new Error("Connection terminated due to connection timeout", { cause: new Error("timeout expired") })],
    ["server went away", new Error("Connection terminated unexpectedly")],
    ["broken client", new Error("Client has encountered a connection error and is not queryable")],
    ["closed pool", new Error("Client was closed and is not queryable")],
    // Sockets.
    ["connection refused", socketError("ECONNREFUSED")],
    ["connection reset", socketError("ECONNRESET")],
    ["host unreachable", socketError("EHOSTUNREACH")],
    ["Unix socket gone (embedded server stopped)", Object.assign(new Error("connect ENOENT /data/run/.s.PGSQL.5432"), { code: "ENOENT", errno: -2, syscall: "connect", address: "/data/run/.s.PGSQL.5432" })],
    ["happy eyeballs", new AggregateError([socketError("ECONNREFUSED"), socketError("ECONNREFUSED")], "")],
    // MikroORM wraps pg errors in DriverException, copying code and severity.
    ["wrapped PgBouncer refusal", new DriverException(pgError("query_wait_timeout", "08P01", "FATAL"))],
    ["wrapped query timeout", new DriverException(new Error("Query read timeout"))],
    ["ConnectionException", new ConnectionException(new Error("whatever"))],
    ["cause chain", new Error("outer", { cause: socketError("ECONNREFUSED") })],
  ];
  test.each(unavailable)("when %s, then it is unavailable", (_name, e) => {
    expect(isDatabaseUnavailable(e)).toBe(true);
  });

  const notUnavailable: Array<[string, unknown]> = [
    ["a unique violation", new UniqueConstraintViolationException(pgError("duplicate key value violates unique constraint", "23505"))],
    ["a syntax error", pgError("syntax error at or near \"selec\"", "42601")],
    ["a protocol error from PostgreSQL itself (a bug)", pgError("bind message supplies 1 parameters, but prepared statement \"\" requires 2", "08P01")],
    ["a serialization failure", pgError("could not serialize access due to concurrent update", "40001")],
    ["a missing file that is no connection", Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), { code: "ENOENT", syscall: "open" })],
    ["a plain bug", new TypeError("Cannot read properties of undefined (reading 'id')")],
    ["not an error", "timeout"],
    ["undefined", undefined],
  ];
  test.each(notUnavailable)("when %s, then it is not unavailable", (_name, e) => {
    expect(isDatabaseUnavailable(e)).toBe(false);
  });

  test("when the cause chain loops, then the check still ends", () => {
    const a = new Error("a");
    const b = new Error("b", { cause: a });
    Object.assign(a, { cause: b });
    expect(isDatabaseUnavailable(a)).toBe(false);
  });
});

describe("describeDatabaseFailure", () => {
  test("when a probe times out, then the phrase gives the bound", () => {
    expect(describeDatabaseFailure(new Error("Query read timeout"), 2000)).toBe("no answer within 2 s");
  });
  test("when refused, then 'connection refused'", () => {
    expect(describeDatabaseFailure(socketError("ECONNREFUSED"), 2000)).toBe("connection refused");
  });
  test("when PgBouncer cannot reach the server, then it says so", () => {
    expect(describeDatabaseFailure(pgError("server login has been failing, try again later (server_login_retry)", "08P01", "FATAL"))).toBe(
      "connection pooler cannot reach the server",
    );
  });
});
