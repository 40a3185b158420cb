#!/usr/bin/env node
// protoc-gen-openapi: a protoc/buf plugin of our own that writes
// gen/openapi/keyward.v1.openapi.json, the OpenAPI 3.1 description of keyward's Connect JSON
// API (DESIGN.md §6 "API reference"), from proto/ and its comments. Our own because no
// OpenAPI generator for the Connect protocol can be installed here (none on the registry we
// use, the BSR's remote plugins are unreachable); built on @bufbuild/protoplugin so buf runs
// it like protoc-gen-es. Wired in buf.gen.yaml as a local plugin with `strategy: all` (one
// document from every file); `npx buf generate` runs it and CI checks gen/ is fresh.
// Reads: the CodeGeneratorRequest on stdin. Writes: one file, `openapi/keyward.v1.openapi.json`,
// pretty-printed (2 spaces) with a trailing newline, the same bytes for the same protos.
import { create, createFileRegistry, protoInt64, type DescExtension } from "@bufbuild/protobuf";
import { CodeGeneratorResponseSchema, CodeGeneratorResponse_Feature, FileDescriptorSetSchema, type CodeGeneratorRequest } from "@bufbuild/protobuf/wkt";
import { runNodeJs, type Plugin } from "@bufbuild/protoplugin";
import { buildOpenApiDocument } from "./openapi-document.ts";

/** Where the document goes, relative to the plugin's `out`. */
export const documentPath = "openapi/keyward.v1.openapi.json";

/** The plugin: the OpenAPI document of the keyward.v1 files in the request. */
export const openApiPlugin: Plugin = {
  name: "protoc-gen-openapi",
  version: "v1",
  run(request: CodeGeneratorRequest) {
    if (request.parameter !== "") throw new Error(`takes no options (got "${request.parameter}")`);
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
    const files = request.fileToGenerate.map((name) => {
      const file = registry.getFile(name);
      if (file === undefined) throw new Error(`${name} is not in the request`);
      return file;
    });
    const anonymous: DescExtension | undefined = registry.getExtension("keyward.v1.anonymous");
    if (anonymous === undefined) throw new Error("the keyward.v1.anonymous method option is not defined (proto/keyward/v1/options.proto)");
    const errorInfo = registry.getMessage("google.rpc.ErrorInfo");
    const document = buildOpenApiDocument({ files, anonymous, errorInfo });
    return create(CodeGeneratorResponseSchema, {
      supportedFeatures: protoInt64.parse(CodeGeneratorResponse_Feature.PROTO3_OPTIONAL),
      file: [{ name: documentPath, content: `${JSON.stringify(document, null, 2)}\n` }],
    });
  },
};

runNodeJs(openApiPlugin);
