// Helpers for the API reference tests: the committed OpenAPI document, the keyward.v1
// services as generated in gen/ (every *_pb.ts file, so a new service or RPC is seen), and
// descriptor images built by buf.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fromBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type FileDescriptorSet } from "@bufbuild/protobuf/wkt";
import { repoRoot } from "../cli.ts";

const run = promisify(execFile);

/** Where `buf generate` writes the document. */
export const documentFile = join(repoRoot, "gen", "openapi", "keyward.v1.openapi.json");

/** The parts of an OpenAPI document the tests read. */
export type Schema = { [key: string]: unknown; $ref?: string; type?: string; format?: string; enum?: string[]; items?: Schema; properties?: Record<string, Schema>; additionalProperties?: Schema | boolean; description?: string; allOf?: Schema[] };
export type Operation = {
  tags: string[]; operationId: string; summary: string; description: string; security?: unknown[];
  parameters: { $ref: string }[];
  requestBody: { required: boolean; content: Record<string, { schema: Schema; example: unknown }> };
  responses: Record<string, { $ref?: string; content?: Record<string, { schema: Schema }> }>;
};
export type OpenApiDocument = {
  openapi: string; info: { title: string; version: string }; servers: { url: string }[]; security: Record<string, string[]>[];
  tags: { name: string; description: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; responses: Record<string, unknown>; parameters: Record<string, { name: string; in: string }>; securitySchemes: Record<string, { type: string; scheme: string }> };
};

/** The committed document, raw. */
export function readDocumentBytes(): Promise<Buffer> {
  return readFile(documentFile);
}

/** The committed document, parsed. */
export async function readDocument(): Promise<OpenApiDocument> {
  return JSON.parse((await readDocumentBytes()).toString("utf8")) as OpenApiDocument;
}

/** Every keyward.v1 service of the generated code in gen/keyward/v1, by full name. */
export async function generatedServices(): Promise<DescService[]> {
  const dir = join(repoRoot, "gen", "keyward", "v1");
  const services = new Map<string, DescService>();
  for (const name of (await readdir(dir)).filter((n) => n.endsWith("_pb.ts")).sort()) {
    const mod = (await import(join(dir, name))) as Record<string, unknown>;
    for (const value of Object.values(mod)) {
      const file = value as Partial<DescFile>;
      if (file.kind === "file") for (const s of file.services ?? []) services.set(s.typeName, s);
    }
  }
  return [...services.values()];
}

/** `buf build` of `input` (default: the workspace) as a FileDescriptorSet with source info, imports included. */
export async function bufBuild(input = "."): Promise<FileDescriptorSet> {
  const dir = await mkdtemp(join(tmpdir(), "keyward-buf-"));
  try {
    const out = join(dir, "image.binpb");
    await run(join(repoRoot, "node_modules", ".bin", "buf"), ["build", input, "--as-file-descriptor-set", "-o", out], { cwd: repoRoot, timeout: 60_000 });
    return fromBinary(FileDescriptorSetSchema, await readFile(out));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The request and response schema names of an operation. */
export function refName(schema: Schema | undefined): string {
  const ref = schema?.$ref ?? "";
  return ref.replace("#/components/schemas/", "");
}
