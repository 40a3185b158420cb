// The SDK guards (issue 13 item 4, DESIGN.md §3 and §7) in front of a real node:http server
// and a real Connect server (connect-node), verifying through a real keyward: the missing,
// malformed and refused credentials all get the same 401 / Unauthenticated, too little scope
// the same 403 / PermissionDenied, and keyward down fails closed (503 / Unavailable).
// Every case runs twice: behind a KeyVerifier of a few lines on the SDK client's
// keys.verifyKey (no cache: the guards alone), and behind createVerifier (the cache and the
// WatchInvalidations stream). The last part measures how fast a revoked key is refused with
// the stream up, stops keyward (fail closed), and restarts it on the same port and database
// (the stream resumes and delivers a revocation made meanwhile).
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import {
  createKeywardClient,
  createVerifier,
  keywardIdentityKey,
  keywardInterceptor,
  keywardMiddleware,
  verifyResultName,
  type KeyVerifier,
  type KeywardClient,
  type KeywardMiddleware,
  type KeywardRequest,
  type Verifier,
} from "../../sdk/src/index.ts";
import { KeyKindName, mintKey } from "../../src/keys/key-format.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { keyIdOf, uniq } from "../rpc.ts";
import { until } from "../wait.ts";

const UNAUTHORIZED = { error: { code: "unauthorized", message: "Missing or invalid API key" } };
const FORBIDDEN = { error: { code: "forbidden", message: "Insufficient scope for this action" } };
const UNAVAILABLE = { error: { code: "unavailable", message: "Authentication service unavailable" } };
/** A revoked key must be refused within this long after RevokeKey returns, with the stream up (issue 13; sdk/README.md). */
const revocationBoundMs = 1000;
/** The heartbeat of keyward's invalidation streams in these tests (the default is 10 s). */
const heartbeatEnv = { KEYWARD_WATCH_HEARTBEAT_MS: "300" };

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
let keywardUp = false;
let t: TestTenant;
let readKey: string;
let revokedKey: string;
let unknownKey: string;
const verifiers: Verifier[] = [];
const servers: Server[] = [];

/** createVerifier as a service would set it up (its tenant's key for the stream), with a long degraded TTL so only the stream can drop an entry. */
function cachingVerifier(): Verifier {
  const v = createVerifier({ client: createKeywardClient({ baseUrl: keyward.url, apiKey: t.adminKey, retries: 0, timeoutMs: 2000 }), tenant: t.slug, degradedTtlMs: 60_000 });
  verifiers.push(v);
  return v;
}

const kinds = ["VerifyKey per request", "createVerifier"] as const;
type Kind = (typeof kinds)[number];

function verifierOf(kind: Kind): KeyVerifier {
  return kind === "createVerifier" ? cachingVerifier() : verifierOn(createKeywardClient({ baseUrl: keyward.url, retries: 0, timeoutMs: 2000 }));
}

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: Server | undefined): Promise<void> {
  if (server === undefined || !server.listening) return;
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** A node:http server that runs `mw` as a boolean guard and, past it, answers `reach()`'s text; the server and its URL. */
async function serveGuard(mw: KeywardMiddleware, reach: () => string = () => "reached"): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    void (async () => {
      if (await mw(req, res)) res.end(reach());
    })();
  });
  return { server, url: await listen(server) };
}

/** A guarded node:http server and a guarded Connect server, and how many requests reached their handlers (a refused request must never get there). */
type Guarded = { httpUrl: string; connectUrl: string; reached: { http: number; connect: number } };

/**
 * node:http: /plain uses the guard as a boolean, /express runs it as middleware with next().
 * Connect: a KeyService whose GetKey echoes the identity the interceptor put in the context.
 */
async function guarded(httpVerifier: KeyVerifier, connectVerifier: KeyVerifier, permissions: string[] = ["keys:read"]): Promise<Guarded> {
  const reached = { http: 0, connect: 0 };
  const guard = keywardMiddleware({ verifier: httpVerifier, permissions });
  const ok = (req: IncomingMessage, res: ServerResponse): void => {
    reached.http += 1;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keyId: (req as KeywardRequest).keyward.keyId }));
  };
  const httpUrl = await listen(
    createServer((req, res) => {
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
    }),
  );
  const connectUrl = await listen(
    createServer(
      connectNodeAdapter({
        interceptors: [keywardInterceptor({ verifier: connectVerifier, permissions })],
        routes: (router) => {
          router.service(KeyService, {
            getKey: (_req, ctx) => {
              reached.connect += 1;
              const id = ctx.values.get(keywardIdentityKey);
              return { key: { name: id?.keyId ?? "", displayName: id?.tenant ?? "" } };
            },
          });
        },
      }),
    ),
  );
  return { httpUrl, connectUrl, reached };
}

beforeAll(async () => {
  keyward = await startTestServer({ env: heartbeatEnv });
  keywardUp = true;
  t = await createTestTenant(keyward, "guards");
  readKey = await createReadKey("read");
  revokedKey = await createReadKey("revoked");
  await revoke(revokedKey, "revoked before the guard sees it");
  unknownKey = mintKey(keyward.config.keyPrefix, KeyKindName.FINE_GRAINED).raw;
});

afterAll(async () => {
  for (const v of verifiers) v.close();
  await Promise.all([...servers.map(close), keywardUp ? keyward?.stop() : undefined]);
});

async function createReadKey(name: string): Promise<string> {
  return (await keyward.client(KeyService).createKey({ parent: `tenants/${t.slug}`, displayName: uniq(name), permissions: ["keys:read"], expireDays: 30 }, withKey(t.adminKey))).secret;
}

async function revoke(key: string, reason: string, server: TestServer = keyward): Promise<void> {
  await server.client(KeyService).revokeKey({ name: `tenants/${t.slug}/keys/${keyIdOf(key)}`, reason }, withKey(t.adminKey));
}

type Answer = { status: number; contentType: string | null; wwwAuthenticate: string | null; body: string };

async function get(url: string, authorization?: string): Promise<Answer> {
  const res = await fetch(url, authorization === undefined ? {} : { headers: { authorization } });
  return { status: res.status, contentType: res.headers.get("content-type"), wwwAuthenticate: res.headers.get("www-authenticate"), body: await res.text() };
}

async function connectCall(baseUrl: string, authorization?: string): Promise<{ name: string; displayName: string }> {
  const client = createClient(KeyService, createConnectTransport({ baseUrl, httpVersion: "1.1" }));
  const res = await client.getKey({ name: "x" }, authorization === undefined ? {} : { headers: { authorization } });
  return { name: res.key?.name ?? "", displayName: res.key?.displayName ?? "" };
}

async function connectCode(baseUrl: string, authorization?: string): Promise<{ code: Code; message: string }> {
  try {
    await connectCall(baseUrl, authorization);
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
  ["a tab between scheme and key", () => `Bearer\t${readKey}`],
  ["the key twice, comma-joined (as a proxy merges two headers)", () => `Bearer ${readKey}, Bearer ${readKey}`],
  ["the key in another case", () => `Bearer ${readKey.toUpperCase()}`],
  ["a 9 KiB credential", () => `Bearer ${"k".repeat(9 * 1024)}`],
  ["a non-ASCII credential", () => `Bearer cl\u00e9-${readKey}`],
];

it("(precondition) keyward's verdicts for the refused keys are MALFORMED, NOT_FOUND, REVOKED and INSUFFICIENT_PERMISSIONS: the guards hide four different reasons", async () => {
  const verifier = verifierOf("VerifyKey per request");
  expect((await verifier.verify("not-a-key", {})).resultName).toBe("MALFORMED");
  expect((await verifier.verify(unknownKey, {})).resultName).toBe("NOT_FOUND");
  expect((await verifier.verify(revokedKey, {})).resultName).toBe("REVOKED");
  expect((await verifier.verify(readKey, { permissions: ["keys:write"] })).resultName).toBe("INSUFFICIENT_PERMISSIONS");
});

describe.each(kinds)("the guards behind %s", (kind) => {
  let g: Guarded;
  beforeAll(async () => {
    g = await guarded(verifierOf(kind), verifierOf(kind));
  });

  describe("keywardMiddleware on node:http", () => {
    it.each(["/plain", "/express"])("when %s is called with a valid key (scheme `Bearer`, `bearer`, `BEARER`, several spaces), then it answers 200 with the key's identity in req.keyward", async (path) => {
      const before = g.reached.http;
      for (const authorization of [`Bearer ${readKey}`, `bearer ${readKey}`, `BEARER ${readKey}`, `Bearer   ${readKey}`]) {
        const a = await get(`${g.httpUrl}${path}`, authorization);
        expect(a.status).toBe(200);
        expect(JSON.parse(a.body)).toEqual({ keyId: keyIdOf(readKey) });
      }
      expect(g.reached.http - before).toBe(4);
    });

    it.each(refusedHeaders)("when the request carries %s, then it answers exactly the 401 body with WWW-Authenticate: Bearer and the handler never runs", async (_what, header) => {
      const before = g.reached.http;
      for (const path of ["/plain", "/express"]) {
        const a = await get(`${g.httpUrl}${path}`, header());
        expect(a).toEqual({ status: 401, contentType: "application/json", wwwAuthenticate: "Bearer", body: JSON.stringify(UNAUTHORIZED) });
      }
      expect(g.reached.http).toBe(before);
    });

    it("when a valid key lacks a required permission, then it answers exactly the 403 body (no WWW-Authenticate) and the handler never runs", async () => {
      const weak = await guarded(verifierOf(kind), verifierOf(kind), ["keys:read", "keys:write"]);
      for (const path of ["/plain", "/express"]) {
        const a = await get(`${weak.httpUrl}${path}`, `Bearer ${readKey}`);
        expect(a).toEqual({ status: 403, contentType: "application/json", wwwAuthenticate: null, body: JSON.stringify(FORBIDDEN) });
      }
      expect(weak.reached.http).toBe(0);
    });
  });

  describe("keywardInterceptor on a Connect server", () => {
    it("when a valid key is sent (`Bearer` or `bearer`), then the handler runs with the identity in keywardIdentityKey", async () => {
      const before = g.reached.connect;
      expect(await connectCall(g.connectUrl, `Bearer ${readKey}`)).toEqual({ name: keyIdOf(readKey), displayName: t.slug });
      expect(await connectCall(g.connectUrl, `bearer ${readKey}`)).toEqual({ name: keyIdOf(readKey), displayName: t.slug });
      expect(g.reached.connect - before).toBe(2);
    });

    it.each(refusedHeaders)("when the call carries %s, then it fails Unauthenticated \"Missing or invalid API key\" and the handler never runs", async (_what, header) => {
      const before = g.reached.connect;
      expect(await connectCode(g.connectUrl, header())).toEqual({ code: Code.Unauthenticated, message: "Missing or invalid API key" });
      expect(g.reached.connect).toBe(before);
    });

    it("when a valid key lacks a required permission, then it fails PermissionDenied \"Insufficient scope for this action\" and the handler never runs", async () => {
      const weak = await guarded(verifierOf(kind), verifierOf(kind), ["keys:read", "keys:write"]);
      expect(await connectCode(weak.connectUrl, `Bearer ${readKey}`)).toEqual({ code: Code.PermissionDenied, message: "Insufficient scope for this action" });
      expect(weak.reached.connect).toBe(0);
    });
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
    const { server, url } = await serveGuard(mw);
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

  it("when the verifier throws for a reason other than the network (a bug, a refused argument), then 503 / Unavailable and the handler never runs", async () => {
    for (const thrown of [new TypeError("boom"), new ConnectError("bad org", Code.InvalidArgument), "a string"]) {
      const verifier: KeyVerifier = { verify: async () => { throw thrown; } };
      const mw = keywardMiddleware({ verifier });
      let reached = 0;
      const { server, url } = await serveGuard(mw, () => String((reached += 1)));
      try {
        const res = await fetch(url, { headers: { authorization: `Bearer ${readKey}` } });
        expect({ status: res.status, body: await res.text() }).toEqual({ status: 503, body: JSON.stringify(UNAVAILABLE) });
      } finally {
        await close(server);
      }
      const call = keywardInterceptor({ verifier })(async () => {
        reached += 1;
        throw new Error("the handler must not run");
      });
      const err = await call({ header: new Headers({ authorization: `Bearer ${readKey}` }) } as Parameters<typeof call>[0]).then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect([err?.code, err?.rawMessage]).toEqual([Code.Unavailable, "Authentication service unavailable"]);
      expect(reached).toBe(0);
    }
  });

  it("when a refused request is HEAD or OPTIONS, then it gets the same 401 status and headers (HEAD without a body) and never reaches the handler", async () => {
    const mw = keywardMiddleware({ verifier: { verify: async () => ({ valid: false, result: 0, resultName: "REVOKED", missingPermissions: [] }) } });
    let reached = 0;
    const { server, url } = await serveGuard(mw, () => String((reached += 1)));
    try {
      for (const method of ["HEAD", "OPTIONS"]) {
        const res = await fetch(url, { method, headers: { authorization: "Bearer k" } });
        expect([method, res.status, res.headers.get("www-authenticate"), res.headers.get("content-type"), await res.text()]).toEqual([
          method, 401, "Bearer", "application/json", method === "HEAD" ? "" : JSON.stringify(UNAUTHORIZED),
        ]);
      }
      expect(reached).toBe(0);
    } finally {
      await close(server);
    }
  });

  it("when the verifier says valid but gives no identity, then the request is refused 401 (fail closed)", async () => {
    const mw = keywardMiddleware({ verifier: { verify: async () => ({ valid: true, result: 1, resultName: "VALID", missingPermissions: [] }) } });
    const { server, url } = await serveGuard(mw);
    try {
      expect((await fetch(url, { headers: { authorization: "Bearer k" } })).status).toBe(401);
    } finally {
      await close(server);
    }
  });
});

/**
 * Asks `refused()` until it says true, for at most `ms` past `since` (performance.now()); returns the
 * time from `since` to the first refusal, in ms.
 */
async function refusedAfter(since: number, refused: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  for (;;) {
    if (await refused()) return performance.now() - since;
    if (performance.now() - since > ms) throw new Error(`${what}: still accepted ${ms} ms after`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Probes of a guarded pair: false while the key is accepted, true once refused (and then the refusal must be exactly 401 / Unauthenticated). */
function probes(g: Guarded, key: string): { http: () => Promise<boolean>; connect: () => Promise<boolean> } {
  return {
    http: async () => {
      const a = await get(`${g.httpUrl}/plain`, `Bearer ${key}`);
      if (a.status === 200) return false;
      expect({ status: a.status, body: a.body }).toEqual({ status: 401, body: JSON.stringify(UNAUTHORIZED) });
      return true;
    },
    connect: async () => {
      const res = await connectCall(g.connectUrl, `Bearer ${key}`).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      if (res === undefined) return false;
      expect({ code: res.code, message: res.rawMessage }).toEqual({ code: Code.Unauthenticated, message: "Missing or invalid API key" });
      return true;
    },
  };
}

const summary = (ms: number[]): string => {
  const sorted = [...ms].sort((a, b) => a - b);
  return `n=${sorted.length} median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`;
};

describe("createVerifier behind both guards: revocation, keyward down, keyward restarted", () => {
  // One verifier per guard, as two services would each have their own.
  let httpVerifier: Verifier;
  let connectVerifier: Verifier;
  let g: Guarded;
  /** The same guards without a cache, to compare with when keyward is down. */
  let plain: Guarded;
  /** Verified through both guards just before keyward stops, revoked while it is down. */
  let cachedKey: string;
  /** Valid, but never presented before keyward stops: nothing cached. */
  let freshKey: string;
  /** keyward's port, to restart it on. */
  let keywardPort: number;
  const bothStreams = (): boolean => httpVerifier.stats().streamUp && connectVerifier.stats().streamUp;

  beforeAll(async () => {
    httpVerifier = cachingVerifier();
    connectVerifier = cachingVerifier();
    g = await guarded(httpVerifier, connectVerifier);
    plain = await guarded(verifierOf("VerifyKey per request"), verifierOf("VerifyKey per request"));
    cachedKey = await createReadKey("cached");
    freshKey = await createReadKey("fresh");
    keywardPort = keyward.port;
    await until(bothStreams, 5000, "both invalidation streams up");
  });

  it("when a key the guards have cached is revoked while the stream is up, then both refuse it (401 / Unauthenticated) within 1 s of RevokeKey returning, measured over 10 keys", async () => {
    const http: number[] = [];
    const connect: number[] = [];
    for (let i = 0; i < 10; i++) {
      const key = await createReadKey(`revoked-${i}`);
      const p = probes(g, key);
      expect(await p.http()).toBe(false);
      expect(await p.connect()).toBe(false);
      const rpcs = [httpVerifier.stats().rpcs, connectVerifier.stats().rpcs];
      expect(await p.http()).toBe(false); // now from the cache
      expect(await p.connect()).toBe(false);
      expect([httpVerifier.stats().rpcs, connectVerifier.stats().rpcs]).toEqual(rpcs);
      await revoke(key, "measured");
      const since = performance.now();
      const [h, c] = await Promise.all([refusedAfter(since, p.http, 3 * revocationBoundMs, "http guard"), refusedAfter(since, p.connect, 3 * revocationBoundMs, "Connect guard")]);
      http.push(h);
      connect.push(c);
    }
    console.log(`RevokeKey returned → guard refused: node:http ${summary(http)}; Connect ${summary(connect)}`);
    expect(Math.max(...http, ...connect)).toBeLessThan(revocationBoundMs);
    expect(bothStreams()).toBe(true);
  });

  it("when keyward stops, then with nothing cached both guards fail closed (exact 503 body / Unavailable), and a key checked just before is served only from the cache (degradedTtlMs)", async () => {
    expect(await probes(g, cachedKey).http()).toBe(false);
    expect(await probes(g, cachedKey).connect()).toBe(false);
    await keyward.stop();
    keywardUp = false;
    await until(() => !httpVerifier.stats().streamUp && !connectVerifier.stats().streamUp, 5000, "the streams noticed the stop");
    const reached = [g.reached.http, g.reached.connect, plain.reached.http, plain.reached.connect];
    for (const s of [g, plain]) {
      for (const path of ["/plain", "/express"]) {
        const a = await get(`${s.httpUrl}${path}`, `Bearer ${freshKey}`);
        expect({ status: a.status, contentType: a.contentType, body: a.body }).toEqual({ status: 503, contentType: "application/json", body: JSON.stringify(UNAVAILABLE) });
      }
      expect(await connectCode(s.connectUrl, `Bearer ${freshKey}`)).toEqual({ code: Code.Unavailable, message: "Authentication service unavailable" });
      // A missing header is still a 401: nothing to ask keyward about.
      expect((await get(`${s.httpUrl}/plain`)).status).toBe(401);
    }
    expect([g.reached.http, g.reached.connect, plain.reached.http, plain.reached.connect]).toEqual(reached);
    // Without the stream, a cached answer is served until degradedTtlMs (60 s here, 5 s by default) after its check.
    expect(await probes(g, cachedKey).http()).toBe(false);
    expect(await probes(g, cachedKey).connect()).toBe(false);
    expect((await get(`${plain.httpUrl}/plain`, `Bearer ${cachedKey}`)).status).toBe(503);
  });

  it("when a key is revoked while keyward is down and keyward restarts on the same port and database, then the streams resume and both guards refuse that key", async () => {
    const opened = [httpVerifier.stats().streamsOpened, connectVerifier.stats().streamsOpened];
    // Revoked in the database through a second keyward on another port: the guards' keyward is still down.
    const other = await startTestServer();
    try {
      await revoke(cachedKey, "revoked while keyward was down", other);
    } finally {
      await other.stop();
    }
    expect(await probes(g, cachedKey).http()).toBe(false); // nothing has told the verifiers yet
    keyward = await startTestServer({ env: { ...heartbeatEnv, PORT: String(keywardPort) } });
    keywardUp = true;
    const restarted = performance.now();
    await until(() => bothStreams() && httpVerifier.stats().streamsOpened > opened[0]! && connectVerifier.stats().streamsOpened > opened[1]!, 10_000, "both streams resumed");
    const resumed = performance.now() - restarted;
    // The entry is younger than degradedTtlMs: only the resumed stream's replay can drop it.
    const p = probes(g, cachedKey);
    const [h, c] = await Promise.all([refusedAfter(performance.now(), p.http, 2000, "http guard after the restart"), refusedAfter(performance.now(), p.connect, 2000, "Connect guard after the restart")]);
    console.log(`keyward restarted → streams up again after ${resumed.toFixed(0)} ms; revoked-while-down key refused ${h.toFixed(1)} ms (node:http) / ${c.toFixed(1)} ms (Connect) after that`);
    for (const s of [g, plain]) {
      expect((await get(`${s.httpUrl}/plain`, `Bearer ${freshKey}`)).status).toBe(200);
      expect(await connectCall(s.connectUrl, `Bearer ${freshKey}`)).toEqual({ name: keyIdOf(freshKey), displayName: t.slug });
    }
  });
});
