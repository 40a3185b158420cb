// The SDK client's retry policy, against a real Connect server (connect-node's router on
// node:http) whose KeyService answers Unavailable a set number of times: idempotent reads
// (NO_SIDE_EFFECTS, and VerifyKey, IDEMPOTENT) are retried a bounded number of times,
// writes never, and a retry never outlives the call's deadline.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { create } from "@bufbuild/protobuf";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { createKeywardClient, errorInfo, errorReason, verifyResultName } from "../../sdk/src/index.ts";
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

beforeAll(async () => {
  const handler = connectNodeAdapter({
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
