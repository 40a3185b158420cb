// Exchanged tokens, minted here directly through the minter (the exchange itself is tested
// with ExchangeToken): VerifyKey names their policy, bounds them by the policy's current
// allowlist, and stops them the moment the policy is deleted. Tokens signed with keyward's
// real key but with a wrong header or claim are still MALFORMED. Tokens never touch last-used.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { SignJWT } from "jose";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { createUnitsOfWork } from "../../src/db/unit-of-work.ts";
import { createLogger } from "../../src/logger.ts";
import { createKeyEncryption } from "../../src/tokens/key-encryption.ts";
import type { MintRequest } from "../../src/tokens/minting.ts";
import { startSigningKeys, type SigningKeys } from "../../src/tokens/signing-keys.ts";
import { startTokenCleanup } from "../../src/tokens/token-cleanup.ts";
import { createTokenMinter } from "../../src/tokens/token-minter.ts";
import { createKeyLookup } from "../../src/verify/key-lookup.ts";
import type { LastUsedRecorder } from "../../src/verify/last-used.ts";
import { createTokenLookup } from "../../src/verify/token-lookup.ts";
import { createTokenRecognizer } from "../../src/verify/token-recognition.ts";
import { createVerifier } from "../../src/verify/verifier.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { testKeyEncryptionKey } from "../kek.ts";
import { attempt, audit, keyIdOf, keys, server, useServer } from "../rpc.ts";
import { segment, sql } from "./helpers.ts";

useServer();

const quiet = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });
let signingKeys: SigningKeys;

beforeAll(async () => {
  // The server's own keys, opened with the tests' KEK, as a second replica would.
  signingKeys = await startSigningKeys({
    units: createUnitsOfWork(server.store.db),
    clock: server.clock,
    logger: quiet,
    encryption: createKeyEncryption(Buffer.from(testKeyEncryptionKey, "base64")),
  });
});
afterAll(() => signingKeys?.stop());

/** A trust policy row of `t` made with SQL (PolicyService is tested elsewhere), created by the tenant admin. */
async function insertPolicy(t: TestTenant, permissions: string[]) {
  const [row] = await sql<{ tenant_id: string; admin_id: string }>(
    server,
    "select t.id as tenant_id, p.id as admin_id from tenant t join principal p on p.tenant_id = t.id and p.principal_id = 'admin' where t.slug = ?",
    [t.slug],
  );
  const id = randomUUID();
  await sql(
    server,
    `insert into trust_policy (id, tenant_id, org_id, display_name, description, claims, max_session_seconds, permissions, creator_id, bounded_by, created_at, updated_at)
     values (?, ?, null, ?, '', ?::jsonb, 900, ?::text[], ?, '{}', now(), now())`,
    [id, row!.tenant_id, `deploy-${id.slice(0, 8)}`, JSON.stringify({ repository: "acme/app" }), `{${permissions.join(",")}}`, row!.admin_id],
  );
  return { id, name: `tenants/${t.slug}/policies/${id}`, tenantId: row!.tenant_id, adminId: row!.admin_id };
}

/** Mints an exchanged token under `policy` through the minter, in a transaction of its own. */
async function mintExchanged(t: TestTenant, policy: Awaited<ReturnType<typeof insertPolicy>>, permissions: string[], lifetimeSeconds = 900) {
  const minter = createTokenMinter({ signingKeys, clock: server.clock, tokenIssuer: server.config.tokenIssuer, audienceDomain: server.config.audienceDomain });
  const request: MintRequest = {
    kind: "exchanged", tenantId: policy.tenantId, tenantSlug: t.slug, orgId: null, orgSlug: null, policy: { id: policy.id, name: policy.name },
    principalId: policy.adminId, boundedBy: [], permissions, subject: "repo:acme/app:ref:refs/heads/main", lifetimeSeconds,
    source: { repository: "acme/app", runId: "4242", jobWorkflowRef: "acme/app/.github/workflows/deploy.yml@refs/heads/main" },
  };
  return createUnitsOfWork(server.store.db).write({}, (uow) => minter.mint(uow, request));
}

describe("exchanged tokens", () => {
  test("when an exchanged token is verified, then VALID with token=true, its policy and the workflow's subject, and its claims carry the policy, repository and run", async () => {
    const t = await createTestTenant(server);
    const policy = await insertPolicy(t, ["harden_runner:write", "keys:read"]);
    const minted = await mintExchanged(t, policy, ["harden_runner:write", "keys:read"]);
    const res = await keys.verifyKey({ key: minted.accessToken, requiredPermissions: ["harden_runner:write"] });
    expect(res).toMatchObject({
      result: VerifyResult.VALID, token: true, keyId: minted.jti, policy: policy.name, subject: "repo:acme/app:ref:refs/heads/main",
      owner: `tenants/${t.slug}/principals/admin`, tenant: t.slug,
    });
    expect(segment(minted.accessToken, 1)).toMatchObject({
      token_kind: "exchanged", client_id: policy.name, policy: policy.name, repository: "acme/app", run_id: "4242",
      job_workflow_ref: "acme/app/.github/workflows/deploy.yml@refs/heads/main", scope: "harden_runner:write keys:read",
    });
    // It works as a bearer credential within its permissions.
    await keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(minted.accessToken));
  });

  test("when the policy's allowlist is narrowed, then its tokens shrink at once", async () => {
    const t = await createTestTenant(server);
    const policy = await insertPolicy(t, ["harden_runner:write", "keys:read"]);
    const minted = await mintExchanged(t, policy, ["harden_runner:write", "keys:read"]);
    await sql(server, "update trust_policy set permissions = '{harden_runner:read}' where id = ?", [policy.id]);
    const res = await keys.verifyKey({ key: minted.accessToken, requiredPermissions: ["harden_runner:write"] });
    expect(res.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
    expect(res.permissions).toEqual(["harden_runner:read"]);
  });

  test("when the policy is deleted, then its tokens are REVOKED at once, and as a bearer one is refused and audited TOKEN_REVOKED", async () => {
    const t = await createTestTenant(server);
    const policy = await insertPolicy(t, ["keys:read"]);
    const minted = await mintExchanged(t, policy, ["keys:read"]);
    expect((await keys.verifyKey({ key: minted.accessToken })).result).toBe(VerifyResult.VALID);
    await sql(server, "delete from trust_policy where id = ?", [policy.id]);
    const res = await keys.verifyKey({ key: minted.accessToken });
    expect(res).toMatchObject({ result: VerifyResult.REVOKED, token: true, keyId: minted.jti, policy: "" });
    const refused = await attempt(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(minted.accessToken)));
    expect(refused?.code).toBe(Code.Unauthenticated);
    const { events } = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, action: "auth.refused" }, withKey(t.adminKey));
    expect(events.filter((e) => e.credential === minted.jti).map((e) => e.reason)).toEqual(["TOKEN_REVOKED"]);
  });

  test("when a token is signed with keyward's real key but lacks typ at+jwt, names another issuer, another tenant's audience, or a tenant its row does not belong to, then MALFORMED", async () => {
    const t = await createTestTenant(server);
    const other = await createTestTenant(server);
    const policy = await insertPolicy(t, ["keys:read"]);
    const minted = await mintExchanged(t, policy, ["keys:read"]);
    const claims = segment(minted.accessToken, 1);
    const { kid, privateKey } = signingKeys.signer();
    const sign = (payload: Record<string, unknown>, header: Record<string, unknown> = { alg: "ES256", kid, typ: "at+jwt" }) =>
      new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(privateKey);

    // The same claims re-signed verify: the forgeries below differ in one thing each.
    expect((await keys.verifyKey({ key: await sign(claims) })).result).toBe(VerifyResult.VALID);
    const forged = {
      noTyp: await sign(claims, { alg: "ES256", kid }),
      jwtTyp: await sign(claims, { alg: "ES256", kid, typ: "JWT" }),
      otherIssuer: await sign({ ...claims, iss: "https://evil.example" }),
      otherAudience: await sign({ ...claims, aud: `${other.slug}.${server.config.audienceDomain}` }),
      otherTenant: await sign({ ...claims, tenant: other.slug, aud: `${other.slug}.${server.config.audienceDomain}` }),
      noJti: await sign({ ...claims, jti: undefined }),
      notYetValid: await sign({ ...claims, nbf: Math.floor(server.clock.now().getTime() / 1000) + 3600 }),
    };
    for (const [what, key] of Object.entries(forged)) {
      expect({ what, result: (await keys.verifyKey({ key })).result }).toEqual({ what, result: VerifyResult.MALFORMED });
    }
  });
});

describe("last-used times", () => {
  test("when tokens are verified and authenticated, then nothing is recorded for them (api_key rows only), while a key's use is", async () => {
    const t = await createTestTenant(server);
    const policy = await insertPolicy(t, ["keys:read"]);
    const minted = await mintExchanged(t, policy, ["keys:read"]);
    const recorded: string[] = [];
    const lastUsed: LastUsedRecorder = { record: (keyId) => void recorded.push(keyId), flush: async () => {}, stop: async () => {} };
    const catalogue = { categories: server.config.permissionCategories };
    const verifier = createVerifier({
      lookup: createKeyLookup(server.store.db), clock: server.clock, catalogue, keyPrefix: server.config.keyPrefix, keyPepper: server.config.keyPepper, lastUsed,
      tokens: createTokenRecognizer({
        lookup: createTokenLookup(server.store.db), signingKeys, clock: server.clock, catalogue, tokenIssuer: server.config.tokenIssuer, audienceDomain: server.config.audienceDomain,
      }),
    });
    expect((await verifier.verify({ key: minted.accessToken, requiredPermissions: [], org: "" })).result).toBe("valid");
    expect((await verifier.authenticate(minted.accessToken)).result).toBe("valid");
    expect(recorded).toEqual([]);
    expect((await verifier.verify({ key: t.adminKey, requiredPermissions: [], org: "" })).result).toBe("valid");
    expect(recorded).toEqual([keyIdOf(t.adminKey)]);

    // Through the server too: flushing after token use writes nothing and logs no failure.
    await keys.verifyKey({ key: minted.accessToken });
    await server.flushLastUsed();
    expect(server.logs.filter((l) => l.includes("last-used"))).toEqual([]);
  });
});

describe("token cleanup", () => {
  test("when minted tokens expired over a day ago and exchanged OIDC token ids over an hour ago, then a cleanup run deletes exactly those rows", async () => {
    const t = await createTestTenant(server);
    const policy = await insertPolicy(t, ["keys:read"]);
    const fresh = await mintExchanged(t, policy, ["keys:read"]);
    const stale = await mintExchanged(t, policy, ["keys:read"]);
    await sql(server, "update minted_token set expires_at = now() - interval '25 hours' where jti = ?", [stale.jti]);
    const issuer = `https://issuer.example/${randomUUID()}`;
    await sql(
      server,
      `insert into exchanged_token (issuer, jti, tenant_id, expires_at, created_at) values
         (?, 'old', ?, now() - interval '2 hours', now()), (?, 'recent', ?, now() - interval '10 minutes', now())`,
      [issuer, policy.tenantId, issuer, policy.tenantId],
    );
    const cleanup = startTokenCleanup({ db: server.store.db, logger: quiet, intervalMs: 3_600_000 });
    try {
      const deleted = await cleanup.run();
      expect(deleted.minted).toBeGreaterThanOrEqual(1);
      expect(deleted.exchanged).toBeGreaterThanOrEqual(1);
    } finally {
      cleanup.stop();
    }
    expect((await sql<{ jti: string }>(server, "select jti from minted_token where jti in (?, ?)", [fresh.jti, stale.jti])).map((r) => r.jti)).toEqual([fresh.jti]);
    expect((await sql<{ jti: string }>(server, "select jti from exchanged_token where issuer = ?", [issuer])).map((r) => r.jti)).toEqual(["recent"]);
    expect((await keys.verifyKey({ key: stale.accessToken })).result).toBe(VerifyResult.NOT_FOUND);
  });
});
