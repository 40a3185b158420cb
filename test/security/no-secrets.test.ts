// Raw keys are shown once, in the response that minted them, and nowhere else: not in
// logs (at debug level), not in the audit log, not in key listings, not in errors.
import { describe, expect, test } from "@jest/globals";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { toJsonString } from "@bufbuild/protobuf";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { AuditService, ListAuditEventsResponseSchema } from "../../gen/keyward/v1/audit_service_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyKind, KeySlot } from "../../gen/keyward/v1/key_pb.ts";
import { GetKeyResponseSchema, KeyService, ListKeysResponseSchema, VerifyKeyResponseSchema, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { keys, rpcError, server, useServer } from "../rpc.ts";

useServer();

/** The part of a raw key after its public key id: the secret and its checksum. */
function secretPart(raw: string): string {
  const part = raw.split("_")[2];
  if (part === undefined || part.length < 30) throw new Error("not a raw key");
  return part;
}

const window = 16;

/** Which of `raws` show up in `text`: whole, by their secret part, or by any 16-character piece of it. */
function leaked(text: string, raws: readonly string[]): string[] {
  return raws.filter((raw) => {
    if (text.includes(raw)) return true;
    const secret = secretPart(raw);
    for (let i = 0; i + window <= secret.length; i++) if (text.includes(secret.slice(i, i + window))) return true;
    return false;
  });
}

/** Everything a client can read from a failed call: message, headers, trailers, details. */
function errorText(e: ConnectError): string {
  const details = e.details.map((d) => ("value" in d && d.value instanceof Uint8Array ? Buffer.from(d.value).toString("latin1") : JSON.stringify(d)));
  return [e.message, e.rawMessage, JSON.stringify([...e.metadata.entries()]), ...details, JSON.stringify(e.findDetails(ErrorInfoSchema))].join("\n");
}

type Workload = { t: TestTenant; secrets: string[]; errors: { label: string; error: ConnectError }[]; verifyJson: string[] };

/**
 * Bootstrap, create (tenant and org scope), rotate every slot kind (one twice), clone,
 * revoke, verify (valid and every kind of invalid), and calls refused with those keys,
 * over both protocols.
 */
async function runWorkload(): Promise<Workload> {
  const t = await createTestTenant(server);
  const parent = `tenants/${t.slug}`;
  const secrets = [t.adminKey];
  const errors: Workload["errors"] = [];
  const verifyJson: string[] = [];
  const admin = withKey(t.adminKey);
  const directory = server.client(DirectoryService);

  await directory.createOrganization({ parent, slug: "infra" }, admin);
  const a = await keys.createKey({ parent, displayName: "deployer", permissions: ["keys:read", "policies:write"], expireDays: 30 }, admin);
  const b = await keys.createKey({ parent, displayName: "infra reader", permissions: ["keys:read"], org: "infra", expireDays: 7 }, admin);
  const s = await keys.rotateKey({ parent, kind: KeyKind.ADMIN, slot: KeySlot.SECONDARY }, admin);
  const r1 = await keys.rotateKey({ parent, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY }, admin);
  const r2 = await keys.rotateKey({ parent, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY }, withKey(s.secret));
  const g = await keys.rotateKey({ parent, kind: KeyKind.REGISTRY, slot: KeySlot.PRIMARY }, admin);
  const c = await keys.cloneKey({ name: a.key!.name, displayName: "deployer v2" }, admin);
  await keys.revokeKey({ name: a.key!.name, reason: "rotating to the clone" }, admin);
  secrets.push(a.secret, b.secret, s.secret, r1.secret, r2.secret, g.secret, c.secret);

  const tampered = c.secret.slice(0, -1) + (c.secret.endsWith("A") ? "B" : "A");
  const checks: [string, string[], string, VerifyResult][] = [
    [c.secret, ["keys:read"], "", VerifyResult.VALID],
    [c.secret, ["directory:write"], "", VerifyResult.INSUFFICIENT_PERMISSIONS],
    [b.secret, ["keys:read"], "", VerifyResult.WRONG_SCOPE],
    [b.secret, ["keys:read"], "infra", VerifyResult.VALID],
    [a.secret, [], "", VerifyResult.REVOKED],
    [r1.secret, [], "", VerifyResult.REVOKED],
    [tampered, [], "", VerifyResult.MALFORMED],
    ["not-a-key", [], "", VerifyResult.MALFORMED],
  ];
  for (const transport of [server.connectTransport, server.grpcTransport]) {
    const client = createClient(KeyService, transport);
    for (const [key, requiredPermissions, org, expected] of checks) {
      const res = await client.verifyKey({ key, requiredPermissions, org });
      expect(res.result).toBe(expected);
      verifyJson.push(toJsonString(VerifyKeyResponseSchema, res));
    }
  }

  const refused = async (label: string, transport: Transport, call: (k: Client<typeof KeyService>, a: Client<typeof AuditService>) => Promise<unknown>, code: Code) => {
    const error = await rpcError(call(createClient(KeyService, transport), createClient(AuditService, transport)));
    expect({ label, code: Code[error.code] }).toEqual({ label, code: Code[code] });
    errors.push({ label, error });
  };
  for (const [name, transport] of [["connect", server.connectTransport], ["grpc", server.grpcTransport]] as const) {
    await refused(`${name}: revoked key as bearer`, transport, (k) => k.listKeys({ parent }, withKey(a.secret)), Code.Unauthenticated);
    await refused(`${name}: rotated-out key as bearer`, transport, (k) => k.getKey({ name: c.key!.name }, withKey(r1.secret)), Code.Unauthenticated);
    await refused(`${name}: tampered key as bearer`, transport, (k) => k.listKeys({ parent }, withKey(tampered)), Code.Unauthenticated);
    await refused(`${name}: key without Bearer`, transport, (k) => k.listKeys({ parent }, { headers: { authorization: c.secret } }), Code.Unauthenticated);
    await refused(`${name}: key as Basic`, transport, (k) => k.listKeys({ parent }, { headers: { authorization: `Basic ${c.secret}` } }), Code.Unauthenticated);
    await refused(`${name}: read-only key creating a key`, transport, (k) => k.createKey({ parent, displayName: "x", permissions: ["keys:read"], expireDays: 7 }, withKey(r2.secret)), Code.PermissionDenied);
    await refused(`${name}: registry key listing keys`, transport, (k) => k.listKeys({ parent }, withKey(g.secret)), Code.PermissionDenied);
    await refused(`${name}: org key reading audit`, transport, (_k, au) => au.listAuditEvents({ parent }, withKey(b.secret)), Code.PermissionDenied);
    await refused(`${name}: read-only key cloning`, transport, (k) => k.cloneKey({ name: c.key!.name, displayName: "y" }, withKey(r2.secret)), Code.PermissionDenied);
    await refused(`${name}: revoke twice`, transport, (k) => k.revokeKey({ name: a.key!.name, reason: "again" }, withKey(s.secret)), Code.FailedPrecondition);
    await refused(`${name}: another tenant's key`, transport, (k) => k.listKeys({ parent: "tenants/someone-else" }, withKey(c.secret)), Code.PermissionDenied);
    await refused(`${name}: verify with unknown permission`, transport, (k) => k.verifyKey({ key: c.secret, requiredPermissions: ["keys:admin"] }), Code.InvalidArgument);
    await refused(`${name}: verify with bad org`, transport, (k) => k.verifyKey({ key: c.secret, org: "Not An Org!" }), Code.InvalidArgument);
  }
  return { t, secrets, errors, verifyJson };
}

describe("no secrets outside the minting response", () => {
  test("when a representative workload runs at LOG_LEVEL debug, then no log line holds a raw key or a piece of its secret", async () => {
    const { secrets, t } = await runWorkload();
    expect(server.config.logLevel).toBe("debug");
    expect(server.logs.some((l) => (JSON.parse(l) as { level: number }).level === 20)).toBe(true);
    // The logs did see these calls: the admin key's public id is there.
    expect(server.logs.some((l) => l.includes(secrets[0]!.split("_")[1]!))).toBe(true);
    expect(server.logs.some((l) => l.includes(t.slug))).toBe(true);
    const leaks = server.logs.flatMap((line) => leaked(line, secrets).map((raw) => ({ line: line.slice(0, 300), key: raw.split("_")[1] })));
    expect(leaks).toEqual([]);
  });

  test("when the audit log of that workload is listed, then no event holds a raw key or a piece of its secret", async () => {
    const { secrets, t } = await runWorkload();
    const audit = server.client(AuditService);
    const pages: string[] = [];
    const actions = new Set<string>();
    let pageToken = "";
    for (let i = 0; i < 20; i++) {
      const res = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, pageSize: 100, pageToken }, withKey(t.adminKey));
      pages.push(toJsonString(ListAuditEventsResponseSchema, res));
      for (const e of res.events) actions.add(e.action);
      pageToken = res.nextPageToken;
      if (pageToken === "") break;
    }
    expect(pageToken).toBe("");
    for (const action of ["key.create", "key.rotate", "key.clone", "key.revoke"]) expect(actions).toContain(action);
    expect(leaked(pages.join("\n"), secrets).map((raw) => raw.split("_")[1])).toEqual([]);
  });

  test("when the keys of that workload are listed and read one by one, then only ids and 4-character hints show", async () => {
    const { secrets, t, verifyJson } = await runWorkload();
    const list = await keys.listKeys({ parent: `tenants/${t.slug}`, pageSize: 1000 }, withKey(secrets[3]!));
    expect(list.keys.length).toBe(secrets.length);
    const texts = [toJsonString(ListKeysResponseSchema, list)];
    for (const k of list.keys) {
      const got = await keys.getKey({ name: k.name }, withKey(secrets[3]!));
      texts.push(toJsonString(GetKeyResponseSchema, got));
      const raw = secrets.find((s) => s.split("_")[1] === k.keyId);
      expect(raw).toBeDefined();
      expect(k.hint).toBe(raw!.slice(-4));
    }
    expect(leaked(texts.join("\n"), secrets).map((raw) => raw.split("_")[1])).toEqual([]);
    expect(leaked(verifyJson.join("\n"), secrets).map((raw) => raw.split("_")[1])).toEqual([]);
  });

  test("when calls made with those keys are refused, then no error message, header or detail holds the key", async () => {
    const { secrets, errors } = await runWorkload();
    expect(errors.length).toBeGreaterThanOrEqual(20);
    const leaks = errors.flatMap(({ label, error }) => (leaked(errorText(error), secrets).length > 0 ? [label] : []));
    expect(leaks).toEqual([]);
    const unauthenticated = errors.filter(({ error }) => error.code === Code.Unauthenticated);
    expect(unauthenticated.length).toBeGreaterThan(0);
    for (const { error } of unauthenticated) expect(error.rawMessage).toBe("Missing or invalid API key");
  });

  test("when a call with Authorization: Bearer <raw key> fails, then its log lines hold no authorization value", async () => {
    const { secrets, t } = await runWorkload();
    const revoked = secrets[1]!;
    const requestId = `no-secrets-${Date.now() % 1_000_000}`;
    const res = await fetch(`${server.url}/keyward.v1.KeyService/ListKeys`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${revoked}`, "x-request-id": requestId },
      body: JSON.stringify({ parent: `tenants/${t.slug}` }),
    });
    expect(res.status).toBe(401);
    const body = await res.text();
    expect(leaked(body, [revoked])).toEqual([]);

    const lines = server.logs.filter((l) => l.includes(requestId));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.some((l) => l.includes('"code":"Unauthenticated"'))).toBe(true);
    for (const line of lines) {
      expect(leaked(line, [revoked])).toEqual([]);
      expect(line).not.toMatch(/bearer/i);
    }
    expect(server.logs.filter((l) => /bearer\s/i.test(l))).toEqual([]);
    expect(server.logs.flatMap((l) => leaked(l, secrets))).toEqual([]);
  });

  test("when a raw key is pasted where a resource name belongs, then the refusal does not echo it", async () => {
    const t = await createTestTenant(server);
    const created = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "pasted", permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
    const raw = created.secret;
    const calls: [string, () => Promise<unknown>][] = [
      ["RevokeKey name=raw", () => keys.revokeKey({ name: raw, reason: "leaked" }, withKey(t.adminKey))],
      ["GetKey name=tenants/t/keys/raw", () => keys.getKey({ name: `tenants/${t.slug}/keys/${raw}` }, withKey(t.adminKey))],
      ["CloneKey name=raw", () => keys.cloneKey({ name: raw, displayName: "copy" }, withKey(t.adminKey))],
      ["ListKeys parent=raw", () => keys.listKeys({ parent: raw }, withKey(t.adminKey))],
      ["ListKeys owner=raw", () => keys.listKeys({ parent: `tenants/${t.slug}`, owner: raw }, withKey(t.adminKey))],
    ];
    const leaks: string[] = [];
    for (const [label, call] of calls) {
      const error = await rpcError(call());
      expect({ label, code: Code[error.code] }).toEqual({ label, code: "InvalidArgument" });
      if (leaked(errorText(error), [raw]).length > 0) leaks.push(label);
    }
    expect(leaks).toEqual([]);
    expect(server.logs.flatMap((l) => leaked(l, [raw]))).toEqual([]);
  });
});
