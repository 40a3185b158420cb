// Request ids (issue 10, items 9 and 10) and what the one-line RPC log says (item 4): an
// `x-request-id` that looks like a credential is replaced by a random id, never echoed,
// logged or stored in audit events; a plain one is kept everywhere. The VerifyKey log line
// carries its verdict. Display names refuse bidirectional controls (item 5).
import { describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { toJsonString } from "@bufbuild/protobuf";
import { AuditEventSchema } from "../../gen/keyward/v1/audit_pb.ts";
import { KeyKindName, mintKey } from "../../src/keys/key-format.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { audit, keys, reasonOf, rpcError, server, useServer, verifyPaths } from "../rpc.ts";

/** Every trace of a value the server could have kept: response header, log lines, the tenant's audit events. */
async function traces(t: TestTenant, value: string, header: string | null): Promise<string[]> {
  const found: string[] = [];
  if (header !== null && header.includes(value)) found.push("response header");
  if (server.logs.some((l) => l.includes(value))) found.push("logs");
  const events = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, pageSize: 1000 }, withKey(t.adminKey));
  if (events.events.some((e) => toJsonString(AuditEventSchema, e).includes(value))) found.push("audit events");
  return found;
}

/** Creates a key with `x-request-id: requestId`; returns the response's x-request-id. */
async function createKeyWithRequestId(t: TestTenant, requestId: string): Promise<string | null> {
  let echoed: string | null = null;
  await keys.createKey(
    { parent: `tenants/${t.slug}`, displayName: `k-${Math.random().toString(36).slice(2, 9)}`, permissions: ["keys:read"], expireDays: 7 },
    { headers: { authorization: `Bearer ${t.adminKey}`, "x-request-id": requestId }, onHeader: (h) => (echoed = h.get("x-request-id")) },
  );
  return echoed;
}

describe.each(verifyPaths)("VerifyKey through %s", (_path, env) => {
  useServer({ env });

  describe("x-request-id", () => {
    test("when x-request-id is a real API key, then it is replaced: not echoed, not logged, not in audit events", async () => {
      const t = await createTestTenant(server);
      const echoed = await createKeyWithRequestId(t, t.adminKey);
      expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
      expect(await traces(t, t.adminKey, echoed)).toEqual([]);
    });

    test("when x-request-id is credential-shaped (a key's secret part, a JWT-like triple, a long token), then it is replaced everywhere", async () => {
      const t = await createTestTenant(server);
      const secretPart = (t.adminKey.split("_")[2] ?? "").slice(0, 39);
      const shaped = [
        secretPart,
        "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        "abcd1234.efgh5678.ijkl9012",
        "a".repeat(33),
        "Zx9".repeat(8),
        "Oze3qSwSuzwstYEs:WcrHEKYorqz9Dvdz:zQIeSzZH4nrznB0s:R29iY9V",
        "abcdefghijklmnopqrstuvwxyzabcdef",
        "AKIAIOSFODNN7EXAMPLE",
      ];
      for (const value of shaped) {
        const echoed = await createKeyWithRequestId(t, value);
        expect({ value, echoed }).not.toEqual({ value, echoed: value });
        expect({ value, traces: await traces(t, value, echoed) }).toEqual({ value, traces: [] });
      }
    });

    test("when x-request-id is a plain id (a UUID, req-123, abc.def:42, host:pid:n), then it is kept: echoed, logged and stored in the audit event", async () => {
      const t = await createTestTenant(server);
      for (const value of [crypto.randomUUID(), "req-123", "abc.def:42", `req-${Date.now() % 1_000_000}:7`]) {
        const echoed = await createKeyWithRequestId(t, value);
        expect(echoed).toBe(value);
        expect(server.logs.some((l) => (JSON.parse(l) as { requestId?: string }).requestId === value)).toBe(true);
        const events = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, pageSize: 1000 }, withKey(t.adminKey));
        expect(events.events.some((e) => e.requestId === value)).toBe(true);
      }
    });

    test("when a refused request (unauthenticated) carries a credential-shaped x-request-id, then the error does not echo it", async () => {
      const t = await createTestTenant(server);
      let echoed: string | null = null;
      const err = await rpcError(
        keys.listKeys({ parent: `tenants/${t.slug}` }, { headers: { "x-request-id": t.adminKey }, onHeader: (h) => (echoed = h.get("x-request-id")) }),
      );
      expect(err.code).toBe(Code.Unauthenticated);
      const seen = echoed ?? err.metadata.get("x-request-id");
      expect(seen).toBeTruthy();
      expect(seen).not.toBe(t.adminKey);
      expect(server.logs.some((l) => l.includes(t.adminKey))).toBe(false);
    });
  });

  describe("the VerifyKey log line", () => {
    /** The rpc log line of the call made with `requestId`. */
    function rpcLine(requestId: string): Record<string, unknown> | undefined {
      return server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l["requestId"] === requestId && l["msg"] === "rpc");
    }

    test("when VerifyKey answers not_found, valid or insufficient, then its rpc log line says so (not plain OK)", async () => {
      const t = await createTestTenant(server);
      const unknownKey = mintKey(server.config.keyPrefix, KeyKindName.FINE_GRAINED).raw;
      const cases = [
        { key: unknownKey, required: [], verdict: "not_found" },
        { key: t.adminKey, required: ["keys:read"], verdict: "valid" },
        { key: "not-a-key", required: [], verdict: "malformed" },
      ];
      for (const c of cases) {
        const requestId = `verdict-${Math.random().toString(36).slice(2, 10)}`;
        await keys.verifyKey({ key: c.key, requiredPermissions: c.required }, { headers: { "x-request-id": requestId } });
        expect(rpcLine(requestId)).toMatchObject({ procedure: "keyward.v1.KeyService/VerifyKey", code: "OK", verdict: c.verdict });
      }
    });
  });

  describe("display names", () => {
    test("when a display name holds a bidirectional override or isolate (U+202E, U+2066), then InvalidArgument INVALID_CHARACTERS", async () => {
      const t = await createTestTenant(server);
      for (const name of ["admin\u202Egpj.exe", "a\u2066b\u2069", "x\u202Ay"]) {
        const err = await rpcError(keys.createKey({ parent: `tenants/${t.slug}`, displayName: name, permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey)));
        expect({ name: JSON.stringify(name), code: err.code, reason: reasonOf(err) }).toEqual({ name: JSON.stringify(name), code: Code.InvalidArgument, reason: "INVALID_CHARACTERS" });
      }
    });
  });
});
