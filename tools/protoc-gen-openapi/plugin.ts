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
import { runNodeJs } from "@bufbuild/protoplugin";
import { openApiPlugin } from "./openapi-plugin.ts";

runNodeJs(openApiPlugin);
