// Breaking OIDC federation by confusing one token for another (issue 11): JWT-shaped garbage
// and look-alikes in VerifyKey (always a MALFORMED verdict, never an RPC error), the CI
// issuer's ID token presented where keyward's own token is expected, keyward's token
// presented as the ID token of an exchange, oversized bearer headers, and a flood of unknown
// `kid`s that must not slow down anyone else.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { createTestTenant, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { attempt, reasonOf, uniq } from "../rpc.ts";
import type { LocalIssuer } from "../oidc/local-issuer.ts";
import { startExchangeWorld, type ExchangeWorld } from "../tokens/exchange-support.ts";
import { createUser, encodeSegment, segment, userToken } from "../tokens/helpers.ts";

let w: ExchangeWorld;
let issuer: LocalIssuer;
let server: TestServer;
let t: TestTenant;

beforeAll(async () => {
  w = await startExchangeWorld(["ci"]);
  server = w.server;
  issuer = w.issuers["ci"]!;
  t = await createTestTenant(server, "conf");
});
afterAll(async () => {
  await w?.stop();
});

const audience = () => `${t.slug}.${server.config.audienceDomain}`;

describe("VerifyKey with JWT-shaped input", () => {
  test("when VerifyKey gets JWT-shaped garbage and look-alikes, then each is a MALFORMED verdict, never an RPC error", async () => {
    const real = (await userToken(server, t, await createUser(server, t, ["keys:read"]))).accessToken;
    const [h, p, s] = real.split(".") as [string, string, string];
    const kid = segment(real, 0)["kid"];
    const garbage = [
      "a.b.c",
      "..",
      "a..",
      `${h}.${p}.`,
      `${h}..${s}`,
      `${encodeSegment({ alg: "none", typ: "at+jwt", kid })}.${p}.`,
      `${encodeSegment({ alg: "HS256", typ: "at+jwt", kid })}.${p}.${s}`,
      `${encodeSegment({ alg: "ES256", typ: "JWT", kid })}.${p}.${s}`,
      `${encodeSegment({ alg: "ES256", typ: "at+jwt", kid: { toString: "x" } })}.${p}.${s}`,
      `${encodeSegment({ alg: "ES256", typ: "at+jwt", kid, crit: ["b64"], b64: false })}.${p}.${s}`,
      `${encodeSegment({ alg: "ES256", typ: "at+jwt", kid, jku: "http://127.0.0.1:1/jwks" })}.${p}.${s}`,
      `${encodeSegment([1, 2, 3])}.${p}.${s}`,
      `${encodeSegment("string")}.${encodeSegment(null)}.${s}`,
      `${h}.${encodeSegment({ ...segment(real, 1), tenant: "someone-else" })}.${s}`,
      `${h}.${encodeSegment({ ...segment(real, 1), exp: 9999999999 })}.${s}`,
      `${h}.${p}.${s.slice(0, -2)}`,
      `${h}.${"A".repeat(9000)}.${s}`,
      `${Buffer.from("\u0000\u0001\u0002").toString("base64url")}.${p}.${s}`,
      // API-key-shaped strings with dots, and a real token wrapped in noise.
      `${server.config.keyPrefix}_live_abc.def.ghi`,
      `${server.config.keyPrefix}.${p}.${s}`,
      ` ${real}`,
      `${real}.`,
      `${real}\n`,
    ];
    const verdicts = await Promise.all(garbage.map(async (key) => {
      const res = await attempt(server.client(KeyService).verifyKey({ key }).then((r) => {
        if (r.result !== VerifyResult.MALFORMED && r.result !== VerifyResult.NOT_FOUND) throw new Error(`verdict ${String(r.result)}`);
      }));
      return res === undefined ? "ok" : `${key.slice(0, 60)} → ${Code[res.code]} ${res.message}`;
    }));
    expect(verdicts.filter((v) => v !== "ok")).toEqual([]);
    expect(server.logs.filter((l) => /"level":(50|60)/.test(l))).toEqual([]);
  });

  test("when the CI issuer's genuine ID token is given to VerifyKey or used as a bearer credential, then it is MALFORMED and Unauthenticated: only keyward's own tokens are credentials", async () => {
    const idToken = await issuer.token({}, { audience: audience() });
    expect((await server.client(KeyService).verifyKey({ key: idToken })).result).toBe(VerifyResult.MALFORMED);
    const err = await attempt(server.client(KeyService).listKeys({ parent: `tenants/${t.slug}` }, withKey(idToken)));
    expect(err?.code).toBe(Code.Unauthenticated);
  });

  test("when a flood of tokens with unknown kids reaches VerifyKey, then an API key still verifies at once", async () => {
    const forged = Array.from({ length: 40 }, () => `${encodeSegment({ alg: "ES256", typ: "at+jwt", kid: uniq("kid") })}.${encodeSegment({ sub: "x" })}.${"A".repeat(86)}`);
    const flood = Promise.all(forged.map((key) => server.client(KeyService).verifyKey({ key })));
    const started = performance.now();
    expect((await server.client(KeyService).verifyKey({ key: t.adminKey })).result).toBe(VerifyResult.VALID);
    expect(performance.now() - started).toBeLessThan(500);
    expect((await flood).every((r) => r.result === VerifyResult.MALFORMED)).toBe(true);
  });
});

describe("keyward's own token as the subject of an exchange", () => {
  test("when a keyward-minted token is presented as ExchangeToken's subject_token, then it is refused Unauthenticated ISSUER_NOT_TRUSTED and the error does not echo it", async () => {
    await server.client(PolicyService).createPolicy(
      { parent: `tenants/${t.slug}`, policy: { displayName: uniq("any"), claims: { repositoryOwner: "acme" }, permissions: ["keys:read"] } },
      withKey(t.adminKey),
    );
    const minted = (await userToken(server, t, await createUser(server, t, ["keys:read"]))).accessToken;
    const err = await attempt(server.client(TokenExchangeService).exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: minted }));
    expect(err?.code).toBe(Code.Unauthenticated);
    expect(reasonOf(err)).toBe("ISSUER_NOT_TRUSTED");
    expect(err?.message).not.toContain(minted.split(".")[2]!);
  });
});

describe("bearer headers", () => {
  test("when the bearer credential is 12 kB or 100 kB, then the call is refused cleanly (401 or 431), never an internal error, and the server keeps serving", async () => {
    for (const size of [12 * 1024, 100 * 1024]) {
      const res = await fetch(`${server.url}/keyward.v1.KeyService/ListKeys`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${"eyJ".padEnd(size, "A")}` },
        body: JSON.stringify({ parent: `tenants/${t.slug}` }),
      }).catch((e: unknown) => e as Error);
      if (res instanceof Error) continue; // the socket was closed on the oversized header: also clean
      expect([401, 431]).toContain(res.status);
    }
    expect((await server.client(KeyService).verifyKey({ key: t.adminKey })).result).toBe(VerifyResult.VALID);
  });
});

describe("anonymous refusals in a tenant's audit log", () => {
  // ExchangeToken needs no credential: refusals of unverifiable tokens are folded per tenant,
  // reason and minute (refusal-fold.ts), so a flood cannot fill the append-only audit log.
  test("when 40 forged tokens are exchanged anonymously at a tenant, then its audit log grows by one folded event counting 40", async () => {
    const tenant = await createTestTenant(server, "flood");
    const forged = await Promise.all(Array.from({ length: 40 }, (_, i) => issuer.token({ repository: `spoof/${i}` }, { audience: "someone-else.example" })));
    await Promise.all(forged.map((subjectToken) => attempt(server.client(TokenExchangeService).exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken }))));
    await server.flushRefusals();
    const { events } = await server.client(AuditService).listAuditEvents({ parent: `tenants/${tenant.slug}`, action: "token.exchange", pageSize: 100 }, withKey(tenant.adminKey));
    expect(events.map((e) => [e.credential, e.reason, e.details["count"]])).toEqual([["id-token:unverified", "AUDIENCE_MISMATCH", "40"]]);
  });
});
