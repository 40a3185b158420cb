// Fail closed on what the request says (issue 10, items 1 and 2): unknown fields and
// undefined enum values are InvalidArgument on every method of every service, in Connect
// JSON, Connect binary, gRPC and gRPC-Web, before authentication; a method whose request
// carries a credential cannot be called with GET.
import { describe, expect, test } from "@jest/globals";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { create, type DescEnum, type DescField, type DescMessage, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { Health } from "../../gen/health/v1/health_pb.ts";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ReflectionV1alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyKind } from "../../gen/keyward/v1/key_pb.ts";
import { KeyService, VerifyKeyRequestSchema, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { audit, keys, server, useServer, verifyPaths } from "../rpc.ts";
import { connectStream, connectUnary, frame, grpcCall } from "./raw-http.ts";

/** Every service the server exposes. */
const services: readonly DescService[] = [KeyService, PolicyService, TokenExchangeService, DirectoryService, AuditService, Health, ReflectionV1, ReflectionV1alpha];
const keywardServices = services.filter((s) => s.typeName.startsWith("keyward."));
const methods: readonly DescMethod[] = services.flatMap((s) => s.methods);

function infoOf(e: ConnectError | undefined): { reason?: string; metadata: Record<string, string> } {
  const info = e?.findDetails(ErrorInfoSchema)[0];
  return info === undefined ? { metadata: {} } : { reason: info.reason, metadata: info.metadata };
}

/** Calls `method` through `transport` with one request message (streams: one message, first answer). */
async function callWith(transport: Transport, method: DescMethod, message: Message, headers: Record<string, string> = {}): Promise<ConnectError | undefined> {
  try {
    if (method.methodKind === "unary") {
      await transport.unary(method as never, undefined, 10_000, headers, message as never, undefined);
    } else {
      const res = await transport.stream(method as never, undefined, 10_000, headers, (async function* () { yield message as never; })(), undefined);
      for await (const _ of res.message) break;
    }
    return undefined;
  } catch (e) {
    return ConnectError.from(e);
  }
}

/** A request of `method` carrying field number 999 (a varint), which no request type defines. */
function withUnknownField(method: DescMethod): Message {
  const message = create(method.input) as Message & { $unknown?: { no: number; wireType: number; data: Uint8Array }[] };
  message.$unknown = [{ no: 999, wireType: 0, data: new Uint8Array([1]) }];
  return message;
}

function binaryTransports(): { name: string; transport: Transport; streams: "all" | "server" }[] {
  return [
    { name: "gRPC", transport: server.grpcTransport, streams: "all" },
    { name: "Connect binary", transport: createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: true }), streams: "server" },
    { name: "gRPC-Web", transport: createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }), streams: "server" },
  ];
}

describe.each(verifyPaths)("VerifyKey through %s", (_path, env) => {
  useServer({ env });

  describe("unknown fields", () => {
    let t: TestTenant;
    let readerKey: string;

    test("when VerifyKey says requiredPermission (a typo) in JSON, then it is InvalidArgument UNKNOWN_FIELD naming the key, not VALID", async () => {
      t = await createTestTenant(server);
      readerKey = (
        await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "reader", permissions: ["harden_runner:read"], expireDays: 30 }, withKey(t.adminKey))
      ).secret;
      const res = await connectUnary(server.url, "/keyward.v1.KeyService/VerifyKey", JSON.stringify({ key: readerKey, requiredPermission: ["keys:write"] }), {
        contentType: "application/json",
      });
      expect(res.status).toBe(400);
      expect(res.error?.code).toBe(Code.InvalidArgument);
      expect(infoOf(res.error)).toEqual({ reason: "UNKNOWN_FIELD", metadata: { field: "requiredPermission" } });
      expect(res.error?.rawMessage).toContain("requiredPermission");
      expect(res.body.toString()).not.toContain("VERIFY_RESULT_VALID");
      // The spelling that exists is still answered.
      const ok = await keys.verifyKey({ key: readerKey, requiredPermissions: ["keys:write"] });
      expect(ok.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
    });

    test("when VerifyKey carries an unknown field in binary (Connect, gRPC, gRPC-Web), then it is InvalidArgument UNKNOWN_FIELD with the field number", async () => {
      // Field 9, length-delimited, "keys:write": what a client built from a newer schema would send.
      const message = create(VerifyKeyRequestSchema, { key: readerKey }) as Message & { $unknown?: unknown[] };
      message.$unknown = [{ no: 9, wireType: 2, data: new Uint8Array([10, ...Buffer.from("keys:write")]) }];
      for (const { name, transport } of binaryTransports()) {
        const err = await callWith(transport, KeyService.method.verifyKey, message);
        expect({ name, code: err?.code }).toEqual({ name, code: Code.InvalidArgument });
        expect(infoOf(err)).toEqual({ reason: "UNKNOWN_FIELD", metadata: { field: "9" } });
      }
    });

    test("when any method of any service gets an unknown field in binary, then every protocol answers InvalidArgument UNKNOWN_FIELD, without credentials", async () => {
      const failures: string[] = [];
      for (const method of methods) {
        for (const { name, transport, streams } of binaryTransports()) {
          if (method.methodKind !== "unary" && (method.methodKind !== "server_streaming" || streams !== "server") && streams !== "all") continue;
          const err = await callWith(transport, method, withUnknownField(method));
          const info = infoOf(err);
          if (err?.code !== Code.InvalidArgument || info.reason !== "UNKNOWN_FIELD" || info.metadata["field"] !== "999") {
            failures.push(`${name} ${method.parent.typeName}/${method.name}: ${err === undefined ? "OK" : `${Code[err.code]} ${info.reason}`}`);
          }
        }
      }
      expect(failures).toEqual([]);
    });

    test("when any method of any service gets an unknown JSON key (Connect JSON, gRPC+JSON), then it is InvalidArgument UNKNOWN_FIELD, without credentials", async () => {
      const failures: string[] = [];
      const body = JSON.stringify({ bogusField: 1 });
      for (const method of methods) {
        const path = `/${method.parent.typeName}/${method.name}`;
        const answers = [{ name: "gRPC+JSON", res: await grpcCall(server.url, path, frame(0, body), { contentType: "application/grpc+json" }) }];
        if (method.methodKind === "unary") answers.push({ name: "Connect JSON", res: await connectUnary(server.url, path, body, { contentType: "application/json" }) });
        if (method.methodKind === "server_streaming") answers.push({ name: "Connect stream JSON", res: await connectStream(server.url, path, frame(0, body), { contentType: "application/connect+json" }) });
        for (const { name, res } of answers) {
          const info = infoOf(res.error);
          if (res.error?.code !== Code.InvalidArgument || info.reason !== "UNKNOWN_FIELD" || info.metadata["field"] !== "bogusField") {
            failures.push(`${name} ${path}: ${res.error === undefined ? "OK" : `${Code[res.error.code]} ${info.reason}`}`);
          }
        }
      }
      expect(failures).toEqual([]);
    });

    test("when an unknown field hides in a nested message, then its path names it", async () => {
      const method = DirectoryService.method.updateTenant;
      const message = create(method.input) as Message & Record<string, unknown>;
      const nestedField = method.input.fields.find((f) => f.fieldKind === "message");
      if (nestedField === undefined || nestedField.fieldKind !== "message") throw new Error("UpdateTenantRequest has no message field");
      const nested = create(nestedField.message) as Message & { $unknown?: unknown[] };
      nested.$unknown = [{ no: 77, wireType: 0, data: new Uint8Array([1]) }];
      message[nestedField.localName] = nested;
      const err = await callWith(server.grpcTransport, method, message);
      expect(err?.code).toBe(Code.InvalidArgument);
      expect(infoOf(err)).toEqual({ reason: "UNKNOWN_FIELD", metadata: { field: `${nestedField.name}.77` } });
    });
  });

  /** Enum fields of a request type (top level, and one level into nested messages). */
  function enumFields(input: DescMessage): { path: string[]; field: DescField & { enum: DescEnum } }[] {
    const out: { path: string[]; field: DescField & { enum: DescEnum } }[] = [];
    for (const f of input.fields) {
      if (f.fieldKind === "enum") out.push({ path: [f.localName], field: f });
      if (f.fieldKind === "message" && !f.message.typeName.startsWith("google.")) {
        for (const g of f.message.fields) if (g.fieldKind === "enum") out.push({ path: [f.localName, g.localName], field: g });
      }
    }
    return out;
  }

  describe("undefined enum values", () => {
    let t: TestTenant;

    test("when ListKeys filters by state KEY_STATE_BOGUS, by kind 99, or ListAuditEvents by outcome 7 (JSON), then InvalidArgument INVALID_ENUM_VALUE, never the unfiltered list", async () => {
      t = await createTestTenant(server);
      await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "k1", permissions: ["keys:read"], expireDays: 30 }, withKey(t.adminKey));
      const auth = { authorization: `Bearer ${t.adminKey}` };
      const cases = [
        { path: "/keyward.v1.KeyService/ListKeys", body: { parent: `tenants/${t.slug}`, state: "KEY_STATE_BOGUS" }, field: "state" },
        { path: "/keyward.v1.KeyService/ListKeys", body: { parent: `tenants/${t.slug}`, kind: 99 }, field: "kind" },
        { path: "/keyward.v1.AuditService/ListAuditEvents", body: { parent: `tenants/${t.slug}`, outcome: 7 }, field: "outcome" },
      ];
      for (const c of cases) {
        const res = await connectUnary(server.url, c.path, JSON.stringify(c.body), { contentType: "application/json", headers: auth });
        expect({ c, status: res.status, code: res.error?.code }).toEqual({ c, status: 400, code: Code.InvalidArgument });
        expect(infoOf(res.error)).toMatchObject({ reason: "INVALID_ENUM_VALUE", metadata: { field: c.field } });
      }
    });

    test("when the same filters come in binary over gRPC and Connect, then InvalidArgument INVALID_ENUM_VALUE", async () => {
      for (const transport of [server.grpcTransport, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: true })]) {
        const k = createClient(KeyService, transport);
        const a = createClient(AuditService, transport);
        const calls = [
          { err: await callErr(k.listKeys({ parent: `tenants/${t.slug}`, kind: 99 as KeyKind }, withKey(t.adminKey))), field: "kind" },
          { err: await callErr(a.listAuditEvents({ parent: `tenants/${t.slug}`, outcome: 7 as AuditOutcome }, withKey(t.adminKey))), field: "outcome" },
        ];
        for (const { err, field } of calls) {
          expect(err?.code).toBe(Code.InvalidArgument);
          expect(infoOf(err)).toEqual({ reason: "INVALID_ENUM_VALUE", metadata: { field } });
        }
      }
      // Defined values still filter.
      const listed = await keys.listKeys({ parent: `tenants/${t.slug}`, kind: KeyKind.FINE_GRAINED }, withKey(t.adminKey));
      expect(listed.keys.map((k) => k.displayName)).toEqual(["k1"]);
      const events = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, outcome: AuditOutcome.SUCCESS }, withKey(t.adminKey));
      expect(events.events.length).toBeGreaterThan(0);
    });

    test("when any enum field of any request (any method, nested too) holds an undefined number, then InvalidArgument INVALID_ENUM_VALUE with its path, without credentials", async () => {
      const failures: string[] = [];
      let checked = 0;
      for (const method of methods) {
        for (const { path, field } of enumFields(method.input)) {
          const undefinedNumber = Math.max(...field.enum.values.map((v) => v.number)) + 1000;
          const message = create(method.input) as Message & Record<string, unknown>;
          if (path.length === 1) message[path[0] ?? ""] = undefinedNumber;
          else {
            const parent = method.input.fields.find((f) => f.localName === path[0]);
            if (parent?.fieldKind !== "message") continue;
            message[path[0] ?? ""] = create(parent.message, { [path[1] ?? ""]: undefinedNumber } as never);
          }
          const expectedPath = path.length === 1 ? field.name : `${method.input.fields.find((f) => f.localName === path[0])?.name}.${field.name}`;
          // gRPC carries the number in binary, Connect JSON as a JSON number (both keep it: proto3 enums are open).
          for (const transport of [server.grpcTransport, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false })]) {
            if (method.methodKind === "bidi_streaming" && transport !== server.grpcTransport) continue;
            checked += 1;
            const err = await callWith(transport, method, message);
            const info = infoOf(err);
            if (err?.code !== Code.InvalidArgument || info.reason !== "INVALID_ENUM_VALUE" || info.metadata["field"] !== expectedPath) {
              failures.push(`${method.parent.typeName}/${method.name} ${expectedPath}: ${err === undefined ? "OK" : `${Code[err.code]} ${info.reason} ${JSON.stringify(info.metadata)}`}`);
            }
          }
        }
      }
      expect(failures).toEqual([]);
      expect(checked).toBeGreaterThanOrEqual(8);
    });
  });

  async function callErr(p: Promise<unknown>): Promise<ConnectError | undefined> {
    try {
      await p;
      return undefined;
    } catch (e) {
      return ConnectError.from(e);
    }
  }

  describe("credentials never in URLs", () => {
    test("when VerifyKey is called with GET and the key in the query, then it is refused (405), never answered", async () => {
      const t = await createTestTenant(server);
      const query = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify({ key: t.adminKey, requiredPermissions: ["keys:read"] }) });
      const res = await connectUnary(server.url, `/keyward.v1.KeyService/VerifyKey?${query}`, undefined, { method: "GET" });
      expect(res.status).toBe(405);
      expect(res.body.toString()).not.toContain("VALID");
      expect(res.headers.get("x-request-id")).toBeTruthy();
    });

    test("when TestPolicy is called with GET, then it is refused (405)", async () => {
      const query = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify({ parent: "tenants/x", subjectToken: "eyJ.a.b" }) });
      const res = await connectUnary(server.url, `/keyward.v1.PolicyService/TestPolicy?${query}`, undefined, { method: "GET" });
      expect(res.status).toBe(405);
    });

    test("when a NO_SIDE_EFFECTS read (GetKey) is called with GET, then it still works", async () => {
      const t = await createTestTenant(server);
      const created = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "g", permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
      const name = created.key?.name ?? "";
      const query = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify({ name }) });
      const res = await connectUnary(server.url, `/keyward.v1.KeyService/GetKey?${query}`, undefined, { method: "GET", headers: { authorization: `Bearer ${t.adminKey}` } });
      expect(res.status).toBe(200);
      expect((JSON.parse(res.body.toString()) as { key: { name: string } }).key.name).toBe(name);
    });

    test("when a request type carries a credential or a token, then its method is not NO_SIDE_EFFECTS (so no client may use GET)", () => {
      const credentialFields = /^(key|secret|subject_token|token|id_token|access_token|credential|password)$/;
      const carrying = keywardServices.flatMap((s) => s.methods).filter((m) => m.input.fields.some((f) => credentialFields.test(f.name)));
      expect(carrying.map((m) => m.name).sort()).toEqual(expect.arrayContaining(["ExchangeToken", "TestPolicy", "VerifyKey"]));
      for (const m of carrying) expect({ method: m.name, level: m.idempotency }).not.toEqual({ method: m.name, level: MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS });
    });
  });
});
