// The OpenAPI document (issue 14 item 1, DESIGN.md §6): it validates as OpenAPI 3.1, has a
// tag per keyward.v1 service and exactly one operation per RPC of the generated code,
// `security: []` exactly where the proto's (keyward.v1.anonymous) option says so, proto3
// JSON mapping in its schemas, the Connect error body, the Connect headers, examples the
// strict JSON parser accepts, and it is what the plugin makes of proto/ today (fresh).
import { describe, expect, it, beforeAll } from "@jest/globals";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clone, create, createFileRegistry, fromJson, getOption, type DescMethod, type DescService, type JsonValue } from "@bufbuild/protobuf";
import { CodeGeneratorRequestSchema, FileDescriptorSetSchema, MethodDescriptorProtoSchema, type FileDescriptorSet } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { Validator } from "@seriousme/openapi-schema-validator";
import { KeyKindSchema } from "../../gen/keyward/v1/key_pb.ts";
import { anonymous } from "../../gen/keyward/v1/options_pb.ts";
import { buildOpenApiDocument, firstSentence } from "../../tools/protoc-gen-openapi/openapi-document.ts";
import { documentPath, openApiPlugin } from "../../tools/protoc-gen-openapi/openapi-plugin.ts";
import { bufBuild, generatedServices, readDocument, readDocumentBytes, refName, type OpenApiDocument, type Schema } from "./openapi-doc.ts";

let doc: OpenApiDocument;
let services: DescService[];
let image: FileDescriptorSet;

beforeAll(async () => {
  doc = await readDocument();
  services = await generatedServices();
  image = await bufBuild();
});

/** The operation of one RPC. */
function operationOf(method: DescMethod) {
  const op = doc.paths[`/${method.parent.typeName}/${method.name}`]?.["post"];
  if (op === undefined) throw new Error(`no operation for ${method.parent.typeName}/${method.name}`);
  return op;
}

/** A schema by component name. */
function schema(name: string): Schema {
  const s = doc.components.schemas[name];
  if (s === undefined) throw new Error(`no schema ${name}`);
  return s;
}

/** Runs the plugin on an image the way buf does (keyward.v1 files to generate). */
function runPlugin(set: FileDescriptorSet): string {
  const request = create(CodeGeneratorRequestSchema, {
    fileToGenerate: set.file.filter((f) => f.package === "keyward.v1").map((f) => f.name),
    protoFile: set.file,
  });
  const files = openApiPlugin.run(request).file;
  expect(files.map((f) => f.name)).toEqual([documentPath]);
  return files[0]!.content;
}

describe("the document", () => {
  it("when validated, then it is a valid OpenAPI 3.1 document, and the validator refuses a broken copy", async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    expect(doc.openapi).toBe("3.1.0");

    const broken = structuredClone(doc) as unknown as { paths: Record<string, Record<string, { operationId?: unknown }>> };
    broken.paths["/keyward.v1.KeyService/GetKey"]!["post"]!.operationId = 14;
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it("when read, then info names keyward v1 and the only server is the serving origin", () => {
    expect(doc.info).toMatchObject({ title: "keyward", version: "v1" });
    expect(doc.servers).toEqual([expect.objectContaining({ url: "/" })]);
  });

  it("when compared with the generated services, then there is a tag per service with its proto comment", () => {
    expect(services.map((s) => s.typeName).sort()).toEqual([
      "keyward.v1.AuditService", "keyward.v1.DirectoryService", "keyward.v1.KeyService", "keyward.v1.PolicyService", "keyward.v1.TokenExchangeService",
    ]);
    expect(doc.tags.map((t) => t.name).sort()).toEqual(services.map((s) => s.name).sort());
    const keyTag = doc.tags.find((t) => t.name === "KeyService");
    expect(keyTag?.description).toMatch(/^Issues, rotates, revokes and verifies API keys\./);
  });

  it("when compared with the generated services, then every RPC has exactly one POST operation and there is no other", () => {
    const expected = services.flatMap((s) => s.methods.map((m) => `/${s.typeName}/${m.name}`)).sort();
    expect(Object.keys(doc.paths).sort()).toEqual(expected);
    for (const service of services) {
      for (const method of service.methods) {
        expect(Object.keys(doc.paths[`/${service.typeName}/${method.name}`]!)).toEqual(["post"]);
        const op = operationOf(method);
        expect(op.operationId).toBe(`${service.name}_${method.name}`);
        expect(op.tags).toEqual([service.name]);
        expect(op.summary.length).toBeGreaterThan(5);
        expect(op.description.replace(/\s+/g, " ").startsWith(op.summary)).toBe(true);
        expect(refName(Object.values(op.requestBody.content)[0]?.schema)).toBe(method.input.typeName);
        expect(refName(Object.values(op.responses["200"]?.content ?? {})[0]?.schema)).toBe(method.output.typeName);
        expect(op.parameters).toEqual([{ $ref: "#/components/parameters/ConnectProtocolVersion" }, { $ref: "#/components/parameters/ConnectTimeoutMs" }]);
      }
    }
    const ids = Object.values(doc.paths).map((p) => p["post"]!.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("when read, then summary and description come from the method's proto comment", () => {
    const revoke = doc.paths["/keyward.v1.KeyService/RevokeKey"]!["post"]!;
    expect(revoke.summary).toBe("Revokes a key, immediately and permanently.");
    expect(revoke.description).toContain("Revoking a revoked key fails with\nFAILED_PRECONDITION. Needs `keys:write`.");
    expect(firstSentence("Only events of this action, e.g. `key.revoke`. More.")).toBe("Only events of this action, e.g. `key.revoke`.");
  });

  it("when read, then bearer is the default and exactly the methods with (keyward.v1.anonymous) have `security: []`", () => {
    expect(doc.components.securitySchemes["bearerAuth"]).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    const open: string[] = [];
    for (const method of services.flatMap((s) => s.methods)) {
      const op = operationOf(method);
      const isAnonymous = getOption(method, anonymous);
      if (isAnonymous) open.push(`${method.parent.name}/${method.name}`);
      expect(op.security).toEqual(isAnonymous ? [] : undefined);
      // 401 is listed exactly where a credential is needed (streams report errors in the stream).
      if (method.methodKind === "unary") expect(op.responses["401"] !== undefined).toBe(!isAnonymous);
    }
    expect(open.sort()).toEqual(["KeyService/VerifyKey", "TokenExchangeService/ExchangeToken", "TokenExchangeService/GetJwks"]);
  });

  it("when a message schema is read, then it follows the proto3 JSON mapping", () => {
    const exchange = schema("keyward.v1.ExchangeTokenResponse").properties!;
    expect(exchange["expiresIn"]).toMatchObject({ type: "string", format: "int64" });
    expect(exchange["accessToken"]).toMatchObject({ type: "string" });
    expect(exchange["permissions"]).toMatchObject({ type: "array", items: { type: "string" } });
    const key = schema("keyward.v1.Key").properties!;
    expect(key["createTime"]).toMatchObject({ type: "string", format: "date-time" });
    expect(key["kind"]).toMatchObject({ $ref: "#/components/schemas/keyward.v1.KeyKind" });
    expect(key["displayName"]?.description).toMatch(/^Human-readable name/);
    expect(schema("keyward.v1.KeyKind")).toMatchObject({ type: "string", enum: KeyKindSchema.values.map((v) => v.name) });
    expect(schema("keyward.v1.UpdatePolicyRequest").properties!["updateMask"]).toMatchObject({ type: "string" });
    expect(schema("keyward.v1.AuditEvent").properties!["details"]).toMatchObject({ type: "object", additionalProperties: { type: "string" } });
    expect(schema("keyward.v1.Key").properties!["permissions"]).toMatchObject({ type: "array" });
    expect(schema("keyward.v1.VerifyKeyRequest").properties).toHaveProperty("requiredPermissions");
    // Every property is a field's JSON name (lowerCamelCase), and nothing is `required` (proto3).
    const registry = createFileRegistry(image);
    for (const [name, s] of Object.entries(doc.components.schemas)) {
      if (!name.startsWith("keyward.v1.") || s.type !== "object") continue;
      const message = registry.getMessage(name);
      expect(Object.keys(s.properties ?? {})).toEqual(message?.fields.map((f) => f.jsonName));
      expect(s).not.toHaveProperty("required");
    }
  });

  it("when read, then errors are the Connect error body with its code table and the ErrorInfo detail", () => {
    const error = schema("connect.Error");
    const allCodes = Object.values(Code).filter((c): c is Code => typeof c === "number").map((c) => codeToString(c)).sort();
    expect([...(error.properties!["code"]!.enum ?? [])].sort()).toEqual(allCodes);
    expect(Object.keys(error.properties!)).toEqual(["code", "message", "details"]);
    const detail = schema("connect.ErrorDetail");
    expect(Object.keys(detail.properties!)).toEqual(["type", "value", "debug"]);
    expect(detail.properties!["debug"]).toMatchObject({ $ref: "#/components/schemas/google.rpc.ErrorInfo" });
    expect(Object.keys(schema("google.rpc.ErrorInfo").properties!)).toEqual(["reason", "domain", "metadata"]);
    const unauthenticated = doc.components.responses["Unauthenticated"] as { content: Record<string, { schema: Schema }> };
    expect(unauthenticated.content["application/json"]!.schema.allOf?.[1]).toEqual({ properties: { code: { enum: ["unauthenticated"] } } });
    const conflict = doc.components.responses["Conflict"] as { content: Record<string, { schema: Schema }> };
    expect(conflict.content["application/json"]!.schema.allOf?.[1]).toEqual({ properties: { code: { enum: ["already_exists", "aborted"] } } });
    expect(doc.components.parameters["ConnectProtocolVersion"]).toMatchObject({ name: "Connect-Protocol-Version", in: "header" });
    expect(doc.components.parameters["ConnectTimeoutMs"]).toMatchObject({ name: "Connect-Timeout-Ms", in: "header" });
  });

  it("when the server stream is read, then it is marked as a Connect stream with enveloped JSON", () => {
    const watch = doc.paths["/keyward.v1.KeyService/WatchInvalidations"]!["post"]!;
    expect(Object.keys(watch.requestBody.content)).toEqual(["application/connect+json"]);
    expect(watch.description).toContain("\"Try it out\" cannot frame or read envelopes");
    expect(watch).toMatchObject({ "x-connect-streaming": "server" });
  });

  it("when each operation's example is parsed as its request message by the strict proto3 JSON parser, then it is accepted", () => {
    for (const method of services.flatMap((s) => s.methods)) {
      const example = Object.values(operationOf(method).requestBody.content)[0]?.example;
      expect(example).toBeDefined();
      expect(() => fromJson(method.input, example as JsonValue, { ignoreUnknownFields: false })).not.toThrow();
    }
    const createKey = doc.paths["/keyward.v1.KeyService/CreateKey"]!["post"]!.requestBody.content["application/json"]!.example;
    expect(createKey).toMatchObject({ parent: "tenants/default", permissions: ["keys:read"] });
    const getKey = doc.paths["/keyward.v1.KeyService/GetKey"]!["post"]!.requestBody.content["application/json"]!.example;
    expect(getKey).toEqual({ name: expect.stringMatching(/^tenants\/default\/keys\/[0-9A-Za-z]{16}$/) });
  });
});

describe("freshness and the plugin", () => {
  it("when the plugin runs on proto/ as it is now, then it writes the committed document byte for byte (gen/ is fresh), twice the same", async () => {
    const committed = (await readDocumentBytes()).toString("utf8");
    const first = runPlugin(image);
    expect(first).toBe(committed);
    expect(runPlugin(image)).toBe(first);
    expect(first.endsWith("}\n")).toBe(true);
  });

  it("when an RPC is added to the proto, then the document gets its operation, so the committed one is stale", () => {
    const changed = clone(FileDescriptorSetSchema, image);
    const keyService = changed.file.find((f) => f.name === "keyward/v1/key_service.proto")!.service[0]!;
    keyService.method.push(create(MethodDescriptorProtoSchema, { name: "PurgeKey", inputType: ".keyward.v1.GetKeyRequest", outputType: ".keyward.v1.GetKeyResponse" }));
    const document = JSON.parse(runPlugin(changed)) as OpenApiDocument;
    expect(document.paths).toHaveProperty(["/keyward.v1.KeyService/PurgeKey"]);
    expect(doc.paths).not.toHaveProperty(["/keyward.v1.KeyService/PurgeKey"]);
  });

  it("when a message uses the types keyward.v1 does not (yet), then each has its proto3 JSON form", async () => {
    const dir = await mkdtemp(join(tmpdir(), "keyward-openapi-"));
    try {
      await writeFile(join(dir, "buf.yaml"), "version: v2\n");
      await writeFile(join(dir, "mapping.proto"), [
        'syntax = "proto3";',
        "package keyward.v1;",
        'import "google/protobuf/duration.proto";',
        "// Echoes.",
        "service MappingService {",
        "  // Echoes all types.",
        "  rpc Echo(AllTypes) returns (AllTypes);",
        "}",
        "// Every kind of field.",
        "message AllTypes {",
        "  uint64 big = 1;",
        "  bytes blob = 2;",
        "  optional string maybe = 3;",
        "  oneof choice {",
        "    string text = 4;",
        "    int32 number = 5;",
        "  }",
        "  map<int32, AllTypes> by_id = 6;",
        "  google.protobuf.Duration timeout = 7;",
        "  double ratio = 8;",
        "  sint64 delta = 9;",
        "}",
        "",
      ].join("\n"));
      const registry = createFileRegistry(await bufBuild(dir));
      const file = registry.getFile("mapping.proto")!;
      const built = buildOpenApiDocument({ files: [file], anonymous, errorInfo: undefined });
      const all = (built["components"] as { schemas: Record<string, Schema> }).schemas["keyward.v1.AllTypes"]!;
      const p = all.properties!;
      expect(p["big"]).toMatchObject({ type: "string", format: "uint64" });
      expect(p["delta"]).toMatchObject({ type: "string", format: "int64" });
      expect(p["blob"]).toMatchObject({ type: "string", contentEncoding: "base64" });
      expect(p["maybe"]?.description).toMatch(/^Optional/);
      expect(p["text"]?.description).toMatch(/set at most one of `text`, `number`/);
      expect(all.allOf).toEqual([{ not: { anyOf: [{ required: ["text", "number"] }] } }]);
      expect(p["byId"]).toMatchObject({ type: "object", propertyNames: { pattern: "^-?[0-9]+$" }, additionalProperties: { $ref: "#/components/schemas/keyward.v1.AllTypes" } });
      expect(p["timeout"]).toMatchObject({ type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$" });
      expect(p["ratio"]).toMatchObject({ oneOf: [{ type: "number", format: "double" }, { type: "string", enum: ["NaN", "Infinity", "-Infinity"] }] });
      expect((await new Validator().validate(built)).valid).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
