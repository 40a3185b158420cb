// The caller's deadline reaches the query (issue 10, item 7): when a call's deadline passes
// while its query waits in PostgreSQL, the query is cancelled at once, not left running
// until the query bound. Uses an own PostgreSQL (tables are locked here), never the shared one.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { backendsWaitingOnLocks, createTestTenant, withKey, withOpenTransaction, type TestServer, type TestTenant } from "../harness.ts";
import { rpcError } from "../rpc.ts";
import { startServerOnOwnPostgres, type ServerOnOwnPostgres } from "./stoppable-postgres.ts";

let setup: ServerOnOwnPostgres | undefined;
let server: TestServer;
let tenant: TestTenant;

beforeAll(async () => {
  // A long query bound: a query still waiting after the deadline would wait this long.
  setup = await startServerOnOwnPostgres({ KEYWARD_DB_QUERY_TIMEOUT_MS: "60000" });
  server = setup.server;
  tenant = await createTestTenant(server, "qc");
}, 120_000);

afterAll(() => setup?.close(), 60_000);

/** Polls `condition` (bounded by `ms`) until it holds; false if it never did. */
async function eventually(condition: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return false;
}

describe("the caller's deadline reaches the query", () => {
  test.each([
    ["VerifyKey (the hot path's lookup)", "api_key", () => server.client(KeyService).verifyKey({ key: tenant.adminKey }, { headers: { "connect-timeout-ms": "500" } })],
    [
      "ListAuditEvents (a management read in a unit of work)",
      "audit_event",
      () => server.client(AuditService).listAuditEvents({ parent: `tenants/${tenant.slug}` }, { headers: { "connect-timeout-ms": "500", ...withKey(tenant.adminKey).headers } }),
    ],
  ])("when %s waits on a locked table past its deadline, then DeadlineExceeded and its query is cancelled while the lock is still held", async (_what, table, call) => {
    // An ACCESS EXCLUSIVE lock held open: every read of the table waits.
    await withOpenTransaction(server, `lock table ${table} in access exclusive mode`, [], async () => {
      const err = await rpcError(call());
      expect(Code[err.code]).toBe("DeadlineExceeded");
      // The lock is still held: a query still waiting would show here until the 60 s bound.
      expect(await eventually(async () => (await backendsWaitingOnLocks(server)) === 0, 5000)).toBe(true);
    });
  });
});
