// Breaking OIDC federation from the inside (issue 11): what a minted token — a CI workflow's
// exchanged token or a user token — can make with the permissions it holds. A credential
// that lives 15 minutes, or that deleting a policy stops at once, must not be a way to a
// credential that lives longer or that the deletion misses.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { PrincipalStatus } from "../../gen/keyward/v1/directory_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { KeyKind, KeySlot } from "../../gen/keyward/v1/key_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { backendsWaitingOnLocks, createTestTenant, withKey, withOpenTransaction, type TestServer, type TestTenant } from "../harness.ts";
import { attempt, reasonOf, uniq } from "../rpc.ts";
import type { LocalIssuer } from "../oidc/local-issuer.ts";
import { startExchangeWorld, type ExchangeWorld } from "../tokens/exchange-support.ts";
import { createUser, segment, userToken } from "../tokens/helpers.ts";

let w: ExchangeWorld;
let issuer: LocalIssuer;
let server: TestServer;
let t: TestTenant;

beforeAll(async () => {
  w = await startExchangeWorld(["ci"]);
  server = w.server;
  issuer = w.issuers["ci"]!;
  t = await createTestTenant(server, "esc");
});
afterAll(async () => {
  await w?.stop();
});

/** Everything alice (a user) holds; the CI policy she makes allows all of it. */
const alicePermissions = ["keys:read", "keys:write", "policies:read", "policies:write", "harden_runner:read"];

/** Alice, a user token of hers (made by the admin), and a policy she made for acme/<repo> allowing everything she holds. */
async function aliceWithPolicy(repo: string) {
  const alice = await createUser(server, t, alicePermissions);
  const aliceToken = (await userToken(server, t, alice, { durationSeconds: 3600 })).accessToken;
  const { policy } = await server.client(PolicyService).createPolicy(
    {
      parent: `tenants/${t.slug}`,
      policy: {
        displayName: uniq("ci"), claims: { repositoryOwner: "acme", repository: `acme/${repo}` },
        permissions: alicePermissions, maxSessionDurationSeconds: 900,
      },
    },
    withKey(aliceToken),
  );
  return { alice, aliceToken, policy: policy! };
}

/** A CI token exchanged for acme/<repo>'s workflow. */
async function ciToken(repo: string): Promise<string> {
  const idToken = await issuer.token({ repository: `acme/${repo}` }, { audience: `${t.slug}.${server.config.audienceDomain}` });
  return (await server.client(TokenExchangeService).exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: idToken })).accessToken;
}

const expOf = (token: string) => segment(token, 1)["exp"] as number;

describe("a CI workflow's exchanged token", () => {
  test("when an exchanged token asks for a 12-hour user token of the policy's creator, then it is PermissionDenied, so a 15-minute CI token never becomes a 12-hour one that deleting the policy misses", async () => {
    const repo = uniq("usertok");
    const { alice } = await aliceWithPolicy(repo);
    const ci = await ciToken(repo);
    const err = await attempt(server.client(TokenExchangeService).createUserToken({ principal: alice, durationSeconds: 43200, permissions: ["keys:read"] }, withKey(ci)));
    expect([err === undefined ? "OK" : Code[err.code], reasonOf(err)]).toEqual(["PermissionDenied", "EXCHANGED_TOKEN_CANNOT_MINT"]);
    // Nor a short one: whatever it made would not be stopped by deleting the policy.
    const short = await attempt(server.client(TokenExchangeService).createUserToken({ principal: alice, durationSeconds: 60, permissions: ["keys:read"] }, withKey(ci)));
    expect(reasonOf(short)).toBe("EXCHANGED_TOKEN_CANNOT_MINT");
  });

  test("when an exchanged token holding keys:write asks to create, clone or rotate an API key, then PermissionDenied EXCHANGED_TOKEN_CANNOT_MINT: nothing it makes may outlive it and its policy", async () => {
    const repo = uniq("apikey");
    const { aliceToken } = await aliceWithPolicy(repo);
    const ci = await ciToken(repo);
    const keys = server.client(KeyService);
    const { key } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("src"), permissions: ["keys:read"], expireDays: 7 }, withKey(aliceToken));
    // Started one at a time: a call started early could reject while another is awaited (an unhandled rejection).
    for (const call of [
      () => keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("persist"), permissions: ["keys:write", "policies:write"], expireDays: 90 }, withKey(ci)),
      () => keys.cloneKey({ name: key!.name, displayName: uniq("clone"), expireDays: 90 }, withKey(ci)),
      () => keys.rotateKey({ parent: `tenants/${t.slug}`, kind: KeyKind.READ_ONLY, slot: KeySlot.SECONDARY }, withKey(ci)),
    ]) {
      const err = await attempt(call());
      expect([err === undefined ? "OK" : Code[err.code], reasonOf(err)]).toEqual(["PermissionDenied", "EXCHANGED_TOKEN_CANNOT_MINT"]);
    }
  });

  test("when an exchanged token holding policies:write asks to create a policy or widen one, then PermissionDenied EXCHANGED_TOKEN_CANNOT_MINT; it may still read and delete", async () => {
    const repo = uniq("policy");
    const { policy } = await aliceWithPolicy(repo);
    const ci = await ciToken(repo);
    const policies = server.client(PolicyService);
    const made = await attempt(policies.createPolicy(
      { parent: `tenants/${t.slug}`, policy: { displayName: uniq("backdoor"), claims: { repositoryOwner: "evil" }, permissions: ["keys:write"] } },
      withKey(ci),
    ));
    expect([made === undefined ? "OK" : Code[made.code], reasonOf(made)]).toEqual(["PermissionDenied", "EXCHANGED_TOKEN_CANNOT_MINT"]);
    const widened = await attempt(policies.updatePolicy(
      { policy: { name: policy.name, etag: policy.etag, claims: { repositoryOwner: "evil" } }, updateMask: { paths: ["claims"] } },
      withKey(ci),
    ));
    expect(reasonOf(widened)).toBe("EXCHANGED_TOKEN_CANNOT_MINT");
    expect((await policies.getPolicy({ name: policy.name }, withKey(ci))).policy?.etag).toBe(policy.etag);
  });
});

describe("a CI token beyond its tenant and its creator", () => {
  test("when an exchanged token calls another tenant's management methods, then PermissionDenied TENANT_MISMATCH, and VerifyKey names its own tenant", async () => {
    const repo = uniq("other");
    await aliceWithPolicy(repo);
    const ci = await ciToken(repo);
    const other = await createTestTenant(server, "esc-b");
    for (const call of [
      server.client(KeyService).listKeys({ parent: `tenants/${other.slug}` }, withKey(ci)),
      server.client(PolicyService).listPolicies({ parent: `tenants/${other.slug}` }, withKey(ci)),
      server.client(KeyService).revokeKey({ name: `tenants/${other.slug}/keys/0123456789abcdef`, reason: "x" }, withKey(ci)),
    ]) {
      const err = await attempt(call);
      expect([err === undefined ? "OK" : Code[err.code], reasonOf(err)]).toEqual(["PermissionDenied", "TENANT_MISMATCH"]);
    }
    expect((await server.client(KeyService).verifyKey({ key: ci })).tenant).toBe(t.slug);
  });

  test("when the policy's creator is suspended after the exchange, then the exchanged token administers nothing (PRINCIPAL_SUSPENDED) and no new exchange is granted (CREATOR_SUSPENDED)", async () => {
    const repo = uniq("susp");
    const { alice } = await aliceWithPolicy(repo);
    const ci = await ciToken(repo);
    await server.client(DirectoryService).updatePrincipal(
      { principal: { name: alice, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } },
      withKey(t.adminKey),
    );
    const refused = await attempt(server.client(KeyService).listKeys({ parent: `tenants/${t.slug}` }, withKey(ci)));
    expect([refused === undefined ? "OK" : Code[refused.code], reasonOf(refused)]).toEqual(["PermissionDenied", "PRINCIPAL_SUSPENDED"]);
    const again = await attempt(ciToken(repo));
    expect([again === undefined ? "OK" : Code[again.code], reasonOf(again)]).toEqual(["PermissionDenied", "CREATOR_SUSPENDED"]);
  });
});

describe("a user token", () => {
  test("when a user token asks for a user token of its own principal outliving it, then it is InvalidArgument DURATION_EXCEEDS_CREDENTIAL, so a stolen token cannot renew itself for ever", async () => {
    const alice = await createUser(server, t, ["keys:read", "keys:write"]);
    const parent = (await userToken(server, t, alice, { durationSeconds: 600 })).accessToken;
    const err = await attempt(server.client(TokenExchangeService).createUserToken({ principal: alice, durationSeconds: 43200, permissions: [] }, withKey(parent)));
    expect([err === undefined ? "OK" : Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "DURATION_EXCEEDS_CREDENTIAL"]);
    expect(err?.message).toContain("duration_seconds");
  });

  test("when a user token asks for a user token with the default lifetime, then the new one expires no later than the token that made it", async () => {
    const alice = await createUser(server, t, ["keys:read", "keys:write"]);
    const parent = (await userToken(server, t, alice, { durationSeconds: 600 })).accessToken;
    const child = await server.client(TokenExchangeService).createUserToken({ principal: alice, durationSeconds: 0, permissions: ["keys:read"] }, withKey(parent));
    expect(expOf(child.accessToken)).toBeLessThanOrEqual(expOf(parent));
    expect(Number(child.expiresIn)).toBeLessThanOrEqual(600);
    expect((await server.client(KeyService).verifyKey({ key: child.accessToken })).result).toBe(VerifyResult.VALID);
  });

  test("when a user token within its own lifetime asks for a shorter user token, then it is made (the rule bounds, it does not forbid)", async () => {
    const alice = await createUser(server, t, ["keys:read", "keys:write"]);
    const parent = (await userToken(server, t, alice, { durationSeconds: 3600 })).accessToken;
    const child = await server.client(TokenExchangeService).createUserToken({ principal: alice, durationSeconds: 300, permissions: ["keys:read"] }, withKey(parent));
    expect(child.expiresIn).toBe(300n);
  });

  test("when a user token of a user asks for a user token of a principal it has no authority over, then it is PermissionDenied", async () => {
    const alice = await createUser(server, t, ["keys:read", "keys:write"]);
    const bob = await createUser(server, t, ["keys:read", "audit:read"]);
    const parent = (await userToken(server, t, alice)).accessToken;
    const err = await attempt(server.client(TokenExchangeService).createUserToken({ principal: bob, durationSeconds: 60, permissions: ["keys:read"] }, withKey(parent)));
    expect([err === undefined ? "OK" : Code[err.code], reasonOf(err)]).toEqual(["PermissionDenied", "PERMISSIONS_EXCEED_CALLER"]);
  });

  test("when a user token that is not an admin rotates the signing key, then it is PermissionDenied", async () => {
    const alice = await createUser(server, t, ["keys:read", "keys:write"]);
    const token = (await userToken(server, t, alice)).accessToken;
    const err = await attempt(server.client(TokenExchangeService).rotateSigningKey({}, withKey(token)));
    expect(err?.code).toBe(Code.PermissionDenied);
  });
});

describe("a policy deleted while an exchange under it is in flight", () => {
  // The exchange reads the policy without a lock; a DeletePolicy committing between that read
  // and the minted token's insert (whose foreign key then finds no policy) must end as a clean
  // refusal, never as an Internal error.
  test("when the policy's delete commits while the exchange waits to insert its token, then the exchange is Aborted CONCURRENT_MODIFICATION, not Internal, and the ID token is not spent", async () => {
    const repo = uniq("race");
    const { policy } = await aliceWithPolicy(repo);
    const idToken = await issuer.token({ repository: `acme/${repo}` }, { audience: `${t.slug}.${server.config.audienceDomain}` });
    const policyId = policy.name.split("/").pop()!;
    const pending = await withOpenTransaction(server, "delete from trust_policy where id = ?", [policyId], async () => {
      const p = attempt(server.client(TokenExchangeService).exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: idToken }));
      let settled = false;
      void p.then(() => (settled = true));
      // Bounded poll: until the exchange waits on the deleted row's lock (or has already answered).
      for (let i = 0; i < 500 && !settled && (await backendsWaitingOnLocks(server, "%minted_token%")) === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(settled).toBe(false);
      return { p };
    });
    const err = await pending.p;
    expect(err).toBeDefined();
    expect([err === undefined ? "OK" : Code[err.code], reasonOf(err)]).toEqual(["Aborted", "CONCURRENT_MODIFICATION"]);
    // Nothing was spent: a retry gets the precise answer (the policy is gone).
    const retry = await attempt(server.client(TokenExchangeService).exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: idToken }));
    expect(reasonOf(retry)).toBe("NO_MATCHING_POLICY");
  });
});

describe("a customized GitHub subject", () => {
  // GitHub lets an organization customize the `sub` template (include_claim_keys): with an
  // environment, a reusable workflow and the ids it passes 200 characters in real use.
  const longSubject =
    "repo:acme-corporation/platform-infrastructure-deployments:environment:production-eu-west-1:job_workflow_ref:" +
    "acme-corporation/shared-workflows/.github/workflows/terraform-apply-reusable.yml@refs/tags/v2.14.0:repository_owner_id:123456789:repository_id:987654321";

  test("when the ID token's sub is a 260-character customized subject, then it is exchanged and the minted token carries it as its subject", async () => {
    const repo = uniq("longsub");
    await aliceWithPolicy(repo);
    expect(longSubject.length).toBe(260);
    const idToken = await issuer.token({ repository: `acme/${repo}`, sub: longSubject }, { audience: `${t.slug}.${server.config.audienceDomain}` });
    const granted = await server.client(TokenExchangeService).exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: idToken });
    expect((await server.client(KeyService).verifyKey({ key: granted.accessToken })).subject).toBe(longSubject);
  });

  test("when the sub is longer than 300 characters, then Unauthenticated MALFORMED_TOKEN naming sub, never Internal", async () => {
    const repo = uniq("toolong");
    await aliceWithPolicy(repo);
    const idToken = await issuer.token({ repository: `acme/${repo}`, sub: `${longSubject}:${"x".repeat(40)}` }, { audience: `${t.slug}.${server.config.audienceDomain}` });
    const err = await attempt(server.client(TokenExchangeService).exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: idToken }));
    expect([err === undefined ? "OK" : Code[err.code], reasonOf(err)]).toEqual(["Unauthenticated", "MALFORMED_TOKEN"]);
    expect(err?.message).toContain("sub");
  });
});
