// Builds the OpenAPI 3.1 document of keyward's Connect JSON API from protobuf descriptors
// (DESIGN.md §6 "API reference"): one `POST /<package>.<Service>/<Method>` operation per RPC,
// schemas in proto3 JSON mapping (https://protobuf.dev/programming-guides/json/), the
// Connect error body (https://connectrpc.com/docs/protocol#error-end-stream), the bearer
// scheme, and request examples derived from field types and comments. Pure: the same
// descriptors give the same document, byte for byte.
import { ScalarType, getOption, type DescEnum, type DescExtension, type DescField, type DescFile, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { getComments } from "@bufbuild/protoplugin";

/** A JSON value of the document. */
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A JSON object of the document. */
type JsonObject = { [key: string]: Json };

/** What the document is built from. */
export type OpenApiInput = {
  /** The files whose services become operations (keyward.v1 only). */
  files: readonly DescFile[];
  /** The `(keyward.v1.anonymous)` method option: methods with it set get `security: []`. */
  anonymous: DescExtension;
  /** google.rpc.ErrorInfo, described as the `debug` form of an error detail; absent: a plain object. */
  errorInfo: DescMessage | undefined;
};

const schemaRef = (typeName: string): string => `#/components/schemas/${typeName}`;

/** Connect error codes (the `code` of an error body) and the HTTP status each is sent with (connect's codeToHttpStatus). */
const connectCodes = [
  ["canceled", 499], ["unknown", 500], ["invalid_argument", 400], ["deadline_exceeded", 504], ["not_found", 404],
  ["already_exists", 409], ["permission_denied", 403], ["resource_exhausted", 429], ["failed_precondition", 400],
  ["aborted", 409], ["out_of_range", 400], ["unimplemented", 501], ["internal", 500], ["unavailable", 503],
  ["data_loss", 500], ["unauthenticated", 401],
] as const;

/** The error responses every operation lists (401 only where a credential is needed), with what each means. */
const errorResponses: readonly { status: string; name: string; description: string }[] = [
  { status: "400", name: "BadRequest", description: "`invalid_argument` (a malformed request: unknown field, undefined enum value, bad resource name; `ErrorInfo.metadata.field` names the field), `failed_precondition` (the resource is not in a state that allows it), or `out_of_range`." },
  { status: "401", name: "Unauthenticated", description: "`unauthenticated`: `Authorization: Bearer <key>` is missing, malformed, unknown, expired or revoked (one answer for all, on purpose)." },
  { status: "403", name: "PermissionDenied", description: "`permission_denied`: the credential lacks a permission the method needs, or the resource is outside its tenant or organization." },
  { status: "404", name: "NotFound", description: "`not_found`: no such resource in the caller's scope." },
  { status: "409", name: "Conflict", description: "`already_exists` (a unique name is taken) or `aborted` (an `etag` did not match: read again and retry)." },
  { status: "429", name: "ResourceExhausted", description: "`resource_exhausted`: a limit was reached (too many streams, too many signing keys); retry later." },
  { status: "500", name: "Internal", description: "`internal`, `unknown` or `data_loss`: a server fault (logged with the request id)." },
  { status: "503", name: "Unavailable", description: "`unavailable`: keyward cannot serve right now (e.g. PostgreSQL is unreachable); retry with backoff." },
  { status: "504", name: "DeadlineExceeded", description: "`deadline_exceeded`: the `Connect-Timeout-Ms` deadline passed before the call finished." },
];

/** Values that stand in for the `{placeholders}` of a resource-name pattern in examples. */
const placeholderExamples: Readonly<Record<string, string>> = {
  tenant: "default", slug: "default", org: "payments", key: "AbCdEfGh12345678", key_id: "AbCdEfGh12345678",
  principal: "deploy-bot", policy_id: "3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab", event_id: "ev_0123456789abcdef",
};

/** Well-known types with a special proto3 JSON form, as schemas. */
const wellKnownSchemas: Readonly<Record<string, JsonObject>> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time", description: "RFC 3339 in UTC (`Z`), with 0, 3, 6 or 9 fractional digits (proto3 JSON Timestamp)." },
  "google.protobuf.Duration": { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$", description: "Seconds with an `s` suffix, e.g. `3.5s` (proto3 JSON Duration)." },
  "google.protobuf.FieldMask": { type: "string", description: "Comma-separated field paths in lowerCamelCase, e.g. `displayName,permissions` (proto3 JSON FieldMask)." },
  "google.protobuf.Empty": { type: "object" },
  "google.protobuf.Struct": { type: "object", additionalProperties: true },
  "google.protobuf.Value": { description: "Any JSON value." },
  "google.protobuf.ListValue": { type: "array", items: {} },
  "google.protobuf.Any": { type: "object", properties: { "@type": { type: "string" } }, required: ["@type"], additionalProperties: true },
  "google.protobuf.DoubleValue": { type: "number" },
  "google.protobuf.FloatValue": { type: "number" },
  "google.protobuf.Int64Value": { type: "string", format: "int64" },
  "google.protobuf.UInt64Value": { type: "string", format: "uint64" },
  "google.protobuf.Int32Value": { type: "integer", format: "int32" },
  "google.protobuf.UInt32Value": { type: "integer", format: "uint32", minimum: 0 },
  "google.protobuf.BoolValue": { type: "boolean" },
  "google.protobuf.StringValue": { type: "string" },
  "google.protobuf.BytesValue": { type: "string", format: "byte", contentEncoding: "base64" },
};

/** Example values of well-known types. */
const wellKnownExamples: Readonly<Record<string, Json>> = {
  "google.protobuf.Timestamp": "2026-01-01T00:00:00Z",
  "google.protobuf.Duration": "3600s",
};

/** The text of a descriptor's leading comment: lines joined with "\n", one leading space per line removed, trimmed. */
export function commentOf(desc: DescMessage | DescEnum | DescField | DescService | DescMethod | DescEnum["values"][number]): string {
  const leading = getComments(desc).leading ?? "";
  return leading.split("\n").map((line) => line.replace(/^ /, "").trimEnd()).join("\n").trim();
}

/** The first sentence of a comment, on one line ("e.g." and "i.e." do not end it). */
export function firstSentence(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  const match = /^(.*?(?<!\be\.g|\bi\.e)[.!?])(?:\s|$)/.exec(flat);
  return match?.[1] ?? flat;
}

/** Builds the document. */
export function buildOpenApiDocument(input: OpenApiInput): JsonObject {
  const schemas = new Map<string, JsonObject>();
  const services = input.files
    .filter((f) => f.proto.package === "keyward.v1")
    .slice()
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((f) => f.services);

  /** Adds a message's (or enum's) schema to components, with everything it refers to. */
  const addSchema = (desc: DescMessage | DescEnum): void => {
    if (schemas.has(desc.typeName) || wellKnownSchemas[desc.typeName] !== undefined) return;
    if (desc.kind === "enum") {
      schemas.set(desc.typeName, enumSchema(desc));
      return;
    }
    schemas.set(desc.typeName, {}); // placeholder: recursive messages terminate
    schemas.set(desc.typeName, messageSchema(desc, addSchema));
  };

  const paths: JsonObject = {};
  const tags: Json[] = [];
  const anonymousMethods: string[] = [];
  for (const service of services) {
    tags.push({ name: service.name, description: withFullName(commentOf(service), service.typeName) });
    for (const method of service.methods) {
      addSchema(method.input);
      addSchema(method.output);
      const anonymous = getOption(method, input.anonymous) === true;
      if (anonymous) anonymousMethods.push(`\`${service.name}.${method.name}\``);
      paths[`/${service.typeName}/${method.name}`] = { post: operationOf(service, method, anonymous) };
    }
  }

  const errorInfo = input.errorInfo;
  if (errorInfo !== undefined) addSchema(errorInfo);
  const componentsSchemas: JsonObject = { ...connectErrorSchemas(errorInfo?.typeName) };
  for (const name of [...schemas.keys()].sort()) componentsSchemas[name] = schemas.get(name) ?? {};

  const responses: JsonObject = {};
  for (const r of errorResponses) responses[r.name] = errorResponse(r);
  responses["Error"] = {
    description: "Any Connect error; the HTTP status follows the code (connect's table: 400 invalid_argument/failed_precondition/out_of_range, 401 unauthenticated, 403 permission_denied, 404 not_found, 409 already_exists/aborted, 429 resource_exhausted, 499 canceled, 500 internal/unknown/data_loss, 501 unimplemented, 503 unavailable, 504 deadline_exceeded).",
    content: { "application/json": { schema: { $ref: schemaRef("connect.Error") } } },
  };

  return {
    openapi: "3.1.0",
    info: {
      title: "keyward",
      version: "v1",
      summary: "Issues, rotates, revokes and verifies API keys; OIDC trust policies and token exchange.",
      description: infoDescription(anonymousMethods),
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    servers: [{ url: "/", description: "This keyward (the origin that served the document)." }],
    security: [{ bearerAuth: [] }],
    tags,
    paths,
    components: {
      schemas: componentsSchemas,
      responses,
      parameters: {
        ConnectProtocolVersion: {
          name: "Connect-Protocol-Version", in: "header", required: false,
          description: "The Connect protocol version. Clients should send `1`; keyward also accepts it absent.",
          schema: { type: "string", enum: ["1"] }, example: "1",
        },
        ConnectTimeoutMs: {
          name: "Connect-Timeout-Ms", in: "header", required: false,
          description: "The call's deadline in milliseconds (at most 10 digits). When it passes, the call ends with `deadline_exceeded` (HTTP 504).",
          schema: { type: "string", pattern: "^[0-9]{1,10}$" }, example: "10000",
        },
      },
      headers: {
        XRequestId: { description: "The request id, also in keyward's logs and audit events.", schema: { type: "string" } },
      },
      securitySchemes: {
        bearerAuth: {
          type: "http", scheme: "bearer", bearerFormat: "keyward API key or minted token",
          description: "`Authorization: Bearer <API key or minted token>` (DESIGN.md §3). Methods marked with no security need none: their credential travels in the request.",
        },
      },
    },
  };
}

/** The document's introduction; `anonymousMethods` are those callable without a credential. */
const infoDescription = (anonymousMethods: readonly string[]): string => [
  "keyward's API over the [Connect protocol](https://connectrpc.com/docs/protocol)'s JSON encoding: every RPC is `POST /keyward.v1.<Service>/<Method>` with `Content-Type: application/json` and the request message as a JSON object; the answer is the response message as JSON (HTTP 200) or a Connect error body (HTTP 4xx/5xx). The same port also speaks gRPC and gRPC-Web, and serves reflection for `buf curl`.",
  "",
  "**Messages** use the proto3 JSON mapping: lowerCamelCase field names; `int64` as decimal strings; `google.protobuf.Timestamp` as RFC 3339 strings; enums as their value names; `google.protobuf.FieldMask` as one comma-separated string of lowerCamelCase paths. Fields with default values (empty string, 0, false, the `_UNSPECIFIED` enum value, empty list) are left out of responses: a missing field means its default. Requests with unknown fields or undefined enum values are refused with `invalid_argument` (reasons `UNKNOWN_FIELD`, `INVALID_ENUM_VALUE`).",
  "",
  `**Credentials**: every method needs \`Authorization: Bearer <API key or minted token>\` but ${anonymousMethods.join(", ")}, which need none (\`security: []\`: their credential, if any, travels in the request).`,
  "",
  "**Errors** carry a `google.rpc.ErrorInfo` detail whose `reason` is stable (e.g. `UNAUTHENTICATED`, `UNKNOWN_FIELD`, `ALREADY_REVOKED`) and whose `metadata` names the field at fault; its JSON form is in the detail's `debug`.",
  "",
  "Generated from `proto/keyward/v1` by tools/protoc-gen-openapi at `buf generate` time.",
].join("\n");

/** A tag or schema description that ends with the element's full protobuf name. */
function withFullName(comment: string, typeName: string): string {
  return comment === "" ? `\`${typeName}\`` : `${comment}\n\n\`${typeName}\``;
}

/** The operation of one RPC. */
function operationOf(service: DescService, method: DescMethod, anonymous: boolean): JsonObject {
  const comment = commentOf(method);
  const streaming = method.methodKind === "server_streaming";
  const op: JsonObject = {
    tags: [service.name],
    operationId: `${service.name}_${method.name}`,
    summary: firstSentence(comment),
    description: streaming ? `${comment}\n\n${streamingNote}` : comment,
    parameters: [{ $ref: "#/components/parameters/ConnectProtocolVersion" }, { $ref: "#/components/parameters/ConnectTimeoutMs" }],
  };
  if (method.methodKind !== "unary" && !streaming) {
    throw new Error(`${method.parent.typeName}/${method.name}: ${method.methodKind} methods cannot be described (only unary and server-streaming)`);
  }
  const mediaType = streaming ? "application/connect+json" : "application/json";
  op["requestBody"] = {
    required: true,
    description: streaming ? `One enveloped \`${method.input.typeName}\` in JSON (see the operation's description).` : `\`${method.input.typeName}\` in proto3 JSON.`,
    content: { [mediaType]: { schema: { $ref: schemaRef(method.input.typeName) }, example: exampleOf(method.input, undefined, 0) } },
  };
  const responses: JsonObject = {
    "200": {
      description: streaming
        ? `A stream of enveloped \`${method.output.typeName}\` messages in JSON, ended by an end-of-stream envelope that carries the error, if any (the HTTP status stays 200).`
        : `\`${method.output.typeName}\` in proto3 JSON.`,
      headers: { "X-Request-Id": { $ref: "#/components/headers/XRequestId" } },
      content: { [mediaType]: { schema: { $ref: schemaRef(method.output.typeName) } } },
    },
  };
  if (!streaming) {
    for (const r of errorResponses) {
      if (r.status === "401" && anonymous) continue;
      responses[r.status] = { $ref: `#/components/responses/${r.name}` };
    }
  }
  responses["default"] = { $ref: "#/components/responses/Error" };
  op["responses"] = responses;
  if (anonymous) op["security"] = [];
  if (streaming) op["x-connect-streaming"] = "server";
  return op;
}

const streamingNote = [
  "**Server stream** (Connect streaming protocol, not plain JSON): send `Content-Type: application/connect+json` and the request as one envelope — a flags byte `0x00`, a 4-byte big-endian length, then the JSON message. The answer is a sequence of such envelopes, each one response message, and a last one with flags `0x02` holding `{\"error\": {…}}` on failure (or `{}`), under HTTP 200. Use a Connect client (the SDK, `buf curl`); \"Try it out\" cannot frame or read envelopes.",
].join("\n");

/** The schema of an enum: its value names, each documented. */
function enumSchema(desc: DescEnum): JsonObject {
  const lines = desc.values.map((v) => {
    const c = commentOf(v).replace(/\s+/g, " ");
    return c === "" ? `- \`${v.name}\`` : `- \`${v.name}\`: ${c}`;
  });
  return { type: "string", enum: desc.values.map((v) => v.name), description: `${withFullName(commentOf(desc), desc.typeName)}\n\n${lines.join("\n")}` };
}

/** The schema of a message in proto3 JSON: one property per field, by JSON name, in declaration order. */
function messageSchema(desc: DescMessage, addSchema: (d: DescMessage | DescEnum) => void): JsonObject {
  const properties: JsonObject = {};
  for (const field of desc.fields) {
    const schema = fieldSchema(field, addSchema);
    const notes: string[] = [];
    const comment = commentOf(field);
    if (comment !== "") notes.push(comment);
    if (field.oneof !== undefined) {
      notes.push(`One of \`${field.oneof.name}\`: set at most one of ${field.oneof.fields.map((f) => `\`${f.jsonName}\``).join(", ")}.`);
    }
    if (field.proto.proto3Optional === true) notes.push("Optional: an absent field is distinct from its default value.");
    if (notes.length > 0) schema["description"] = notes.join("\n\n");
    properties[field.jsonName] = schema;
  }
  const schema: JsonObject = { type: "object", description: withFullName(commentOf(desc), desc.typeName), properties };
  const exclusive = desc.oneofs.map((o) => {
    const pairs: Json[] = [];
    o.fields.forEach((a, i) => o.fields.slice(i + 1).forEach((b) => pairs.push({ required: [a.jsonName, b.jsonName] })));
    return pairs;
  }).filter((pairs) => pairs.length > 0);
  if (exclusive.length > 0) schema["allOf"] = exclusive.map((pairs) => ({ not: { anyOf: pairs } }));
  return schema;
}

/** The schema of a field's value (a fresh object, safe to add a description to). */
function fieldSchema(field: DescField, addSchema: (d: DescMessage | DescEnum) => void): JsonObject {
  switch (field.fieldKind) {
    case "scalar":
      return scalarSchema(field.scalar);
    case "enum":
      return refTo(field.enum, addSchema);
    case "message":
      return refTo(field.message, addSchema);
    case "list":
      return {
        type: "array",
        items: field.listKind === "scalar" ? scalarSchema(field.scalar) : refTo(field.listKind === "enum" ? field.enum : field.message, addSchema),
      };
    case "map": {
      const value = field.mapKind === "scalar" ? scalarSchema(field.scalar) : refTo(field.mapKind === "enum" ? field.enum : field.message, addSchema);
      const keys = mapKeySchema(field.mapKey);
      return keys === undefined ? { type: "object", additionalProperties: value } : { type: "object", propertyNames: keys, additionalProperties: value };
    }
  }
}

/** A reference to a message or enum schema, or a well-known type's inline schema. */
function refTo(desc: DescMessage | DescEnum, addSchema: (d: DescMessage | DescEnum) => void): JsonObject {
  const wkt = wellKnownSchemas[desc.typeName];
  if (wkt !== undefined) return structuredClone(wkt);
  addSchema(desc);
  return { $ref: schemaRef(desc.typeName) };
}

/** The proto3 JSON form of a scalar (64-bit integers are strings; bytes are base64). */
function scalarSchema(scalar: ScalarType): JsonObject {
  switch (scalar) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte", contentEncoding: "base64" };
    case ScalarType.INT32: case ScalarType.SINT32: case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32: case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0, maximum: 4294967295 };
    case ScalarType.INT64: case ScalarType.SINT64: case ScalarType.SFIXED64:
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
    case ScalarType.UINT64: case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
    case ScalarType.DOUBLE: case ScalarType.FLOAT:
      return { oneOf: [{ type: "number", format: scalar === ScalarType.FLOAT ? "float" : "double" }, { type: "string", enum: ["NaN", "Infinity", "-Infinity"] }] };
  }
}

/** Map keys are JSON object keys: strings, whose form follows the key type. */
function mapKeySchema(key: ScalarType): JsonObject | undefined {
  if (key === ScalarType.STRING) return undefined;
  if (key === ScalarType.BOOL) return { enum: ["true", "false"] };
  return { pattern: key === ScalarType.UINT32 || key === ScalarType.FIXED32 || key === ScalarType.UINT64 || key === ScalarType.FIXED64 ? "^[0-9]+$" : "^-?[0-9]+$" };
}

/** The Connect error body and its detail, as schemas (https://connectrpc.com/docs/protocol#error-end-stream). */
function connectErrorSchemas(errorInfoName: string | undefined): JsonObject {
  const debug: JsonObject = errorInfoName === undefined
    ? { type: "object", additionalProperties: true }
    : { $ref: schemaRef(errorInfoName) };
  debug["description"] = "The detail's message in proto3 JSON, for humans and tools that do not decode `value`. keyward sends every `google.rpc.ErrorInfo` with it: `reason` is stable, `domain` is `keyward`, `metadata` names e.g. the `field` at fault.";
  return {
    "connect.Error": {
      type: "object",
      description: "The body of a failed Connect call (`Content-Type: application/json`).",
      required: ["code"],
      properties: {
        code: { type: "string", enum: connectCodes.map(([code]) => code), description: "The Connect error code; the HTTP status follows from it." },
        message: { type: "string", description: "A developer-facing message (English). Never contains a secret." },
        details: { type: "array", items: { $ref: schemaRef("connect.ErrorDetail") }, description: "Typed details; keyward sends one `google.rpc.ErrorInfo`." },
      },
    },
    "connect.ErrorDetail": {
      type: "object",
      description: "One error detail: a protobuf message, named and encoded.",
      required: ["type", "value"],
      properties: {
        type: { type: "string", description: "Full name of the detail's message type, without a `type.googleapis.com/` prefix.", example: "google.rpc.ErrorInfo" },
        value: { type: "string", contentEncoding: "base64", description: "The detail's message in protobuf binary, base64 without padding." },
        debug,
      },
    },
  };
}

/** A reusable error response: the Connect error body, limited to the codes sent with this status. */
function errorResponse(r: { status: string; description: string }): JsonObject {
  const codes = connectCodes.filter(([, status]) => String(status) === r.status).map(([code]) => code);
  return {
    description: r.description,
    headers: { "X-Request-Id": { $ref: "#/components/headers/XRequestId" } },
    content: {
      "application/json": {
        schema: { allOf: [{ $ref: schemaRef("connect.Error") }, { properties: { code: { enum: codes } } }] },
        example: errorExample(r.status, codes[0] ?? "unknown"),
      },
    },
  };
}

/** What keyward answers with a given status, for the examples (401 is byte-for-byte what it sends). */
function errorExample(status: string, code: string): Json {
  const known: Record<string, [string, string, Record<string, string> | undefined]> = {
    "400": ["unknown field \"bogus\" in keyward.v1.VerifyKeyRequest", "UNKNOWN_FIELD", { field: "bogus" }],
    "401": ["Missing or invalid API key", "UNAUTHENTICATED", undefined],
    "403": ["the caller lacks keys:write", "PERMISSION_DENIED", { permission: "keys:write" }],
    "404": ["key not found", "NOT_FOUND", undefined],
  };
  const [message, reason, metadata] = known[status] ?? [code.replace(/_/g, " "), code.toUpperCase(), undefined];
  const debug: JsonObject = { reason, domain: "keyward" };
  if (metadata !== undefined) debug["metadata"] = metadata;
  return { code, message, details: [{ type: "google.rpc.ErrorInfo", value: "…", debug }] };
}

/**
 * An example of a message in proto3 JSON, from field types and comments: a resource-name
 * pattern in backquotes (`tenants/{tenant}/keys/{key_id}`) is filled in; an `e.g. \`x\``
 * gives the value; fields whose comment gives meaning to leaving them empty (empty,
 * unspecified, 0 means…, optional) are left out, so the example stays minimal and valid.
 * `only` (JSON names) narrows a nested message to the fields its parent's comment names.
 */
function exampleOf(desc: DescMessage, only: ReadonlySet<string> | undefined, depth: number): Json {
  const wkt = wellKnownExamples[desc.typeName];
  if (wkt !== undefined) return wkt;
  const out: JsonObject = {};
  if (depth > 3) return out;
  const maskFirst = firstMaskPath(desc);
  for (const field of desc.fields) {
    const comment = commentOf(field);
    if (only !== undefined ? !only.has(field.jsonName) || isLeftEmpty(field, comment, 0) : isLeftEmpty(field, comment, depth)) continue;
    const value = fieldExample(field, comment, maskFirst, depth);
    if (value !== undefined) out[field.jsonName] = value;
  }
  return out;
}

/** Whether an example leaves the field out: its comment says what empty means, or (nested) it gives no example. */
function isLeftEmpty(field: DescField, comment: string, depth: number): boolean {
  if (field.name === "page_size") return false;
  if (field.fieldKind === "message" && !field.message.typeName.startsWith("google.protobuf.")) return false;
  if (/\bempty\b|\bunspecified\b|\b0 (?:means|for|keeps)\b|\boptional\b|\beither this or\b|^Only\b|^Output only\b|`next_page_token`/i.test(comment)) return true;
  return depth > 0 && field.fieldKind !== "message" && !/\be\.g\.|`[a-z]+\/\{/.test(comment);
}

/** For a request with an update mask: the first field its comment lists, as a JSON name. */
function firstMaskPath(desc: DescMessage): string | undefined {
  const mask = desc.fields.find((f) => f.fieldKind === "message" && f.message.typeName === "google.protobuf.FieldMask");
  if (mask === undefined) return undefined;
  const first = /`([a-z0-9_]+)`/.exec(commentOf(mask))?.[1];
  return first === undefined ? undefined : snakeToCamel(first);
}

/** An example value of one field. */
function fieldExample(field: DescField, comment: string, maskFirst: string | undefined, depth: number): Json | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return scalarExample(field.scalar, field.name, comment);
    case "enum":
      return enumExample(field.enum);
    case "list":
      if (field.listKind === "scalar") {
        const v = /permissions$/.test(field.name) ? "keys:read" : scalarExample(field.scalar, field.name, comment);
        return v === undefined ? [] : [v];
      }
      return field.listKind === "enum" ? [enumExample(field.enum)] : [exampleOf(field.message, undefined, depth + 1)];
    case "map": {
      const inline = /e\.g\.\s*`(\{[^`]*\})`/.exec(comment)?.[1];
      if (inline !== undefined) {
        try {
          return JSON.parse(inline) as Json;
        } catch {
          // not JSON: fall through to a generic entry
        }
      }
      return { key: field.mapKind === "scalar" ? scalarExample(field.scalar, "value", "") ?? "value" : "value" };
    }
    case "message": {
      if (field.message.typeName === "google.protobuf.FieldMask") return maskFirst ?? "";
      const wkt = wellKnownExamples[field.message.typeName];
      if (wkt !== undefined) return wkt;
      const named = new Set([...comment.matchAll(/`([a-z0-9_]+)`/g)].map((m) => snakeToCamel(m[1] ?? "")).filter((n) => field.message.fields.some((f) => f.jsonName === n)));
      if (maskFirst !== undefined) named.add(maskFirst);
      return exampleOf(field.message, named.size > 0 ? named : undefined, depth + 1);
    }
  }
}

/** An enum's first defined value other than the zero `_UNSPECIFIED` one. */
function enumExample(desc: DescEnum): string {
  return (desc.values.find((v) => v.number !== 0) ?? desc.values[0])?.name ?? "";
}

/** An example scalar, from the comment when it gives one. */
function scalarExample(scalar: ScalarType, name: string, comment: string): Json | undefined {
  switch (scalar) {
    case ScalarType.STRING: {
      const pattern = /`([a-z]+\/\{[a-z_]+\}(?:\/[a-zA-Z]+\/\{[a-z_]+\})*)`/.exec(comment)?.[1];
      if (pattern !== undefined) return pattern.replace(/\{([a-z_]+)\}/g, (_, p: string) => placeholderExamples[p] ?? p);
      const eg = /e\.g\.\s*`([^`]+)`/.exec(comment)?.[1];
      if (eg !== undefined) return eg;
      const byName: Record<string, string> = {
        display_name: "CI deploy", reason: "leaked in a build log", slug: "payments", principal_id: "deploy-bot",
        key: "kwfg_AbCdEfGh12345678_0000000000000000000000000000000000000000", subject_token: "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.e30.c2lnbmF0dXJl",
        etag: "1", description: "Deploys from the main branch",
      };
      return byName[name] ?? name.replace(/_/g, "-");
    }
    case ScalarType.BOOL:
      return true;
    case ScalarType.BYTES:
      return "AAECAw==";
    case ScalarType.INT64: case ScalarType.SINT64: case ScalarType.SFIXED64: case ScalarType.UINT64: case ScalarType.FIXED64:
      return "3600";
    case ScalarType.DOUBLE: case ScalarType.FLOAT:
      return 1.5;
    default: {
      if (name === "page_size") return 50;
      const n = /\b([1-9][0-9]*)\b/.exec(comment)?.[1];
      return n === undefined ? 1 : Number(n);
    }
  }
}

function snakeToCamel(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
