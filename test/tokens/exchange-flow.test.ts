// Token exchange end to end (DESIGN.md §4, issue 11): a local OIDC issuer stands in for
// GitHub Actions; a policy is created, the workflow's ID token is exchanged, the minted token
// verifies through VerifyKey and works as a bearer credential, and deleting the policy stops
// it at once.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { createTestTenant, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { reasonOf, rpcError, uniq } from "../rpc.ts";
import type { LocalIssuer } from "../oidc/local-issuer.ts";
import { audienceOf as worldAudienceOf, deployClaims, newPolicy as worldNewPolicy, startExchangeWorld, type Claims, type ExchangeWorld } from "./exchange-support.ts";

let w: ExchangeWorld;
let issuer: LocalIssuer;
let server: TestServer;
let t: TestTenant;
let policies: Client<typeof PolicyService>;
let exchange: Client<typeof TokenExchangeService>;
let keys: Client<typeof KeyService>;
let audit: Client<typeof AuditService>;

beforeAll(async () => {
  w = await startExchangeWorld(["ci"]);
  ({ server, policies, exchange, keys, audit } = w);
  issuer = w.issuers["ci"]!;
  t = await createTestTenant(server, "xchg");
});
afterAll(async () => {
  await w?.stop();
});

function audienceOf(tenant: TestTenant): string {
  return worldAudienceOf(w, tenant);
}

/** A policy in `tenant` for `claims`: 600 s, harden_runner:read + keys:read. */
function newPolicy(tenant: TestTenant, claims: Claims) {
  return worldNewPolicy(w, tenant, claims);
}

describe("exchange, verify, use, delete", () => {
  test("when a workflow exchanges its ID token under a matching policy, then the minted token verifies, administers within its permissions, verifies offline, and stops at once when the policy is deleted", async () => {
    const policy = await newPolicy(t, deployClaims);
    const idToken = await issuer.token({}, { audience: audienceOf(t) });

    const granted = await exchange.exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: idToken });
    expect(granted.tokenType).toBe("Bearer");
    expect(granted.issuedTokenType).toBe("urn:ietf:params:oauth:token-type:access_token");
    expect(granted.policy).toBe(policy.name);
    expect(granted.expiresIn).toBe(600n);
    expect([...granted.permissions].sort()).toEqual(["harden_runner:read", "keys:read"]);

    const verified = await keys.verifyKey({ key: granted.accessToken, requiredPermissions: ["harden_runner:read"] });
    expect(verified.result).toBe(VerifyResult.VALID);
    expect(verified.token).toBe(true);
    expect(verified.policy).toBe(policy.name);
    expect(verified.subject).toBe("repo:acme/deploy:ref:refs/heads/main");
    expect(verified.tenant).toBe(t.slug);

    // A management call with the minted token as bearer: within its permissions, and refused beyond.
    const listed = await keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(granted.accessToken));
    expect(listed.keys.length).toBeGreaterThan(0);
    const denied = await rpcError(keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("x"), permissions: ["keys:read"], expireDays: 7 }, withKey(granted.accessToken)));
    expect(denied.code).toBe(Code.PermissionDenied);

    // Offline, with jose, against the published JWKS.
    const jwks = createRemoteJWKSet(new URL(`${server.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(granted.accessToken, jwks, { issuer: server.config.tokenIssuer, audience: audienceOf(t), typ: "at+jwt" });
    expect(protectedHeader.alg).toBe("ES256");
    expect(payload["policy"]).toBe(policy.name);
    expect(payload["repository"]).toBe("acme/deploy");

    await policies.deletePolicy({ name: policy.name, etag: policy.etag }, withKey(t.adminKey));
    expect((await keys.verifyKey({ key: granted.accessToken })).result).toBe(VerifyResult.REVOKED);
    expect((await rpcError(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(granted.accessToken)))).code).toBe(Code.Unauthenticated);

    // Granted and audited with the token's hash, never the token.
    const { events } = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, action: "token.exchange", resource: policy.name }, withKey(t.adminKey));
    const granted_ = events.find((e) => e.reason === "" && e.credential === verified.keyId);
    expect(granted_?.details).toMatchObject({
      tokenSha256: createHash("sha256").update(idToken).digest("hex"), claimsVerified: "true",
      repository: "acme/deploy", subject: "repo:acme/deploy:ref:refs/heads/main",
    });
    expect(granted_?.details["runId"]).not.toBe("");
    expect(JSON.stringify(events.map((e) => e.details))).not.toContain(idToken.split(".")[2]!);
    expect(server.logs.filter((l) => l.includes(idToken.split(".")[2]!) || l.includes(granted.accessToken.split(".")[2]!))).toEqual([]);
  });

  test("when the same ID token is exchanged twice, then the second is Unauthenticated TOKEN_REPLAYED", async () => {
    await newPolicy(t, { ...deployClaims, repository: "acme/replay", repositoryId: "" });
    const idToken = await issuer.token({ repository: "acme/replay" }, { audience: audienceOf(t) });
    await exchange.exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: idToken });
    const err = await rpcError(exchange.exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: idToken }));
    expect([Code[err.code], reasonOf(err)]).toEqual(["Unauthenticated", "TOKEN_REPLAYED"]);
  });

  test("when the dry run gets a real ID token, then it verifies it without spending it and explains each policy", async () => {
    const tenant = await createTestTenant(server, "dry");
    await newPolicy(tenant, { repositoryOwner: "acme", repository: "acme/infra" });
    const idToken = await issuer.token({ repository: "acme/infra-evil" }, { audience: audienceOf(tenant) });
    const res = await policies.testPolicy({ parent: `tenants/${tenant.slug}`, subjectToken: idToken }, withKey(tenant.adminKey));
    expect(res.results.map((r) => [r.matched, r.failedClaim, r.expected, r.actual])).toEqual([[false, "repository", "acme/infra", "acme/infra-evil"]]);
    expect(res.audience).toBe(audienceOf(tenant));
  });
});

describe("the dry run with a token that has expired", () => {
  test("when a real ID token has expired (GitHub's live five minutes), then the dry run still compares its claims and notes TOKEN_EXPIRED, while an exchange refuses it", async () => {
    const tenant = await createTestTenant(server, "dryexp");
    await newPolicy(tenant, { repositoryOwner: "acme", repository: "acme/infra" });
    const iat = Math.floor(Date.now() / 1000) - 3600;
    const idToken = await issuer.token({ repository: "acme/infra" }, { audience: audienceOf(tenant), iat });
    const res = await policies.testPolicy({ parent: `tenants/${tenant.slug}`, subjectToken: idToken }, withKey(tenant.adminKey));
    expect(res.results.map((r) => r.matched)).toEqual([true]);
    expect(res.notes).toHaveLength(1);
    expect(res.notes[0]).toMatch(/^TOKEN_EXPIRED: /);
    const err = await rpcError(exchange.exchangeToken({ parent: `tenants/${tenant.slug}`, subjectToken: idToken }));
    expect(reasonOf(err)).toBe("TOKEN_EXPIRED");
    const fresh = await policies.testPolicy({ parent: `tenants/${tenant.slug}`, subjectToken: await issuer.token({}, { audience: audienceOf(tenant) }) }, withKey(tenant.adminKey));
    expect(fresh.notes).toEqual([]);
  });
});

describe("ExchangeToken over gRPC", () => {
  test("when the exchange is called over gRPC, then it answers alike", async () => {
    await newPolicy(t, { ...deployClaims, repository: "acme/grpc", repositoryId: "" });
    const grpc = createClient(TokenExchangeService, server.grpcTransport);
    const idToken = await issuer.token({ repository: "acme/grpc" }, { audience: audienceOf(t) });
    const granted = await grpc.exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: idToken });
    expect((await keys.verifyKey({ key: granted.accessToken })).result).toBe(VerifyResult.VALID);
  });
});
