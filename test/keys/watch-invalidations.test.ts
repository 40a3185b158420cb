// KeyService.WatchInvalidations (issue 13): a tenant's credential changes as a server stream,
// over Connect and gRPC, with hashed key ids, resume tokens, heartbeats and bounds.
import { createHash } from "node:crypto";
import { describe, expect, it } from "@jest/globals";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { toBinary } from "@bufbuild/protobuf";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { PrincipalStatus, PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { InvalidationScope, KeyService, WatchInvalidationsResponseSchema, type WatchInvalidationsResponse } from "../../gen/keyward/v1/key_service_pb.ts";
import { catchUpQuery, encodeResumeToken } from "../../src/keys/invalidation-watch.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { createPolicy, policyOf, policyClient } from "../policies/policy-helpers.ts";
import { directory, keyIdOf, keys, reasonOf, rpcError, server, uniq, useServer } from "../rpc.ts";
import { until, within } from "../wait.ts";

const heartbeatMs = 300;
/** How long a change may take to reach an open stream (it is pushed, not polled: well under this). */
const boundMs = 5_000;

/** SHA-256 of the key id, base64url without padding: what the SDK computes from a raw key. */
const hashOf = (raw: string): string => createHash("sha256").update(keyIdOf(raw), "ascii").digest("base64url");

type Watch = {
  /** The next message (heartbeats included), within `ms` (default: the bound). */
  next(what: string, ms?: number): Promise<WatchInvalidationsResponse>;
  /** Reads messages until one has an invalidation matching `pred`; returns every message read. */
  until(pred: (m: WatchInvalidationsResponse) => boolean, what: string): Promise<WatchInvalidationsResponse[]>;
  /** Every message received so far. */
  received: WatchInvalidationsResponse[];
  close(): void;
};

function openWatch(srv: TestServer, t: TestTenant, opts: { transport?: Transport; resumeToken?: string; key?: string | undefined; parent?: string } = {}): Watch {
  const ac = new AbortController();
  const client = srv.client(KeyService, opts.transport);
  const stream = client.watchInvalidations(
    { parent: opts.parent ?? `tenants/${t.slug}`, resumeToken: opts.resumeToken ?? "" },
    { ...withKey("key" in opts ? opts.key : t.adminKey), signal: ac.signal },
  );
  const iterator = stream[Symbol.asyncIterator]();
  const received: WatchInvalidationsResponse[] = [];
  const next = async (what: string, ms = boundMs): Promise<WatchInvalidationsResponse> => {
    const r = await within(ms, iterator.next(), what);
    if (r.done === true) throw new Error(`${what}: the stream ended`);
    received.push(r.value);
    return r.value;
  };
  return {
    next,
    received,
    async until(pred, what) {
      const read: WatchInvalidationsResponse[] = [];
      const deadline = Date.now() + boundMs;
      // Bounded by time and by count (heartbeats come every heartbeatMs).
      for (let i = 0; i < 200 && Date.now() < deadline; i++) {
        const m = await next(what);
        read.push(m);
        if (pred(m)) return read;
      }
      throw new Error(`${what}: not within ${boundMs} ms`);
    },
    close: () => ac.abort(),
  };
}

const hasKey = (hash: string) => (m: WatchInvalidationsResponse): boolean =>
  m.invalidations.some((i) => i.scope === InvalidationScope.KEY && i.keyIdHash === hash);
const hasTenant = (m: WatchInvalidationsResponse): boolean => m.invalidations.some((i) => i.scope === InvalidationScope.TENANT);

async function createKey(t: TestTenant, permissions = ["keys:read"]): Promise<string> {
  const { secret } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("watched"), permissions, expireDays: 30 }, withKey(t.adminKey));
  return secret;
}

async function revoke(t: TestTenant, raw: string): Promise<void> {
  await keys.revokeKey({ name: `tenants/${t.slug}/keys/${keyIdOf(raw)}`, reason: "test" }, withKey(t.adminKey));
}

/** Reads messages until the stream fails (bounded by time and count); the error it ended with. */
async function endOf(w: Watch, what: string): Promise<ConnectError> {
  const deadline = Date.now() + boundMs;
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    try {
      await w.next(what);
    } catch (e) {
      if (e instanceof ConnectError) return e;
      throw e;
    }
  }
  throw new Error(`${what}: the stream still runs after ${boundMs} ms`);
}

/** The first message, which comes once the stream is set up: changes after it reach the stream. */
async function established(w: Watch): Promise<WatchInvalidationsResponse> {
  return w.next("the stream's first message");
}

describe("WatchInvalidations", () => {
  useServer({ env: { KEYWARD_WATCH_HEARTBEAT_MS: String(heartbeatMs) } });

  describe.each([
    ["Connect", () => server.connectTransport],
    ["gRPC", () => server.grpcTransport],
  ])("over %s", (_name, transport) => {
    it("when a key is revoked, then its id's hash (never the id) reaches the stream within the bound", async () => {
      const t = await createTestTenant(server);
      const raw = await createKey(t);
      const w = openWatch(server, t, { transport: transport() });
      try {
        await established(w);
        await revoke(t, raw);
        const read = await w.until(hasKey(hashOf(raw)), "the revocation");
        const last = read[read.length - 1]!;
        const entry = last.invalidations.find((i) => i.keyIdHash === hashOf(raw))!;
        expect(last.heartbeat).toBe(false);
        expect(last.resumeToken).not.toBe("");
        expect(entry.changeTime).toBeDefined();
        expect(Math.abs(Number(entry.changeTime!.seconds) * 1000 - Date.now())).toBeLessThan(60_000);
        // The id in clear is nowhere in what was sent.
        for (const m of w.received) {
          expect(Buffer.from(toBinary(WatchInvalidationsResponseSchema, m)).includes(keyIdOf(raw))).toBe(false);
        }
      } finally {
        w.close();
      }
    });

    it("when a principal is suspended, then a tenant-wide invalidation reaches the stream", async () => {
      const t = await createTestTenant(server);
      const { principal } = await directory.createPrincipal({ parent: `tenants/${t.slug}`, principalId: "suspendee", type: PrincipalType.USER, permissions: [] }, withKey(t.adminKey));
      const w = openWatch(server, t, { transport: transport() });
      try {
        await established(w);
        await directory.updatePrincipal({ principal: { name: principal!.name, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(t.adminKey));
        const read = await w.until(hasTenant, "the suspension");
        expect(read[read.length - 1]!.invalidations.find((i) => i.scope === InvalidationScope.TENANT)!.keyIdHash).toBe("");
      } finally {
        w.close();
      }
    });

    it("when a policy is deleted, then a tenant-wide invalidation reaches the stream", async () => {
      const t = await createTestTenant(server);
      const policy = policyOf(await createPolicy(t));
      const w = openWatch(server, t, { transport: transport() });
      try {
        await established(w);
        await policyClient().deletePolicy({ name: policy.name, etag: policy.etag }, withKey(t.adminKey));
        await w.until(hasTenant, "the policy deletion");
      } finally {
        w.close();
      }
    });

    it("when nothing changes, then heartbeats with a resume token arrive", async () => {
      const t = await createTestTenant(server);
      const w = openWatch(server, t, { transport: transport() });
      try {
        await established(w);
        const beat = await w.next("a heartbeat");
        expect(beat).toMatchObject({ heartbeat: true, invalidations: [] });
        expect(beat.resumeToken).not.toBe("");
      } finally {
        w.close();
      }
    });
  });

  it("when another tenant's keys and principals change, then none of it reaches the stream", async () => {
    const a = await createTestTenant(server, "wa");
    const b = await createTestTenant(server, "wb");
    const mine = await createKey(a);
    const theirs = await createKey(b);
    const w = openWatch(server, a);
    try {
      await established(w);
      await revoke(b, theirs);
      const other = await createKey(b);
      const { principal } = await directory.createPrincipal({ parent: `tenants/${b.slug}`, principalId: "other", type: PrincipalType.USER, permissions: [] }, withKey(b.adminKey));
      await directory.updatePrincipal({ principal: { name: principal!.name, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(b.adminKey));
      // Then a change of our own, which comes after all of theirs.
      await revoke(a, mine);
      await w.until(hasKey(hashOf(mine)), "our own revocation");
      const all = w.received.flatMap((m) => m.invalidations);
      expect(all.map((i) => [i.scope, i.keyIdHash])).toEqual([[InvalidationScope.KEY, hashOf(mine)]]);
      expect(all.some((i) => i.keyIdHash === hashOf(theirs) || i.keyIdHash === hashOf(other))).toBe(false);
    } finally {
      w.close();
    }
  });

  it("when a stream resumes with its last token, then what happened meanwhile arrives, each change once", async () => {
    const t = await createTestTenant(server);
    const [k0, k1, k2, k3] = [await createKey(t), await createKey(t), await createKey(t), await createKey(t)];
    const first = openWatch(server, t);
    let token: string;
    try {
      await established(first);
      await revoke(t, k0);
      const read = await first.until(hasKey(hashOf(k0)), "the first revocation");
      token = read[read.length - 1]!.resumeToken;
    } finally {
      first.close();
    }
    // Meanwhile, with no stream open:
    await revoke(t, k1);
    await revoke(t, k2);
    const second = openWatch(server, t, { resumeToken: token });
    try {
      await second.until(() => second.received.some(hasKey(hashOf(k1))) && second.received.some(hasKey(hashOf(k2))), "the changes made while disconnected");
      await revoke(t, k3);
      await second.until(hasKey(hashOf(k3)), "a live change after the resume");
      const hashes = second.received.flatMap((m) => m.invalidations.map((i) => i.keyIdHash));
      expect(hashes.filter((h) => h === hashOf(k1))).toHaveLength(1);
      expect(hashes.filter((h) => h === hashOf(k2))).toHaveLength(1);
      expect(hashes.filter((h) => h === hashOf(k3))).toHaveLength(1);
      // Delivered before the token: not again.
      expect(hashes).not.toContain(hashOf(k0));
    } finally {
      second.close();
    }
  });

  it("when the resume position is older than the change log keeps, then the first message drops the whole tenant", async () => {
    const t = await createTestTenant(server);
    const rows = await server.store.db.orm.driver.getConnection().execute<{ id: string }[]>("select id::text as id from tenant where slug = ?", [t.slug], "all");
    const old = encodeResumeToken(rows[0]!.id, { cursor: 1n, delivered: new Map(), timeMs: Date.now() - 2 * 24 * 60 * 60_000 });
    const w = openWatch(server, t, { resumeToken: old });
    try {
      const m = await established(w);
      expect(m.invalidations[0]).toMatchObject({ scope: InvalidationScope.TENANT, keyIdHash: "" });
      expect(m.heartbeat).toBe(false);
    } finally {
      w.close();
    }
  });

  it("when a stream catches up from an old position, then PostgreSQL reads only the asking tenant's changes (index on tenant_id, txid), not every tenant's since then", async () => {
    const mine = await createTestTenant(server);
    const other = await createTestTenant(server);
    const connection = server.store.db.orm.driver.getConnection();
    const ids = await connection.execute<{ slug: string; id: string }[]>("select slug, id::text as id from tenant where slug in (?, ?)", [mine.slug, other.slug], "all");
    const idOf = (slug: string) => ids.find((r) => r.slug === slug)!.id;
    // Another tenant's busy day: 20 000 changes.
    await connection.execute("insert into credential_change (tenant_id, scope, key_id) select ?::uuid, 'key', 'k' || g from generate_series(1, 20000) g", [idOf(other.slug)], "run");
    await connection.execute("analyze credential_change", [], "run");
    const plan = await connection.execute<{ "QUERY PLAN": unknown }[]>(`explain (format json) ${catchUpQuery}`, ["1", idOf(mine.slug)], "all");
    expect(JSON.stringify(plan)).toContain("credential_change_tenant_txid_idx");
  });

  it("when the resume token is forged or another tenant's, then INVALID_ARGUMENT INVALID_RESUME_TOKEN", async () => {
    const a = await createTestTenant(server, "wa");
    const b = await createTestTenant(server, "wb");
    const wb = openWatch(server, b);
    let bToken: string;
    try {
      bToken = (await established(wb)).resumeToken;
    } finally {
      wb.close();
    }
    const forged = Buffer.from(JSON.stringify({ x: "1", d: [], t: Date.now(), f: "forged" })).toString("base64url");
    for (const resumeToken of [bToken, forged, "not a token", "e30"]) {
      const err = await rpcError(openWatch(server, a, { resumeToken }).next("the refusal"));
      expect([err.code, reasonOf(err), resumeToken === bToken ? "other tenant" : "forged"]).toEqual([Code.InvalidArgument, "INVALID_RESUME_TOKEN", resumeToken === bToken ? "other tenant" : "forged"]);
    }
  });

  it("when the resume token's position is past the largest transaction id (xid8), then INVALID_RESUME_TOKEN, not an internal error", async () => {
    const t = await createTestTenant(server);
    const rows = await server.store.db.orm.driver.getConnection().execute<{ id: string }[]>("select id::text as id from tenant where slug = ?", [t.slug], "all");
    const past = 2n ** 64n;
    for (const position of [{ cursor: past, delivered: new Map<string, bigint>() }, { cursor: 1n, delivered: new Map([["1", past]]) }]) {
      const token = encodeResumeToken(rows[0]!.id, { ...position, timeMs: Date.now() });
      const err = await rpcError(openWatch(server, t, { resumeToken: token }).next("the refusal"));
      expect([err.code, reasonOf(err)]).toEqual([Code.InvalidArgument, "INVALID_RESUME_TOKEN"]);
    }
  });

  it("when the watching key is revoked, then its stream ends UNAUTHENTICATED within the bound", async () => {
    const t = await createTestTenant(server);
    const watcher = await createKey(t, ["keys:read"]);
    const w = openWatch(server, t, { key: watcher });
    try {
      await established(w);
      await revoke(t, watcher);
      const err = await endOf(w, "the watcher's revocation");
      expect([err.code, reasonOf(err)]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
    } finally {
      w.close();
    }
  });

  it("when the watching key's owner loses keys:read, then its stream ends PERMISSION_DENIED within the bound", async () => {
    const t = await createTestTenant(server);
    const { principal } = await directory.createPrincipal({ parent: `tenants/${t.slug}`, principalId: "watcher", type: PrincipalType.SERVICE_ACCOUNT, permissions: ["keys:read"] }, withKey(t.adminKey));
    const { secret } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("watcher"), permissions: ["keys:read"], expireDays: 30, owner: principal!.name }, withKey(t.adminKey));
    const w = openWatch(server, t, { key: secret });
    try {
      await established(w);
      await directory.updatePrincipal({ principal: { name: principal!.name, permissions: ["directory:read"] }, updateMask: { paths: ["permissions"] } }, withKey(t.adminKey));
      const err = await endOf(w, "the owner's demotion");
      expect([err.code, reasonOf(err)]).toEqual([Code.PermissionDenied, "INSUFFICIENT_SCOPE"]);
    } finally {
      w.close();
    }
  });

  it("when the caller has no credential, then UNAUTHENTICATED", async () => {
    const t = await createTestTenant(server);
    const err = await rpcError(openWatch(server, t, { key: undefined }).next("the refusal"));
    expect(err.code).toBe(Code.Unauthenticated);
  });

  it("when the caller lacks keys:read or names another tenant, then PERMISSION_DENIED", async () => {
    const a = await createTestTenant(server, "wa");
    const b = await createTestTenant(server, "wb");
    const weak = await createKey(a, ["directory:read"]);
    const err = await rpcError(openWatch(server, a, { key: weak }).next("the refusal"));
    expect([err.code, reasonOf(err)]).toEqual([Code.PermissionDenied, "INSUFFICIENT_SCOPE"]);
    const other = await rpcError(openWatch(server, a, { parent: `tenants/${b.slug}` }).next("the refusal"));
    expect([other.code, reasonOf(other)]).toEqual([Code.PermissionDenied, "TENANT_MISMATCH"]);
  });
});

describe("WatchInvalidations bounds", () => {
  it("when one tenant has its per-tenant limit of streams open, then its next stream is RESOURCE_EXHAUSTED and another tenant's still opens", async () => {
    const srv = await startTestServer({ env: { KEYWARD_WATCH_MAX_STREAMS: "10", KEYWARD_WATCH_MAX_STREAMS_PER_TENANT: "2", KEYWARD_WATCH_HEARTBEAT_MS: "60000" } });
    const open: Watch[] = [];
    try {
      const a = await createTestTenant(srv, "wa");
      const b = await createTestTenant(srv, "wb");
      for (let i = 0; i < 2; i++) {
        open.push(openWatch(srv, a));
        await established(open[open.length - 1]!);
      }
      const err = await rpcError(openWatch(srv, a).next("the refusal"));
      expect([err.code, reasonOf(err), err.findDetails(ErrorInfoSchema)[0]?.metadata["limit"]]).toEqual([Code.ResourceExhausted, "TOO_MANY_WATCH_STREAMS", "2"]);
      open.push(openWatch(srv, b));
      await established(open[open.length - 1]!);
    } finally {
      for (const w of open) w.close();
      await srv.stop();
    }
  });

  it("when the watching key expires while its stream is open (nothing else changes), then the stream ends UNAUTHENTICATED within the recheck period", async () => {
    const srv = await startTestServer({ env: { KEYWARD_WATCH_HEARTBEAT_MS: "60000" } });
    let w: Watch | undefined;
    try {
      const t = await createTestTenant(srv);
      const { secret } = await srv.client(KeyService).createKey({ parent: `tenants/${t.slug}`, displayName: uniq("expiring"), permissions: ["keys:read"], expireDays: 1 }, withKey(t.adminKey));
      w = openWatch(srv, t, { key: secret });
      await established(w);
      srv.clock.advance(2 * 24 * 60 * 60_000);
      // No change is written: only the periodic recheck can notice (5 s after the last, at the
      // change log's next 5 s heartbeat: within 10 s). No message comes meanwhile (heartbeat 60 s).
      const err = await w.next("the expiry", 15_000).then(() => undefined, (e: unknown) => e);
      if (!(err instanceof ConnectError)) throw new Error(`the stream did not end with an RPC error: ${String(err)}`);
      expect([err.code, reasonOf(err)]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
    } finally {
      w?.close();
      await srv.stop();
    }
  }, 30_000);

  it("when the stream limit is reached, then RESOURCE_EXHAUSTED; when the server stops, then open streams end cleanly", async () => {
    const srv = await startTestServer({ env: { KEYWARD_WATCH_MAX_STREAMS: "1", KEYWARD_WATCH_HEARTBEAT_MS: "60000" } });
    const w = { current: undefined as Watch | undefined };
    try {
      const t = await createTestTenant(srv);
      // A client that goes away frees its place (and is no server failure).
      const gone = openWatch(srv, t);
      await established(gone);
      gone.close();
      await until(() => srv.logs.some((l) => l.includes("WatchInvalidations") && /cancel/i.test(l)), boundMs, "the cancelled stream's log line");
      w.current = openWatch(srv, t);
      await within(boundMs, (async () => {
        // Its place is freed once the server sees the cancellation (bounded retries, no sleep).
        for (let i = 0; ; i++) {
          try {
            return await established(w.current!);
          } catch (e) {
            if (i > 50 || !(e instanceof ConnectError) || e.code !== Code.ResourceExhausted) throw e;
            w.current = openWatch(srv, t);
          }
        }
      })(), "a stream after the first went away");
      const err = await rpcError(openWatch(srv, t).next("the refusal"));
      expect([err.code, reasonOf(err)]).toEqual([Code.ResourceExhausted, "TOO_MANY_WATCH_STREAMS"]);
      const iteratorEnd = (async () => {
        try {
          await w.current!.next("the end");
          return "message";
        } catch (e) {
          return e instanceof ConnectError ? `error ${Code[e.code]}` : String(e);
        }
      })();
      await within(boundMs, srv.stop(), "the stop");
      // The stream ended with OK (no message, no error) well before the drain's grace.
      expect(await iteratorEnd).toBe("Error: the end: the stream ended");
      expect(srv.logs.filter((l) => /unexpected error|"level":50/.test(l))).toEqual([]);
    } finally {
      w.current?.close();
      await srv.stop();
    }
  });
});
