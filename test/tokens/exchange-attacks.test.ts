// ExchangeToken against the bad inputs and attacks of issue 11, through the real server
// with a real client: each is refused with its code and stable reason, audited as a denied
// `token.exchange` with the token's SHA-256, and mints nothing. The local issuers share the
// server's test clock, so times are set through `iat`/`nbf`, never by sleeping.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { attempt, reasonOf, rpcError } from "../rpc.ts";
import { startLocalIssuer, tamper, truncate, type LocalIssuer } from "../oidc/local-issuer.ts";
import { connectUnary } from "../server/raw-http.ts";
import { audienceOf, deployClaims, exchangeEvents, expectRefused, mintedCount, newPolicy, startExchangeWorld, type ExchangeWorld } from "./exchange-support.ts";
import { sql } from "./helpers.ts";

let w: ExchangeWorld;
let idp: LocalIssuer;
let t: TestTenant;

beforeAll(async () => {
  w = await startExchangeWorld(["main", "down", "down503", "slow", "late", "huge", "hugeDeclared"]);
  idp = w.issuers["main"]!;
  t = await createTestTenant(w.server, "xatk");
  await newPolicy(w, t, deployClaims);
});
afterAll(async () => {
  await w?.stop();
});

/** Seconds since the epoch on the shared clock. */
function nowSeconds(): number {
  return Math.floor(w.clock.now().getTime() / 1000);
}

/** A token of the main issuer for tenant `t` (or `tenant`). */
function tokenFor(overrides: Record<string, unknown> = {}, opts: Parameters<LocalIssuer["token"]>[1] = {}, tenant = t): Promise<string> {
  return idp.token(overrides, { audience: audienceOf(w, tenant), ...opts });
}

describe("time", () => {
  test("when the token expired (beyond the leeway), then Unauthenticated TOKEN_EXPIRED, audited", async () => {
    await expectRefused(w, t, await tokenFor({}, { iat: nowSeconds() - 400 }), { code: Code.Unauthenticated, reason: "TOKEN_EXPIRED" });
  });

  test("when the token expired within the 60 s leeway, then it is still accepted", async () => {
    const tenant = await createTestTenant(w.server, "xatk-leeway");
    await newPolicy(w, tenant, deployClaims);
    const granted = await w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: await tokenFor({}, { iat: nowSeconds() - 330 }, tenant) });
    expect(granted.accessToken).not.toBe("");
  });

  test("when the token is not yet valid (nbf in the future beyond the leeway), then Unauthenticated TOKEN_NOT_YET_VALID", async () => {
    await expectRefused(w, t, await tokenFor({ nbf: nowSeconds() + 120 }), { code: Code.Unauthenticated, reason: "TOKEN_NOT_YET_VALID" });
  });

  test("when the token was issued in the future (iat beyond the leeway), then Unauthenticated TOKEN_NOT_YET_VALID", async () => {
    await expectRefused(w, t, await tokenFor({ nbf: nowSeconds() - 10 }, { iat: nowSeconds() + 300 }), { code: Code.Unauthenticated, reason: "TOKEN_NOT_YET_VALID" });
  });

  test("when the token is unexpired but was issued more than 10 minutes ago, then Unauthenticated TOKEN_TOO_OLD", async () => {
    await expectRefused(w, t, await tokenFor({}, { iat: nowSeconds() - 700, lifetimeSeconds: 3600 }), { code: Code.Unauthenticated, reason: "TOKEN_TOO_OLD" });
  });
});

describe("issuer", () => {
  test("when the token names an issuer that is not configured, then Unauthenticated ISSUER_NOT_TRUSTED with the issuer in metadata, and no issuer is asked", async () => {
    const before = { ...idp.requests };
    const token = await tokenFor({ iss: "https://token.actions.githubusercontent.com" });
    await expectRefused(w, t, token, { code: Code.Unauthenticated, reason: "ISSUER_NOT_TRUSTED", metadata: { issuer: "https://token.actions.githubusercontent.com" } });
    expect(idp.requests).toEqual(before);
  });

  test("when another issuer (running, not in the allowlist) signs the token, then ISSUER_NOT_TRUSTED and that issuer gets no request at all", async () => {
    const stranger = await startLocalIssuer({ clock: w.clock });
    try {
      const token = await stranger.token({}, { audience: audienceOf(w, t) });
      await expectRefused(w, t, token, { code: Code.Unauthenticated, reason: "ISSUER_NOT_TRUSTED", metadata: { issuer: stranger.issuer } });
      expect(stranger.requests).toEqual({ discovery: 0, jwks: 0, actions: 0, other: 0 });
    } finally {
      await stranger.close();
    }
  });

  test("when a token of another issuer claims the trusted issuer's iss, then Unauthenticated UNKNOWN_SIGNING_KEY (its kid is not the trusted issuer's)", async () => {
    const stranger = await startLocalIssuer({ clock: w.clock });
    try {
      const token = await stranger.token({ iss: idp.issuer }, { audience: audienceOf(w, t) });
      await expectRefused(w, t, token, { code: Code.Unauthenticated, reason: "UNKNOWN_SIGNING_KEY", metadata: { issuer: idp.issuer } });
      expect(stranger.requests).toEqual({ discovery: 0, jwks: 0, actions: 0, other: 0 });
    } finally {
      await stranger.close();
    }
  });
});

describe("audience", () => {
  test("when the token's audience is not the tenant's, then Unauthenticated AUDIENCE_MISMATCH whose message names <tenant>.<domain>", async () => {
    const { err } = await expectRefused(w, t, await tokenFor({}, { audience: "sts.amazonaws.com" }), {
      code: Code.Unauthenticated, reason: "AUDIENCE_MISMATCH", metadata: { expected: audienceOf(w, t) },
    });
    expect(err.rawMessage).toContain(`"${audienceOf(w, t)}"`);
    expect(err.rawMessage).toMatch(/audience mismatch/i);
  });

  test("when a token for tenant A is presented at tenant B, then B refuses it with AUDIENCE_MISMATCH naming B's audience, audited in B, and A can still exchange it", async () => {
    const a = await createTestTenant(w.server, "xatk-a");
    const b = await createTestTenant(w.server, "xatk-b");
    await newPolicy(w, a, deployClaims);
    await newPolicy(w, b, deployClaims);
    const forA = await tokenFor({}, {}, a);
    const { err } = await expectRefused(w, b, forA, { code: Code.Unauthenticated, reason: "AUDIENCE_MISMATCH", metadata: { expected: audienceOf(w, b) } });
    expect(err.rawMessage).toContain(audienceOf(w, b));
    expect(await exchangeEvents(w, a, forA)).toEqual([]);
    // Refused at B, not spent: A (its audience) still takes it.
    const granted = await w.exchange.exchangeToken({ parent: `tenants/${a.slug}`, subjectToken: forA });
    expect((await w.keys.verifyKey({ key: granted.accessToken })).tenant).toBe(a.slug);
  });

  test("when the token carries two audiences, the tenant's among them, then AUDIENCE_MISMATCH", async () => {
    await expectRefused(w, t, await tokenFor({}, { audience: [audienceOf(w, t), "sts.amazonaws.com"] }), { code: Code.Unauthenticated, reason: "AUDIENCE_MISMATCH" });
  });
});

describe("signature and shape", () => {
  test("when the token is alg none, then Unauthenticated ALGORITHM_NOT_ALLOWED with alg=none", async () => {
    await expectRefused(w, t, idp.algNone({}, { audience: audienceOf(w, t) }), { code: Code.Unauthenticated, reason: "ALGORITHM_NOT_ALLOWED", metadata: { alg: "none" } });
  });

  test("when the token is HS256 keyed with the issuer's public key (PEM or JWK), then Unauthenticated ALGORITHM_NOT_ALLOWED", async () => {
    for (const secret of ["pem", "jwk"] as const) {
      const token = await idp.hs256WithPublicKey({}, { audience: audienceOf(w, t), secret });
      await expectRefused(w, t, token, { code: Code.Unauthenticated, reason: "ALGORITHM_NOT_ALLOWED", metadata: { alg: "HS256" } });
    }
  });

  test("when the token's kid is unknown to the issuer, then Unauthenticated UNKNOWN_SIGNING_KEY naming the kid; a flood of them costs the issuer at most one refetch", async () => {
    await expectRefused(w, t, await tokenFor({}, { key: "stranger" }), { code: Code.Unauthenticated, reason: "UNKNOWN_SIGNING_KEY", metadata: { kid: "stranger" } });
    const before = idp.requests.jwks;
    for (let i = 0; i < 5; i++) {
      const err = await rpcError(w.exchange.exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: await tokenFor({}, { key: "stranger", header: { kid: `made-up-${i}` } }) }));
      expect(reasonOf(err)).toBe("UNKNOWN_SIGNING_KEY");
    }
    expect(idp.requests.jwks - before).toBeLessThanOrEqual(1);
  });

  test("when the token has no kid, then Unauthenticated MISSING_KEY_ID", async () => {
    await expectRefused(w, t, await tokenFor({}, { header: { kid: undefined } }), { code: Code.Unauthenticated, reason: "MISSING_KEY_ID" });
  });

  test("when the token names its own key (jku, jwk, x5u), then Unauthenticated HEADER_NOT_ALLOWED", async () => {
    await expectRefused(w, t, await tokenFor({}, { header: { jku: `${idp.issuer}/.well-known/jwks` } }), { code: Code.Unauthenticated, reason: "HEADER_NOT_ALLOWED", metadata: { header: "jku" } });
    await expectRefused(w, t, await tokenFor({}, { header: { jwk: await idp.publicJwk() } }), { code: Code.Unauthenticated, reason: "HEADER_NOT_ALLOWED", metadata: { header: "jwk" } });
  });

  test("when the payload is tampered (repository changed, signature kept), then Unauthenticated INVALID_SIGNATURE; the audit marks the claims unverified", async () => {
    const tampered = tamper(await tokenFor(), { repository: "acme/infra-evil" });
    await expectRefused(w, t, tampered, { code: Code.Unauthenticated, reason: "INVALID_SIGNATURE", details: { claimsVerified: "false", repository: "acme/infra-evil" } });
  });

  test("when the token is truncated (half of it, or its signature cut short), then Unauthenticated MALFORMED_TOKEN or INVALID_SIGNATURE", async () => {
    const token = await tokenFor();
    await expectRefused(w, t, truncate(token), { code: Code.Unauthenticated, reason: "MALFORMED_TOKEN" });
    await expectRefused(w, t, truncate(token, token.length - 10), { code: Code.Unauthenticated, reason: "INVALID_SIGNATURE" });
  });

  test("when the token is 100 kB of garbage, then Unauthenticated MALFORMED_TOKEN (not ResourceExhausted: below the request limit), audited by hash only", async () => {
    const garbage = Buffer.alloc(100 * 1024, "x7.").toString("utf8");
    const { event } = await expectRefused(w, t, garbage, { code: Code.Unauthenticated, reason: "MALFORMED_TOKEN", details: { claimsVerified: "false", repository: "", subject: "" } });
    expect(JSON.stringify(event?.details).length).toBeLessThan(1024);
  });

  test("when the token lacks jti, then Unauthenticated MISSING_CLAIM with claim=jti", async () => {
    await expectRefused(w, t, await tokenFor({ jti: undefined }), { code: Code.Unauthenticated, reason: "MISSING_CLAIM", metadata: { claim: "jti" } });
  });

  test("when the token lacks sub, then Unauthenticated MISSING_CLAIM with claim=sub", async () => {
    await expectRefused(w, t, await tokenFor({ sub: undefined }), { code: Code.Unauthenticated, reason: "MISSING_CLAIM", metadata: { claim: "sub" } });
  });
});

describe("replay", () => {
  test("when the same ID token is exchanged again, then Unauthenticated TOKEN_REPLAYED, audited, and the first token still verifies", async () => {
    const token = await tokenFor();
    const granted = await w.exchange.exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: token });
    await expectRefused(w, t, token, { code: Code.Unauthenticated, reason: "TOKEN_REPLAYED", details: { claimsVerified: "true" } });
    expect((await w.keys.verifyKey({ key: granted.accessToken })).result).toBe(VerifyResult.VALID);
  });

  test("when 10 exchanges of one token race, then exactly one succeeds and the other 9 are TOKEN_REPLAYED, audited as one folded event counting 9", async () => {
    const tenant = await createTestTenant(w.server, "xatk-race");
    await newPolicy(w, tenant, deployClaims);
    const token = await tokenFor({}, {}, tenant);
    const results = await Promise.all(Array.from({ length: 10 }, () => attempt(w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: token }))));
    const failures = results.filter((r) => r !== undefined);
    expect(failures.length).toBe(9);
    expect(failures.map((e) => `${Code[e.code]} ${reasonOf(e)}`)).toEqual(Array(9).fill("Unauthenticated TOKEN_REPLAYED"));
    expect(await mintedCount(w, tenant)).toBe(1);
    await w.server.flushRefusals();
    const events = await exchangeEvents(w, tenant, token);
    const byOutcome = (e: (typeof events)[number]) => [e.outcome === AuditOutcome.SUCCESS ? "SUCCESS" : "DENIED", e.reason, e.details["count"] ?? ""];
    expect(events.map(byOutcome).sort()).toEqual([["DENIED", "TOKEN_REPLAYED", "9"], ["SUCCESS", "", ""]]);
  });

  test("when 30 different forged tokens flood one tenant, then the audit log gains one folded INVALID_SIGNATURE event counting 30, not 30 rows", async () => {
    const tenant = await createTestTenant(w.server, "xatk-flood");
    const forged = await Promise.all(Array.from({ length: 30 }, async (_, i) => tamper(await tokenFor({}, {}, tenant), { run_id: String(1000 + i) })));
    for (const token of forged) {
      const err = await rpcError(w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: token }));
      expect(reasonOf(err)).toBe("INVALID_SIGNATURE");
    }
    await w.server.flushRefusals();
    const { events } = await w.audit.listAuditEvents({ parent: `tenants/${tenant.slug}`, action: "token.exchange", pageSize: 100 }, withKey(tenant.adminKey));
    expect(events.map((e) => [e.credential, e.reason, e.details["count"]])).toEqual([["id-token:unverified", "INVALID_SIGNATURE", "30"]]);
    expect(events[0]!.details["claimsVerified"]).toBe("false");
  });

  test("when a token is refused for no matching policy, then it is not spent: once a policy matches, the same token exchanges", async () => {
    const tenant = await createTestTenant(w.server, "xatk-unspent");
    const token = await tokenFor({}, {}, tenant);
    await expectRefused(w, tenant, token, { code: Code.PermissionDenied, reason: "NO_MATCHING_POLICY" });
    await newPolicy(w, tenant, deployClaims);
    expect((await w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: token })).accessToken).not.toBe("");
  });
});

describe("claims an attacker controls", () => {
  test("when a pull_request_target token meets a policy that does not name the event, then CLAIM_MISMATCH claim=event_name (named) or NO_MATCHING_POLICY; a policy naming the event accepts it", async () => {
    const tenant = await createTestTenant(w.server, "xatk-prt");
    const plain = await newPolicy(w, tenant, deployClaims);
    const prt = (extra: Record<string, unknown> = {}) => tokenFor({ event_name: "pull_request_target", ...extra }, {}, tenant);
    const rule = "refused unless the policy names that event in event_name";
    const named_ = await expectRefused(w, tenant, await prt(), { code: Code.PermissionDenied, reason: "CLAIM_MISMATCH", metadata: { claim: "event_name" }, details: { failedClaim: "event_name", actual: "pull_request_target" } }, { policy: plain.name });
    expect(named_.err.rawMessage).toContain(`tokens from pull_request_target events are ${rule}`);
    const unnamed = await expectRefused(w, tenant, await prt(), { code: Code.PermissionDenied, reason: "NO_MATCHING_POLICY" });
    expect(unnamed.err.rawMessage).toContain(rule);
    // workflow_run likewise.
    const run = await expectRefused(w, tenant, await tokenFor({ event_name: "workflow_run" }, {}, tenant), { code: Code.PermissionDenied, reason: "NO_MATCHING_POLICY" });
    expect(run.err.rawMessage).toContain(`tokens from workflow_run events are ${rule}`);

    const named = await newPolicy(w, tenant, { ...deployClaims, eventName: "pull_request_target" });
    const granted = await w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: await prt() });
    expect(granted.policy).toBe(named.name);
  });

  test("when acme/infra-evil meets a policy for acme/infra, then CLAIM_MISMATCH claim=repository (named) or NO_MATCHING_POLICY; the message never shows acme/infra, the audit does", async () => {
    const tenant = await createTestTenant(w.server, "xatk-prefix");
    const infra = await newPolicy(w, tenant, { repositoryOwner: "acme", repository: "acme/infra" });
    const evil = () => tokenFor({ repository: "acme/infra-evil", sub: "repo:acme/infra-evil:ref:refs/heads/main" }, {}, tenant);

    const named = await expectRefused(w, tenant, await evil(), {
      code: Code.PermissionDenied, reason: "CLAIM_MISMATCH", metadata: { claim: "repository" },
      details: { policy: infra.name, failedClaim: "repository", expected: "acme/infra", actual: "acme/infra-evil", claimsVerified: "true" },
    }, { policy: infra.name });
    expect(named.err.rawMessage).not.toContain("acme/infra");
    expect(JSON.stringify(named.err.findDetails(ErrorInfoSchema))).not.toContain("acme/infra");
    expect(named.event?.resource).toBe(infra.name);

    const unnamed = await expectRefused(w, tenant, await evil(), { code: Code.PermissionDenied, reason: "NO_MATCHING_POLICY", details: { policiesChecked: "1" } });
    expect(unnamed.err.rawMessage).not.toContain("acme/infra");
    expect(unnamed.event?.details["failures"]).toContain('"acme/infra"');
    expect(JSON.stringify(unnamed.err.findDetails(ErrorInfoSchema))).not.toContain("acme/infra");
  });
});

describe("policy deleted between exchange and verify", () => {
  test("when the policy is deleted after the exchange, then VerifyKey answers REVOKED for its token", async () => {
    const tenant = await createTestTenant(w.server, "xatk-del");
    const policy = await newPolicy(w, tenant, deployClaims);
    const granted = await w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: await tokenFor({}, {}, tenant) });
    expect((await w.keys.verifyKey({ key: granted.accessToken })).result).toBe(VerifyResult.VALID);
    await w.policies.deletePolicy({ name: policy.name, etag: policy.etag }, withKey(tenant.adminKey));
    expect((await w.keys.verifyKey({ key: granted.accessToken })).result).toBe(VerifyResult.REVOKED);
    // And a new exchange finds no policy.
    await expectRefused(w, tenant, await tokenFor({}, {}, tenant), { code: Code.PermissionDenied, reason: "NO_MATCHING_POLICY" });
  });
});

describe("the issuer's JWKS endpoint misbehaves", () => {
  /** A tenant with a deploy policy and a token of `issuer` for it. */
  async function tenantAndToken(name: string): Promise<{ tenant: TestTenant; token: string }> {
    const tenant = await createTestTenant(w.server, `xatk-${name.toLowerCase()}`);
    await newPolicy(w, tenant, deployClaims);
    return { tenant, token: await w.issuers[name]!.token({}, { audience: audienceOf(w, tenant) }) };
  }

  /** VerifyKey and ListKeys of `tenant` answer (an unrelated outage must not stop them). */
  async function othersStillAnswer(tenant: TestTenant): Promise<void> {
    expect((await w.keys.verifyKey({ key: tenant.adminKey })).result).toBe(VerifyResult.VALID);
    expect((await w.keys.listKeys({ parent: `tenants/${tenant.slug}` }, withKey(tenant.adminKey))).keys.length).toBeGreaterThan(0);
  }

  test("when the issuer drops every connection, then Unavailable ISSUER_UNAVAILABLE naming the issuer, audited, nothing spent; VerifyKey and ListKeys keep answering; once it is back (after the cool-down) the same token exchanges", async () => {
    const down = w.issuers["down"]!;
    down.setMode({ kind: "down" });
    const { tenant, token } = await tenantAndToken("down");
    const { err } = await expectRefused(w, tenant, token, { code: Code.Unavailable, reason: "ISSUER_UNAVAILABLE", metadata: { issuer: down.issuer } });
    expect(err.rawMessage).not.toContain(token.split(".")[2]!);
    await othersStillAnswer(tenant);
    // Within the cool-down the issuer is not asked again.
    const asked = down.requests.discovery;
    await expectRefused(w, tenant, token, { code: Code.Unavailable, reason: "ISSUER_UNAVAILABLE" });
    expect(down.requests.discovery).toBe(asked);

    down.setMode({ kind: "ok" });
    w.clock.advance(31_000);
    const granted = await w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: token });
    expect((await w.keys.verifyKey({ key: granted.accessToken })).result).toBe(VerifyResult.VALID);
  });

  test("when the issuer answers 503, then Unavailable ISSUER_UNAVAILABLE", async () => {
    w.issuers["down503"]!.setMode({ kind: "down", how: "503" });
    const { tenant, token } = await tenantAndToken("down503");
    await expectRefused(w, tenant, token, { code: Code.Unavailable, reason: "ISSUER_UNAVAILABLE" });
    await othersStillAnswer(tenant);
  });

  test("when the issuer is slow but within the fetch deadline, then the exchange succeeds", async () => {
    const late = w.issuers["late"]!;
    late.setMode({ kind: "slow", delayMs: 300 });
    const { tenant, token } = await tenantAndToken("late");
    const granted = await w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: token });
    expect(granted.accessToken).not.toBe("");
  });

  test("when the issuer never answers, then Unavailable ISSUER_UNAVAILABLE within the 5 s fetch deadline (plus margin), and VerifyKey and ListKeys answer at once meanwhile", async () => {
    const slow = w.issuers["slow"]!;
    slow.setMode({ kind: "slow", delayMs: 30_000 });
    const { tenant, token } = await tenantAndToken("slow");
    const started = performance.now();
    const pending = expectRefused(w, tenant, token, { code: Code.Unavailable, reason: "ISSUER_UNAVAILABLE" });
    // While the fetch hangs, the rest of the service answers quickly.
    let settled = false;
    void pending.finally(() => (settled = true)).catch(() => undefined);
    const others = performance.now();
    await othersStillAnswer(tenant);
    expect(performance.now() - others).toBeLessThan(2_000);
    expect(settled).toBe(false);
    await pending;
    expect(performance.now() - started).toBeLessThan(8_000);
  });

  test("when the issuer's caller gives up first (a 500 ms deadline), then DeadlineExceeded at that deadline, not the fetch's", async () => {
    const tenant = await createTestTenant(w.server, "xatk-deadline");
    await newPolicy(w, tenant, deployClaims);
    // A fresh issuer identity is needed for a fresh fetch: reuse "slow"'s after its cool-down, still hanging.
    w.clock.advance(31_000);
    const token = await w.issuers["slow"]!.token({}, { audience: audienceOf(w, tenant) });
    const started = performance.now();
    const err = await rpcError(w.exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: token }, { timeoutMs: 500 }));
    expect(Code[err.code]).toBe("DeadlineExceeded");
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(await mintedCount(w, tenant)).toBe(0);
  });

  test("when the JWKS answers 10 MB (chunked, or with its Content-Length declared), then Unavailable ISSUER_UNAVAILABLE, quickly", async () => {
    for (const [name, declareLength] of [["huge", false], ["hugeDeclared", true]] as const) {
      w.issuers[name]!.setMode({ kind: "huge", bytes: 10 * 1024 * 1024, declareLength, on: "jwks" });
      const { tenant, token } = await tenantAndToken(name);
      const started = performance.now();
      const { err } = await expectRefused(w, tenant, token, { code: Code.Unavailable, reason: "ISSUER_UNAVAILABLE" });
      expect(performance.now() - started).toBeLessThan(4_000);
      expect(err.rawMessage).toMatch(/bytes/);
      await othersStillAnswer(tenant);
    }
  });
});

describe("transport", () => {
  test("when ExchangeToken is called with GET (it has side effects), then it is refused (405) and nothing is exchanged", async () => {
    const token = await tokenFor();
    const query = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify({ parent: `tenants/${t.slug}`, subjectToken: token }) });
    const before = await mintedCount(w, t);
    const res = await connectUnary(w.server.url, `/keyward.v1.TokenExchangeService/ExchangeToken?${query}`, undefined, { method: "GET" });
    expect(res.status).toBe(405);
    expect(res.body.toString()).not.toContain("accessToken");
    expect(await mintedCount(w, t)).toBe(before);
    expect(await exchangeEvents(w, t, token)).toEqual([]);
    // The token was not spent: a POST still exchanges it.
    expect((await w.exchange.exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: token })).accessToken).not.toBe("");
    const [row] = await sql<{ n: string }>(w.server, "select count(*) as n from exchanged_token where jti = ?", [JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString())["jti"]]);
    expect(Number(row?.n)).toBe(1);
    expect((await exchangeEvents(w, t, token)).map((e) => e.outcome)).toEqual([AuditOutcome.SUCCESS]);
  });
});
