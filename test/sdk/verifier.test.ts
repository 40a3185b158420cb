// The SDK verifier (sdk/src/verifier.ts) against a real keyward and PostgreSQL: verdicts,
// the cache (no RPC on a hit), coalescing, revocation and tenant-wide changes pushed through
// WatchInvalidations, fail-closed when keyward is down, and the stream resuming after a restart.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { createKeywardClient, createVerifier, VerifyResult, type Verifier } from "../../sdk/src/index.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { until } from "../wait.ts";

/** A revoked key must be refused within this long after RevokeKey returns (issue 13). */
const revocationBoundMs = 1000;

let server: TestServer;
let verifyCalls = 0;
const counter: Interceptor = (next) => async (req) => {
  if (req.method.name === "VerifyKey") verifyCalls += 1;
  return next(req);
};

beforeAll(async () => {
  server = await startTestServer({ env: { KEYWARD_WATCH_HEARTBEAT_MS: "300" } });
});
afterAll(async () => {
  await server?.stop();
});

const keys = () => server.client(KeyService);
const directory = () => server.client(DirectoryService);

async function createKey(t: TestTenant, permissions: string[], extra: { org?: string; owner?: string } = {}): Promise<string> {
  const res = await keys().createKey(
    { parent: `tenants/${t.slug}`, displayName: `k ${Math.random().toString(36).slice(2, 10)}`, permissions, expireDays: 30, ...extra },
    withKey(t.adminKey),
  );
  return res.secret;
}

function verifierFor(t: TestTenant, baseUrl = server.url): Verifier {
  const client = createKeywardClient({ baseUrl, apiKey: t.adminKey, interceptors: [counter], retries: 0, timeoutMs: 2000 });
  return createVerifier({ client, tenant: t.slug });
}

/** Verifies until the answer is not VALID, for at most `ms`; returns the time it took. */
async function refusedWithin(v: Verifier, key: string, ms: number): Promise<number> {
  const start = Date.now();
  for (let i = 0; i < 10_000; i++) {
    if (!(await v.verify(key)).valid) return Date.now() - start;
    if (Date.now() - start > ms) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`the key was still accepted after ${ms} ms`);
}

describe("the SDK verifier", () => {
  it("when keys are valid, lack a permission or are pinned to another org, then the verdict, identity and missing permissions say so", async () => {
    const t = await createTestTenant(server, "sv");
    await directory().createOrganization({ parent: `tenants/${t.slug}`, slug: "acme" }, withKey(t.adminKey));
    const key = await createKey(t, ["keys:read"]);
    const pinned = await createKey(t, ["keys:read"], { org: "acme" });
    const v = verifierFor(t);
    try {
      const ok = await v.verify(key, { permissions: ["keys:read"] });
      expect(ok).toMatchObject({ valid: true, result: VerifyResult.VALID, resultName: "VALID", missingPermissions: [] });
      expect(ok.identity).toMatchObject({ keyId: key.split("_")[1], tenant: t.slug, permissions: ["keys:read"], token: false });
      expect(ok.identity!.expireTime).toBeInstanceOf(Date);
      const weak = await v.verify(key, { permissions: ["keys:read", "keys:write"] });
      expect(weak).toMatchObject({ valid: false, result: VerifyResult.INSUFFICIENT_PERMISSIONS, missingPermissions: ["keys:write"] });
      expect((await v.verify(pinned, { org: "other" })).result).toBe(VerifyResult.WRONG_SCOPE);
      expect((await v.verify(pinned, { org: "acme" })).valid).toBe(true);
      expect((await v.verify("kw_nonsense")).result).toBe(VerifyResult.MALFORMED);
    } finally {
      v.close();
    }
  });

  it("when a valid key is verified twice, then the second answer comes from the cache without an RPC", async () => {
    const t = await createTestTenant(server, "sv");
    const key = await createKey(t, ["keys:read"]);
    // No stream: an invalidation it might still deliver (the key's own creation) would rightly drop the entry.
    const v = createVerifier({ client: createKeywardClient({ baseUrl: server.url, apiKey: t.adminKey, interceptors: [counter], retries: 0, timeoutMs: 2000 }), watch: false, degradedTtlMs: 60_000 });
    try {
      await v.verify(key, { permissions: ["keys:read"] });
      const before = verifyCalls;
      // Same check, permissions in another order or duplicated: the same entry.
      expect((await v.verify(key, { permissions: ["keys:read", "keys:read"] })).valid).toBe(true);
      expect(verifyCalls).toBe(before);
      expect(v.stats().hits).toBe(1);
      // Another permission set is another entry: one RPC.
      await v.verify(key, { permissions: [] });
      expect(verifyCalls).toBe(before + 1);
    } finally {
      v.close();
    }
  });

  it("when identical checks run concurrently, then one RPC answers them all", async () => {
    const t = await createTestTenant(server, "sv");
    const key = await createKey(t, ["keys:read"]);
    const v = verifierFor(t);
    try {
      const before = verifyCalls;
      const all = await Promise.all(Array.from({ length: 20 }, () => v.verify(key, { permissions: ["keys:read"] })));
      expect(all.every((r) => r.valid)).toBe(true);
      expect(verifyCalls).toBe(before + 1);
    } finally {
      v.close();
    }
  });

  it("when a cached key is revoked, then the verifier refuses it within a second of RevokeKey returning", async () => {
    const t = await createTestTenant(server, "sv");
    const key = await createKey(t, ["keys:read"]);
    const v = verifierFor(t);
    try {
      await until(() => v.stats().streamUp, 5000, "the invalidation stream");
      expect((await v.verify(key)).valid).toBe(true);
      expect((await v.verify(key)).valid).toBe(true);
      expect(v.stats().hits).toBe(1);
      await keys().revokeKey({ name: `tenants/${t.slug}/keys/${key.split("_")[1]}`, reason: "test" }, withKey(t.adminKey));
      const took = await refusedWithin(v, key, revocationBoundMs);
      expect(took).toBeLessThan(revocationBoundMs);
      expect((await v.verify(key)).result).toBe(VerifyResult.REVOKED);
    } finally {
      v.close();
    }
  });

  it("when the key's owner loses its permissions, then the tenant-wide invalidation empties the cache", async () => {
    const t = await createTestTenant(server, "sv");
    const { principal } = await directory().createPrincipal(
      { parent: `tenants/${t.slug}`, principalId: "owner", type: PrincipalType.USER, permissions: ["keys:read", "directory:read"] },
      withKey(t.adminKey),
    );
    const key = await createKey(t, ["keys:read"], { owner: principal!.name });
    const v = verifierFor(t);
    try {
      await until(() => v.stats().streamUp, 5000, "the invalidation stream");
      expect((await v.verify(key, { permissions: ["keys:read"] })).valid).toBe(true);
      expect(v.stats().size).toBe(1);
      await directory().updatePrincipal({ principal: { name: principal!.name, permissions: ["directory:read"] }, updateMask: { paths: ["permissions"] } }, withKey(t.adminKey));
      await until(() => v.stats().size === 0, revocationBoundMs, "the cache emptied");
      expect((await v.verify(key, { permissions: ["keys:read"] })).result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
    } finally {
      v.close();
    }
  });

  it("when a revocation arrives while a lookup is in flight, then that lookup's VALID answer is not cached", async () => {
    const t = await createTestTenant(server, "sv");
    const key = await createKey(t, ["keys:read"]);
    let holdNext = false;
    let release: () => void = () => {};
    let held = false;
    const gate: Interceptor = (next) => async (req) => {
      const res = await next(req);
      if (req.method.name === "VerifyKey" && holdNext) {
        holdNext = false;
        held = true;
        await new Promise<void>((r) => { release = r; });
      }
      return res;
    };
    const v = createVerifier({ client: createKeywardClient({ baseUrl: server.url, apiKey: t.adminKey, interceptors: [gate, counter], retries: 0 }), tenant: t.slug });
    try {
      await until(() => v.stats().streamUp, 5000, "the invalidation stream");
      holdNext = true;
      const pending = v.verify(key);
      await until(() => held, 2000, "the lookup answered VALID and held");
      const seen = v.stats().invalidations;
      await keys().revokeKey({ name: `tenants/${t.slug}/keys/${key.split("_")[1]}`, reason: "test" }, withKey(t.adminKey));
      await until(() => v.stats().invalidations > seen, revocationBoundMs, "the revocation reached the verifier");
      release();
      expect((await pending).valid).toBe(true); // answered before the revocation: returned, but not kept
      expect(v.stats().size).toBe(0);
      const before = verifyCalls;
      expect((await v.verify(key)).result).toBe(VerifyResult.REVOKED);
      expect(verifyCalls).toBe(before + 1);
    } finally {
      release();
      v.close();
    }
  });

  it("when the stream is off, then an entry is served only for degradedTtlMs", async () => {
    const t = await createTestTenant(server, "sv");
    const key = await createKey(t, ["keys:read"]);
    const v = createVerifier({ client: createKeywardClient({ baseUrl: server.url, interceptors: [counter] }), watch: false, degradedTtlMs: 200 });
    try {
      await v.verify(key);
      const before = verifyCalls;
      await v.verify(key);
      expect(verifyCalls).toBe(before);
      await new Promise((r) => setTimeout(r, 250)); // the TTL itself is what is tested
      await v.verify(key);
      expect(verifyCalls).toBe(before + 1);
    } finally {
      v.close();
    }
  });

  it("when a cached key of another tenant is revoked, then it is refused within degradedTtlMs (the stream carries only the watched tenant's changes), while the watched tenant's keys stay cached", async () => {
    const a = await createTestTenant(server, "sv");
    const b = await createTestTenant(server, "sv");
    const mine = await createKey(a, ["keys:read"]);
    const theirs = await createKey(b, ["keys:read"]);
    // No `tenant`: the watched tenant is learned from the apiKey.
    const v = createVerifier({ baseUrl: server.url, apiKey: a.adminKey, degradedTtlMs: 300 });
    try {
      await until(() => v.stats().streamUp, 5000, "the invalidation stream");
      expect((await v.verify(mine)).valid).toBe(true);
      expect((await v.verify(theirs)).valid).toBe(true);
      await keys().revokeKey({ name: `tenants/${b.slug}/keys/${theirs.split("_")[1]}`, reason: "test" }, withKey(b.adminKey));
      const took = await refusedWithin(v, theirs, 300 + revocationBoundMs);
      expect(took).toBeLessThan(300 + revocationBoundMs);
      expect((await v.verify(theirs)).result).toBe(VerifyResult.REVOKED);
      // Past degradedTtlMs, the watched tenant's key is still answered from the cache.
      const rpcs = v.stats().rpcs;
      expect((await v.verify(mine)).valid).toBe(true);
      expect(v.stats().rpcs).toBe(rpcs);
    } finally {
      v.close();
    }
  });

  it("when a key was cached before the stream could open and revoked before it opened, then the stream's start does not make that entry trusted: it is refused within degradedTtlMs", async () => {
    const t = await createTestTenant(server, "sv");
    const key = await createKey(t, ["keys:read"]);
    let streamAllowed = false;
    const gate: Interceptor = (next) => async (req) => {
      if (req.method.name === "WatchInvalidations" && !streamAllowed) throw new ConnectError("not yet", Code.Unavailable);
      return next(req);
    };
    const v = createVerifier({ client: createKeywardClient({ baseUrl: server.url, apiKey: t.adminKey, interceptors: [gate], retries: 0 }), tenant: t.slug, degradedTtlMs: 800 });
    try {
      expect((await v.verify(key)).valid).toBe(true);
      await keys().revokeKey({ name: `tenants/${t.slug}/keys/${key.split("_")[1]}`, reason: "test" }, withKey(t.adminKey));
      streamAllowed = true;
      // The stream starts "from now": the revocation is before it and never reported.
      await until(() => v.stats().streamUp, 10_000, "the invalidation stream");
      const took = await refusedWithin(v, key, 800 + revocationBoundMs);
      expect(took).toBeLessThan(800 + revocationBoundMs);
      expect((await v.verify(key)).result).toBe(VerifyResult.REVOKED);
    } finally {
      v.close();
    }
  });

  it("when a key is longer than any credential (over 8 KiB), then it is MALFORMED without a call; permission and org strings cannot make two checks share an entry", async () => {
    const t = await createTestTenant(server, "sv");
    const v = verifierFor(t);
    try {
      const before = verifyCalls;
      expect((await v.verify("k".repeat(300_000))).resultName).toBe("MALFORMED");
      expect(verifyCalls).toBe(before);
      // ["keys:read,keys:write"] is not ["keys:read", "keys:write"]: keyward refuses the first.
      expect((await v.verify(t.adminKey, { permissions: ["keys:read", "keys:write"] })).valid).toBe(true);
      const err = await v.verify(t.adminKey, { permissions: ["keys:read,keys:write"] }).then(() => undefined, (e: unknown) => e);
      expect([(err as ConnectError | undefined)?.code]).toEqual([Code.InvalidArgument]);
    } finally {
      v.close();
    }
  });

  it("when an option is not a finite number >= 0 (NaN would disable a bound, e.g. maxEntries), then createVerifier throws a RangeError naming it", () => {
    for (const option of ["cacheTtlMs", "maxEntries", "negativeTtlMs", "degradedTtlMs", "streamIdleMs"]) {
      for (const value of [Number.NaN, -1, Number.POSITIVE_INFINITY]) {
        expect(() => createVerifier({ baseUrl: server.url, watch: false, [option]: value })).toThrow(new RangeError(`createVerifier: ${option} must be a finite number >= 0`));
      }
    }
  });

  it("when keyward is unreachable and nothing is cached, then verify throws Unavailable (fail closed)", async () => {
    const t = await createTestTenant(server, "sv");
    const client = createKeywardClient({ baseUrl: "http://127.0.0.1:1", retries: 0, timeoutMs: 1000 });
    const v = createVerifier({ client, watch: false });
    try {
      const err = await v.verify(t.adminKey).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
    } finally {
      v.close();
    }
  });

  it("when keyward restarts on the same port, then the stream resumes and a revocation made meanwhile reaches the cache", async () => {
    const t = await createTestTenant(server, "sv");
    const key = await createKey(t, ["keys:read"]);
    const port = server.port;
    const baseUrl = server.url;
    const v = createVerifier({ client: createKeywardClient({ baseUrl, apiKey: t.adminKey, retries: 0, timeoutMs: 2000 }), tenant: t.slug, degradedTtlMs: 60_000 });
    try {
      await until(() => v.stats().streamUp, 5000, "the invalidation stream");
      expect((await v.verify(key)).valid).toBe(true);
      const opened = v.stats().streamsOpened;
      await server.stop();
      await until(() => !v.stats().streamUp, 5000, "the stream noticed the stop");
      // Revoked while keyward is down (straight in the database through a second server on another port).
      const other = await startTestServer();
      try {
        await other.client(KeyService).revokeKey({ name: `tenants/${t.slug}/keys/${key.split("_")[1]}`, reason: "test" }, withKey(t.adminKey));
      } finally {
        await other.stop();
      }
      // The entry is younger than degradedTtlMs (60 s): only the resumed stream can drop it.
      server = await startTestServer({ env: { PORT: String(port), KEYWARD_WATCH_HEARTBEAT_MS: "300" } });
      await until(() => v.stats().streamUp && v.stats().streamsOpened > opened, 10_000, "the stream resumed");
      await until(() => v.stats().size === 0, 2000, "the revocation replayed after resuming");
      expect((await v.verify(key)).result).toBe(VerifyResult.REVOKED);
    } finally {
      v.close();
    }
  });
});

