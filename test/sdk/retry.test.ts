// The SDK client's retry policy, against a real Connect server (connect-node's router on
// node:http) whose KeyService answers Unavailable a set number of times: idempotent reads
// (NO_SIDE_EFFECTS, and VerifyKey, IDEMPOTENT) are retried a bounded number of times,
// writes never, and a retry never outlives the call's deadline. Connection-level failures
// (nothing listening, a connection reset) are Unavailable and retried the same way.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import net, { type AddressInfo } from "node:net";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { create } from "@bufbuild/protobuf";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { connectionErrorAsUnavailable, createKeywardClient, errorInfo, errorReason, verifyResultName } from "../../sdk/src/index.ts";
import { rpcError } from "../rpc.ts";

/** How many times each method was called, how many more failures each still owes, and the last authorization header. */
const calls: Record<string, number> = {};
const failuresLeft: Record<string, number> = {};
let lastAuthorization: string | null = null;

function attempt(method: string, authorization: string | null): void {
  calls[method] = (calls[method] ?? 0) + 1;
  lastAuthorization = authorization;
  if ((failuresLeft[method] ?? 0) > 0) {
    failuresLeft[method] = (failuresLeft[method] ?? 0) - 1;
    throw new ConnectError("try again", Code.Unavailable);
  }
}

let server: Server;
let baseUrl: string;
let handler: (req: IncomingMessage, res: ServerResponse) => void;

beforeAll(async () => {
  handler = connectNodeAdapter({
    routes: (router) => {
      router.service(KeyService, {
        listKeys: (_req, ctx) => {
          attempt("listKeys", ctx.requestHeader.get("authorization"));
          return { keys: [], nextPageToken: "" };
        },
        verifyKey: (_req, ctx) => {
          attempt("verifyKey", ctx.requestHeader.get("authorization"));
          return { result: VerifyResult.REVOKED };
        },
        createKey: (_req, ctx) => {
          attempt("createKey", ctx.requestHeader.get("authorization"));
          return {};
        },
        getKey: () => {
          throw new ConnectError("no such key", Code.NotFound, undefined, [
            { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: "KEY_NOT_FOUND", domain: "keyward", metadata: { name: "tenants/t/keys/x" } }) },
          ]);
        },
      });
    },
  });
  server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function reset(method: string, failures: number): void {
  calls[method] = 0;
  failuresLeft[method] = failures;
}

describe("retries of the SDK client", () => {
  it("when a read (NO_SIDE_EFFECTS) is answered Unavailable twice, then it is retried and succeeds on the third attempt, with the bearer credential each time", async () => {
    reset("listKeys", 2);
    const kw = createKeywardClient({ baseUrl, apiKey: "kw_test_secret", retries: { retries: 2, backoffMs: 5 } });
    await expect(kw.keys.listKeys({ parent: "tenants/t" })).resolves.toBeDefined();
    expect(calls["listKeys"]).toBe(3);
    expect(lastAuthorization).toBe("Bearer kw_test_secret");
  });

  it("when VerifyKey (IDEMPOTENT) is answered Unavailable once, then it is retried and its verdict prints by name", async () => {
    reset("verifyKey", 1);
    const kw = createKeywardClient({ baseUrl, retries: { backoffMs: 5 } });
    const { result } = await kw.keys.verifyKey({ key: "kw_x" });
    expect(calls["verifyKey"]).toBe(2);
    expect(result).toBe(VerifyResult.REVOKED);
    expect(verifyResultName(result)).toBe("REVOKED");
    expect(verifyResultName(42 as VerifyResult)).toBe("UNKNOWN(42)");
  });

  it("when a read stays Unavailable, then it gives up after the bounded retries with Unavailable", async () => {
    reset("listKeys", 100);
    const kw = createKeywardClient({ baseUrl, retries: { retries: 2, backoffMs: 5 } });
    const err = await rpcError(kw.keys.listKeys({ parent: "tenants/t" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(calls["listKeys"]).toBe(3);
  });

  it("when a write is answered Unavailable, then it is not retried", async () => {
    reset("createKey", 2);
    const kw = createKeywardClient({ baseUrl, retries: { retries: 2, backoffMs: 5 } });
    const err = await rpcError(kw.keys.createKey({ parent: "tenants/t" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(calls["createKey"]).toBe(1);
  });

  it("when retries is 0, then a read is not retried", async () => {
    reset("listKeys", 1);
    const kw = createKeywardClient({ baseUrl, retries: 0 });
    const err = await rpcError(kw.keys.listKeys({ parent: "tenants/t" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(calls["listKeys"]).toBe(1);
  });

  it("when the backoff would outlive the deadline, then the call ends at its deadline, not after every retry", async () => {
    reset("listKeys", 100);
    const kw = createKeywardClient({ baseUrl, timeoutMs: 300, retries: { retries: 5, backoffMs: 10_000 } });
    const started = Date.now();
    const err = await rpcError(kw.keys.listKeys({ parent: "tenants/t" }));
    expect(Date.now() - started).toBeLessThan(3000);
    expect([Code.Unavailable, Code.DeadlineExceeded]).toContain(err.code);
    expect(calls["listKeys"]).toBeLessThanOrEqual(2);
  });

  it("when keyward refuses with an ErrorInfo, then errorReason and errorInfo give its reason and metadata; other errors give undefined", async () => {
    const kw = createKeywardClient({ baseUrl });
    const err = await rpcError(kw.keys.getKey({ name: "tenants/t/keys/x" }));
    expect(errorReason(err)).toBe("KEY_NOT_FOUND");
    expect(errorInfo(err)).toEqual({ reason: "KEY_NOT_FOUND", domain: "keyward", metadata: { name: "tenants/t/keys/x" } });
    expect(errorReason(new Error("plain"))).toBeUndefined();
    expect(errorReason(new ConnectError("no details", Code.Internal))).toBeUndefined();
  });

  it("when baseUrl is missing or the transport unknown, then createKeywardClient throws a clear error", () => {
    expect(() => createKeywardClient({})).toThrow(/baseUrl is required/);
    expect(() => createKeywardClient({ baseUrl, transport: "smoke" as "connect" })).toThrow(/unknown transport/);
  });
});

/** A 127.0.0.1 port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** An interceptor (run inside the client's retry) that counts the attempts of each call, and runs `after` once an attempt has failed. */
function counting(counter: { attempts: number }, after?: (attempt: number) => Promise<void>): Interceptor {
  return (next) => async (req) => {
    counter.attempts += 1;
    try {
      return await next(req);
    } catch (err) {
      await after?.(counter.attempts);
      throw err;
    }
  };
}

/** A TCP server that resets every connection it accepts (ECONNRESET at the client), counting them. */
async function resettingServer(): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const s = net.createServer((socket) => {
    connections += 1;
    socket.resetAndDestroy();
  });
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () => new Promise((resolve) => s.close(() => resolve())),
  };
}

// connect-node 2.2 reports a reset connection as Aborted and, when the Node.js error comes from
// another realm (as under Jest's vm modules: its `instanceof Error` fails), even a refused one
// as Internal; the client's connectionErrorsAsUnavailable makes both Unavailable.
describe("connection failures of the SDK client", () => {
  it("when nothing listens on keyward's port, then a read is tried 1 + retries times and ends in Unavailable", async () => {
    const counter = { attempts: 0 };
    const kw = createKeywardClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, retries: { retries: 2, backoffMs: 5 }, interceptors: [counting(counter)] });
    const err = await rpcError(kw.keys.listKeys({ parent: "tenants/t" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(counter.attempts).toBe(3);
  });

  it("when nothing listens on keyward's port (gRPC over HTTP/2), then VerifyKey is retried and ends in Unavailable", async () => {
    const counter = { attempts: 0 };
    const kw = createKeywardClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, transport: "grpc", retries: { retries: 1, backoffMs: 5 }, interceptors: [counting(counter)] });
    const err = await rpcError(kw.keys.verifyKey({ key: "kw_x" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(counter.attempts).toBe(2);
  });

  it("when keyward starts listening between attempts, then the retried read succeeds", async () => {
    const port = await freePort();
    const late = createServer(handler);
    const counter = { attempts: 0 };
    const listenAfterFirst = async (attempt: number): Promise<void> => {
      if (attempt === 1) await new Promise<void>((resolve) => late.listen(port, "127.0.0.1", resolve));
    };
    reset("listKeys", 0);
    try {
      const kw = createKeywardClient({ baseUrl: `http://127.0.0.1:${port}`, retries: { retries: 2, backoffMs: 5 }, interceptors: [counting(counter, listenAfterFirst)] });
      await expect(kw.keys.listKeys({ parent: "tenants/t" })).resolves.toBeDefined();
      expect(counter.attempts).toBe(2);
      expect(calls["listKeys"]).toBe(1);
    } finally {
      late.closeAllConnections();
      await new Promise((resolve) => late.close(resolve));
    }
  });

  it("when nothing listens on keyward's port, then a write is tried once and ends in Unavailable (not retried; Unavailable does not say it was not applied)", async () => {
    const counter = { attempts: 0 };
    const kw = createKeywardClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, retries: { retries: 2, backoffMs: 5 }, interceptors: [counting(counter)] });
    const err = await rpcError(kw.keys.createKey({ parent: "tenants/t" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(counter.attempts).toBe(1);
  });

  it("when keyward resets the connection (connect-node says Aborted), then a read is retried as Unavailable and a write is tried once", async () => {
    const rs = await resettingServer();
    try {
      const counter = { attempts: 0 };
      const kw = createKeywardClient({ baseUrl: rs.url, retries: { retries: 2, backoffMs: 5 }, interceptors: [counting(counter)] });
      const read = await rpcError(kw.keys.getKey({ name: "tenants/t/keys/x" }));
      expect({ code: read.code, attempts: counter.attempts }).toEqual({ code: Code.Unavailable, attempts: 3 });
      expect(read.message).toContain("ECONNRESET");
      expect(rs.connections()).toBe(3);
      counter.attempts = 0;
      const write = await rpcError(kw.keys.revokeKey({ name: "tenants/t/keys/x", reason: "r" }));
      expect({ code: write.code, attempts: counter.attempts }).toEqual({ code: Code.Unavailable, attempts: 1 });
      expect(rs.connections()).toBe(4);
    } finally {
      await rs.close();
    }
  });

  it("when keyward resets the connection of a server stream, then the stream fails with Unavailable", async () => {
    const rs = await resettingServer();
    try {
      const kw = createKeywardClient({ baseUrl: rs.url, retries: 0 });
      const err = await rpcError(
        (async () => {
          for await (const m of kw.keys.watchInvalidations({ parent: "tenants/t" }, { timeoutMs: 5000 })) void m;
        })(),
      );
      expect(err.code).toBe(Code.Unavailable);
    } finally {
      await rs.close();
    }
  });

  it("when an error carries a connection-level Node.js code on its cause chain, then it becomes Unavailable; otherwise its code stays", () => {
    const sys = (code: string, cause?: unknown): Error => Object.assign(new Error(`${code} failure`), { code }, cause === undefined ? {} : { cause });
    const internal = (cause: unknown): ConnectError => new ConnectError("transport failure", Code.Internal, undefined, undefined, cause);
    expect(connectionErrorAsUnavailable(internal(sys("EPIPE"))).code).toBe(Code.Unavailable);
    expect(connectionErrorAsUnavailable(internal(sys("EHOSTUNREACH"))).code).toBe(Code.Unavailable);
    // Deeper in the chain: an HTTP/2 stream cancelled because its session failed with a reset.
    expect(connectionErrorAsUnavailable(internal(sys("ERR_HTTP2_STREAM_CANCEL", sys("ECONNRESET")))).message).toContain("ERR_HTTP2_STREAM_CANCEL");
    expect(connectionErrorAsUnavailable(new ConnectError("reset", Code.Aborted, undefined, undefined, sys("ECONNRESET"))).code).toBe(Code.Unavailable);
    // What the caller did, and what keyward answered, keep their code.
    expect(connectionErrorAsUnavailable(new ConnectError("aborted by the caller", Code.Canceled, undefined, undefined, sys("ECONNRESET"))).code).toBe(Code.Canceled);
    expect(connectionErrorAsUnavailable(new ConnectError("deadline", Code.DeadlineExceeded, undefined, undefined, sys("ETIMEDOUT"))).code).toBe(Code.DeadlineExceeded);
    expect(connectionErrorAsUnavailable(new ConnectError("server bug", Code.Internal)).code).toBe(Code.Internal);
    expect(connectionErrorAsUnavailable(internal(sys("ENOENT"))).code).toBe(Code.Internal);
    // A cyclic cause chain ends.
    const a = sys("EWHATEVER");
    (a as { cause?: unknown }).cause = internal(a);
    expect(connectionErrorAsUnavailable(internal(a)).code).toBe(Code.Internal);
  });
});
