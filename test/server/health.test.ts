// Health tells the truth (issue 10, item 8): every served service is registered; a service
// that needs PostgreSQL turns NOT_SERVING within 5 s of PostgreSQL hanging or dying and
// SERVING again when it is back, and Watch streams both; /healthz answers 503 naming the
// database. Uses an own PostgreSQL, never the run's shared one.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code, createClient } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/health/v1/health_pb.ts";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { KeyKindName, mintKey } from "../../src/keys/key-format.ts";
import { startTestServer, type TestServer } from "../harness.ts";
import { rpcError } from "../rpc.ts";
import { startServerOnOwnPostgres, type ServerOnOwnPostgres, type StoppablePostgres } from "./stoppable-postgres.ts";

const servedServices = [
  "",
  "keyward.v1.KeyService",
  "keyward.v1.PolicyService",
  "keyward.v1.TokenExchangeService",
  "keyward.v1.DirectoryService",
  "keyward.v1.AuditService",
];
/** The promise of the issue: NOT_SERVING within 5 s of PostgreSQL becoming unreachable or hung. */
const detectionBoundMs = 5000;

let setup: ServerOnOwnPostgres | undefined;
let own: StoppablePostgres;
let server: TestServer;

beforeAll(async () => {
  setup = await startServerOnOwnPostgres({ KEYWARD_DB_QUERY_TIMEOUT_MS: "3000", KEYWARD_DB_CONNECT_TIMEOUT_MS: "1000" });
  ({ own, server } = setup);
}, 120_000);

afterAll(() => setup?.close(), 60_000);

/** A Watch stream on `service`, read one status at a time with a bound. */
function watchHealth(s: TestServer, service: string) {
  const abort = new AbortController();
  const stream = createClient(Health, s.grpcTransport).watch({ service }, { signal: abort.signal })[Symbol.asyncIterator]();
  return {
    /** The next status the stream sends; fails after `boundMs`. */
    async next(boundMs: number): Promise<Status | "ended"> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no health status within ${boundMs} ms`)), boundMs);
      });
      try {
        const r = await Promise.race([stream.next(), timeout]);
        return r.done === true ? "ended" : r.value.status;
      } finally {
        clearTimeout(timer);
      }
    },
    close: () => abort.abort(),
  };
}

async function healthz(s: TestServer): Promise<{ status: number; body: { status: string; components: Record<string, { status: string; reason?: string }> } }> {
  const res = await fetch(`${s.url}/healthz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as never };
}

describe("registered services", () => {
  test.each(servedServices)("when Check asks for %j on a healthy server, then SERVING", async (service) => {
    const health = createClient(Health, server.grpcTransport);
    expect((await health.check({ service })).status).toBe(Status.SERVING);
  });

  test("when Check asks for an unknown service, then NotFound", async () => {
    const health = createClient(Health, server.connectTransport);
    expect((await rpcError(health.check({ service: "keyward.v1.NoSuchService" }))).code).toBe(Code.NotFound);
  });

  test("when List is called, then every served service is listed SERVING", async () => {
    const health = createClient(Health, server.grpcTransport);
    const { statuses } = await health.list({});
    expect(Object.keys(statuses).sort()).toEqual([...servedServices].sort());
    for (const s of Object.values(statuses)) expect(s.status).toBe(Status.SERVING);
  });

  test("when GET /healthz on a healthy server, then 200 with the database available", async () => {
    const { status, body } = await healthz(server);
    expect(status).toBe(200);
    expect(body).toEqual({ status: "SERVING", components: { database: { status: "available" } } });
  });
});

describe("PostgreSQL hung or gone", () => {
  test("when PostgreSQL is frozen, then within 5 s KeyService is NOT_SERVING and /healthz 503 names the database; SERVING again after it thaws", async () => {
    const watch = watchHealth(server, "keyward.v1.KeyService");
    try {
      expect(await watch.next(5000)).toBe(Status.SERVING);
      const frozenAt = performance.now();
      own.freeze();
      try {
        expect(await watch.next(detectionBoundMs + 1000)).toBe(Status.NOT_SERVING);
        expect(performance.now() - frozenAt).toBeLessThan(detectionBoundMs);
        const health = createClient(Health, server.grpcTransport);
        for (const service of servedServices) expect((await health.check({ service })).status).toBe(Status.NOT_SERVING);
        const { status, body } = await healthz(server);
        expect(status).toBe(503);
        expect(body.status).toBe("NOT_SERVING");
        expect(body.components["database"]).toEqual({ status: "unavailable", reason: expect.stringMatching(/no answer within/) });
      } finally {
        own.thaw();
      }
      expect(await watch.next(detectionBoundMs + 1000)).toBe(Status.SERVING);
      const { status, body } = await healthz(server);
      expect(status).toBe(200);
      expect(body.components["database"]).toEqual({ status: "available" });
      expect((await server.client(KeyService).verifyKey({ key: mintKey(server.config.keyPrefix, KeyKindName.FINE_GRAINED).raw })).result).toBe(VerifyResult.NOT_FOUND);
    } finally {
      watch.close();
    }
  }, 60_000);

  test("when PostgreSQL is killed, then within 5 s NOT_SERVING ('connection refused'); after a restart SERVING again", async () => {
    const watch = watchHealth(server, "");
    try {
      expect(await watch.next(5000)).toBe(Status.SERVING);
      const killedAt = performance.now();
      await own.kill();
      try {
        expect(await watch.next(detectionBoundMs + 1000)).toBe(Status.NOT_SERVING);
        expect(performance.now() - killedAt).toBeLessThan(detectionBoundMs);
        const { status, body } = await healthz(server);
        expect(status).toBe(503);
        expect(body.components["database"]?.status).toBe("unavailable");
        expect(body.components["database"]?.reason).toMatch(/connection (refused|lost)/);
      } finally {
        await own.restart();
      }
      expect(await watch.next(detectionBoundMs + 5000)).toBe(Status.SERVING);
      expect((await healthz(server)).status).toBe(200);
    } finally {
      watch.close();
    }
  }, 90_000);

  test("when a request's query finds PostgreSQL gone, then health turns NOT_SERVING at once, before the next probe", async () => {
    // A probe interval far longer than the test: only the failed request can tell health.
    const slow = await startTestServer({ env: { DATABASE_URL: own.url, KEYWARD_DB_HEALTH_INTERVAL_MS: "60000", KEYWARD_DB_CONNECT_TIMEOUT_MS: "1000" } });
    try {
      const health = createClient(Health, slow.grpcTransport);
      expect((await health.check({ service: "keyward.v1.KeyService" })).status).toBe(Status.SERVING);
      await own.kill();
      try {
        const err = await rpcError(slow.client(KeyService).verifyKey({ key: mintKey(slow.config.keyPrefix, KeyKindName.FINE_GRAINED).raw }));
        expect(err.code).toBe(Code.Unavailable);
        expect((await health.check({ service: "keyward.v1.KeyService" })).status).toBe(Status.NOT_SERVING);
      } finally {
        await own.restart();
      }
    } finally {
      await slow.stop();
    }
  }, 60_000);
});

describe("shutdown", () => {
  test("when the server shuts down, then a Watch stream receives NOT_SERVING", async () => {
    const leaving = await startTestServer({ env: { DATABASE_URL: own.url } });
    const watch = watchHealth(leaving, "keyward.v1.AuditService");
    try {
      expect(await watch.next(5000)).toBe(Status.SERVING);
      const stopped = leaving.stop();
      expect(await watch.next(5000)).toBe(Status.NOT_SERVING);
      await stopped;
    } finally {
      watch.close();
      await leaving.stop();
    }
  }, 30_000);
});
