// How the verification cache reads the database (DESIGN.md §3): concurrent misses of one key
// share one read; a read that an invalidation overtakes is never stored (it reads again);
// warm verifications still record last-used times, written by the flush and on a graceful stop.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { keyIdOf, uniq } from "../rpc.ts";
import { until, within } from "../wait.ts";
import { heard, statsOf, verifyCached, verifyOn } from "./cache-helpers.ts";

let a: TestServer;
let b: TestServer;
let t: TestTenant;

beforeAll(async () => {
  a = await startTestServer();
  b = await startTestServer();
  t = await createTestTenant(a, "reads");
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

async function newKey(): Promise<{ secret: string; name: string }> {
  const created = await a.client(KeyService).createKey({ parent: `tenants/${t.slug}`, displayName: uniq("k"), permissions: ["keys:read"], expireDays: 30 }, withKey(t.adminKey));
  return { secret: created.secret, name: created.key!.name };
}

function hooksOf(server: TestServer) {
  const cache = server.verification.cache;
  if (cache === undefined) throw new Error("cache disabled");
  return cache.hooks;
}

describe("concurrent misses", () => {
  test("when 20 verifications of one uncached key arrive while its read is in flight, then the database is read once and all 20 are VALID", async () => {
    const key = await newKey();
    await heard(b, t.slug);
    const before = statsOf(b);
    // The first read waits (bounded) until all 20 calls have missed: they overlap for certain.
    hooksOf(b).afterLoad = () => until(() => statsOf(b).misses - before.misses >= 20, 5_000, "20 misses");
    try {
      const client = b.client(KeyService, b.grpcTransport);
      const results = await Promise.all(Array.from({ length: 20 }, () => client.verifyKey({ key: key.secret })));
      expect(results.map((r) => r.keyId)).toEqual(Array.from({ length: 20 }, () => keyIdOf(key.secret)));
    } finally {
      hooksOf(b).afterLoad = undefined;
    }
    expect(statsOf(b).misses - before.misses).toBe(20);
    expect(statsOf(b).loads - before.loads).toBe(1);
    expect(await verifyCached(b, key.secret)).toBe("VALID");
  });
});

describe("a revocation racing a read", () => {
  test.each([
    ["the replica that revokes", () => a],
    ["another replica", () => b],
  ])("when the key is revoked while its read on %s is in flight (read before, stored after), then the stale record is not cached: REVOKED now and on the next call", async (_where, replica) => {
    const server = replica();
    const key = await newKey();
    const keyId = keyIdOf(key.secret);
    await heard(server, t.slug);
    let reached!: () => void;
    const atHook = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    hooksOf(server).afterLoad = async ({ id }) => {
      if (id !== keyId) return;
      hooksOf(server).afterLoad = undefined;
      reached();
      await released;
    };
    const loads = statsOf(server).loads;
    try {
      const pending = verifyOn(server, key.secret);
      await within(5_000, atHook, "the read of the key reaches the hook");
      // The read saw the key unrevoked; the revocation commits and is applied while it waits.
      await a.client(KeyService).revokeKey({ name: key.name, reason: "races a read" }, withKey(t.adminKey));
      await heard(server, t.slug);
      release();
      expect(await pending).toBe("REVOKED");
    } finally {
      hooksOf(server).afterLoad = undefined;
      release();
    }
    expect(statsOf(server).loads - loads).toBe(2);
    expect(await verifyCached(server, key.secret)).toBe("REVOKED");
  });
});

describe("last-used times of cached keys", () => {
  test("when a cached key verifies VALID, then its last use is written by the flush, and on a graceful stop", async () => {
    const key = await newKey();
    const lastUsed = async () => {
      const { key: k } = await a.client(KeyService).getKey({ name: key.name }, withKey(t.adminKey));
      return k?.lastUsedTime === undefined ? undefined : timestampDate(k.lastUsedTime).getTime();
    };
    await heard(b, t.slug);
    expect(await verifyOn(b, key.secret)).toBe("VALID");
    b.clock.advance(60_000);
    expect(await verifyCached(b, key.secret)).toBe("VALID");
    await b.flushLastUsed();
    expect(await lastUsed()).toBe(b.clock.now().getTime());

    const c = await startTestServer();
    try {
      await heard(c, t.slug);
      expect(await verifyOn(c, key.secret)).toBe("VALID");
      c.clock.set(new Date(b.clock.now().getTime() + 3_600_000));
      expect(await verifyCached(c, key.secret)).toBe("VALID");
    } finally {
      await c.stop();
    }
    expect(await lastUsed()).toBe(c.clock.now().getTime());
  });
});
