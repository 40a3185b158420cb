// The protoc-gen-openapi plugin (entry: plugin.ts): a CodeGeneratorRequest in, the OpenAPI
// document of its keyward.v1 services out (openapi-document.ts builds it).
import { create, createFileRegistry, protoInt64, type DescExtension } from "@bufbuild/protobuf";
import { CodeGeneratorResponseSchema, CodeGeneratorResponse_Feature, FileDescriptorSetSchema, type CodeGeneratorRequest } from "@bufbuild/protobuf/wkt";
import type { Plugin } from "@bufbuild/protoplugin";
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
