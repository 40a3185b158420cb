// A replica that loses its LISTEN connection (DESIGN.md §3, issue 12 item 2): it replays the
// change log from where it was when it reconnects (no revoked key verifies once it is back,
// and what it had cached stays cached), answers from its cache for at most
// KEYWARD_VERIFY_STALE_SECONDS, then Unavailable; with 0, Unavailable at once. Its LISTEN
// connection goes through a proxy the test cuts and restores; its database pool does not.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, startTestServer, testDatabaseUrl, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { reasonOf, rpcError, uniq } from "../rpc.ts";
import { until } from "../wait.ts";
import { craftKey, heard, listenerOf, randomKeyId, verifyCached, verifyOn } from "./cache-helpers.ts";
import { startPgProxy, type PgProxy } from "./pg-proxy.ts";
import { freePort } from "../server/stoppable-postgres.ts";

let a: TestServer;
let b: TestServer;
let strict: TestServer;
let proxyB: PgProxy;
let proxyStrict: PgProxy;
let t: TestTenant;

beforeAll(async () => {
  a = await startTestServer();
  proxyB = await startPgProxy(testDatabaseUrl());
  proxyStrict = await startPgProxy(testDatabaseUrl());
  b = await startTestServer({ env: { KEYWARD_LISTEN_DATABASE_URL: proxyB.url, KEYWARD_VERIFY_STALE_SECONDS: "30" } });
  strict = await startTestServer({ env: { KEYWARD_LISTEN_DATABASE_URL: proxyStrict.url, KEYWARD_VERIFY_STALE_SECONDS: "0" } });
  t = await createTestTenant(a, "outage");
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), strict?.stop()]);
  await proxyB?.close();
  await proxyStrict?.close();
});

/** A fresh key of the tenant (made through A) and its resource name. */
async function newKey(): Promise<{ secret: string; name: string }> {
  const created = await a.client(KeyService).createKey({ parent: `tenants/${t.slug}`, displayName: uniq("k"), permissions: ["keys:read"], expireDays: 30 }, withKey(t.adminKey));
  return { secret: created.secret, name: created.key!.name };
}

/** Caches `key` on `server` (after it heard of the key's creation, which would evict it) and checks it is a hit. */
async function cached(server: TestServer, key: string): Promise<void> {
  await heard(server, t.slug);
  expect(await verifyOn(server, key)).toBe("VALID");
  expect(await verifyCached(server, key)).toBe("VALID");
}

async function disconnected(server: TestServer): Promise<void> {
  await until(() => !listenerOf(server).connected, 5_000, "the replica notices its LISTEN connection is gone");
}

async function reconnected(server: TestServer, reconnectsBefore: number): Promise<void> {
  await until(() => listenerOf(server).connected && listenerOf(server).reconnects > reconnectsBefore, 15_000, "the replica reconnects");
}

/** The UNAVAILABLE answer past the grace: code and reason. */
async function unavailable(p: Promise<unknown>): Promise<[string, string | undefined]> {
  const err = await rpcError(p);
  return [Code[err.code], reasonOf(err)];
}

describe("a dropped LISTEN connection", () => {
  test("when the server terminates it and a cached key is revoked before it is back, then the replica replays the change log on reconnect: the key is REVOKED and other cached keys stay cached", async () => {
    const revoked = await newKey();
    const kept = await newKey();
    await cached(b, revoked.secret);
    await cached(b, kept.secret);
    const { backendPid, reconnects } = listenerOf(b);
    const connection = a.store.db.orm.driver.getConnection();
    const [row] = await connection.execute<{ application_name: string }[]>("select application_name from pg_stat_activity where pid = ?", [backendPid], "all");
    expect(row?.application_name).toBe("keyward-listen");

    proxyB.refuseNew();
    try {
      await connection.execute("select pg_terminate_backend(?)", [backendPid], "all");
      await disconnected(b);
      await a.client(KeyService).revokeKey({ name: revoked.name, reason: "revoked while the replica was away" }, withKey(t.adminKey));
      // Within the grace, from memory: the replica has not heard of the revocation.
      expect(await verifyCached(b, revoked.secret)).toBe("VALID");
    } finally {
      proxyB.restore();
    }
    await reconnected(b, reconnects);
    expect(await verifyOn(b, revoked.secret)).toBe("REVOKED");
    expect(await verifyCached(b, kept.secret)).toBe("VALID");
  });
});

describe("the grace of a disconnected replica", () => {
  test("when the connection is lost, then within the grace cached keys answer from memory, misses read the database and its own writes apply at once; past it VerifyKey and bearer calls are Unavailable INVALIDATION_UNAVAILABLE; back, they answer again", async () => {
    const key = await newKey();
    const fresh = await newKey();
    const own = await newKey();
    await cached(b, key.secret);
    await cached(b, own.secret);
    const { reconnects } = listenerOf(b);
    proxyB.cut();
    try {
      await disconnected(b);
      expect(await verifyCached(b, key.secret)).toBe("VALID");
      expect(await verifyOn(b, fresh.secret)).toBe("VALID");
      await b.client(KeyService).revokeKey({ name: own.name, reason: "revoked through the disconnected replica" }, withKey(t.adminKey));
      expect(await verifyOn(b, own.secret)).toBe("REVOKED");

      b.clock.advance(30_000);
      const unknown = craftKey(b, randomKeyId()).raw;
      expect(await unavailable(b.client(KeyService).verifyKey({ key: key.secret }))).toEqual(["Unavailable", "INVALIDATION_UNAVAILABLE"]);
      expect(await unavailable(b.client(KeyService).verifyKey({ key: unknown }))).toEqual(["Unavailable", "INVALIDATION_UNAVAILABLE"]);
      expect(await unavailable(b.client(KeyService).listKeys({ parent: `tenants/${t.slug}` }, withKey(t.adminKey)))).toEqual(["Unavailable", "INVALIDATION_UNAVAILABLE"]);
      // A malformed key needs no lookup: still a verdict.
      expect(await verifyOn(b, "garbage")).toBe("MALFORMED");
    } finally {
      proxyB.restore();
    }
    await reconnected(b, reconnects);
    expect(await verifyOn(b, key.secret)).toBe("VALID");
  });

  test("when the grace is 0 and the connection is lost, then a cached key is Unavailable at once, and VALID again once it is back", async () => {
    const key = await newKey();
    await cached(strict, key.secret);
    const { reconnects } = listenerOf(strict);
    proxyStrict.cut();
    try {
      await disconnected(strict);
      expect(await unavailable(strict.client(KeyService).verifyKey({ key: key.secret }))).toEqual(["Unavailable", "INVALIDATION_UNAVAILABLE"]);
    } finally {
      proxyStrict.restore();
    }
    await reconnected(strict, reconnects);
    expect(await verifyOn(strict, key.secret)).toBe("VALID");
  });
});

describe("start-up", () => {
  test("when KEYWARD_LISTEN_DATABASE_URL cannot be reached, then start-up fails naming it, without its password", async () => {
    const url = `postgres://keyward:listen-secret-pw@127.0.0.1:${await freePort()}/keyward`;
    const started = startTestServer({ env: { KEYWARD_LISTEN_DATABASE_URL: url } });
    try {
      await expect(started).rejects.toThrow(/cannot LISTEN for credential changes at 127\.0\.0\.1:\d+\/keyward: connection refused \(check KEYWARD_LISTEN_DATABASE_URL\)/);
      await expect(started).rejects.not.toThrow("listen-secret-pw");
    } finally {
      // A server that started after all must not outlive the failed test.
      await started.then((s) => s.stop(), () => undefined);
    }
  });
});
