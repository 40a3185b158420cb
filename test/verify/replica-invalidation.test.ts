// The verification cache never outlives a change (DESIGN.md §3, issue 12 item 2): two replicas
// on one database, a credential cached on both (each asserted to be a cache hit), then a change
// through replica A. A refuses it at once (it caught up after its own write); B refuses it once
// it has applied the change (waited on, bounded), never sooner by luck: before the change both
// answered from memory.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { PrincipalStatus, PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { KeyKind, KeySlot } from "../../gen/keyward/v1/key_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { createTestTenant, startTestServer, withKey, type TestClock, type TestServer, type TestTenant } from "../harness.ts";
import type { LocalIssuer } from "../oidc/local-issuer.ts";
import { startExchangeWorld, type ExchangeWorld } from "../tokens/exchange-support.ts";
import { attempt, reasonOf, uniq } from "../rpc.ts";
import { craftKey, heard, latestChange, listenerOf, randomKeyId, statsOf, verifyCached, verifyOn } from "./cache-helpers.ts";

let w: ExchangeWorld;
let clock: TestClock;
let issuer: LocalIssuer;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  // Replica A trusts a local issuer; replica B shares its database and clock.
  w = await startExchangeWorld(["ci"]);
  ({ clock, server: a } = w);
  issuer = w.issuers["ci"]!;
  b = await startTestServer({ clock });
});

afterAll(async () => {
  await b?.stop();
  await w?.stop();
});

const keysOn = (s: TestServer) => s.client(KeyService);
const directoryOn = (s: TestServer) => s.client(DirectoryService);

/**
 * Verifies on both replicas twice: the first may read, the second must be a hit with the same
 * answer. First each replica hears of every change so far (the credential's own creation
 * would evict it when heard of later).
 */
async function cacheOnBoth(t: TestTenant, key: string, required: string[] = [], expected = "VALID"): Promise<void> {
  for (const s of [a, b]) {
    await heard(s, t.slug);
    expect(await verifyOn(s, key, required)).toBe(expected);
    expect(await verifyCached(s, key, required)).toBe(expected);
  }
}

/** A refuses at once; B after applying the change (and not from a stale entry). */
async function refusedOnBoth(t: TestTenant, key: string, required: string[], expected: string): Promise<void> {
  expect(await verifyOn(a, key, required)).toBe(expected);
  await heard(b, t.slug);
  expect(await verifyOn(b, key, required)).toBe(expected);
}

/** A principal of `t` (made by its admin) with a key of its own, made by the admin for it. */
async function principalWithKey(t: TestTenant, permissions: string[]): Promise<{ name: string; key: string; keyName: string }> {
  const { principal } = await directoryOn(a).createPrincipal({ parent: `tenants/${t.slug}`, principalId: uniq("p"), type: PrincipalType.USER, permissions }, withKey(t.adminKey));
  const created = await keysOn(a).createKey(
    { parent: `tenants/${t.slug}`, displayName: uniq("key"), permissions, expireDays: 30, owner: principal!.name },
    withKey(t.adminKey),
  );
  return { name: principal!.name, key: created.secret, keyName: created.key!.name };
}

async function setDisableSuspended(t: TestTenant, value: boolean): Promise<void> {
  await directoryOn(a).updateTenant(
    { tenant: { name: `tenants/${t.slug}`, disableKeysOfSuspendedPrincipals: value }, updateMask: { paths: ["disable_keys_of_suspended_principals"] } },
    withKey(t.adminKey),
  );
}

async function suspend(t: TestTenant, principal: string): Promise<void> {
  await directoryOn(a).updatePrincipal({ principal: { name: principal, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(t.adminKey));
}

describe("a change through one replica reaches the cache of both", () => {
  test("when a cached key is revoked, then REVOKED on the replica that revoked it at once, and on the other once it has heard", async () => {
    const t = await createTestTenant(a, "inv");
    const p = await principalWithKey(t, ["harden_runner:write"]);
    await cacheOnBoth(t, p.key);
    await keysOn(a).revokeKey({ name: p.keyName, reason: "leaked" }, withKey(t.adminKey));
    await refusedOnBoth(t, p.key, [], "REVOKED");
  });

  test("when a cached slot key is rotated, then the replaced value is REVOKED on both replicas and the new one VALID", async () => {
    const t = await createTestTenant(a, "inv");
    const first = await keysOn(a).rotateKey({ parent: `tenants/${t.slug}`, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY }, withKey(t.adminKey));
    await cacheOnBoth(t, first.secret);
    const second = await keysOn(a).rotateKey({ parent: `tenants/${t.slug}`, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY }, withKey(t.adminKey));
    await refusedOnBoth(t, first.secret, [], "REVOKED");
    expect(await verifyOn(b, second.secret)).toBe("VALID");
  });

  test("when the owner's permissions are reduced, then a cached key is INSUFFICIENT_PERMISSIONS on both replicas", async () => {
    const t = await createTestTenant(a, "inv");
    const p = await principalWithKey(t, ["harden_runner:write"]);
    await cacheOnBoth(t, p.key, ["harden_runner:write"]);
    await directoryOn(a).updatePrincipal({ principal: { name: p.name, permissions: ["harden_runner:read"] }, updateMask: { paths: ["permissions"] } }, withKey(t.adminKey));
    await refusedOnBoth(t, p.key, ["harden_runner:write"], "INSUFFICIENT_PERMISSIONS");
    expect(await verifyOn(b, p.key, ["harden_runner:read"])).toBe("VALID");
  });

  test("when the owner is suspended in a tenant that disables such keys, then a cached key is OWNER_SUSPENDED on both replicas", async () => {
    const t = await createTestTenant(a, "inv");
    await setDisableSuspended(t, true);
    const p = await principalWithKey(t, ["harden_runner:write"]);
    await cacheOnBoth(t, p.key);
    await suspend(t, p.name);
    await refusedOnBoth(t, p.key, [], "OWNER_SUSPENDED");
  });

  test("when the tenant starts disabling keys of suspended principals, then a suspended owner's cached key turns from VALID to OWNER_SUSPENDED on both replicas", async () => {
    const t = await createTestTenant(a, "inv");
    const p = await principalWithKey(t, ["harden_runner:write"]);
    await suspend(t, p.name);
    await cacheOnBoth(t, p.key);
    await setDisableSuspended(t, true);
    await refusedOnBoth(t, p.key, [], "OWNER_SUSPENDED");
  });

  test("when the creator of a key made for someone else is suspended, then the cached key is OWNER_SUSPENDED on both replicas", async () => {
    const t = await createTestTenant(a, "inv");
    await setDisableSuspended(t, true);
    const perms = ["directory:write", "keys:write", "harden_runner:write"];
    const creator = await principalWithKey(t, perms);
    const { principal: owner } = await directoryOn(a).createPrincipal({ parent: `tenants/${t.slug}`, principalId: uniq("o"), type: PrincipalType.USER, permissions: ["harden_runner:write"] }, withKey(t.adminKey));
    const made = await keysOn(a).createKey(
      { parent: `tenants/${t.slug}`, displayName: uniq("made"), permissions: ["harden_runner:write"], expireDays: 7, owner: owner!.name },
      withKey(creator.key),
    );
    await cacheOnBoth(t, made.secret);
    await suspend(t, creator.name);
    await refusedOnBoth(t, made.secret, [], "OWNER_SUSPENDED");
  });

  test("when a principal whose cached key is used as a bearer is suspended, then management calls with it are PermissionDenied PRINCIPAL_SUSPENDED on both replicas", async () => {
    const t = await createTestTenant(a, "inv");
    const p = await principalWithKey(t, ["keys:read"]);
    const list = (s: TestServer) => attempt(keysOn(s).listKeys({ parent: `tenants/${t.slug}` }, withKey(p.key)));
    for (const s of [a, b]) {
      await heard(s, t.slug);
      expect(await list(s)).toBeUndefined();
      const hits = statsOf(s).hits;
      expect(await list(s)).toBeUndefined();
      expect(statsOf(s).hits).toBe(hits + 1);
    }
    await suspend(t, p.name);
    const onA = await list(a);
    expect([onA?.code, reasonOf(onA)]).toEqual([Code.PermissionDenied, "PRINCIPAL_SUSPENDED"]);
    await heard(b, t.slug);
    const onB = await list(b);
    expect([onB?.code, reasonOf(onB)]).toEqual([Code.PermissionDenied, "PRINCIPAL_SUSPENDED"]);
  });

  test("when a cached minted token's policy is deleted, then REVOKED on both replicas", async () => {
    const t = await createTestTenant(a, "inv");
    const policies = a.client(PolicyService);
    const { policy } = await policies.createPolicy(
      {
        parent: `tenants/${t.slug}`,
        policy: {
          displayName: uniq("deploy"), permissions: ["keys:read"], maxSessionDurationSeconds: 600,
          claims: { repositoryOwner: "acme", repository: "acme/deploy", repositoryId: "123456789", repositoryOwnerId: "987654" },
        },
      },
      withKey(t.adminKey),
    );
    const idToken = await issuer.token({}, { audience: `${t.slug}.${a.config.audienceDomain}` });
    const { accessToken } = await a.client(TokenExchangeService).exchangeToken({ parent: `tenants/${t.slug}`, subjectToken: idToken });
    await cacheOnBoth(t, accessToken);
    await policies.deletePolicy({ name: policy!.name, etag: policy!.etag }, withKey(t.adminKey));
    await refusedOnBoth(t, accessToken, [], "REVOKED");
  });

  test("when the clock passes a cached key's expiry, then EXPIRED on both replicas with no change at all", async () => {
    const t = await createTestTenant(a, "inv");
    const created = await keysOn(a).createKey({ parent: `tenants/${t.slug}`, displayName: uniq("short"), permissions: ["keys:read"], expireDays: 1 }, withKey(t.adminKey));
    await cacheOnBoth(t, created.secret);
    clock.advance(24 * 3600_000 + 1_000);
    // Judged against the clock on every call: still answered from memory, yet EXPIRED.
    expect(await verifyCached(a, created.secret)).toBe("EXPIRED");
    expect(await verifyCached(b, created.secret)).toBe("EXPIRED");
  });
});

describe("unknown key ids", () => {
  test("when an unknown well-formed key is verified twice, then the second answer reads no database", async () => {
    const { raw } = craftKey(b, randomKeyId());
    expect(await verifyOn(b, raw)).toBe("NOT_FOUND");
    expect(await verifyCached(b, raw)).toBe("NOT_FOUND");
  });

  test("when a key is created with an id both replicas remember as unknown, then it verifies on both once they heard of it", async () => {
    const t = await createTestTenant(a, "inv");
    const keyId = randomKeyId();
    const { raw, secretHash } = craftKey(a, keyId);
    for (const s of [a, b]) {
      await heard(s, t.slug);
      expect(await verifyOn(s, raw)).toBe("NOT_FOUND");
      expect(await verifyCached(s, raw)).toBe("NOT_FOUND");
    }
    // Written as another replica (or the CLI) would: straight into the database.
    await a.store.db.orm.driver.getConnection().execute(
      `insert into api_key (key_id, tenant_id, kind, slot, display_name, org_id, permissions, owner_id, creator_id, bounded_by, secret_hash, hint, created_at, expires_at)
       select ?, k.tenant_id, 'fine_grained', null, ?, null, '{keys:read}', k.owner_id, k.creator_id, '{}', ?, right(?, 4), now(), null
         from api_key k join tenant t on t.id = k.tenant_id where t.slug = ? and k.kind = 'admin' limit 1`,
      [keyId, uniq("crafted"), secretHash, raw, t.slug],
      "run",
    );
    for (const s of [a, b]) {
      await heard(s, t.slug);
      expect(await verifyOn(s, raw)).toBe("VALID");
    }
  });
});

describe("what does not invalidate", () => {
  test("when last-used times of cached keys are written, then no change is logged and the keys stay cached", async () => {
    const t = await createTestTenant(a, "inv");
    const p = await principalWithKey(t, ["keys:read"]);
    await cacheOnBoth(t, p.key);
    const before = await latestChange(a);
    await a.flushLastUsed();
    await b.flushLastUsed();
    const rows = await a.store.db.orm.driver.getConnection().execute<{ n: string }[]>(
      "select count(*)::text as n from credential_change where id > ? and key_id = ?", [before, p.key.split("_")[1]], "all",
    );
    expect(rows[0]?.n).toBe("0");
    expect(listenerOf(a).connected && listenerOf(b).connected).toBe(true);
    expect(await verifyCached(a, p.key)).toBe("VALID");
    expect(await verifyCached(b, p.key)).toBe("VALID");
  });
});
