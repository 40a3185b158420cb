// The VerifyKey fast path (issue 12 item 4): every call is sent, byte for byte, to two
// servers on the same database, one with the fast path (the default) and one without
// (KEYWARD_VERIFY_FAST_PATH=0), and both answers must be the same: status, every header
// but `date`, body, trailers, and the `rpc` log line (but its time and duration). The fast
// server's counters say which path answered: the common shapes of gRPC and Connect unary
// calls are answered by the fast path, everything else is handed to connect-node with its
// body intact. Then every real client (connect-node gRPC and Connect, @grpc/grpc-js,
// buf curl) is shown to take the fast path.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { create, fromBinary, toBinary, toJsonString } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { execFile } from "node:child_process";
import http from "node:http";
import http2 from "node:http2";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import {
  KeyService,
  VerifyKeyRequestSchema,
  VerifyKeyResponseSchema,
  VerifyResult,
  type VerifyKeyRequest,
  type VerifyKeyResponse,
} from "../../gen/keyward/v1/key_service_pb.ts";
import { KeyKindName, mintKey } from "../../src/keys/key-format.ts";
import { repoRoot } from "../cli.ts";
import { createTestTenant, startTestServer, withKey, type TestServer } from "../harness.ts";
import { until } from "../wait.ts";
import { frame } from "./raw-http.ts";

const exec = promisify(execFile);
const buf = join(repoRoot, "node_modules", ".bin", "buf");
const path = "/keyward.v1.KeyService/VerifyKey";
/** The request size limit of both servers, small so oversize bodies stay small. */
const maxRequestBytes = 4096;
const callTimeoutMs = 10_000;
/** Permission categories with long names, so a list of missing permissions passes 1 KiB. */
const extraCategories = Array.from({ length: 40 }, (_, i) => `long_category_name_number_${String(i).padStart(2, "0")}`);

let fast: TestServer;
let normal: TestServer;
/** A key holding keys:read and audit:read. */
let secret: string;
let keyId: string;

beforeAll(async () => {
  const env = { KEYWARD_MAX_REQUEST_BYTES: String(maxRequestBytes), KEYWARD_PERMISSION_CATEGORIES: extraCategories.join(",") };
  [fast, normal] = await Promise.all([startTestServer({ env }), startTestServer({ env: { ...env, KEYWARD_VERIFY_FAST_PATH: "0" } })]);
  const tenant = await createTestTenant(fast, "fp");
  const created = await fast
    .client(KeyService)
    .createKey({ parent: `tenants/${tenant.slug}`, displayName: "fast path", permissions: ["keys:read", "audit:read"], expireDays: 30 }, withKey(tenant.adminKey));
  secret = created.secret;
  keyId = created.key!.keyId;
});

afterAll(async () => {
  await Promise.all([fast?.stop(), normal?.stop()]);
});

/** One raw request: HTTP version, method, path, headers, body. */
type Call = { http: 1 | 2; method?: string; path?: string; headers: Record<string, string>; body?: Uint8Array };

/** One raw answer, as it came off the wire. */
type Wire = { status: number; headers: Record<string, string>; trailers: Record<string, string>; body: string };

function request(key: string, requiredPermissions: string[] = [], org = ""): VerifyKeyRequest {
  return create(VerifyKeyRequestSchema, { key, requiredPermissions, org });
}
function binary(req: VerifyKeyRequest): Buffer {
  return Buffer.from(toBinary(VerifyKeyRequestSchema, req));
}
function json(req: VerifyKeyRequest): Buffer {
  return Buffer.from(toJsonString(VerifyKeyRequestSchema, req));
}
/** gRPC over HTTP/2, as connect-node and grpc-js send it. */
function grpcCall(body: Uint8Array, headers: Record<string, string> = {}): Call {
  return { http: 2, headers: { "content-type": "application/grpc", te: "trailers", ...headers }, body };
}
function connectCall(httpVersion: 1 | 2, body: Uint8Array, contentType: string, headers: Record<string, string> = {}): Call {
  return { http: httpVersion, headers: { "content-type": contentType, ...headers }, body };
}

function headerRecord(h: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (!k.startsWith(":") && k !== "date" && v !== undefined) out[k] = String(v);
  return out;
}

/** Sends `call` to `server` and reads the whole answer (bounded in time). */
async function send(server: TestServer, call: Call): Promise<Wire> {
  const timeout = AbortSignal.timeout(callTimeoutMs);
  if (call.http === 1) {
    return new Promise<Wire>((resolve, reject) => {
      const req = http.request(`${server.url}${call.path ?? path}`, { method: call.method ?? "POST", headers: call.headers, signal: timeout, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: headerRecord(res.headers), trailers: headerRecord(res.trailers), body: Buffer.concat(chunks).toString("base64") }),
        );
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(call.body === undefined ? undefined : Buffer.from(call.body));
    });
  }
  const session = http2.connect(server.url);
  try {
    return await new Promise<Wire>((resolve, reject) => {
      session.on("error", reject);
      const stream = session.request({ ":method": call.method ?? "POST", ":path": call.path ?? path, ...call.headers }, { signal: timeout });
      let status = 0;
      let headers: Record<string, string> = {};
      let trailers: Record<string, string> = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        status = Number(h[":status"]);
        headers = headerRecord(h);
      });
      stream.on("trailers", (t) => (trailers = headerRecord(t)));
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", reject);
      stream.on("close", () => resolve({ status, headers, trailers, body: Buffer.concat(chunks).toString("base64") }));
      stream.end(call.body === undefined ? undefined : Buffer.from(call.body));
    });
  } finally {
    session.close();
  }
}

/** The `rpc` log line of request `id`, without what differs between two runs (time, duration, process). */
async function rpcLine(server: TestServer, id: string): Promise<Record<string, unknown>> {
  const find = () =>
    server.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l["requestId"] === id && (l["msg"] === "rpc" || l["msg"] === "unknown path"));
  await until(() => find().length > 0, 5_000, `the log line of ${id}`);
  const lines = find();
  expect(lines).toHaveLength(1);
  const { time: _t, durationMs, pid: _p, hostname: _h, ...rest } = lines[0]!;
  expect(typeof durationMs === "number" || rest["msg"] === "unknown path").toBe(true);
  return rest;
}

let callCounter = 0;

/**
 * Sends `call` to both servers with the same request id; expects the same answer and the
 * same log line from both, and returns the answer with what the fast path did.
 */
async function compare(call: Call): Promise<{ wire: Wire; answered: number; fellBack: number }> {
  callCounter += 1;
  const id = `fp-${process.pid}-${callCounter}`;
  const withId = { ...call, headers: { ...call.headers, "x-request-id": id } };
  const before = fast.verifyFastPathStats();
  const a = await send(fast, withId);
  const after = fast.verifyFastPathStats();
  const b = await send(normal, withId);
  expect(a).toEqual(b);
  expect(a.headers["x-request-id"]).toBe(id);
  expect(await rpcLine(fast, id)).toEqual(await rpcLine(normal, id));
  expect(normal.verifyFastPathStats()).toEqual({ answered: 0, fellBack: 0, verifying: 0 });
  return { wire: a, answered: after.answered - before.answered, fellBack: after.fellBack - before.fellBack };
}

/** The VerifyKeyResponse of a gRPC answer (one uncompressed frame). */
function grpcResponse(wire: Wire): VerifyKeyResponse {
  const body = Buffer.from(wire.body, "base64");
  expect(body[0]).toBe(0);
  return fromBinary(VerifyKeyResponseSchema, body.subarray(5, 5 + body.readUInt32BE(1)));
}

describe("calls the fast path answers, exactly as connect-node does", () => {
  test("when a gRPC call (application/grpc) verifies a valid key, then the fast path answers VALID with connect's headers and trailers", async () => {
    const { wire, answered, fellBack } = await compare(grpcCall(frame(0, binary(request(secret, ["keys:read"])))));
    expect({ answered, fellBack }).toEqual({ answered: 1, fellBack: 0 });
    expect(wire.status).toBe(200);
    expect(wire.headers["content-type"]).toBe("application/grpc+proto");
    expect(wire.trailers["grpc-status"]).toBe("0");
    const res = grpcResponse(wire);
    expect(res.result).toBe(VerifyResult.VALID);
    expect(res.keyId).toBe(keyId);
  });

  test("when a gRPC call (application/grpc+proto) asks about an unknown key or for a permission not held, then the fast path answers NOT_FOUND / INSUFFICIENT_PERMISSIONS", async () => {
    const unknown = mintKey(fast.config.keyPrefix, KeyKindName.FINE_GRAINED).raw;
    const a = await compare(grpcCall(frame(0, binary(request(unknown))), { "content-type": "application/grpc+proto" }));
    expect({ answered: a.answered, result: grpcResponse(a.wire).result }).toEqual({ answered: 1, result: VerifyResult.NOT_FOUND });
    const b = await compare(grpcCall(frame(0, binary(request(secret, ["keys:write"])))));
    expect({ answered: b.answered, result: grpcResponse(b.wire).result }).toEqual({ answered: 1, result: VerifyResult.INSUFFICIENT_PERMISSIONS });
    expect(grpcResponse(b.wire).missingPermissions).toEqual(["keys:write"]);
  });

  test("when a gRPC call accepts gzip (as grpc-js does) and has a deadline, then the fast path answers with grpc-encoding gzip like connect", async () => {
    const { wire, answered } = await compare(grpcCall(frame(0, binary(request(secret))), { "grpc-accept-encoding": "identity,deflate,gzip", "grpc-timeout": "5S" }));
    expect(answered).toBe(1);
    expect(wire.headers["grpc-encoding"]).toBe("gzip");
    expect(grpcResponse(wire).result).toBe(VerifyResult.VALID);
  });

  test("when the answer is 1 KiB or more and the client accepts gzip, then the fast path compresses it like connect (gRPC and Connect)", async () => {
    const many = extraCategories.map((c) => `${c}:write`);
    const g = await compare(grpcCall(frame(0, binary(request(secret, many))), { "grpc-accept-encoding": "gzip" }));
    expect(g.answered).toBe(1);
    expect(g.wire.trailers).toEqual({ "grpc-status": "0" });
    expect(Buffer.from(g.wire.body, "base64")[0]).toBe(1);
    const c = await compare(connectCall(1, json(request(secret, many)), "application/json", { "accept-encoding": "gzip" }));
    expect(c.answered).toBe(1);
    expect(c.wire.headers["content-encoding"]).toBe("gzip");
  });

  test.each([
    ["JSON over HTTP/1.1", 1, "application/json"],
    ["binary over HTTP/1.1", 1, "application/proto"],
    ["JSON over HTTP/2", 2, "application/json"],
    ["binary over HTTP/2", 2, "application/proto"],
  ] as const)("when a Connect unary call (%s) verifies a valid key, then the fast path answers", async (_name, version, contentType) => {
    const body = contentType === "application/json" ? json(request(secret, ["audit:read"])) : binary(request(secret, ["audit:read"]));
    const { wire, answered, fellBack } = await compare(connectCall(version, body, contentType, { "connect-protocol-version": "1", "connect-timeout-ms": "5000" }));
    expect({ answered, fellBack, status: wire.status }).toEqual({ answered: 1, fellBack: 0, status: 200 });
    expect(wire.headers["content-type"]).toBe(contentType);
  });

  test("when a Connect call sends a garbage key, then the fast path answers MALFORMED", async () => {
    const { wire, answered } = await compare(connectCall(1, json(request("hello")), "application/json"));
    expect(answered).toBe(1);
    expect(JSON.parse(Buffer.from(wire.body, "base64").toString())).toEqual({ result: "VERIFY_RESULT_MALFORMED" });
  });

  test("when the deadline has already passed (grpc-timeout 0m, connect-timeout-ms 0), then the fast path answers DeadlineExceeded like the deadline interceptor", async () => {
    const g = await compare(grpcCall(frame(0, binary(request(secret))), { "grpc-timeout": "0m" }));
    expect({ answered: g.answered, status: g.wire.trailers["grpc-status"] }).toEqual({ answered: 1, status: "4" });
    const c = await compare(connectCall(1, json(request(secret)), "application/json", { "connect-timeout-ms": "0" }));
    expect(c.answered).toBe(1);
    expect(JSON.parse(Buffer.from(c.wire.body, "base64").toString())).toMatchObject({ code: "deadline_exceeded" });
  });

  test("when a required permission is not in the catalogue, then the fast path answers the verifier's InvalidArgument as the error interceptor maps it", async () => {
    const g = await compare(grpcCall(frame(0, binary(request(secret, ["nope:read"])))));
    expect({ answered: g.answered, status: g.wire.trailers["grpc-status"] }).toEqual({ answered: 1, status: "3" });
    expect(g.wire.trailers["grpc-status-details-bin"]).toBeDefined();
    const c = await compare(connectCall(2, json(request(secret, ["nope:read"])), "application/json"));
    expect({ answered: c.answered, status: c.wire.status }).toEqual({ answered: 1, status: 400 });
  });
});

/** An unknown field (number 99, varint 1) appended to a binary message. */
function withUnknownField(bytes: Buffer): Buffer {
  return Buffer.concat([bytes, Buffer.from([0x98, 0x06, 0x01])]);
}

describe("calls handed to connect-node, answered exactly as without the fast path", () => {
  const valid = () => binary(request(secret));
  const cases: [string, () => Call][] = [
    ["a gzip-compressed gRPC frame", () => grpcCall(frame(1, gzipSync(valid())), { "grpc-encoding": "gzip" })],
    ["a gzip-compressed Connect body", () => connectCall(1, gzipSync(valid()), "application/proto", { "content-encoding": "gzip" })],
    ["an unknown gRPC encoding", () => grpcCall(frame(0, valid()), { "grpc-encoding": "snappy" })],
    ["gRPC-Web over HTTP/1.1", () => connectCall(1, frame(0, valid()), "application/grpc-web+proto")],
    ["gRPC over HTTP/1.1", () => ({ ...grpcCall(frame(0, valid())), http: 1 })],
    ["gRPC without te: trailers", () => ({ http: 2, headers: { "content-type": "application/grpc" }, body: frame(0, valid()) })],
    ["a Connect GET", () => ({ http: 1, method: "GET", path: `${path}?connect=v1&encoding=json&message=${encodeURIComponent(json(request(secret)).toString())}`, headers: {} })],
    ["a query string on the path", () => ({ ...connectCall(1, json(request(secret)), "application/json"), path: `${path}?x=1` })],
    ["an unknown field in a gRPC message", () => grpcCall(frame(0, withUnknownField(valid())))],
    ["an unknown field in a Connect binary message", () => connectCall(2, withUnknownField(valid()), "application/proto")],
    ["an unknown JSON key", () => connectCall(1, Buffer.from(JSON.stringify({ key: secret, extra: 1 })), "application/json")],
    ["bad JSON", () => connectCall(1, Buffer.from("{"), "application/json")],
    ["a body that is not protobuf", () => connectCall(1, Buffer.from([0xff, 0xff, 0xff]), "application/proto")],
    ["a wrong content type", () => connectCall(1, json(request(secret)), "text/plain")],
    ["JSON with a charset", () => connectCall(1, json(request(secret)), "application/json; charset=utf-8")],
    ["gRPC+JSON", () => grpcCall(frame(0, json(request(secret))), { "content-type": "application/grpc+json" })],
    ["connect-protocol-version 2", () => connectCall(1, json(request(secret)), "application/json", { "connect-protocol-version": "2" })],
    ["an invalid connect-timeout-ms", () => connectCall(1, json(request(secret)), "application/json", { "connect-timeout-ms": "soon" })],
    ["an invalid grpc-timeout", () => grpcCall(frame(0, valid()), { "grpc-timeout": "5x" })],
    ["an oversize gRPC frame", () => grpcCall(frame(0, binary(request("k".repeat(maxRequestBytes + 10)))))],
    ["an oversize Connect body", () => connectCall(1, json(request("k".repeat(maxRequestBytes + 10))), "application/json")],
    ["an oversize Connect body over HTTP/2 without content-length", () => connectCall(2, json(request("k".repeat(maxRequestBytes * 3))), "application/json")],
    ["a frame with the trailer flag", () => grpcCall(frame(0x80, valid()))],
    ["two gRPC frames", () => grpcCall(Buffer.concat([frame(0, valid()), frame(0, valid())]))],
    ["a frame shorter than its length", () => grpcCall(frame(0, valid(), 200))],
    ["an empty gRPC body", () => grpcCall(Buffer.alloc(0))],
  ];
  test.each(cases)("when the call is %s, then connect-node answers it, the same as without the fast path", async (_name, call) => {
    const { answered, fellBack } = await compare(call());
    expect({ answered, fellBack }).toEqual({ answered: 0, fellBack: 1 });
  });

  test("when a gzip-compressed call is handed on, then connect reads the replayed body and verifies the key", async () => {
    const { wire } = await compare(connectCall(1, gzipSync(json(request(secret))), "application/json", { "content-encoding": "gzip" }));
    expect(wire.status).toBe(200);
    expect(JSON.parse(Buffer.from(wire.body, "base64").toString())).toMatchObject({ result: "VERIFY_RESULT_VALID", keyId });
  });
});

describe("every client takes the fast path", () => {
  /** Runs `call` on the fast server; expects the fast path to have answered it once. */
  async function viaFastPath<T>(call: () => Promise<T>): Promise<T> {
    const before = fast.verifyFastPathStats().answered;
    const value = await call();
    expect(fast.verifyFastPathStats().answered - before).toBe(1);
    return value;
  }

  test.each([
    ["connect-node gRPC", () => fast.grpcTransport],
    ["connect-node Connect JSON over HTTP/1.1", () => fast.connectTransport],
    ["connect-node Connect binary over HTTP/1.1", () => createConnectTransport({ baseUrl: fast.url, httpVersion: "1.1", useBinaryFormat: true })],
    ["connect-node Connect JSON over HTTP/2", () => createConnectTransport({ baseUrl: fast.url, httpVersion: "2" })],
    ["connect-node Connect binary over HTTP/2", () => createConnectTransport({ baseUrl: fast.url, httpVersion: "2", useBinaryFormat: true })],
    ["connect-node gRPC with a deadline", () => createGrpcTransport({ baseUrl: fast.url, defaultTimeoutMs: 5_000 })],
  ] as const)("when %s verifies a key, then the fast path answers what the normal path answers", async (_name, transport) => {
    const res = await viaFastPath(() => createClient(KeyService, transport()).verifyKey({ key: secret, requiredPermissions: ["keys:read"] }));
    expect(res.result).toBe(VerifyResult.VALID);
    expect(res).toEqual(await normal.client(KeyService).verifyKey({ key: secret, requiredPermissions: ["keys:read"] }));
  });

  test("when @grpc/grpc-js verifies a key (with a deadline), then the fast path answers VALID", async () => {
    const client = new grpc.Client(`127.0.0.1:${fast.port}`, grpc.credentials.createInsecure());
    try {
      const res = await viaFastPath(
        () =>
          new Promise<VerifyKeyResponse>((resolve, reject) => {
            client.makeUnaryRequest(
              path,
              (m: VerifyKeyRequest) => Buffer.from(toBinary(VerifyKeyRequestSchema, m)),
              (b: Buffer) => fromBinary(VerifyKeyResponseSchema, b),
              request(secret, ["audit:read"]),
              new grpc.Metadata(),
              { deadline: Date.now() + 5_000 },
              (err, value) => (err || value === undefined ? reject(err ?? new Error("no response")) : resolve(value)),
            );
          }),
      );
      expect(res.result).toBe(VerifyResult.VALID);
      expect(res.keyId).toBe(keyId);
    } finally {
      client.close();
    }
  });

  test.each(["grpc", "connect"])("when buf curl (--protocol %s, HTTP/2) verifies a key, then the fast path answers VALID", async (protocol) => {
    const { stdout } = await viaFastPath(() =>
      exec(buf, ["curl", "--http2-prior-knowledge", "--protocol", protocol, "-d", JSON.stringify({ key: secret }), `${fast.url}${path}`], { timeout: 30_000 }),
    );
    expect(JSON.parse(stdout)).toMatchObject({ result: "VERIFY_RESULT_VALID", keyId });
  });
});

describe("metrics", () => {
  /** keyward_rpc_calls_total for VerifyKey/OK and keyward_verify_results_total{result="valid"} in a server's exposition. */
  async function counts(server: TestServer): Promise<[number, number]> {
    const text = await server.metrics.exposition();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
    return [
      value(/^keyward_rpc_calls_total\{method="keyward\.v1\.KeyService\/VerifyKey",code="OK"\} (\d+)/m),
      value(/^keyward_verify_results_total\{result="valid"\} (\d+)/m),
    ];
  }

  test("when VerifyKey is answered by either path, then each server counts it once by procedure, code and verdict", async () => {
    for (const server of [fast, normal]) {
      const [calls, valid] = await counts(server);
      await server.client(KeyService).verifyKey({ key: secret });
      expect(await counts(server)).toEqual([calls + 1, valid + 1]);
    }
  });
});
