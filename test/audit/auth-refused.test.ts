// Refused credentials leave a trail: a management call with a revoked, expired or
// wrong-secret key of a tenant answers 401 as before and is audited in that tenant
// (`auth.refused`), folded to one event per key, reason and minute with a count, so a
// flood cannot fill the log. Unknown and malformed keys belong to no tenant and leave
// nothing. The folded count is the only update the append-only log ever accepts.
import { describe, expect, test } from "@jest/globals";
import { Code, createClient } from "@connectrpc/connect";
import { withChecksum } from "../../src/keys/key-format.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { createTestTenant, startTestServer, withKey, type TestTenant } from "../harness.ts";
import { attempt, audit, keyIdOf, keys, runTag, server, uniq, useServer } from "../rpc.ts";

useServer();

const minuteMs = 60_000;
const dayMs = 24 * 60 * minuteMs;

/** The auth.refused events of a tenant for one key id. */
async function refusedEvents(t: TestTenant, keyId: string) {
  const { events } = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, action: "auth.refused" }, withKey(t.adminKey));
  return events.filter((e) => e.credential === keyId);
}

/** A management call with `key`, over Connect/HTTP 1.1 or gRPC/HTTP 2; resolves to its error. */
function listWith(t: TestTenant, key: string, grpc = false) {
  const client = grpc ? createClient(KeyService, server.grpcTransport) : keys;
  return attempt(client.listKeys({ parent: `tenants/${t.slug}` }, withKey(key)));
}

/** Runs raw SQL on the test database. */
function sql<T>(query: string, params: unknown[] = []): Promise<T[]> {
  return server.store.db.orm.driver.getConnection().execute<T[]>(query, params, "all");
}

/** A well-formed key (valid checksum) with the given key id and a secret nobody holds. */
function forgedKey(realKey: string): string {
  const [head, keyId] = realKey.split("_");
  return withChecksum(`${head}_${keyId}_${"A".repeat(33)}`);
}

describe("auth.refused", () => {
  test("when a revoked key makes 50 management calls, then each is 401 with the usual message and one event counts 50", async () => {
    server.clock.set(new Date(Math.floor(Date.now() / minuteMs) * minuteMs + 1000));
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const { key, secret } = await keys.createKey({ parent, displayName: uniq("doomed"), permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
    await keys.revokeKey({ name: key!.name, reason: "leaked" }, withKey(t.adminKey));

    // The first refusal of the minute is written at once.
    const first = await listWith(t, secret);
    expect(first?.code).toBe(Code.Unauthenticated);
    expect(first?.rawMessage).toBe("Missing or invalid API key");
    const written = await refusedEvents(t, key!.keyId);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ reason: "KEY_REVOKED", outcome: AuditOutcome.DENIED, actor: `${parent}/principals/admin`, resource: "" });
    expect(written[0]?.details).toEqual({ procedure: "keyward.v1.KeyService/ListKeys", count: "1" });

    // 49 more, on both protocols, at once: counted in memory, added by the flush.
    const rest = await Promise.all(Array.from({ length: 49 }, (_, i) => listWith(t, secret, i % 2 === 0)));
    for (const err of rest) {
      expect(err?.code).toBe(Code.Unauthenticated);
      expect(err?.rawMessage).toBe("Missing or invalid API key");
    }
    await server.flushRefusals();
    const events = await refusedEvents(t, key!.keyId);
    expect(events).toHaveLength(1);
    expect(events[0]?.details["count"]).toBe("50");

    // A new minute starts a new event.
    server.clock.advance(minuteMs);
    expect((await listWith(t, secret))?.code).toBe(Code.Unauthenticated);
    await server.flushRefusals();
    const counts = (await refusedEvents(t, key!.keyId)).map((e) => e.details["count"]);
    expect(counts).toEqual(["1", "50"]);
  });

  test("when an expired key makes management calls, then each is 401 and they are counted under KEY_EXPIRED", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const { key, secret } = await keys.createKey({ parent, displayName: uniq("short"), permissions: ["keys:read"], expireDays: 1 }, withKey(t.adminKey));
    expect(await listWith(t, secret)).toBeUndefined();
    server.clock.advance(dayMs + minuteMs);
    server.clock.set(new Date(Math.floor(server.clock.now().getTime() / minuteMs) * minuteMs + 1000));
    const errors = await Promise.all(Array.from({ length: 10 }, (_, i) => listWith(t, secret, i % 2 === 1)));
    for (const err of errors) expect(err?.code).toBe(Code.Unauthenticated);
    await server.flushRefusals();
    const events = await refusedEvents(t, key!.keyId);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ reason: "KEY_EXPIRED", actor: `${parent}/principals/admin` });
    expect(events[0]?.details["count"]).toBe("10");
  });

  test("when a real key id comes with a wrong secret, then 401 and SECRET_MISMATCH is audited in the key's tenant, without an actor", async () => {
    const t = await createTestTenant(server);
    const forged = forgedKey(t.adminKey);
    expect(forged).not.toBe(t.adminKey);
    for (let i = 0; i < 3; i++) expect((await listWith(t, forged))?.code).toBe(Code.Unauthenticated);
    await server.flushRefusals();
    const events = await refusedEvents(t, keyIdOf(t.adminKey));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ reason: "SECRET_MISMATCH", actor: "" });
    expect(events[0]?.details["count"]).toBe("3");
    // The forged value is nowhere in the log.
    const stored = await sql<{ n: string }>("select count(*)::text as n from audit_event where details::text like ? or actor like ?", [`%${forged.slice(-20)}%`, `%${forged.slice(-20)}%`]);
    expect(stored[0]?.n).toBe("0");
  });

  test("when unknown or garbage keys make management calls, then 401 and no auth.refused event is written anywhere", async () => {
    const t = await createTestTenant(server);
    const unknown = forgedKey(`${t.adminKey.split("_")[0]}_ZZZZZZZZZZZZZZZZ_x`);
    // Each call carries its own request id, so "written anywhere" can be checked in a
    // database that other test files write to at the same time.
    const requestIds = [unknown, "garbage", `${t.adminKey}x`].map((_k, i) => `${runTag}-unknown-${i}`);
    for (const [i, key] of [unknown, "garbage", `${t.adminKey}x`].entries()) {
      const err = await attempt(keys.listKeys({ parent: `tenants/${t.slug}` }, { headers: { ...withKey(key).headers, "x-request-id": requestIds[i]! } }));
      expect(err?.code).toBe(Code.Unauthenticated);
      expect(err?.metadata.get("x-request-id")).toBe(requestIds[i]); // kept, so it would be in an event
    }
    await server.flushRefusals();
    const unknownRows = await sql<{ n: string }>("select count(*)::text as n from audit_event where credential = 'ZZZZZZZZZZZZZZZZ'");
    expect(unknownRows[0]?.n).toBe("0");
    const written = await sql<{ n: string }>("select count(*)::text as n from audit_event where request_id = any(?::text[])", [`{${requestIds.join(",")}}`]);
    expect(written[0]?.n).toBe("0");
  });
});

describe("auth.refused at shutdown", () => {
  test("when a server stops with refusals counted in memory, then stop writes them", async () => {
    const own = await startTestServer();
    let keyId = "";
    try {
      const t = await createTestTenant(own);
      const ownKeys = own.client(KeyService);
      const { key, secret } = await ownKeys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("k"), permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
      keyId = key!.keyId;
      await ownKeys.revokeKey({ name: key!.name, reason: "x" }, withKey(t.adminKey));
      for (let i = 0; i < 5; i++) expect((await attempt(ownKeys.listKeys({ parent: `tenants/${t.slug}` }, withKey(secret))))?.code).toBe(Code.Unauthenticated);
    } finally {
      await own.stop();
    }
    const rows = await sql<{ count: string }>("select details->>'count' as count from audit_event where action = 'auth.refused' and credential = ?", [keyId]);
    expect(rows).toEqual([{ count: "5" }]);
  });
});

describe("the audit log stays append-only", () => {
  test("when anything but a rising count of a folded event is updated, or any event is deleted, then PostgreSQL refuses it", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const { key, secret } = await keys.createKey({ parent, displayName: uniq("gone"), permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
    await keys.revokeKey({ name: key!.name, reason: "x" }, withKey(t.adminKey));
    await listWith(t, secret);
    const [folded] = await sql<{ id: string }>("select id::text as id from audit_event where credential = ? and action = 'auth.refused'", [key!.keyId]);
    const [plain] = await sql<{ id: string }>("select id::text as id from audit_event where resource = ? and action = 'key.revoke'", [key!.name]);
    expect(folded?.id).toBeDefined();
    expect(plain?.id).toBeDefined();

    const refused = [
      ["update audit_event set actor = 'someone else' where id = ?", folded!.id],
      ["update audit_event set reason = 'NOTHING' where id = ?", folded!.id],
      ["update audit_event set details = details || '{\"procedure\":\"x\"}'::jsonb where id = ?", folded!.id],
      ["update audit_event set details = jsonb_set(details, '{count}', '\"0\"') where id = ?", folded!.id],
      ["update audit_event set details = jsonb_set(details, '{count}', '\"1\"') where id = ?", folded!.id],
      ["update audit_event set details = jsonb_set(details, '{count}', '\"lots\"') where id = ?", folded!.id],
      ["update audit_event set details = jsonb_set(details, '{count}', '\"99\"'), fold_minute = fold_minute + interval '1 minute' where id = ?", folded!.id],
      ["update audit_event set details = details - 'count' where id = ?", folded!.id],
      ["update audit_event set details = jsonb_set(details, '{count}', '\"99\"') where id = ?", plain!.id],
      ["update audit_event set fold_minute = now(), details = details || '{\"count\":\"2\"}'::jsonb where id = ?", plain!.id],
      ["update audit_event set details = '{}'::jsonb where id = ?", plain!.id],
      ["delete from audit_event where id = ?", folded!.id],
      ["delete from audit_event where id = ?", plain!.id],
    ] as const;
    for (const [query, id] of refused) {
      await expect(sql(query, [id])).rejects.toThrow(/append-only/);
    }
    // The one change the log accepts: a folded event's count going up.
    await sql("update audit_event set details = jsonb_set(details, '{count}', '\"7\"') where id = ?", [folded!.id]);
    const [row] = await sql<{ count: string; actor: string }>("select details->>'count' as count, actor from audit_event where id = ?", [folded!.id]);
    expect(row).toEqual({ count: "7", actor: `${parent}/principals/admin` });
  });
});
