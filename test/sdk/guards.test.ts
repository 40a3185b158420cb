// The SDK guards (issue 13 item 4, DESIGN.md §3 and §7) in front of a real node:http server
// and a real Connect server (connect-node), verifying through a real keyward: the missing,
// malformed and refused credentials all get the same 401 / Unauthenticated, too little scope
// the same 403 / PermissionDenied, and keyward down fails closed (503 / Unavailable).
// The KeyVerifier here is a few lines on the SDK client's keys.verifyKey (no local cache), so
// these tests exercise the guards alone; createVerifier's own tests cover its cache.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import {
  createKeywardClient,
  keywardIdentityKey,
  keywardInterceptor,
  keywardMiddleware,
  verifyResultName,
  type KeyVerifier,
  type KeywardClient,
  type KeywardRequest,
} from "../../sdk/src/index.ts";
import { KeyKindName, mintKey } from "../../src/keys/key-format.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { keyIdOf, uniq } from "../rpc.ts";

const UNAUTHORIZED = { error: { code: "unauthorized", message: "Missing or invalid API key" } };
const FORBIDDEN = { error: { code: "forbidden", message: "Insufficient scope for this action" } };
const UNAVAILABLE = { error: { code: "unavailable", message: "Authentication service unavailable" } };

/** A KeyVerifier straight on VerifyKey: every call asks keyward. */
function verifierOn(kw: KeywardClient): KeyVerifier {
  return {
    async verify(key, opts) {
      const r = await kw.keys.verifyKey({ key, requiredPermissions: [...(opts.permissions ?? [])], ...(opts.org === undefined ? {} : { org: opts.org }) });
      const valid = r.result === VerifyResult.VALID;
      return {
        valid,
        result: r.result,
        resultName: verifyResultName(r.result),
        missingPermissions: r.missingPermissions,
        ...(valid ? { identity: { keyId: r.keyId, tenant: r.tenant, org: r.org, owner: r.owner, permissions: r.permissions } } : {}),
      };
    },
  };
}

let keyward: TestServer;
let keywardStopped = false;
let t: TestTenant;
let readKey: string;
let revokedKey: string;
let unknownKey: string;
let verifier: KeyVerifier;
let httpServer: Server;
let httpUrl: string;
let connectServer: Server;
let connectUrl: string;
/** Requests that reached the guarded handlers (a refused request must never get there). */
let reachedHttp = 0;
let reachedConnect = 0;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: Server | undefined): Promise<void> {
  if (server === undefined) return;
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

beforeAll(async () => {
  keyward = await startTestServer();
  t = await createTestTenant(keyward, "guards");
  const keys = keyward.client(KeyService);
  readKey = (await keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("read"), permissions: ["keys:read"], expireDays: 30 }, withKey(t.adminKey))).secret;
  const revoked = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("revoked"), permissions: ["keys:read"], expireDays: 30 }, withKey(t.adminKey));
  await keys.revokeKey({ name: revoked.key!.name, reason: "revoked before the guard sees it" }, withKey(t.adminKey));
  revokedKey = revoked.secret;

  unknownKey = mintKey(keyward.config.keyPrefix, KeyKindName.FINE_GRAINED).raw;
  verifier = verifierOn(createKeywardClient({ baseUrl: keyward.url, retries: 0, timeoutMs: 2000 }));

  // node:http: /plain uses the guard as a boolean, /express runs it as middleware with next().
  const guard = keywardMiddleware({ verifier, permissions: ["keys:read"] });
  const ok = (req: IncomingMessage, res: ServerResponse): void => {
    reachedHttp += 1;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keyId: (req as KeywardRequest).keyward.keyId }));
  };
  httpServer = createServer((req, res) => {
    if (req.url === "/express") {
      void guard(req, res, (err?: unknown) => {
        if (err !== undefined) throw err;
        ok(req, res);
      });
      return;
    }
    void (async () => {
      if (await guard(req, res)) ok(req, res);
    })();
  });
  httpUrl = await listen(httpServer);

  // Connect: a KeyService whose GetKey echoes the identity the interceptor put in the context.
  connectServer = createServer(
    connectNodeAdapter({
      interceptors: [keywardInterceptor({ verifier, permissions: ["keys:read"] })],
      routes: (router) => {
        router.service(KeyService, {
          getKey: (_req, ctx) => {
            reachedConnect += 1;
            const id = ctx.values.get(keywardIdentityKey);
            return { key: { name: id?.keyId ?? "", displayName: id?.tenant ?? "" } };
          },
        });
      },
    }),
  );
  connectUrl = await listen(connectServer);
});

afterAll(async () => {
  await Promise.all([close(httpServer), close(connectServer), keywardStopped ? undefined : keyward?.stop()]);
});

type Answer = { status: number; contentType: string | null; wwwAuthenticate: string | null; body: string };

async function get(path: string, authorization?: string): Promise<Answer> {
  const res = await fetch(`${httpUrl}${path}`, authorization === undefined ? {} : { headers: { authorization } });
  return { status: res.status, contentType: res.headers.get("content-type"), wwwAuthenticate: res.headers.get("www-authenticate"), body: await res.text() };
}

async function connectCall(authorization?: string): Promise<{ name: string; displayName: string }> {
  const client = createClient(KeyService, createConnectTransport({ baseUrl: connectUrl, httpVersion: "1.1" }));
  const res = await client.getKey({ name: "x" }, authorization === undefined ? {} : { headers: { authorization } });
  return { name: res.key?.name ?? "", displayName: res.key?.displayName ?? "" };
}

async function connectCode(authorization?: string): Promise<{ code: Code; message: string }> {
  try {
    await connectCall(authorization);
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("the call succeeded");
}

const refusedHeaders: [string, () => string | undefined][] = [
  ["no Authorization header", () => undefined],
  ["another scheme (Basic)", () => `Basic ${readKey}`],
  ["the scheme without a key", () => "Bearer"],
  ["two tokens after the scheme", () => `Bearer ${readKey} extra`],
  ["a key that is not a keyward key", () => "Bearer not-a-key"],
  ["a well-formed key that does not exist", () => `Bearer ${unknownKey}`],
  ["a revoked key", () => `Bearer ${revokedKey}`],
];

describe("keywardMiddleware on node:http", () => {
  it("(precondition) keyward's verdicts for the refused keys are MALFORMED, NOT_FOUND, REVOKED and INSUFFICIENT_PERMISSIONS: the guards hide four different reasons", async () => {
    expect((await verifier.verify("not-a-key", {})).resultName).toBe("MALFORMED");
    expect((await verifier.verify(unknownKey, {})).resultName).toBe("NOT_FOUND");
    expect((await verifier.verify(revokedKey, {})).resultName).toBe("REVOKED");
    expect((await verifier.verify(readKey, { permissions: ["keys:write"] })).resultName).toBe("INSUFFICIENT_PERMISSIONS");
  });

  it.each(["/plain", "/express"])("when %s is called with a valid key (scheme `Bearer`, `bearer`, `BEARER`, several spaces), then it answers 200 with the key's identity in req.keyward", async (path) => {
    const before = reachedHttp;
    for (const authorization of [`Bearer ${readKey}`, `bearer ${readKey}`, `BEARER ${readKey}`, `Bearer   ${readKey}`]) {
      const a = await get(path, authorization);
      expect(a.status).toBe(200);
      expect(JSON.parse(a.body)).toEqual({ keyId: keyIdOf(readKey) });
    }
    expect(reachedHttp - before).toBe(4);
  });

  it.each(refusedHeaders)("when the request carries %s, then it answers exactly the 401 body with WWW-Authenticate: Bearer and the handler never runs", async (_what, header) => {
    const before = reachedHttp;
    for (const path of ["/plain", "/express"]) {
      const a = await get(path, header());
      expect(a).toEqual({ status: 401, contentType: "application/json", wwwAuthenticate: "Bearer", body: JSON.stringify(UNAUTHORIZED) });
    }
    expect(reachedHttp).toBe(before);
  });

  it("when a valid key lacks a required permission, then it answers exactly the 403 body (no WWW-Authenticate) and the handler never runs", async () => {
    const guarded = keywardMiddleware({ verifier: verifierOn(createKeywardClient({ baseUrl: keyward.url, retries: 0 })), permissions: ["keys:read", "keys:write"] });
    const server = createServer((req, res) => {
      void (async () => {
        if (await guarded(req, res)) res.end("reached");
      })();
    });
    const url = await listen(server);
    try {
      const res = await fetch(`${url}/`, { headers: { authorization: `Bearer ${readKey}` } });
      expect(res.status).toBe(403);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(res.headers.get("www-authenticate")).toBeNull();
      expect(await res.text()).toBe(JSON.stringify(FORBIDDEN));
    } finally {
      await close(server);
    }
  });
});

describe("keywardInterceptor on a Connect server", () => {
  it("when a valid key is sent (`Bearer` or `bearer`), then the handler runs with the identity in keywardIdentityKey", async () => {
    const before = reachedConnect;
    expect(await connectCall(`Bearer ${readKey}`)).toEqual({ name: keyIdOf(readKey), displayName: t.slug });
    expect(await connectCall(`bearer ${readKey}`)).toEqual({ name: keyIdOf(readKey), displayName: t.slug });
    expect(reachedConnect - before).toBe(2);
  });

  it.each(refusedHeaders)("when the call carries %s, then it fails Unauthenticated \"Missing or invalid API key\" and the handler never runs", async (_what, header) => {
    const before = reachedConnect;
    expect(await connectCode(header())).toEqual({ code: Code.Unauthenticated, message: "Missing or invalid API key" });
    expect(reachedConnect).toBe(before);
  });

  it("when a valid key lacks a required permission, then it fails PermissionDenied \"Insufficient scope for this action\"", async () => {
    const server = createServer(
      connectNodeAdapter({
        interceptors: [keywardInterceptor({ verifier: verifierOn(createKeywardClient({ baseUrl: keyward.url, retries: 0 })), permissions: ["keys:write"] })],
        routes: (router) => {
          router.service(KeyService, { getKey: () => ({ key: { name: "reached" } }) });
        },
      }),
    );
    const url = await listen(server);
    try {
      const client = createClient(KeyService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
      const err = await client.getKey({ name: "x" }, withKey(readKey)).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect({ code: err?.code, message: err?.rawMessage }).toEqual({ code: Code.PermissionDenied, message: "Insufficient scope for this action" });
    } finally {
      await close(server);
    }
  });
});

describe("every verdict maps to 401 or 403 without saying which", () => {
  const stub = (resultName: string): KeyVerifier => ({ verify: async () => ({ valid: false, result: 0, resultName, missingPermissions: ["x:y"] }) });
  it.each([
    ["EXPIRED", 401],
    ["OWNER_SUSPENDED", 401],
    ["REVOKED", 401],
    ["NOT_FOUND", 401],
    ["MALFORMED", 401],
    ["UNKNOWN(99)", 401],
    ["WRONG_SCOPE", 403],
    ["INSUFFICIENT_PERMISSIONS", 403],
  ])("when the verifier answers %s, then the middleware answers %i with the fixed body and the interceptor the matching code", async (resultName, status) => {
    const mw = keywardMiddleware({ verifier: stub(resultName) });
    const server = createServer((req, res) => {
      void (async () => {
        if (await mw(req, res)) res.end("reached");
      })();
    });
    const url = await listen(server);
    try {
      const res = await fetch(url, { headers: { authorization: "Bearer k" } });
      expect({ status: res.status, body: await res.text() }).toEqual({ status, body: JSON.stringify(status === 401 ? UNAUTHORIZED : FORBIDDEN) });
    } finally {
      await close(server);
    }
    const intercept = keywardInterceptor({ verifier: stub(resultName) });
    const call = intercept(async () => {
      throw new Error("the handler must not run");
    });
    const err = await call({ header: new Headers({ authorization: "Bearer k" }) } as Parameters<typeof call>[0]).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(status === 401 ? Code.Unauthenticated : Code.PermissionDenied);
  });

  it("when the verifier says valid but gives no identity, then the request is refused 401 (fail closed)", async () => {
    const mw = keywardMiddleware({ verifier: { verify: async () => ({ valid: true, result: 1, resultName: "VALID", missingPermissions: [] }) } });
    const server = createServer((req, res) => {
      void (async () => {
        if (await mw(req, res)) res.end("reached");
      })();
    });
    const url = await listen(server);
    try {
      expect((await fetch(url, { headers: { authorization: "Bearer k" } })).status).toBe(401);
    } finally {
      await close(server);
    }
  });
});

describe("the guards when keyward is down", () => {
  it("when keyward has stopped, then a valid key gets 503 with the unavailable body and Connect Unavailable (fail closed), and no handler runs", async () => {
    await keyward.stop();
    keywardStopped = true;
    const [httpBefore, connectBefore] = [reachedHttp, reachedConnect];
    for (const path of ["/plain", "/express"]) {
      const a = await get(path, `Bearer ${readKey}`);
      expect({ status: a.status, contentType: a.contentType, body: a.body }).toEqual({ status: 503, contentType: "application/json", body: JSON.stringify(UNAVAILABLE) });
    }
    expect(await connectCode(`Bearer ${readKey}`)).toEqual({ code: Code.Unavailable, message: "Authentication service unavailable" });
    // A missing header is still a 401: nothing to ask keyward about.
    expect((await get("/plain")).status).toBe(401);
    expect([reachedHttp, reachedConnect]).toEqual([httpBefore, connectBefore]);
  });
});
