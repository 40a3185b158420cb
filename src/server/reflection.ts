// gRPC server reflection (grpc.reflection.v1 and v1alpha) so that buf curl,
// grpcurl and similar tools can discover our schema without local .proto files.
//
// The logic is written once against the v1 messages; v1alpha requests and
// responses are wire-identical and are converted through their binary form.

import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescExtension, DescFile, DescMessage, FileRegistry } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { DescriptorProto, EnumDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { ConnectRouter, ContextValues } from "@connectrpc/connect";
import { loggerKey } from "./context.ts";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionRequestSchema as RequestSchemaV1,
  ServerReflectionResponseSchema as ResponseSchemaV1,
  ErrorResponseSchema,
  ExtensionNumberResponseSchema,
  FileDescriptorResponseSchema,
  ListServiceResponseSchema,
  file_grpc_reflection_v1_reflection,
} from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import type {
  ServerReflectionRequest,
  ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequestSchema as RequestSchemaV1alpha,
  ServerReflectionResponseSchema as ResponseSchemaV1alpha,
  file_grpc_reflection_v1alpha_reflection,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.ts";

/** Everything a reflection stream needs, computed once per registerReflection call. */
export interface ReflectionIndex {
  readonly registry: FileRegistry;
  readonly services: readonly string[];
  /** Fully-qualified symbol (type, field, oneof, enum value, service, method, extension) → declaring file. */
  readonly symbols: ReadonlyMap<string, DescFile>;
  readonly extensions: readonly DescExtension[];
  readonly encoded: Map<string, Uint8Array>;
}

/** The part of a response that depends on the request kind. */
type MessageResponse = ServerReflectionResponse["messageResponse"];

/**
 * Registers grpc.reflection.v1 and v1alpha ServerReflection describing `files`, their
 * imports, and the reflection services themselves. A request that fails unexpectedly is
 * logged (to the per-RPC logger the logging interceptor sets) and answered with a generic
 * message: exception messages may describe the server's internals.
 */
export function registerReflection(router: ConnectRouter, files: readonly DescFile[]): void {
  const index = buildIndex([
    ...files,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
  ]);
  const onError = (values: ContextValues) => (e: unknown) => {
    values.get(loggerKey)?.error({ err: e }, "reflection request failed");
  };
  router.service(ServerReflectionV1, {
    serverReflectionInfo: (requests, ctx) => mapStream(requests, (req) => respond(index, req, onError(ctx.values))),
  });
  router.service(ServerReflectionV1alpha, {
    serverReflectionInfo: (requests, ctx) =>
      mapStream(requests, (req) => {
        const asV1 = fromBinary(RequestSchemaV1, toBinary(RequestSchemaV1alpha, req));
        return fromBinary(ResponseSchemaV1alpha, toBinary(ResponseSchemaV1, respond(index, asV1, onError(ctx.values))));
      }),
  });
}

async function* mapStream<I, O>(input: AsyncIterable<I>, fn: (item: I) => O): AsyncIterable<O> {
  for await (const item of input) {
    yield fn(item);
  }
}

/** Answers one reflection request from the index; exported for tests of the failure path. */
export function respond(index: ReflectionIndex, req: ServerReflectionRequest, onError: (e: unknown) => void): ServerReflectionResponse {
  let messageResponse: MessageResponse;
  try {
    messageResponse = dispatch(index, req);
  } catch (e) {
    // Exception messages may describe the server's internals: log them, answer generically.
    onError(e);
    messageResponse = errorResponse(Code.Internal, "internal error");
  }
  return create(ResponseSchemaV1, { validHost: req.host, originalRequest: req, messageResponse });
}

function dispatch(index: ReflectionIndex, req: ServerReflectionRequest): MessageResponse {
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: create(ListServiceResponseSchema, { service: index.services.map((name) => ({ name })) }),
      };
    case "fileByFilename": {
      const file = index.registry.getFile(r.value);
      return file ? fileResponse(index, file) : errorResponse(Code.NotFound, `file not found: ${r.value}`);
    }
    case "fileContainingSymbol": {
      const symbol = r.value.startsWith(".") ? r.value.slice(1) : r.value;
      const file = index.symbols.get(symbol);
      return file ? fileResponse(index, file) : errorResponse(Code.NotFound, `symbol not found: ${symbol}`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = r.value;
      const message = lookupMessage(index, containingType);
      if (!message) {
        return errorResponse(Code.NotFound, `message type not found: ${containingType}`);
      }
      const ext = index.registry.getExtensionFor(message, extensionNumber);
      return ext
        ? fileResponse(index, ext.file)
        : errorResponse(Code.NotFound, `extension ${extensionNumber} of ${message.typeName} not found`);
    }
    case "allExtensionNumbersOfType": {
      const message = lookupMessage(index, r.value);
      if (!message) {
        return errorResponse(Code.NotFound, `message type not found: ${r.value}`);
      }
      const numbers = index.extensions
        .filter((ext) => ext.extendee.typeName === message.typeName)
        .map((ext) => ext.number)
        .sort((a, b) => a - b);
      return {
        case: "allExtensionNumbersResponse",
        value: create(ExtensionNumberResponseSchema, { baseTypeName: message.typeName, extensionNumber: numbers }),
      };
    }
    case undefined:
      return errorResponse(Code.InvalidArgument, "message_request is not set");
  }
}

function lookupMessage(index: ReflectionIndex, typeName: string): DescMessage | undefined {
  return index.registry.getMessage(typeName.startsWith(".") ? typeName.slice(1) : typeName);
}

function errorResponse(code: Code, errorMessage: string): MessageResponse {
  return { case: "errorResponse", value: create(ErrorResponseSchema, { errorCode: code, errorMessage }) };
}

/** The requested file first, then its transitive imports, each as a serialized FileDescriptorProto. */
function fileResponse(index: ReflectionIndex, file: DescFile): MessageResponse {
  const seen = new Set<string>();
  const fileDescriptorProto: Uint8Array[] = [];
  const visit = (f: DescFile): void => {
    if (seen.has(f.name)) {
      return;
    }
    seen.add(f.name);
    fileDescriptorProto.push(encodeFile(index, f));
    f.dependencies.forEach(visit);
  };
  visit(file);
  return { case: "fileDescriptorResponse", value: create(FileDescriptorResponseSchema, { fileDescriptorProto }) };
}

function encodeFile(index: ReflectionIndex, file: DescFile): Uint8Array {
  let bytes = index.encoded.get(file.name);
  if (!bytes) {
    // Generated descriptors keep json_name (restored at load) and the import
    // list; only source_code_info is dropped, which clients do not need.
    bytes = toBinary(FileDescriptorProtoSchema, file.proto);
    index.encoded.set(file.name, bytes);
  }
  return bytes;
}

/** Indexes the files (and their imports) reflection describes; exported for tests. */
export function buildIndex(roots: readonly DescFile[]): ReflectionIndex {
  // Dependencies before dependents, as createFileRegistry expects.
  const ordered: DescFile[] = [];
  const seen = new Set<string>();
  const visit = (f: DescFile): void => {
    if (seen.has(f.name)) {
      return;
    }
    seen.add(f.name);
    f.dependencies.forEach(visit);
    ordered.push(f);
  };
  roots.forEach(visit);
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered.map((f) => f.proto) }));

  const services: string[] = [];
  const symbols = new Map<string, DescFile>();
  const extensions: DescExtension[] = [];
  for (const file of registry.files) {
    // Walk the descriptor protos rather than DescMessage trees: they also
    // contain synthetic map-entry messages, which clients may ask for.
    const add = (scope: string, name: string): string => {
      const full = scope === "" ? name : `${scope}.${name}`;
      if (!symbols.has(full)) {
        symbols.set(full, file);
      }
      return full;
    };
    const addEnum = (scope: string, en: EnumDescriptorProto): void => {
      add(scope, en.name);
      // Enum values are scoped as siblings of their enum.
      en.value.forEach((v) => add(scope, v.name));
    };
    const addMessage = (scope: string, msg: DescriptorProto): void => {
      const full = add(scope, msg.name);
      msg.field.forEach((f) => add(full, f.name));
      msg.oneofDecl.forEach((o) => add(full, o.name));
      msg.extension.forEach((x) => add(full, x.name));
      msg.nestedType.forEach((n) => addMessage(full, n));
      msg.enumType.forEach((e) => addEnum(full, e));
    };
    const pkg = file.proto.package;
    file.proto.messageType.forEach((m) => addMessage(pkg, m));
    file.proto.enumType.forEach((e) => addEnum(pkg, e));
    file.proto.extension.forEach((x) => add(pkg, x.name));
    for (const service of file.proto.service) {
      const full = add(pkg, service.name);
      services.push(full);
      service.method.forEach((m) => add(full, m.name));
    }
    for (const type of nestedTypes(file)) {
      if (type.kind === "extension") {
        extensions.push(type);
      }
    }
  }
  services.sort();
  return { registry, services, symbols, extensions, encoded: new Map() };
}
