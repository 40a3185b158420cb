// Deadlines and a hung database (issue 10, item 7): with PostgreSQL frozen (SIGSTOP) or gone,
// a call answers DeadlineExceeded at the caller's deadline, or Unavailable within the
// configured query bound when it has none; behind PgBouncer, its refusals are Unavailable
// too; and everything works again once PostgreSQL is back. Uses an own PostgreSQL, never the
// run's shared one.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import http2 from "node:http2";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.ts";
import { KeyService, VerifyKeyRequestSchema, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { KeyKindName, mintKey } from "../../src/keys/key-format.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { rpcError } from "../rpc.ts";
import { until } from "../wait.ts";
import { frame } from "./raw-http.ts";
import { pgbouncerBinary, startPgBouncer, startServerOnOwnPostgres, type ServerOnOwnPostgres, type StoppablePostgres } from "./stoppable-postgres.ts";

const queryTimeoutMs = 3000;
const connectTimeoutMs = 1000;
const deadlineMs = 2000;

let setup: ServerOnOwnPostgres | undefined;
let own: StoppablePostgres;
let server: TestServer;
/** A second server on the same PostgreSQL without the VerifyKey fast path (KEYWARD_VERIFY_FAST_PATH=0). */
let normal: TestServer | undefined;
let tenant: TestTenant;

beforeAll(async () => {
  const bounds = { KEYWARD_DB_QUERY_TIMEOUT_MS: String(queryTimeoutMs), KEYWARD_DB_CONNECT_TIMEOUT_MS: String(connectTimeoutMs) };
  setup = await startServerOnOwnPostgres(bounds);
  ({ own, server } = setup);
  normal = await startTestServer({ env: { DATABASE_URL: own.url, ...bounds, KEYWARD_VERIFY_FAST_PATH: "0" } });
  tenant = await createTestTenant(server, "dl");
}, 120_000);

afterAll(async () => {
  own?.thaw();
  await normal?.stop();
  await setup?.close();
}, 60_000);

/** VerifyKey through the fast path (the default server, whose counter must move) and through connect-node alone. */
const verifyServers: [string, () => TestServer][] = [
  ["the fast path", () => server],
  ["connect-node", () => normal!],
];

/**
 * After a thaw: waits until both servers verify through the database again (each attempt
 * is bounded by the pool and query bounds; at most 30), so that connections one test left
 * stuck in a frozen query do not decide the next test.
 */
async function recovered(): Promise<void> {
  for (const s of [server, normal!]) {
    const keys = s.client(KeyService);
    for (let attempt = 1; ; attempt++) {
      const ok = await keys.verifyKey({ key: unseenKey(s) }).then((r) => r.result === VerifyResult.NOT_FOUND, () => false);
      if (ok) break;
      if (attempt >= 30) throw new Error("a server does not verify through the database 30 attempts after the thaw");
    }
  }
}

/** Runs `fn` on `s`; on the fast-path server, expects the fast path to have answered exactly one call. */
async function throughPath<T>(s: TestServer, fn: () => Promise<T>): Promise<T> {
  const before = s.verifyFastPathStats().answered;
  const value = await fn();
  expect(s.verifyFastPathStats().answered - before).toBe(s.config.verifyFastPath ? 1 : 0);
  return value;
}

/** A well-formed key that no cache has seen (its lookup must reach the database). */
function unseenKey(s: TestServer): string {
  return mintKey(s.config.keyPrefix, KeyKindName.FINE_GRAINED).raw;
}

/**
 * Call options that send the deadline header only, like curl or buf curl would: a client
 * that enforces its own deadline would answer DeadlineExceeded itself and hide the server.
 */
function deadlineHeader(protocol: "connect" | "grpc", ms: number, key?: string): { headers: Record<string, string> } {
  const deadline = protocol === "connect" ? { "connect-timeout-ms": String(ms) } : { "grpc-timeout": `${ms}m` };
  return { headers: { ...deadline, ...withKey(key).headers } };
}

/** How long `p` takes to settle, and its error code if it fails. */
async function timed(p: Promise<unknown>): Promise<{ ms: number; code: Code | undefined }> {
  const started = performance.now();
  const code = await rpcError(p).then((e) => e.code, () => undefined);
  return { ms: performance.now() - started, code };
}

describe("a frozen PostgreSQL (SIGSTOP)", () => {
  afterEach(recovered, 60_000);

  test.each(verifyServers)("when VerifyKey (through %s) has connect-timeout-ms 2000, then it answers DeadlineExceeded at the deadline", async (_path, pick) => {
    const s = pick();
    const keys = s.client(KeyService);
    own.freeze();
    try {
      const { ms, code } = await throughPath(s, () => timed(keys.verifyKey({ key: unseenKey(s) }, deadlineHeader("connect", deadlineMs))));
      expect(code).toBe(Code.DeadlineExceeded);
      expect(ms).toBeGreaterThanOrEqual(deadlineMs - 100);
      expect(ms).toBeLessThan(deadlineMs + 2000);
    } finally {
      own.thaw();
    }
  });

  test.each(verifyServers)("when VerifyKey over gRPC (through %s) has a 2 s deadline, then it answers DeadlineExceeded at the deadline", async (_path, pick) => {
    const s = pick();
    const keys = s.client(KeyService, s.grpcTransport);
    own.freeze();
    try {
      const { ms, code } = await throughPath(s, () => timed(keys.verifyKey({ key: unseenKey(s) }, deadlineHeader("grpc", deadlineMs))));
      expect(code).toBe(Code.DeadlineExceeded);
      expect(ms).toBeGreaterThanOrEqual(deadlineMs - 100);
      expect(ms).toBeLessThan(deadlineMs + 2000);
    } finally {
      own.thaw();
    }
  });

  test.each(verifyServers)("when VerifyKey (through %s) has no deadline, then it answers Unavailable within the query bound", async (_path, pick) => {
    const s = pick();
    const keys = s.client(KeyService);
    own.freeze();
    try {
      const { ms, code } = await throughPath(s, () => timed(keys.verifyKey({ key: unseenKey(s) })));
      expect(code).toBe(Code.Unavailable);
      expect(ms).toBeLessThan(queryTimeoutMs + connectTimeoutMs + 2000);
    } finally {
      own.thaw();
    }
  });

  test("when the client resets its gRPC stream while the fast path waits for the frozen database, then the call is logged Canceled at info level and gets no answer", async () => {
    const requestId = randomUUID();
    const before = server.verifyFastPathStats();
    const session = http2.connect(server.url);
    session.on("error", () => {});
    own.freeze();
    try {
      const stream = session.request({ ":method": "POST", ":path": "/keyward.v1.KeyService/VerifyKey", "content-type": "application/grpc", te: "trailers", "x-request-id": requestId });
      stream.on("error", () => {});
      let answered = false;
      stream.on("response", () => (answered = true));
      stream.end(frame(0, toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { key: unseenKey(server) }))));
      await until(() => server.verifyFastPathStats().verifying > before.verifying, 5_000, "the fast path waiting for the verifier");
      stream.destroy(); // RST_STREAM CANCEL, as a cancelling gRPC client sends
      const rpcLines = () => server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l["requestId"] === requestId && l["msg"] === "rpc");
      await until(() => rpcLines().length > 0, 5_000, "the rpc line");
      expect(rpcLines()).toEqual([expect.objectContaining({ code: "Canceled", level: 30, procedure: "keyward.v1.KeyService/VerifyKey" })]);
      expect(answered).toBe(false);
      expect(server.verifyFastPathStats()).toMatchObject({ answered: before.answered + 1, verifying: before.verifying });
    } finally {
      own.thaw();
      session.close();
    }
  });

  test("when a management call has a deadline, then DeadlineExceeded at it; without one, Unavailable within the bound", async () => {
    const keys = server.client(KeyService);
    const parent = `tenants/${tenant.slug}`;
    await keys.listKeys({ parent }, withKey(tenant.adminKey));
    own.freeze();
    try {
      const withDeadline = await timed(keys.listKeys({ parent }, deadlineHeader("connect", deadlineMs, tenant.adminKey)));
      expect(withDeadline.code).toBe(Code.DeadlineExceeded);
      expect(withDeadline.ms).toBeLessThan(deadlineMs + 2000);
      const create = keys.createKey({ parent, displayName: "while-frozen", permissions: ["keys:read"], expireDays: 7 }, withKey(tenant.adminKey));
      const withoutDeadline = await timed(create);
      expect(withoutDeadline.code).toBe(Code.Unavailable);
      // Authentication, then the write: each wait is bounded, so the whole call is too.
      expect(withoutDeadline.ms).toBeLessThan(2 * (queryTimeoutMs + connectTimeoutMs) + 2000);
    } finally {
      own.thaw();
    }
  });

  test("when PostgreSQL is thawed, then verification and management work again", async () => {
    const keys = server.client(KeyService);
    const parent = `tenants/${tenant.slug}`;
    const created = await keys.createKey({ parent, displayName: "after-thaw", permissions: ["keys:read"], expireDays: 7 }, withKey(tenant.adminKey));
    const verdict = await keys.verifyKey({ key: created.secret }, { timeoutMs: deadlineMs });
    expect(verdict.result).toBe(VerifyResult.VALID);
    const listed = await keys.listKeys({ parent }, withKey(tenant.adminKey));
    expect(listed.keys.map((k) => k.displayName)).toContain("after-thaw");
    // The write that timed out while frozen was rolled back, not committed later by another call.
    expect(listed.keys.map((k) => k.displayName)).not.toContain("while-frozen");
  });

  test("when the database is healthy, then a call with a deadline answers normally", async () => {
    const keys = server.client(KeyService);
    const verdict = await keys.verifyKey({ key: unseenKey(server) }, { timeoutMs: deadlineMs });
    expect(verdict.result).toBe(VerifyResult.NOT_FOUND);
  });
});

/** Waits (bounded) until Health reports `service` SERVING on `s`, through a Watch stream. */
async function waitServing(s: TestServer, service: string, boundMs: number): Promise<void> {
  const health = createClient(Health, s.grpcTransport);
  const signal = AbortSignal.timeout(boundMs);
  for await (const res of health.watch({ service }, { signal })) {
    if (res.status === HealthCheckResponse_ServingStatus.SERVING) return;
  }
  throw new Error(`the Health watch of ${service} ended before it reported SERVING`);
}

// Skipped only outside CI on a machine without PgBouncer (.ci/run installs it; in CI a
// missing binary fails these tests instead of skipping them).
const describeBouncer = existsSync(pgbouncerBinary) || process.env["CI"] === "true" ? describe : describe.skip;

describeBouncer("behind PgBouncer (transaction pooling) with PostgreSQL down", () => {
  async function withBouncer(settings: Record<string, string>, queryMs: number, fn: (s: TestServer, keys: Client<typeof KeyService>) => Promise<void>): Promise<void> {
    const bouncer = await startPgBouncer(own.url, settings);
    let behind: TestServer | undefined;
    try {
      behind = await startTestServer({
        env: { DATABASE_URL: bouncer.url, KEYWARD_DB_QUERY_TIMEOUT_MS: String(queryMs), KEYWARD_DB_CONNECT_TIMEOUT_MS: String(connectTimeoutMs) },
      });
      const keys = behind.client(KeyService);
      expect((await keys.verifyKey({ key: unseenKey(behind) })).result).toBe(VerifyResult.NOT_FOUND);
      await own.kill();
      try {
        await fn(behind, keys);
      } finally {
        await own.restart();
      }
      await waitServing(behind, KeyService.typeName, 15_000);
      expect((await keys.verifyKey({ key: unseenKey(behind) })).result).toBe(VerifyResult.NOT_FOUND);
    } finally {
      await behind?.stop();
      await bouncer.stop();
    }
  }

  test("when PgBouncer would queue the query for 120 s, then keyward answers Unavailable within its own query bound", async () => {
    await withBouncer({}, queryTimeoutMs, async (s, keys) => {
      const { ms, code } = await timed(keys.verifyKey({ key: unseenKey(s) }));
      expect(code).toBe(Code.Unavailable);
      expect(ms).toBeLessThan(queryTimeoutMs + connectTimeoutMs + 2000);
    });
  }, 60_000);

  test("when PgBouncer refuses with query_wait_timeout (FATAL 08P01), then the call is Unavailable, not Internal", async () => {
    await withBouncer({ query_wait_timeout: "1" }, 20_000, async (s, keys) => {
      const { ms, code } = await timed(keys.verifyKey({ key: unseenKey(s) }));
      expect(code).toBe(Code.Unavailable);
      // Well before keyward's own 20 s bound: this is PgBouncer's answer.
      expect(ms).toBeLessThan(10_000);
    });
  }, 90_000);
});
