// Offline verification of minted tokens in the SDK (sdk/src/minted-token.ts; issue 13 item 3,
// DESIGN.md §7) against a real keyward and PostgreSQL: real user tokens verify from the
// cached JWKS with no VerifyKey call (also once keyward is gone); tampered, foreign-issuer,
// foreign-audience, expired, algorithm-confused and forged tokens are refused with a stable
// reason; a rotated signing key is picked up by refetching the JWKS (at most once per
// cooldown); no JWKS and keyward unreachable fails closed with Unavailable. The server runs on
// a PostgreSQL of its own: RotateSigningKey changes the keys of every tenant of a database.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createHmac, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import { decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet, type JWTPayload } from "jose";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import {
  createMintedTokenVerifier,
  KeyKind,
  keywardMiddleware,
  MAX_JWKS_BYTES,
  verifyMintedToken,
  VerifyResult,
  type MintedTokenOutcome,
  type MintedTokenVerifierOptions,
} from "../../sdk/src/index.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { until } from "../wait.ts";
import { startServerOnOwnPostgres, type ServerOnOwnPostgres } from "../server/stoppable-postgres.ts";
import { createUser, encodeSegment, segment, userToken } from "../tokens/helpers.ts";

let setup: ServerOnOwnPostgres;
let server: TestServer;
let t: TestTenant;
let user: string;

beforeAll(async () => {
  setup = await startServerOnOwnPostgres();
  server = setup.server;
  t = await createTestTenant(server, "mt");
  user = await createUser(server, t, ["keys:write", "harden_runner:read"]);
}, 60_000);
afterAll(async () => {
  await setup?.close();
});

const audienceOf = (s: TestServer, tenant: TestTenant) => `${tenant.slug}.${s.config.audienceDomain}`;
const verifyKeyCalls = (s: TestServer) => s.logs.filter((l) => l.includes("KeyService/VerifyKey")).length;

/** A fetch that records the URLs it was asked for. */
function countingFetch(): { urls: string[]; fetch: typeof fetch } {
  const urls: string[] = [];
  return { urls, fetch: (input, init) => (urls.push(String(input)), fetch(input, init)) };
}

/** Options for `s`'s tokens of `tenant`, judged by the server's test clock. */
function optionsFor(s: TestServer, tenant: TestTenant, extra: Partial<MintedTokenVerifierOptions> = {}): MintedTokenVerifierOptions {
  return { baseUrl: s.url, issuer: s.config.tokenIssuer, audience: audienceOf(s, tenant), now: () => s.clock.now(), ...extra };
}

/** A token whose header, payload and signature are given as they are (nothing checked). */
function compact(header: object, payload: object, signature = ""): string {
  return `${encodeSegment(header)}.${encodeSegment(payload)}.${signature}`;
}

/** The outcome has no trace of the token (nor of its signature). */
function expectNoToken(outcome: MintedTokenOutcome, token: string): void {
  const text = JSON.stringify(outcome);
  expect(text).not.toContain(token);
  expect(text).not.toContain(token.split(".")[2] ?? token);
}

describe("verifyMintedToken / createMintedTokenVerifier", () => {
  it("when a user token is verified offline, then it is VALID with VerifyKey's identity, the JWKS is fetched once, and keyward answers no VerifyKey", async () => {
    const made = await userToken(server, t, user, { durationSeconds: 600 });
    const counting = countingFetch();
    const verifier = createMintedTokenVerifier(optionsFor(server, t, { fetch: counting.fetch }));
    const callsBefore = verifyKeyCalls(server);

    const r = await verifier.verify(made.accessToken, { permissions: ["keys:read", "harden_runner:read"] });
    expect(r).toMatchObject({ valid: true, result: VerifyResult.VALID, resultName: "VALID", reason: "VALID", missingPermissions: [] });
    expect((await verifier.verify(made.accessToken)).valid).toBe(true);
    expect(counting.urls).toEqual([`${server.url}/.well-known/jwks.json`]);
    expect(verifyKeyCalls(server)).toBe(callsBefore);
    expectNoToken(r, made.accessToken);

    // The same identity VerifyKey gives (bar the owner's current bounds, which only keyward knows).
    const online = await server.client(KeyService).verifyKey({ key: made.accessToken });
    await until(() => verifyKeyCalls(server) > callsBefore, 5_000, "the VerifyKey count to see the online call"); // so the count above can fail
    expect(r.identity).toMatchObject({
      keyId: online.keyId, tenant: online.tenant, org: online.org, owner: online.owner, subject: online.subject, policy: online.policy,
      kind: KeyKind.UNSPECIFIED, token: true, tokenKind: "user", clientId: "keyward",
    });
    expect([...r.identity!.permissions].sort()).toEqual([...online.permissions].sort());
    expect(r.identity!.expireTime).toEqual(timestampDate(online.expireTime!));
    expect(r.identity!.issuedAt.getTime()).toBe(r.identity!.expireTime!.getTime() - 600_000);

    // The one-call form (a JWKS cache shared per URL and fetch) answers the same, fetching once.
    const shared = countingFetch();
    for (let i = 0; i < 3; i++) {
      const once = await verifyMintedToken(made.accessToken, { ...optionsFor(server, t, { fetch: shared.fetch }), permissions: ["keys:write"] });
      expect(once).toMatchObject({ valid: true, resultName: "VALID", identity: { keyId: online.keyId } });
    }
    expect(shared.urls).toHaveLength(1);
  });

  it("when the token's scope lacks a required permission or the token is pinned to another org, then INSUFFICIENT_PERMISSIONS (with what is missing) or WRONG_SCOPE, as VerifyKey answers", async () => {
    const verifier = createMintedTokenVerifier(optionsFor(server, t));
    const { accessToken } = await userToken(server, t, user);
    const lacking = await verifier.verify(accessToken, { permissions: ["keys:read", "audit:read", "harden_runner:write"] });
    expect(lacking).toMatchObject({ valid: false, result: VerifyResult.INSUFFICIENT_PERMISSIONS, resultName: "INSUFFICIENT_PERMISSIONS", missingPermissions: ["audit:read", "harden_runner:write"] });
    const online = await server.client(KeyService).verifyKey({ key: accessToken, requiredPermissions: ["keys:read", "audit:read", "harden_runner:write"] });
    expect(online.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
    expect([...online.missingPermissions].sort()).toEqual(lacking.missingPermissions);

    await server.client(DirectoryService).createOrganization({ parent: `tenants/${t.slug}`, slug: "acme" }, withKey(t.adminKey));
    const member = await createUser(server, t, ["keys:read"], { org: "acme" });
    const pinned = (await userToken(server, t, member)).accessToken;
    expect(segment(pinned, 1)["org"]).toBe("acme");
    expect(await verifier.verify(pinned, { org: "acme", permissions: ["keys:read"] })).toMatchObject({ valid: true, identity: { org: "acme" } });
    for (const org of [undefined, "other"]) {
      const r = await verifier.verify(pinned, org === undefined ? {} : { org });
      expect(r).toMatchObject({ valid: false, resultName: "WRONG_SCOPE", identity: { org: "acme" } });
      expect((await server.client(KeyService).verifyKey({ key: pinned, org: org ?? "" })).result).toBe(VerifyResult.WRONG_SCOPE);
    }
  });

  it("when the signature, header or payload is tampered with, then MALFORMED INVALID_SIGNATURE", async () => {
    const verifier = createMintedTokenVerifier(optionsFor(server, t));
    const { accessToken } = await userToken(server, t, user);
    const [h, p, s] = accessToken.split(".") as [string, string, string];
    const flipped = s.slice(0, 10) + (s[10] === "A" ? "B" : "A") + s.slice(11);
    const elevated = encodeSegment({ ...segment(accessToken, 1), scope: "*:write" });
    const header = encodeSegment({ ...segment(accessToken, 0), extra: 1 });
    for (const forged of [`${h}.${p}.${flipped}`, `${h}.${elevated}.${s}`, `${header}.${p}.${s}`]) {
      const r = await verifier.verify(forged);
      expect(r).toMatchObject({ valid: false, result: VerifyResult.MALFORMED, resultName: "MALFORMED", reason: "INVALID_SIGNATURE", missingPermissions: [] });
      expect(r.identity).toBeUndefined();
      expectNoToken(r, forged);
    }
  });

  it("when the issuer or the audience is not the one asked for, then MALFORMED WRONG_ISSUER or WRONG_AUDIENCE (another tenant's token is refused)", async () => {
    const { accessToken } = await userToken(server, t, user);
    expect((await createMintedTokenVerifier(optionsFor(server, t, { issuer: "https://evil.example" })).verify(accessToken)).reason).toBe("WRONG_ISSUER");
    const other = await createTestTenant(server, "mt");
    const forOther = createMintedTokenVerifier(optionsFor(server, other));
    expect(await forOther.verify(accessToken)).toMatchObject({ valid: false, resultName: "MALFORMED", reason: "WRONG_AUDIENCE" });
    // Several audiences: any of them.
    const either = createMintedTokenVerifier(optionsFor(server, other, { audience: [audienceOf(server, other), audienceOf(server, t)] }));
    expect((await either.verify(accessToken)).valid).toBe(true);
  });

  it("when the token's exp has passed by the 5 s tolerance, then EXPIRED with its identity; within the tolerance it is still VALID; before nbf it is NOT_YET_VALID", async () => {
    const { accessToken } = await userToken(server, t, user, { durationSeconds: 60 });
    const exp = Number(segment(accessToken, 1)["exp"]) * 1000;
    const at = (ms: number) => createMintedTokenVerifier(optionsFor(server, t, { now: () => new Date(ms) }));
    expect((await at(exp + 4000).verify(accessToken)).valid).toBe(true);
    const expired = await at(exp + 5000).verify(accessToken);
    expect(expired).toMatchObject({ valid: false, result: VerifyResult.EXPIRED, resultName: "EXPIRED", reason: "EXPIRED", identity: { subject: user } });
    expect((await at(exp + 1000).verify(accessToken)).valid).toBe(true);
    const strict = createMintedTokenVerifier(optionsFor(server, t, { now: () => new Date(exp), clockToleranceSeconds: 0 }));
    expect((await strict.verify(accessToken)).resultName).toBe("EXPIRED");
    // keyward agrees once its own clock is past exp.
    server.clock.advance(exp + 5000 - server.clock.now().getTime());
    expect((await server.client(KeyService).verifyKey({ key: accessToken })).result).toBe(VerifyResult.EXPIRED);
    const fresh = (await userToken(server, t, user)).accessToken;
    const early = await at(Number(segment(fresh, 1)["nbf"]) * 1000 - 10_000).verify(fresh);
    expect(early).toMatchObject({ valid: false, resultName: "MALFORMED", reason: "NOT_YET_VALID" });
  });

  it("when a token claims alg none or HS256 keyed with keyward's public key (algorithm confusion), then MALFORMED ALGORITHM_NOT_ALLOWED", async () => {
    const verifier = createMintedTokenVerifier(optionsFor(server, t));
    const { accessToken } = await userToken(server, t, user);
    const header = segment(accessToken, 0);
    const payload = { ...segment(accessToken, 1), scope: "*:write" };
    const jwks = (await (await fetch(`${server.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    const publicJwk = jwks.keys.find((k) => k.kid === header["kid"])!;
    const none = compact({ ...header, alg: "none" }, payload);
    expect(await verifier.verify(none)).toMatchObject({ valid: false, resultName: "MALFORMED", reason: "ALGORITHM_NOT_ALLOWED" });
    for (const secret of [JSON.stringify(publicJwk), Buffer.from(publicJwk.x!, "base64url")]) {
      const signingInput = `${encodeSegment({ ...header, alg: "HS256" })}.${encodeSegment(payload)}`;
      const forged = `${signingInput}.${createHmac("sha256", secret).update(signingInput).digest("base64url")}`;
      const r = await verifier.verify(forged);
      expect(r).toMatchObject({ valid: false, resultName: "MALFORMED", reason: "ALGORITHM_NOT_ALLOWED" });
      expectNoToken(r, forged);
    }
  });

  it("when a token is signed by a key keyward does not publish, then UNKNOWN_KEY; checked against that key (jwks option), typ JWT, a missing claim, no kid or an aud of another tenant are refused", async () => {
    const { accessToken } = await userToken(server, t, user);
    const claims = segment(accessToken, 1) as JWTPayload;
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const sign = (payload: JWTPayload, header: Record<string, unknown>) =>
      new SignJWT(payload).setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "mine", ...header }).sign(privateKey);
    const verifier = createMintedTokenVerifier(optionsFor(server, t));
    expect(await verifier.verify(await sign(claims, { typ: "JWT" }))).toMatchObject({ valid: false, resultName: "MALFORMED", reason: "UNKNOWN_KEY" });
    // keyward's kid, my signature.
    expect((await verifier.verify(await sign(claims, { kid: decodeProtectedHeader(accessToken).kid }))).reason).toBe("INVALID_SIGNATURE");

    const mine = createMintedTokenVerifier(optionsFor(server, t, { baseUrl: undefined, jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: "mine", alg: "ES256" }] } }));
    expect((await mine.verify(await sign(claims, {}))).valid).toBe(true);
    expect((await mine.verify(await sign(claims, { typ: "JWT" }))).reason).toBe("WRONG_TYPE");
    expect((await mine.verify(await sign(claims, { kid: undefined }))).reason).toBe("UNKNOWN_KEY");
    for (const claim of ["client_id", "jti", "sub", "iat", "exp", "tenant"]) {
      const { [claim]: _dropped, ...rest } = claims;
      expect(`${claim}: ${(await mine.verify(await sign(rest, {}))).reason}`).toBe(`${claim}: MISSING_CLAIM`);
    }
    expect((await mine.verify(await sign({ ...claims, tenant: "someone-else" }, {}))).reason).toBe("INVALID_CLAIM");
    expect((await mine.verify(await sign({ ...claims, scope: 7 }, {}))).reason).toBe("INVALID_CLAIM");
  });

  it("when a forged token names its own key in the header (jwk, jku, x5u, x5c) with keyward's kid, or a crit extension, then only the keys keyward publishes count: INVALID_SIGNATURE / MALFORMED, nothing fetched but keyward's JWKS", async () => {
    const { accessToken } = await userToken(server, t, user);
    const claims = { ...(segment(accessToken, 1) as JWTPayload), scope: "*:write" };
    const kid = decodeProtectedHeader(accessToken).kid ?? "";
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const attackerJwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256" };
    const counting = countingFetch();
    const verifier = createMintedTokenVerifier(optionsFor(server, t, { fetch: counting.fetch }));
    const sign = (header: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid, ...header }).sign(privateKey);
    const attacker = "http://127.0.0.1:1/jwks.json";
    for (const header of [{ jwk: attacker }, { jwk: attackerJwk }, { jku: attacker }, { x5u: attacker }, { x5c: ["AAAA"] }]) {
      const r = await verifier.verify(await sign(header as Record<string, unknown>));
      expect([Object.keys(header)[0], r.valid, r.reason]).toEqual([Object.keys(header)[0], false, "INVALID_SIGNATURE"]);
    }
    // A critical extension the verifier does not know: refused whatever the signature.
    // (jose will not sign one: signed here with WebCrypto, ES256's raw r||s.)
    const signingInput = `${encodeSegment({ alg: "ES256", typ: "at+jwt", kid, crit: ["kw-ext"], "kw-ext": true })}.${encodeSegment(claims)}`;
    const signature = Buffer.from(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, Buffer.from(signingInput))).toString("base64url");
    // Checked against the signing key itself (jwks option), so only the crit header can refuse it.
    const trusting = createMintedTokenVerifier(optionsFor(server, t, { baseUrl: undefined, jwks: { keys: [attackerJwk] } }));
    expect((await trusting.verify(await sign({}))).valid).toBe(true);
    const crit = await trusting.verify(`${signingInput}.${signature}`);
    expect([crit.valid, crit.resultName, crit.reason]).toEqual([false, "MALFORMED", "MALFORMED"]);
    expect(new Set(counting.urls)).toEqual(new Set([`${server.url}/.well-known/jwks.json`]));
  });

  it("when the JWKS endpoint answers garbage, an empty set or an oversized body (declared or streamed), then verify fails closed (Unavailable or UNKNOWN_KEY), never VALID, and reads no more than 256 KiB", async () => {
    const { accessToken } = await userToken(server, t, user);
    const bodies: Record<string, string> = {
      "/garbage": "<html>not json</html>",
      "/empty": JSON.stringify({ keys: [] }),
      "/notkeys": JSON.stringify({ keys: "nope" }),
    };
    let streamedBytes = 0;
    const jwksServer: Server = createServer((req, res) => {
      const path = (req.url ?? "").replace("/.well-known/jwks.json", "");
      res.on("error", () => {});
      if (path === "/huge") {
        // 64 MiB declared up front.
        res.writeHead(200, { "content-type": "application/json", "content-length": String(64 << 20) });
        res.end(Buffer.alloc(64 << 20, 0x20));
        return;
      }
      if (path === "/streamed") {
        // No length: 1 MiB chunks, up to 64 MiB, while the client reads.
        res.writeHead(200, { "content-type": "application/json" });
        const chunk = Buffer.alloc(1 << 20, 0x20);
        const more = (): void => {
          while (streamedBytes < 64 << 20 && !res.destroyed) {
            streamedBytes += chunk.length;
            if (!res.write(chunk)) return void res.once("drain", more);
          }
          res.end();
        };
        more();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(bodies[path] ?? "");
    });
    await new Promise<void>((r) => jwksServer.listen(0, "127.0.0.1", r));
    const { port } = jwksServer.address() as { port: number };
    const outcomeAt = (path: string) =>
      createMintedTokenVerifier(optionsFor(server, t, { baseUrl: `http://127.0.0.1:${port}${path}` }))
        .verify(accessToken)
        .then((r) => r.reason as string, (e: unknown) => (e instanceof ConnectError ? `${Code[e.code]} ${e.rawMessage}` : String(e)));
    try {
      expect(await outcomeAt("/garbage")).toMatch(/^Unavailable /);
      expect(await outcomeAt("/notkeys")).toMatch(/^Unavailable /);
      expect(await outcomeAt("/empty")).toBe("UNKNOWN_KEY");
      expect(await outcomeAt("/huge")).toMatch(/^Unavailable .*\(JWKS_TOO_LARGE\)/);
      expect(await outcomeAt("/streamed")).toMatch(/^Unavailable .*\(JWKS_TOO_LARGE\)/);
      // The client stopped reading soon after the cap (socket buffers aside), not at 64 MiB.
      expect(streamedBytes).toBeLessThan(16 << 20);
      expect(MAX_JWKS_BYTES).toBe(256 * 1024);
    } finally {
      jwksServer.closeAllConnections();
      await new Promise((r) => jwksServer.close(r));
    }
  });

  it("when the input is not a token at all, then MALFORMED without fetching anything", async () => {
    const counting = countingFetch();
    const verifier = createMintedTokenVerifier(optionsFor(server, t, { fetch: counting.fetch }));
    for (const bad of ["", "kw_0123456789abcdef_secret", "a.b", "a.b.c.d", "x".repeat(9000), `${"a".repeat(5000)}.${"b".repeat(5000)}.c`]) {
      expect((await verifier.verify(bad)).resultName).toBe("MALFORMED");
    }
    expect(counting.urls).toEqual([]);
  });

  it("when options lack an issuer, an audience or a key source, then creating the verifier throws", () => {
    expect(() => createMintedTokenVerifier({ baseUrl: server.url, issuer: "", audience: "a" })).toThrow(/issuer/);
    expect(() => createMintedTokenVerifier({ baseUrl: server.url, issuer: "i", audience: [] })).toThrow(/audience/);
    expect(() => createMintedTokenVerifier({ issuer: "i", audience: "a" })).toThrow(/baseUrl/);
    expect(() => createMintedTokenVerifier({ baseUrl: server.url, issuer: "i", audience: "a", clockToleranceSeconds: 3600 })).toThrow(/clockToleranceSeconds/);
  });

  it("when the signing key is rotated, then a token of the new key verifies once the JWKS is refetched (one fetch per 1 s cooldown, even under a flood of made-up kids) and old tokens still verify", async () => {
    const counting = countingFetch();
    const verifier = createMintedTokenVerifier(optionsFor(server, t, { fetch: counting.fetch }));
    const before = (await userToken(server, t, user, { durationSeconds: 3600 })).accessToken;
    expect((await verifier.verify(before)).valid).toBe(true);
    expect(counting.urls).toHaveLength(1);

    const { kid } = await server.client(TokenExchangeService).rotateSigningKey({}, withKey(t.adminKey));
    const after = (await userToken(server, t, user)).accessToken;
    expect(decodeProtectedHeader(after).kid).toBe(kid);
    const { privateKey } = await generateKeyPair("ES256");
    for (let i = 0; i < 20; i++) {
      const forged = await new SignJWT(segment(before, 1)).setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: randomUUID() }).sign(privateKey);
      expect((await verifier.verify(forged)).reason).toBe("UNKNOWN_KEY");
    }
    // Within a second of the last fetch an unknown kid is refused without fetching; then it is fetched once.
    const started = Date.now();
    let r = await verifier.verify(after);
    for (let i = 0; i < 100 && !r.valid && Date.now() - started < 3000; i++) {
      expect(r.reason).toBe("UNKNOWN_KEY");
      await new Promise((resolve) => setTimeout(resolve, 50));
      r = await verifier.verify(after);
    }
    expect(r).toMatchObject({ valid: true, resultName: "VALID" });
    expect(counting.urls.length).toBeGreaterThanOrEqual(2);
    expect(counting.urls.length).toBeLessThanOrEqual(3);
    expect((await verifier.verify(before)).valid).toBe(true);
  });

  it("when it guards a node:http endpoint (keywardMiddleware), then a valid token passes with its identity, a tampered one is 401 and one lacking the permission 403", async () => {
    const verifier = createMintedTokenVerifier(optionsFor(server, t));
    const guard = keywardMiddleware({ verifier, permissions: ["keys:read"] });
    const http: Server = createServer((req, res) => {
      void guard(req, res).then((ok) => {
        if (ok) res.end(JSON.stringify((req as typeof req & { keyward?: { subject?: string } }).keyward?.subject));
      });
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(http.address() as { port: number }).port}/`;
      const call = (token: string) => fetch(url, { headers: { authorization: `Bearer ${token}` } });
      const { accessToken } = await userToken(server, t, user);
      const ok = await call(accessToken);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toBe(user);
      expect((await call(`${accessToken.slice(0, -4)}AAAA`)).status).toBe(401);
      const reader = await createUser(server, t, ["harden_runner:read"]);
      expect((await call((await userToken(server, t, reader)).accessToken)).status).toBe(403);
    } finally {
      await new Promise((resolve) => http.close(resolve));
    }
  });
});

describe("verifyMintedToken when keyward is gone", () => {
  let other: TestServer | undefined;
  afterAll(async () => {
    await other?.stop();
  });

  it("when keyward stops after the JWKS was fetched, then tokens still verify offline; with no JWKS cached (or a stale one) it fails closed with Unavailable, never naming the token", async () => {
    other = await startTestServer();
    const tenant = await createTestTenant(other, "mt");
    const principal = await createUser(other, tenant, ["keys:read"]);
    const { accessToken } = await userToken(other, tenant, principal);
    const verifier = createMintedTokenVerifier(optionsFor(other, tenant));
    const stale = createMintedTokenVerifier(optionsFor(other, tenant, { jwksCacheMaxAgeMs: 0 }));
    const callsBefore = verifyKeyCalls(other);
    expect((await verifier.verify(accessToken)).valid).toBe(true);
    expect((await stale.verify(accessToken)).valid).toBe(true);
    expect(verifyKeyCalls(other)).toBe(callsBefore);
    const { url, clock, config } = other;
    await other.stop();
    other = undefined;

    const offline = await verifier.verify(accessToken, { permissions: ["keys:read"] });
    expect(offline).toMatchObject({ valid: true, resultName: "VALID", identity: { subject: principal } });

    const options: MintedTokenVerifierOptions = { baseUrl: url, issuer: config.tokenIssuer, audience: `${tenant.slug}.${config.audienceDomain}`, now: () => clock.now() };
    for (const attempt of [() => stale.verify(accessToken), () => createMintedTokenVerifier(options).verify(accessToken), () => verifyMintedToken(accessToken, options)]) {
      const err = await attempt().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      expect((err as ConnectError).message).toMatch(/JWKS is unavailable \(ECONNREFUSED\)/);
      expect((err as ConnectError).message).not.toContain(accessToken.split(".")[2]);
      expect(JSON.stringify(err)).not.toContain(accessToken.split(".")[2]);
    }
  });
});
