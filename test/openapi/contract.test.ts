// The document against a live keyward (issue 14 item 1): GET /openapi.json serves the
// committed file; every operation needs a credential (401 without one) exactly when the
// document says it does; and every operation's example is a request the server reads
// (no UNKNOWN_FIELD, INVALID_ENUM_VALUE, INVALID_TIMESTAMP or MALFORMED_REQUEST).
import { beforeAll, describe, expect, it } from "@jest/globals";
import { Code, type ConnectError } from "@connectrpc/connect";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { WatchInvalidationsResponseSchema } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, type TestTenant } from "../harness.ts";
import { server, useServer } from "../rpc.ts";
import { connectStream, connectUnary, frame, splitFrames } from "../server/raw-http.ts";
import { generatedServices, readDocument, readDocumentBytes, type OpenApiDocument, type Operation } from "./openapi-doc.ts";

useServer();

let doc: OpenApiDocument;
let tenant: TestTenant;

beforeAll(async () => {
  doc = await readDocument();
  tenant = await createTestTenant(server, "openapi");
});

/** Every operation with its path, in document order. */
function operations(): { path: string; op: Operation; streaming: boolean }[] {
  return Object.entries(doc.paths).map(([path, item]) => {
    const op = item["post"]!;
    return { path, op, streaming: "application/connect+json" in op.requestBody.content };
  });
}

/** The ErrorInfo reason of an answer's error. */
function reasonOf(error: ConnectError | undefined): string | undefined {
  return error?.findDetails(ErrorInfoSchema)[0]?.reason;
}

/** Refusals that mean "the server could not read the request". */
const unreadable = ["UNKNOWN_FIELD", "INVALID_ENUM_VALUE", "INVALID_TIMESTAMP", "MALFORMED_REQUEST"];

/** An operation's example as a body for the test's tenant. */
function exampleBody(op: Operation): string {
  const example = Object.values(op.requestBody.content)[0]!.example;
  return JSON.stringify(example).replaceAll("tenants/default", `tenants/${tenant.slug}`);
}

describe("GET /openapi.json", () => {
  it("when fetched, then it is the committed document, as JSON, cacheable", async () => {
    const res = await fetch(`${server.url}/openapi.json`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    expect(Buffer.from(await res.arrayBuffer()).equals(await readDocumentBytes())).toBe(true);
  });

  it("when fetched, then it carries a CSP that runs and frames nothing, nosniff and no-referrer (it is data, its descriptions carry proto comments)", async () => {
    for (const method of ["GET", "HEAD"]) {
      const res = await fetch(`${server.url}/openapi.json`, { method, signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp.split(/;\s*/)).toEqual(expect.arrayContaining(["default-src 'none'", "frame-ancestors 'none'", "sandbox"]));
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      await res.arrayBuffer();
    }
  });

  it("when asked with HEAD, then it has the same headers and no body; other methods are 405", async () => {
    const head = await fetch(`${server.url}/openapi.json`, { method: "HEAD", signal: AbortSignal.timeout(10_000) });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String((await readDocumentBytes()).byteLength));
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    const post = await fetch(`${server.url}/openapi.json`, { method: "POST", body: "{}", signal: AbortSignal.timeout(10_000) });
    expect(post.status).toBe(405);
    await post.arrayBuffer();
  });

  it("when fetched with a query (a download link), then the same document", async () => {
    const res = await fetch(`${server.url}/openapi.json?download`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(await readDocumentBytes())).toBe(true);
  });
});

describe("the document's security against the server", () => {
  it("when every operation is called with no credential and an empty body, then it is 401 exactly where the document asks for bearer", async () => {
    const ops = operations();
    const rpcs = (await generatedServices()).flatMap((s) => s.methods);
    expect(ops).toHaveLength(rpcs.length);
    const unauthenticated: string[] = [];
    const documented: string[] = [];
    for (const { path, op, streaming } of ops) {
      if (op.security === undefined) documented.push(path);
      const answer = streaming
        ? await connectStream(server.url, path, frame(0, "{}"), { contentType: "application/connect+json", headers: { "connect-timeout-ms": "2000" } })
        : await connectUnary(server.url, path, "{}", { contentType: "application/json", headers: { "connect-protocol-version": "1" } });
      if (answer.error?.code === Code.Unauthenticated) {
        unauthenticated.push(path);
        if (!streaming) expect(answer.status).toBe(401);
      } else {
        expect(answer.status).not.toBe(401);
      }
    }
    expect(unauthenticated).toEqual(documented);
    expect(documented.length).toBe(ops.length - 3);
  });
});

describe("the document's examples against the server", () => {
  it("when each unary example is sent with an admin key (rotations without one), then the server reads it", async () => {
    const outcomes: Record<string, string> = {};
    // Rotations change what other calls (and other test files) rely on: they are sent without
    // a credential, and a 401 proves the body was read (validation runs before authentication).
    const rotations = ["/keyward.v1.KeyService/RotateKey", "/keyward.v1.TokenExchangeService/RotateSigningKey"];
    for (const { path, op, streaming } of operations()) {
      if (streaming) continue;
      const credential = rotations.includes(path) ? {} : { authorization: `Bearer ${tenant.adminKey}` };
      const answer = await connectUnary(server.url, path, exampleBody(op), { contentType: "application/json", headers: { "connect-protocol-version": "1", ...credential } });
      const reason = reasonOf(answer.error);
      outcomes[path] = answer.error === undefined ? "ok" : `${answer.error.code}:${reason ?? ""}`;
      expect({ path, reason: unreadable.includes(reason ?? "") ? reason : "readable" }).toEqual({ path, reason: "readable" });
    }
    for (const path of rotations) expect(outcomes[path]).toBe(`${Code.Unauthenticated}:UNAUTHENTICATED`);
    // The examples do real work where the resource they name exists.
    for (const method of ["KeyService/CreateKey", "KeyService/ListKeys", "KeyService/VerifyKey", "DirectoryService/GetTenant", "DirectoryService/ListPrincipals", "AuditService/ListAuditEvents", "TokenExchangeService/GetJwks", "PolicyService/ListPolicies"]) {
      expect({ method, outcome: outcomes[`/keyward.v1.${method}`] }).toEqual({ method, outcome: "ok" });
    }
  });

  it("when the stream's example is sent enveloped with an admin key, then messages flow and the stream ends at the deadline", async () => {
    const watch = operations().find((o) => o.streaming)!;
    const answer = await connectStream(server.url, watch.path, frame(0, exampleBody(watch.op)), {
      contentType: "application/connect+json",
      headers: { authorization: `Bearer ${tenant.adminKey}`, "connect-timeout-ms": "1500" },
    });
    expect(answer.status).toBe(200);
    const frames = splitFrames(answer.body);
    const first = frames[0]!;
    expect(first.flags).toBe(0);
    const message = fromJson(WatchInvalidationsResponseSchema, JSON.parse(first.data.toString("utf8")) as JsonValue);
    expect(message.resumeToken).not.toBe("");
    expect(frames.at(-1)?.flags).toBe(2);
    // Ended by the deadline: the end-stream message says deadline_exceeded (KeyService.WatchInvalidations' comment).
    expect(JSON.parse(frames.at(-1)!.data.toString("utf8"))).toMatchObject({ error: { code: "deadline_exceeded" } });
    expect(unreadable).not.toContain(reasonOf(answer.error));
  });
});
