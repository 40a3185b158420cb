// Bad input through the real server: every malformed, oversized, unknown or hostile value
// is refused with a clear status and ErrorInfo reason (never Internal), and a refused call
// writes nothing (keys, principals, organizations and success audit events unchanged).
import { describe, expect, test } from "@jest/globals";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyKind, KeySlot, KeyState } from "../../gen/keyward/v1/key_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { server, useServer } from "../rpc.ts";

useServer();

const keys = (transport?: Transport) => server.client(KeyService, transport);
const directory = () => server.client(DirectoryService);
const audit = () => server.client(AuditService);

/** How a call failed: code name, ErrorInfo reason and metadata, raw message. */
type Refusal = { code: string; reason: string | undefined; metadata: Record<string, string>; message: string };

/** Awaits a call that must fail and describes the failure (throws if it succeeded). */
async function refusal(call: Promise<unknown>): Promise<Refusal> {
  const outcome = await call.then(
    () => ({ ok: true as const }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (outcome.ok) throw new Error("expected the call to be refused, but it succeeded");
  const err = outcome.e;
  if (!(err instanceof ConnectError)) throw new Error(`expected a ConnectError, got ${String(err)}`);
  const info = err.findDetails(ErrorInfoSchema)[0];
  return { code: Code[err.code], reason: info?.reason, metadata: { ...(info?.metadata ?? {}) }, message: err.rawMessage };
}

/** What a tenant holds: keys, principals, organizations and success audit events. */
async function snapshot(t: TestTenant): Promise<Record<string, string[]>> {
  const parent = `tenants/${t.slug}`;
  const auth = withKey(t.adminKey);
  const k = await keys().listKeys({ parent, pageSize: 1000 }, auth);
  const p = await directory().listPrincipals({ parent, pageSize: 1000 }, auth);
  const o = await directory().listOrganizations({ parent, pageSize: 1000 }, auth);
  const e = await audit().listAuditEvents({ parent, pageSize: 1000, outcome: AuditOutcome.SUCCESS }, auth);
  return {
    keys: k.keys.map((x) => `${x.keyId}|${x.displayName}|${x.state}|${x.permissions.join(",")}|${x.revokeReason}|${x.expireTime?.seconds ?? ""}`).sort(),
    principals: p.principals.map((x) => `${x.principalId}|${x.displayName}|${x.status}|${x.permissions.join(",")}|${x.etag}`).sort(),
    orgs: o.organizations.map((x) => `${x.slug}|${x.displayName}|${x.etag}`).sort(),
    successEvents: e.events.map((x) => `${x.eventId}|${x.action}`),
  };
}

/** Runs a call that must be refused; checks the refusal and that nothing changed. */
async function expectRefused(t: TestTenant, call: () => Promise<unknown>, expected: { code: string; reason?: string }): Promise<Refusal> {
  const before = await snapshot(t);
  const logged = server.logs.length;
  const r = await refusal(call());
  expect({ code: r.code, reason: r.reason }).toEqual({ code: expected.code, reason: expected.reason ?? r.reason });
  expect(r.reason).toBeDefined();
  expect(await snapshot(t)).toEqual(before);
  expect(errorLogs(logged)).toEqual([]);
  return r;
}

/** Error-level log lines written since line `from` (a refused call must not log one). */
function errorLogs(from: number): string[] {
  return server.logs
    .slice(from)
    .filter((l) => ((JSON.parse(l) as { level?: number }).level ?? 0) >= 50)
    .map((l) => l.slice(0, 300));
}

/** A fine-grained key of the tenant's admin holding exactly `permissions`. */
async function fineGrainedKey(t: TestTenant, permissions: string[]): Promise<string> {
  const res = await keys().createKey({ parent: `tenants/${t.slug}`, displayName: `fg ${permissions.join(" ")}`, permissions, expireDays: 30 }, withKey(t.adminKey));
  return res.secret;
}

/** A fine-grained key the test can revoke, clone or read. */
async function someKey(t: TestTenant, displayName = "victim"): Promise<{ name: string; keyId: string }> {
  const res = await keys().createKey({ parent: `tenants/${t.slug}`, displayName, permissions: ["keys:read"], expireDays: 30 }, withKey(t.adminKey));
  return { name: res.key!.name, keyId: res.key!.keyId };
}

const validCreate = (t: TestTenant) => ({ parent: `tenants/${t.slug}`, displayName: "ok", permissions: ["keys:read"], org: "", expireDays: 30 });

describe("CreateKey display name", () => {
  test.each([
    ["empty", "REQUIRED_FIELD", ""],
    ["whitespace only", "REQUIRED_FIELD", "   \t  "],
    ["10 kB long", "FIELD_TOO_LONG", "n".repeat(10_000)],
    ["101 characters", "FIELD_TOO_LONG", "n".repeat(101)],
    ["101 emoji (code points, not UTF-16 units)", "FIELD_TOO_LONG", "🔑".repeat(101)],
    ["a NUL byte", "INVALID_CHARACTERS", "bad\u0000name"],
    ["a bell character", "INVALID_CHARACTERS", "bad\u0007name"],
    ["a newline", "INVALID_CHARACTERS", "two\nlines"],
    ["an ANSI escape", "INVALID_CHARACTERS", "\u001b[31mred"],
    ["a C1 control (NEL)", "INVALID_CHARACTERS", "next\u0085line"],
    ["a line separator", "INVALID_CHARACTERS", "a\u2028b"],
  ])("when the display name is %s, then InvalidArgument %s and nothing is written", async (_what, reason, displayName) => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys().createKey({ ...validCreate(t), displayName }, withKey(t.adminKey)), { code: "InvalidArgument", reason });
  });

  test("when the display name has a NUL byte over gRPC, then InvalidArgument INVALID_CHARACTERS", async () => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys(server.grpcTransport).createKey({ ...validCreate(t), displayName: "nul\u0000" }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason: "INVALID_CHARACTERS",
    });
  });

  test("when the name is already used by an unrevoked key (other case), then AlreadyExists KEY_NAME_TAKEN and nothing is written", async () => {
    const t = await createTestTenant(server);
    await someKey(t, "Deploy Bot");
    await expectRefused(t, () => keys().createKey({ ...validCreate(t), displayName: "deploy bot" }, withKey(t.adminKey)), { code: "AlreadyExists", reason: "KEY_NAME_TAKEN" });
  });
});

describe("CreateKey expiry", () => {
  test.each([[0], [-1], [366], [100_000], [-2_147_483_648], [2_147_483_647]])("when expire_days is %d, then InvalidArgument INVALID_EXPIRY", async (expireDays) => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys().createKey({ ...validCreate(t), expireDays }, withKey(t.adminKey)), { code: "InvalidArgument", reason: "INVALID_EXPIRY" });
  });

  test("when expire_days is 365 (the largest allowed), then the key is created with that expiry", async () => {
    const t = await createTestTenant(server);
    const res = await keys().createKey({ ...validCreate(t), expireDays: 365 }, withKey(t.adminKey));
    const lifetime = Number(res.key!.expireTime!.seconds - res.key!.createTime!.seconds);
    expect(lifetime).toBe(365 * 24 * 3600);
  });
});

describe("CreateKey permissions", () => {
  test("when no permission is given, then InvalidArgument REQUIRED_FIELD", async () => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys().createKey({ ...validCreate(t), permissions: [] }, withKey(t.adminKey)), { code: "InvalidArgument", reason: "REQUIRED_FIELD" });
  });

  test.each([
    ["nope:read", "nope:read"],
    ["keys:admin", "keys:admin"],
    ["keys", "keys"],
    ["*:delete", "*:delete"],
    ["keys:read:extra", "keys:read:extra"],
    ["KEYS:read", "KEYS:read"],
    ["' keys:read' (leading space)", " keys:read"],
    [":read", ":read"],
    ["a 5 kB string", "p".repeat(5_000)],
  ])(
    "when a permission is %s, then InvalidArgument UNKNOWN_PERMISSION and the message lists the valid ones",
    async (_what, bad) => {
      const t = await createTestTenant(server);
      const r = await expectRefused(t, () => keys().createKey({ ...validCreate(t), permissions: ["keys:read", bad] }, withKey(t.adminKey)), {
        code: "InvalidArgument",
        reason: "UNKNOWN_PERMISSION",
      });
      expect(r.metadata["field"]).toBe("permissions");
      // Short values are named; long ones are never echoed (they may be a pasted secret).
      if (bad.length <= 40) expect(r.metadata["unknown"]).toContain(JSON.stringify(bad));
      else expect(`${r.metadata["unknown"]} ${r.message}`).not.toContain(bad.slice(0, 41));
      for (const valid of ["*:read", "*:write", "keys:read", "keys:write", "audit:read", "secure_registry:write"]) expect(r.message).toContain(valid);
      expect(r.message.length).toBeLessThan(2_000);
    },
  );

  test("when a 5 kB unknown permission is sent over gRPC, then InvalidArgument UNKNOWN_PERMISSION", async () => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys(server.grpcTransport).createKey({ ...validCreate(t), permissions: ["q".repeat(5_000)] }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason: "UNKNOWN_PERMISSION",
    });
  });

  test("when a 100 kB unknown permission is sent over gRPC, then the answer is still InvalidArgument UNKNOWN_PERMISSION (the error stays small)", async () => {
    const t = await createTestTenant(server);
    const r = await expectRefused(t, () => keys(server.grpcTransport).createKey({ ...validCreate(t), permissions: ["q".repeat(100_000)] }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason: "UNKNOWN_PERMISSION",
    });
    expect(JSON.stringify(r.metadata).length).toBeLessThan(2_000);
  });

  test("when a fine-grained caller with only keys:write grants audit:read, then PermissionDenied PERMISSIONS_EXCEED_CALLER naming audit:read", async () => {
    const t = await createTestTenant(server);
    const caller = await fineGrainedKey(t, ["keys:write"]);
    const r = await expectRefused(t, () => keys().createKey({ ...validCreate(t), permissions: ["keys:read", "audit:read"] }, withKey(caller)), {
      code: "PermissionDenied",
      reason: "PERMISSIONS_EXCEED_CALLER",
    });
    expect(r.metadata["exceeding"]).toBe("audit:read");
    expect(r.message).toContain("audit:read");
    expect(r.message).not.toContain("keys:read");
  });
});

describe("CreateKey org and parent", () => {
  test("when the org slug names no organization, then InvalidArgument UNKNOWN_ORG", async () => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys().createKey({ ...validCreate(t), org: "no-such-org" }, withKey(t.adminKey)), { code: "InvalidArgument", reason: "UNKNOWN_ORG" });
  });

  test.each([
    ["Upper", "Upper"],
    ["with space", "with space"],
    ["-leading", "-leading"],
    ["trailing-", "trailing-"],
    ["a/b", "a/b"],
    ["64 characters", "o".repeat(64)],
    ["with a NUL byte", "x\u0000y"],
    ["10 kB", "o".repeat(10_000)],
  ])(
    "when the org slug is malformed (%s), then InvalidArgument INVALID_FORMAT",
    async (_what, org) => {
      const t = await createTestTenant(server);
      await expectRefused(t, () => keys().createKey({ ...validCreate(t), org }, withKey(t.adminKey)), { code: "InvalidArgument", reason: "INVALID_FORMAT" });
    },
  );

  test.each([
    ["tenant/x", "tenant/x"],
    ["tenants/", "tenants/"],
    ["tenants/A B", "tenants/A B"],
    ["tenants/x/keys", "tenants/x/keys"],
    ["/tenants/x", "/tenants/x"],
    ["tenants/%00", "tenants/%00"],
    ["10 kB", `tenants/${"a".repeat(10_000)}`],
  ])(
    "when the parent is %s, then InvalidArgument INVALID_RESOURCE_NAME",
    async (_what, parent) => {
      const t = await createTestTenant(server);
      await expectRefused(t, () => keys().createKey({ ...validCreate(t), parent }, withKey(t.adminKey)), { code: "InvalidArgument", reason: "INVALID_RESOURCE_NAME" });
    },
  );
});

describe("CreateKey hostile strings", () => {
  const hostile: [string, string][] = [
    ["emoji", "🔑🚀 deploy ✨👩‍👩‍👧"],
    ["RTL override and marks", "\u202Egnp.exe\u202C \u200Fmark\u200E"],
    ["SQL injection", "'; drop table api_key; --"],
    ["SQL injection with quotes", `Robert'); DROP TABLE principal;-- "x" \\`],
    ["percent-encoded NUL", "%00"],
    ["format strings", "%s%n%x ${7*7} {{7*7}} <script>alert(1)</script>"],
    ["literal escapes", "\\u0000 \\x00 \\n"],
    ["100 CJK characters", "鍵".repeat(100)],
    ["100 emoji", "🔑".repeat(100)],
    ["combining marks", "e\u0301".repeat(50)],
    ["zero-width joiners", "a\u200Db\u200Cc\uFEFFd"],
    ["a noncharacter", "odd\uFFFFchar"],
  ];

  test.each(hostile)("when the display name is %s, then it is stored verbatim or refused with InvalidArgument, never Internal", async (_what, displayName) => {
    const t = await createTestTenant(server);
    const before = await snapshot(t);
    const res = await keys()
      .createKey({ ...validCreate(t), displayName }, withKey(t.adminKey))
      .then(
        (r) => ({ ok: true as const, r }),
        (e: unknown) => ({ ok: false as const, e }),
      );
    if (!res.ok) {
      const r = await refusal(Promise.reject(res.e));
      expect(r.code).toBe("InvalidArgument");
      expect(r.reason).toBeDefined();
      expect(await snapshot(t)).toEqual(before);
      return;
    }
    expect(res.r.key!.displayName).toBe(displayName);
    const got = await keys().getKey({ name: res.r.key!.name }, withKey(t.adminKey));
    expect(got.key!.displayName).toBe(displayName);
    const listed = await keys().listKeys({ parent: `tenants/${t.slug}`, kind: KeyKind.FINE_GRAINED }, withKey(t.adminKey));
    expect(listed.keys.map((k) => k.displayName)).toEqual([displayName]);
  });

  test("when SQL injection strings are stored, then they round-trip as plain text and the tables are intact", async () => {
    const t = await createTestTenant(server);
    const names = ["'; drop table api_key; --", "x' OR '1'='1", "\"; DELETE FROM audit_event; --"];
    for (const displayName of names) await keys().createKey({ ...validCreate(t), displayName }, withKey(t.adminKey));
    const listed = await keys().listKeys({ parent: `tenants/${t.slug}`, kind: KeyKind.FINE_GRAINED }, withKey(t.adminKey));
    expect(listed.keys.map((k) => k.displayName).sort()).toEqual([...names].sort());
    const events = await audit().listAuditEvents({ parent: `tenants/${t.slug}`, action: "key.create" }, withKey(t.adminKey));
    expect(events.events).toHaveLength(3);
  });

  test.each(hostile)("when the org is %s, then InvalidArgument INVALID_FORMAT", async (_what, org) => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys().createKey({ ...validCreate(t), org }, withKey(t.adminKey)), { code: "InvalidArgument", reason: "INVALID_FORMAT" });
  });

  test.each(hostile)("when the parent is tenants/ plus %s, then InvalidArgument INVALID_RESOURCE_NAME", async (_what, garbage) => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys().createKey({ ...validCreate(t), parent: `tenants/${garbage}` }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason: "INVALID_RESOURCE_NAME",
    });
  });

  test.each(hostile)("when a permission is %s, then InvalidArgument UNKNOWN_PERMISSION", async (_what, permission) => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys().createKey({ ...validCreate(t), permissions: [permission] }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason: "UNKNOWN_PERMISSION",
    });
  });
});

describe("resource names of GetKey, RevokeKey, CloneKey", () => {
  const badNames = (slug: string): string[] => [
    `tenants/${slug}/keys/`,
    `tenants/${slug}/keys/../../etc`,
    `tenants/${slug}/principals/admin`,
    `tenants/${slug}/keys/AAAAAAAAAAAAAAAA/extra`,
    `tenants/${slug}/keys/short`,
    `tenants/${slug}/keys/AAAAAAAA%00AAAAA`,
    `keys/AAAAAAAAAAAAAAAA`,
    "",
    `tenants/${slug}/keys/${"A".repeat(10_000)}`,
  ];

  test("when GetKey gets a malformed name, then InvalidArgument INVALID_RESOURCE_NAME every time", async () => {
    const t = await createTestTenant(server);
    for (const name of badNames(t.slug)) {
      const r = await refusal(keys().getKey({ name }, withKey(t.adminKey)));
      expect({ name: name.slice(0, 60), code: r.code, reason: r.reason }).toEqual({ name: name.slice(0, 60), code: "InvalidArgument", reason: "INVALID_RESOURCE_NAME" });
    }
  });

  test("when RevokeKey gets a malformed name, then InvalidArgument INVALID_RESOURCE_NAME and nothing is revoked", async () => {
    const t = await createTestTenant(server);
    await someKey(t);
    for (const name of badNames(t.slug)) {
      await expectRefused(t, () => keys().revokeKey({ name, reason: "test" }, withKey(t.adminKey)), { code: "InvalidArgument", reason: "INVALID_RESOURCE_NAME" });
    }
  });

  test("when CloneKey gets a malformed name, then InvalidArgument INVALID_RESOURCE_NAME and nothing is created", async () => {
    const t = await createTestTenant(server);
    await someKey(t);
    for (const name of badNames(t.slug)) {
      await expectRefused(t, () => keys().cloneKey({ name, displayName: "copy", expireDays: 30 }, withKey(t.adminKey)), { code: "InvalidArgument", reason: "INVALID_RESOURCE_NAME" });
    }
  });
});

describe("RevokeKey reason", () => {
  test.each([
    ["empty", "REQUIRED_FIELD", ""],
    ["whitespace only", "REQUIRED_FIELD", "  \n "],
    ["501 characters", "FIELD_TOO_LONG", "r".repeat(501)],
    ["a NUL byte", "INVALID_CHARACTERS", "oops\u0000"],
  ])("when the reason is %s, then InvalidArgument %s and the key stays active", async (_what, expected, reason) => {
    const t = await createTestTenant(server);
    const key = await someKey(t);
    await expectRefused(t, () => keys().revokeKey({ name: key.name, reason }, withKey(t.adminKey)), { code: "InvalidArgument", reason: expected });
    const got = await keys().getKey({ name: key.name }, withKey(t.adminKey));
    expect(got.key!.state).toBe(KeyState.ACTIVE);
  });

  test("when the reason is exactly 500 characters, then the key is revoked with it", async () => {
    const t = await createTestTenant(server);
    const key = await someKey(t);
    const reason = "r".repeat(500);
    await keys().revokeKey({ name: key.name, reason }, withKey(t.adminKey));
    const got = await keys().getKey({ name: key.name }, withKey(t.adminKey));
    expect(got.key!.state).toBe(KeyState.REVOKED);
    expect(got.key!.revokeReason).toBe(reason);
  });

  test("when an already revoked key is revoked again, then FailedPrecondition ALREADY_REVOKED and the first reason stays", async () => {
    const t = await createTestTenant(server);
    const key = await someKey(t);
    await keys().revokeKey({ name: key.name, reason: "first" }, withKey(t.adminKey));
    await expectRefused(t, () => keys().revokeKey({ name: key.name, reason: "second" }, withKey(t.adminKey)), { code: "FailedPrecondition", reason: "ALREADY_REVOKED" });
    const got = await keys().getKey({ name: key.name }, withKey(t.adminKey));
    expect(got.key!.revokeReason).toBe("first");
  });
});

describe("CloneKey fields", () => {
  test.each([
    ["an empty display name", "REQUIRED_FIELD", { displayName: "", expireDays: 30 }],
    ["a display name with a NUL", "INVALID_CHARACTERS", { displayName: "a\u0000", expireDays: 30 }],
    ["expire_days 366", "INVALID_EXPIRY", { displayName: "copy", expireDays: 366 }],
    ["expire_days -1", "INVALID_EXPIRY", { displayName: "copy", expireDays: -1 }],
  ])("when CloneKey gets %s, then InvalidArgument %s and nothing is created", async (_what, reason, fields) => {
    const t = await createTestTenant(server);
    const key = await someKey(t);
    await expectRefused(t, () => keys().cloneKey({ name: key.name, ...fields }, withKey(t.adminKey)), { code: "InvalidArgument", reason });
  });

  test("when an admin slot key is cloned, then FailedPrecondition NOT_CLONEABLE", async () => {
    const t = await createTestTenant(server);
    const listed = await keys().listKeys({ parent: `tenants/${t.slug}`, kind: KeyKind.ADMIN }, withKey(t.adminKey));
    const admin = listed.keys[0]!;
    await expectRefused(t, () => keys().cloneKey({ name: admin.name, displayName: "copy", expireDays: 30 }, withKey(t.adminKey)), {
      code: "FailedPrecondition",
      reason: "NOT_CLONEABLE",
    });
  });
});

describe("RotateKey", () => {
  test.each([
    ["UNSPECIFIED", KeyKind.UNSPECIFIED, "INVALID_KIND"],
    ["FINE_GRAINED", KeyKind.FINE_GRAINED, "INVALID_KIND"],
    // Undefined enum numbers are refused by the transport before the service sees them.
    ["an unknown number (99)", 99 as KeyKind, "INVALID_ENUM_VALUE"],
  ])("when kind is %s, then InvalidArgument %s and no slot changes", async (_what, kind, reason) => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys().rotateKey({ parent: `tenants/${t.slug}`, kind, slot: KeySlot.PRIMARY }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason,
    });
  });

  test.each([
    ["UNSPECIFIED", KeySlot.UNSPECIFIED, "REQUIRED_FIELD"],
    ["an unknown number (7)", 7 as KeySlot, "INVALID_ENUM_VALUE"],
  ])("when slot is %s, then InvalidArgument %s and no slot changes", async (_what, slot, reason) => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys().rotateKey({ parent: `tenants/${t.slug}`, kind: KeyKind.READ_ONLY, slot }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason,
    });
  });

  test("when the org is unknown, then InvalidArgument UNKNOWN_ORG and no slot changes", async () => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => keys().rotateKey({ parent: `tenants/${t.slug}`, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY, org: "ghost" }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason: "UNKNOWN_ORG",
    });
  });
});

describe("ListKeys paging", () => {
  test.each([[-1], [-2_147_483_648]])("when page_size is %d, then InvalidArgument INVALID_PAGE_SIZE", async (pageSize) => {
    const t = await createTestTenant(server);
    const r = await refusal(keys().listKeys({ parent: `tenants/${t.slug}`, pageSize }, withKey(t.adminKey)));
    expect([r.code, r.reason]).toEqual(["InvalidArgument", "INVALID_PAGE_SIZE"]);
  });

  test.each([
    ["garbage", "!!!not a token!!!"],
    ["base64 of {}", Buffer.from("{}").toString("base64url")],
    ["base64 of a number", Buffer.from("42").toString("base64url")],
    ["10 kB", "A".repeat(10_000)],
  ])("when page_token is %s, then InvalidArgument INVALID_PAGE_TOKEN", async (_what, pageToken) => {
    const t = await createTestTenant(server);
    const r = await refusal(keys().listKeys({ parent: `tenants/${t.slug}`, pageToken }, withKey(t.adminKey)));
    expect([r.code, r.reason]).toEqual(["InvalidArgument", "INVALID_PAGE_TOKEN"]);
  });

  test("when a page token is reused with other filters or on another listing, then InvalidArgument INVALID_PAGE_TOKEN", async () => {
    const t = await createTestTenant(server);
    for (const name of ["k1", "k2", "k3"]) await someKey(t, name);
    const parent = `tenants/${t.slug}`;
    const first = await keys().listKeys({ parent, pageSize: 1, state: KeyState.ACTIVE }, withKey(t.adminKey));
    expect(first.nextPageToken).not.toBe("");
    const followed = await keys().listKeys({ parent, pageSize: 1, state: KeyState.ACTIVE, pageToken: first.nextPageToken }, withKey(t.adminKey));
    expect(followed.keys).toHaveLength(1);
    for (const other of [{ state: KeyState.REVOKED }, {}, { kind: KeyKind.FINE_GRAINED, state: KeyState.ACTIVE }, { state: KeyState.ACTIVE, org: "x" }]) {
      const r = await refusal(keys().listKeys({ parent, pageSize: 1, ...other, pageToken: first.nextPageToken }, withKey(t.adminKey)));
      expect([r.code, r.reason]).toEqual(["InvalidArgument", "INVALID_PAGE_TOKEN"]);
    }
    await directory().createPrincipal({ parent, principalId: "zz", type: PrincipalType.USER, permissions: ["keys:read"] }, withKey(t.adminKey));
    const principals = await directory().listPrincipals({ parent, pageSize: 1 }, withKey(t.adminKey));
    expect(principals.nextPageToken).not.toBe("");
    const r = await refusal(keys().listKeys({ parent, pageToken: principals.nextPageToken }, withKey(t.adminKey)));
    expect([r.code, r.reason]).toEqual(["InvalidArgument", "INVALID_PAGE_TOKEN"]);
  });

  test.each([
    ["a year far before PostgreSQL's range", "-100000-01-01T00:00:00.000Z"],
    ["a year after PostgreSQL's range", "+275000-01-01T00:00:00.000Z"],
    ["a non-date", "yesterday"],
  ])("when a page token carries %s as its position, then InvalidArgument INVALID_PAGE_TOKEN, never Internal", async (_what, createdAt) => {
    const t = await createTestTenant(server);
    for (const name of ["k1", "k2"]) await someKey(t, name);
    // Page tokens are base64url JSON {p: position, f: fingerprint of the query}: keep the
    // fingerprint of a real token and put the hostile position in it.
    const real = await keys().listKeys({ parent: `tenants/${t.slug}`, pageSize: 1 }, withKey(t.adminKey));
    const { f } = JSON.parse(Buffer.from(real.nextPageToken, "base64url").toString("utf8")) as { f: string };
    const pageToken = Buffer.from(JSON.stringify({ p: [createdAt, "AAAAAAAAAAAAAAAA"], f })).toString("base64url");
    const r = await refusal(keys().listKeys({ parent: `tenants/${t.slug}`, pageToken }, withKey(t.adminKey)));
    expect([r.code, r.reason]).toEqual(["InvalidArgument", "INVALID_PAGE_TOKEN"]);
  });
});

describe("CreatePrincipal", () => {
  const parentOf = (t: TestTenant) => `tenants/${t.slug}`;

  test.each([
    ["uppercase", "INVALID_FORMAT", "Alice"],
    ["with spaces", "INVALID_FORMAT", "bob smith"],
    ["101 characters", "INVALID_FORMAT", "p".repeat(101)],
    ["empty", "REQUIRED_FIELD", ""],
    ["a NUL byte", "INVALID_FORMAT", "bob\u0000"],
    ["a path", "INVALID_FORMAT", "../admin"],
    ["10 kB", "INVALID_FORMAT", "p".repeat(10_000)],
  ])("when the principal id is %s, then InvalidArgument %s and nothing is written", async (_what, reason, principalId) => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => directory().createPrincipal({ parent: parentOf(t), principalId, type: PrincipalType.USER, permissions: ["keys:read"] }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason,
    });
  });

  test("when the principal id is exactly 100 characters, then it is created", async () => {
    const t = await createTestTenant(server);
    const principalId = "p".repeat(100);
    const res = await directory().createPrincipal({ parent: parentOf(t), principalId, type: PrincipalType.USER, permissions: ["keys:read"] }, withKey(t.adminKey));
    expect(res.principal!.principalId).toBe(principalId);
  });

  test("when the type is UNSPECIFIED, then InvalidArgument REQUIRED_FIELD", async () => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => directory().createPrincipal({ parent: parentOf(t), principalId: "svc", type: PrincipalType.UNSPECIFIED, permissions: ["keys:read"] }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason: "REQUIRED_FIELD",
    });
  });

  test("when a permission is unknown, then InvalidArgument UNKNOWN_PERMISSION", async () => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => directory().createPrincipal({ parent: parentOf(t), principalId: "svc", type: PrincipalType.USER, permissions: ["keys:admin"] }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason: "UNKNOWN_PERMISSION",
    });
  });

  test("when a fine-grained caller with only directory:write grants keys:write, then PermissionDenied PERMISSIONS_EXCEED_CALLER", async () => {
    const t = await createTestTenant(server);
    const caller = await fineGrainedKey(t, ["directory:write"]);
    const r = await expectRefused(t, () => directory().createPrincipal({ parent: parentOf(t), principalId: "svc", type: PrincipalType.SERVICE_ACCOUNT, permissions: ["keys:write"] }, withKey(caller)), {
      code: "PermissionDenied",
      reason: "PERMISSIONS_EXCEED_CALLER",
    });
    expect(r.metadata["exceeding"]).toBe("keys:write");
  });

  test.each([
    ["unknown", "ghost", "UNKNOWN_ORG"],
    ["malformed", "Not A Slug", undefined],
    ["a NUL byte", "a\u0000b", undefined],
    ["10 kB", "o".repeat(10_000), undefined],
  ])("when the org is %s, then InvalidArgument (never Internal) and nothing is written", async (_what, org, reason) => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => directory().createPrincipal({ parent: parentOf(t), principalId: "svc", type: PrincipalType.USER, permissions: ["keys:read"], org }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      ...(reason === undefined ? {} : { reason }),
    });
  });

  test("when the principal id already exists, then AlreadyExists and the existing principal is unchanged", async () => {
    const t = await createTestTenant(server);
    await directory().createPrincipal({ parent: parentOf(t), principalId: "dup", displayName: "first", type: PrincipalType.USER, permissions: ["keys:read"] }, withKey(t.adminKey));
    await expectRefused(
      t,
      () => directory().createPrincipal({ parent: parentOf(t), principalId: "dup", displayName: "second", type: PrincipalType.USER, permissions: ["keys:write"] }, withKey(t.adminKey)),
      { code: "AlreadyExists", reason: "ALREADY_EXISTS" },
    );
  });
});

describe("CreateOrganization", () => {
  test("when the slug is already taken, then AlreadyExists ALREADY_EXISTS and the first organization is unchanged", async () => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    await directory().createOrganization({ parent, slug: "infra", displayName: "Infra" }, withKey(t.adminKey));
    await expectRefused(t, () => directory().createOrganization({ parent, slug: "infra", displayName: "Other" }, withKey(t.adminKey)), {
      code: "AlreadyExists",
      reason: "ALREADY_EXISTS",
    });
  });

  test.each([
    ["uppercase", "Infra"],
    ["with a space", "in fra"],
    ["empty", ""],
    ["64 characters", "o".repeat(64)],
    ["with a NUL byte", "x\u0000"],
  ])("when the slug is %s, then InvalidArgument and nothing is written", async (_what, slug) => {
    const t = await createTestTenant(server);
    await expectRefused(t, () => directory().createOrganization({ parent: `tenants/${t.slug}`, slug }, withKey(t.adminKey)), { code: "InvalidArgument" });
  });
});

describe("refusals of unprintable input are still audited", () => {
  test("when CreatePrincipal is refused for a NUL byte in the id, then a denied principal.create event is recorded", async () => {
    const t = await createTestTenant(server);
    await refusal(directory().createPrincipal({ parent: `tenants/${t.slug}`, principalId: "bob\u0000", type: PrincipalType.USER, permissions: ["keys:read"] }, withKey(t.adminKey)));
    const events = await audit().listAuditEvents({ parent: `tenants/${t.slug}`, outcome: AuditOutcome.DENIED, action: "principal.create" }, withKey(t.adminKey));
    expect(events.events.map((e) => e.reason)).toEqual(["INVALID_FORMAT"]);
  });

  test("when CreateOrganization is refused for a NUL byte in the slug, then a denied org.create event is recorded", async () => {
    const t = await createTestTenant(server);
    await refusal(directory().createOrganization({ parent: `tenants/${t.slug}`, slug: "x\u0000" }, withKey(t.adminKey)));
    const events = await audit().listAuditEvents({ parent: `tenants/${t.slug}`, outcome: AuditOutcome.DENIED, action: "org.create" }, withKey(t.adminKey));
    expect(events.events.map((e) => e.reason)).toEqual(["INVALID_FORMAT"]);
  });
});

describe("UpdatePrincipal", () => {
  async function principal(t: TestTenant) {
    const res = await directory().createPrincipal({ parent: `tenants/${t.slug}`, principalId: "worker", displayName: "Worker", type: PrincipalType.SERVICE_ACCOUNT, permissions: ["keys:read"] }, withKey(t.adminKey));
    return res.principal!;
  }

  test("when the update mask is empty, then InvalidArgument REQUIRED_FIELD and nothing changes", async () => {
    const t = await createTestTenant(server);
    const p = await principal(t);
    await expectRefused(t, () => directory().updatePrincipal({ principal: { ...p, displayName: "Changed" }, updateMask: { paths: [] } }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason: "REQUIRED_FIELD",
    });
  });

  test.each([["principal_id"], ["bogus"], ["display_name.x"], ["etag"]])("when the update mask names %s, then InvalidArgument INVALID_UPDATE_MASK and nothing changes", async (path) => {
    const t = await createTestTenant(server);
    const p = await principal(t);
    await expectRefused(t, () => directory().updatePrincipal({ principal: { ...p, displayName: "Changed" }, updateMask: { paths: ["display_name", path] } }, withKey(t.adminKey)), {
      code: "InvalidArgument",
      reason: "INVALID_UPDATE_MASK",
    });
  });

  test("when the etag is stale, then Aborted ETAG_MISMATCH and the newer change stays", async () => {
    const t = await createTestTenant(server);
    const p = await principal(t);
    const first = await directory().updatePrincipal({ principal: { ...p, displayName: "First" }, updateMask: { paths: ["display_name"] } }, withKey(t.adminKey));
    expect(first.principal!.etag).not.toBe(p.etag);
    await expectRefused(t, () => directory().updatePrincipal({ principal: { ...p, displayName: "Stale" }, updateMask: { paths: ["display_name"] } }, withKey(t.adminKey)), {
      code: "Aborted",
      reason: "ETAG_MISMATCH",
    });
    const got = await directory().getPrincipal({ name: p.name }, withKey(t.adminKey));
    expect(got.principal!.displayName).toBe("First");
  });

  test("when the etag is garbage, then Aborted ETAG_MISMATCH", async () => {
    const t = await createTestTenant(server);
    const p = await principal(t);
    await expectRefused(t, () => directory().updatePrincipal({ principal: { ...p, etag: "'; drop table principal; --", displayName: "X" }, updateMask: { paths: ["display_name"] } }, withKey(t.adminKey)), {
      code: "Aborted",
      reason: "ETAG_MISMATCH",
    });
  });
});

describe("ListAuditEvents filters", () => {
  test.each([
    ["action", { action: "key.\u0000create" }],
    ["resource", { resource: "tenants/x\u0000" }],
    ["actor", { actor: "\u0000" }],
  ])("when the %s filter holds a NUL byte, then InvalidArgument, never Internal", async (_field, filter) => {
    const t = await createTestTenant(server);
    const r = await refusal(audit().listAuditEvents({ parent: `tenants/${t.slug}`, ...filter }, withKey(t.adminKey)));
    expect(r.code).toBe("InvalidArgument");
  });
});

describe("raw JSON with wrong types", () => {
  async function post(t: TestTenant, method: string, body: unknown): Promise<{ status: number; code: string }> {
    const res = await fetch(`${server.url}/keyward.v1.${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${t.adminKey}` },
      body: JSON.stringify(body),
    });
    return { status: res.status, code: ((await res.json()) as { code: string }).code };
  }

  test.each([
    ["expireDays as a word", { expireDays: "thirty" }],
    ["expireDays as a fraction", { expireDays: 30.5 }],
    ["expireDays beyond int32", { expireDays: 99_999_999_999 }],
    ["expireDays as an object", { expireDays: { days: 30 } }],
    ["permissions as a string", { permissions: "keys:read" }],
    ["permissions with a number", { permissions: ["keys:read", 7] }],
    ["displayName as a number", { displayName: 42 }],
    ["displayName as null inside an array", { displayName: [null] }],
    ["parent as a boolean", { parent: true }],
  ])("when CreateKey gets %s, then 400 invalid_argument and nothing is written", async (_what, override) => {
    const t = await createTestTenant(server);
    const before = await snapshot(t);
    const res = await post(t, "KeyService/CreateKey", { parent: `tenants/${t.slug}`, displayName: "typed", permissions: ["keys:read"], expireDays: 30, ...override });
    expect(res).toEqual({ status: 400, code: "invalid_argument" });
    expect(await snapshot(t)).toEqual(before);
  });

  test("when a string holds a lone surrogate (invalid UTF-16), then 400 invalid_argument and nothing is written", async () => {
    const t = await createTestTenant(server);
    const before = await snapshot(t);
    const res = await fetch(`${server.url}/keyward.v1.KeyService/CreateKey`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${t.adminKey}` },
      body: `{"parent":"tenants/${t.slug}","displayName":"bad\\ud800half","permissions":["keys:read"],"expireDays":30}`,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
    expect(await snapshot(t)).toEqual(before);
  });

  test("when RotateKey gets an unknown enum name, then 400 invalid_argument and no slot changes", async () => {
    const t = await createTestTenant(server);
    const before = await snapshot(t);
    const res = await post(t, "KeyService/RotateKey", { parent: `tenants/${t.slug}`, kind: "KEY_KIND_SUPERUSER", slot: "KEY_SLOT_PRIMARY" });
    expect(res).toEqual({ status: 400, code: "invalid_argument" });
    expect(await snapshot(t)).toEqual(before);
  });

  test("when the body is well-typed JSON, then the same endpoint creates the key (control)", async () => {
    const t = await createTestTenant(server);
    const res = await fetch(`${server.url}/keyward.v1.KeyService/CreateKey`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${t.adminKey}` },
      body: JSON.stringify({ parent: `tenants/${t.slug}`, displayName: "typed", permissions: ["keys:read"], expireDays: 30 }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { key: { displayName: string } }).key.displayName).toBe("typed");
  });
});

describe("refusals are audited as denied", () => {
  test("when CreateKey is refused for a bad value, then a denied key.create event with the reason is recorded", async () => {
    const t = await createTestTenant(server);
    await refusal(keys().createKey({ ...validCreate(t), expireDays: 0 }, withKey(t.adminKey)));
    const events = await audit().listAuditEvents({ parent: `tenants/${t.slug}`, outcome: AuditOutcome.DENIED }, withKey(t.adminKey));
    expect(events.events.map((e) => [e.action, e.reason])).toContainEqual(["key.create", "INVALID_EXPIRY"]);
  });
});
