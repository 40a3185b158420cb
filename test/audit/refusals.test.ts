// Refused management calls are in the audit log, without echoing what was refused; bad
// listing filters are InvalidArgument; every answer carries its request id.
import { describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { toJsonString } from "@bufbuild/protobuf";
import { AuditEventSchema, AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { createTestTenant, withKey } from "../harness.ts";
import { attempt, audit, directory, keys, reasonOf, server, useServer } from "../rpc.ts";

useServer();

describe("refusals in the audit log", () => {
  test("when a name is malformed or a slug holds a pasted key, then the refusal is audited under a placeholder name, never the value", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const as = withKey(t.adminKey);
    expect((await attempt(keys.getKey({ name: `${parent}/keys/short` }, as)))?.code).toBe(Code.InvalidArgument);
    expect((await attempt(keys.revokeKey({ name: "garbage", reason: "x" }, as)))?.code).toBe(Code.InvalidArgument);
    expect((await attempt(directory.createOrganization({ parent, slug: t.adminKey }, as)))?.code).toBe(Code.InvalidArgument);
    expect((await attempt(directory.createPrincipal({ parent, principalId: t.adminKey }, as)))?.code).toBe(Code.InvalidArgument);

    const { events } = await audit.listAuditEvents({ parent, outcome: AuditOutcome.DENIED }, as);
    const byAction = Object.fromEntries(events.map((e) => [e.action, e]));
    expect(byAction["key.get"]).toMatchObject({ resource: `${parent}/keys/-`, reason: "INVALID_RESOURCE_NAME" });
    expect(byAction["key.revoke"]).toMatchObject({ resource: `${parent}/keys/-`, reason: "INVALID_RESOURCE_NAME" });
    expect(byAction["org.create"]).toMatchObject({ resource: `${parent}/orgs/-`, reason: "INVALID_FORMAT" });
    expect(byAction["principal.create"]).toMatchObject({ resource: `${parent}/principals/-`, reason: "INVALID_FORMAT" });
    const logged = events.map((e) => toJsonString(AuditEventSchema, e)).join("\n");
    expect(logged).not.toContain(t.adminKey.split("_")[2]!);
  });
});

describe("listing filters", () => {
  test("when a time filter is outside 1970–9999, then InvalidArgument (not Internal)", async () => {
    const t = await createTestTenant(server);
    // Outside google.protobuf.Timestamp's own range (0001–9999) the transport refuses it
    // (INVALID_TIMESTAMP); inside it but before 1970, the audit service does (INVALID_TIME).
    for (const [seconds, reason] of [
      [10n ** 15n, "INVALID_TIMESTAMP"],
      [-(10n ** 15n), "INVALID_TIMESTAMP"],
      [-86_400n, "INVALID_TIME"],
    ] as const) {
      const err = await attempt(audit.listAuditEvents({ parent: `tenants/${t.slug}`, startTime: { seconds } }, withKey(t.adminKey)));
      expect(err?.code).toBe(Code.InvalidArgument);
      expect(reasonOf(err)).toBe(reason);
    }
  });
});

describe("request ids", () => {
  test("when a call succeeds or fails, then the response carries x-request-id (the given one, or a new one)", async () => {
    const ok = await fetch(`${server.url}/keyward.v1.KeyService/VerifyKey`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "req-123" },
      body: JSON.stringify({ key: "nope" }),
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-request-id")).toBe("req-123");
    const denied = await fetch(`${server.url}/keyward.v1.KeyService/ListKeys`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(denied.status).toBe(401);
    expect(denied.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});
