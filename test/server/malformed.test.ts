// Malformed input is a client error, and is logged (issue 10, item 5): bodies that are not
// protobuf, frames that lie about their length or compression, broken JSON. Each is
// InvalidArgument (never Internal) in the protocol it came in, carries `x-request-id`, and
// leaves exactly one `rpc` log line, even when connect refuses it before the interceptors.
import { describe, expect, test } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { brotliCompressSync, gzipSync } from "node:zlib";
import http from "node:http";
import { ListAuditEventsRequestSchema } from "../../gen/keyward/v1/audit_service_pb.ts";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { HealthCheckRequestSchema } from "../../gen/health/v1/health_pb.ts";
import { ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import { VerifyKeyRequestSchema } from "../../gen/keyward/v1/key_service_pb.ts";
import { runTag, server, useServer, verifyPaths } from "../rpc.ts";
import { connectStream, connectUnary, frame, grpcCall, grpcWebCall, type RawAnswer } from "./raw-http.ts";

/** Not protobuf: the first byte is tag 31 with wire type 7, which does not exist. */
const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02, 0x03]);
/** A well-formed VerifyKey request (about 70 bytes). */
const verifyRequest = toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { key: `kwfg_${"A".repeat(16)}_${"b".repeat(39)}`, requiredPermissions: ["keys:read"] }));

let counter = 0;
/** A fresh request id, so each test finds its own log lines. */
function newRequestId(): string {
  counter += 1;
  return `malformed-${counter}-${runTag}`;
}

/** The `rpc` log lines of one request. */
function rpcLines(requestId: string): Record<string, unknown>[] {
  return server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l["requestId"] === requestId && l["msg"] === "rpc");
}

/** Asserts the answer is InvalidArgument MALFORMED_REQUEST with the request id, logged once. */
function expectMalformed(res: RawAnswer, requestId: string): void {
  expect(res.error).toBeInstanceOf(ConnectError);
  expect({ code: res.error === undefined ? "OK" : Code[res.error.code], message: res.error?.rawMessage }).toMatchObject({ code: "InvalidArgument" });
  expect(res.error?.findDetails(ErrorInfoSchema)[0]?.reason).toBe("MALFORMED_REQUEST");
  expect(res.error?.rawMessage).not.toMatch(/parse binary|illegal tag/);
  expect(res.headers.get("x-request-id")).toBe(requestId);
  const lines = rpcLines(requestId);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({ code: "InvalidArgument" });
}

describe.each(verifyPaths)("VerifyKey through %s", (_path, env) => {
  useServer({ env });

  describe("Connect", () => {
    test("when an application/proto body is garbage, then 400 invalid_argument (not 500 parse binary), with x-request-id and one log line", async () => {
      const requestId = newRequestId();
      const res = await connectUnary(server.url, "/keyward.v1.KeyService/VerifyKey", garbage, { contentType: "application/proto", headers: { "x-request-id": requestId } });
      expect(res.status).toBe(400);
      expectMalformed(res, requestId);
      expect(rpcLines(requestId)[0]).toMatchObject({ procedure: "keyward.v1.KeyService/VerifyKey", reason: "MALFORMED_REQUEST", httpStatus: 400 });
    });

    test("when a JSON body is not JSON, then invalid_argument MALFORMED_REQUEST, logged once", async () => {
      const requestId = newRequestId();
      const res = await connectUnary(server.url, "/keyward.v1.KeyService/VerifyKey", "{not json", { contentType: "application/json", headers: { "x-request-id": requestId } });
      expect(res.status).toBe(400);
      expectMalformed(res, requestId);
    });

    test("when a JSON value of the wrong type carries a key, then the refusal does not repeat it", async () => {
      const requestId = newRequestId();
      const secretish = `kwfg_${"Q".repeat(16)}_${"z".repeat(39)}`;
      const res = await connectUnary(server.url, "/keyward.v1.KeyService/VerifyKey", JSON.stringify({ requiredPermissions: secretish }), {
        contentType: "application/json",
        headers: { "x-request-id": requestId },
      });
      expectMalformed(res, requestId);
      expect(res.body.toString()).not.toContain("z".repeat(20));
    });

    test("when a Connect stream (Health/Watch, application/connect+proto) sends garbage, then the end-stream says invalid_argument", async () => {
      const requestId = newRequestId();
      const res = await connectStream(server.url, "/grpc.health.v1.Health/Watch", frame(0, garbage), { contentType: "application/connect+proto", headers: { "x-request-id": requestId } });
      expectMalformed(res, requestId);
    });
  });

  describe("gRPC", () => {
    test("when a frame's length is shorter than its message, then InvalidArgument (not Internal)", async () => {
      // The frame ends 3 bytes early: its message is cut inside the key string, and the 3
      // bytes left over are too short to be a frame header.
      const requestId = newRequestId();
      const res = await grpcCall(server.url, "/keyward.v1.KeyService/VerifyKey", frame(0, verifyRequest, verifyRequest.byteLength - 3), {
        headers: { "x-request-id": requestId },
      });
      expectMalformed(res, requestId);
    });

    test("when a frame's short length makes the rest read as a frame of gigabytes, then ResourceExhausted (the truth), never Internal", async () => {
      const requestId = newRequestId();
      const res = await grpcCall(server.url, "/keyward.v1.KeyService/VerifyKey", frame(0, verifyRequest, 5), { headers: { "x-request-id": requestId } });
      expect(res.error?.code).toBe(Code.ResourceExhausted);
      expect(res.error?.findDetails(ErrorInfoSchema)[0]?.reason).toBe("REQUEST_TOO_LARGE");
      expect(res.headers.get("x-request-id")).toBe(requestId);
      expect(rpcLines(requestId)).toEqual([expect.objectContaining({ code: "ResourceExhausted" })]);
    });

    test("when a frame's length is longer than the body, then InvalidArgument", async () => {
      const requestId = newRequestId();
      const res = await grpcCall(server.url, "/keyward.v1.KeyService/VerifyKey", frame(0, verifyRequest, verifyRequest.byteLength + 100), {
        headers: { "x-request-id": requestId },
      });
      expectMalformed(res, requestId);
    });

    test("when a frame is flagged compressed but no grpc-encoding is sent, then InvalidArgument (not Internal)", async () => {
      const requestId = newRequestId();
      const res = await grpcCall(server.url, "/keyward.v1.KeyService/VerifyKey", frame(1, verifyRequest), { headers: { "x-request-id": requestId } });
      expectMalformed(res, requestId);
    });

    test("when a gzip frame is truncated, then InvalidArgument (not Internal)", async () => {
      const requestId = newRequestId();
      const truncated = gzipSync(verifyRequest).subarray(0, 12);
      const res = await grpcCall(server.url, "/keyward.v1.KeyService/VerifyKey", frame(1, truncated), { headers: { "x-request-id": requestId, "grpc-encoding": "gzip" } });
      expectMalformed(res, requestId);
    });

    test("when a message is garbage, then InvalidArgument on unary (VerifyKey, Health/Check) and bidi (reflection) methods", async () => {
      for (const path of ["/keyward.v1.KeyService/VerifyKey", "/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"]) {
        const requestId = newRequestId();
        const res = await grpcCall(server.url, path, frame(0, garbage), { headers: { "x-request-id": requestId } });
        expectMalformed(res, requestId);
      }
    });

    test("when a well-formed request follows, then it is still answered (the guard changes only refusals)", async () => {
      const res = await grpcCall(server.url, "/grpc.health.v1.Health/Check", frame(0, toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }))));
      expect(res.error).toBeUndefined();
      expect(res.headers.get("grpc-status")).toBe("0");
      const reflect = await grpcCall(
        server.url,
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        frame(0, toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }))),
      );
      expect(reflect.error).toBeUndefined();
      expect(reflect.body.toString("latin1")).toContain("keyward.v1.KeyService");
    });
  });

  describe("gRPC-Web", () => {
    test("when a gRPC-Web message is garbage, then the trailer frame says InvalidArgument (not Internal)", async () => {
      const requestId = newRequestId();
      const res = await grpcWebCall(server.url, "/keyward.v1.KeyService/VerifyKey", frame(0, garbage), { headers: { "x-request-id": requestId } });
      expectMalformed(res, requestId);
    });

    test("when a gRPC-Web frame is flagged compressed without an encoding, then InvalidArgument", async () => {
      const requestId = newRequestId();
      const res = await grpcWebCall(server.url, "/keyward.v1.KeyService/VerifyKey", frame(1, verifyRequest), { headers: { "x-request-id": requestId } });
      expectMalformed(res, requestId);
    });
  });

  describe("requests refused before any RPC", () => {
    test("when VerifyKey is called with GET, then 405 with x-request-id and one log line", async () => {
      const requestId = newRequestId();
      const res = await connectUnary(server.url, `/keyward.v1.KeyService/VerifyKey?connect=v1&encoding=json&message=${encodeURIComponent("{}")}`, undefined, {
        method: "GET",
        headers: { "x-request-id": requestId },
      });
      expect(res.status).toBe(405);
      expect(res.headers.get("x-request-id")).toBe(requestId);
      expect(rpcLines(requestId)).toEqual([expect.objectContaining({ procedure: "keyward.v1.KeyService/VerifyKey", httpStatus: 405 })]);
    });

    test("when the content type is not one the method speaks, then 415 with x-request-id and one log line", async () => {
      const requestId = newRequestId();
      const res = await connectUnary(server.url, "/keyward.v1.KeyService/VerifyKey", "key=x", { contentType: "application/x-www-form-urlencoded", headers: { "x-request-id": requestId } });
      expect(res.status).toBe(415);
      expect(res.headers.get("x-request-id")).toBe(requestId);
      expect(rpcLines(requestId)).toHaveLength(1);
    });
  });

  describe("Connect GET with a message that is not base64 (review of issue 10)", () => {
    test.each([
      ["GetKey, proto", "/keyward.v1.KeyService/GetKey", "proto", "!!!!"],
      ["GetKey, json", "/keyward.v1.KeyService/GetKey", "json", "%%%"],
      ["ListAuditEvents", "/keyward.v1.AuditService/ListAuditEvents", "json", "!!!!"],
      ["GetTenant", "/keyward.v1.DirectoryService/GetTenant", "proto", "a*b"],
      ["GetJwks", "/keyward.v1.TokenExchangeService/GetJwks", "json", "%%%"],
    ])("when %s is called with base64=1 and an invalid message, then 400 InvalidArgument MALFORMED_REQUEST (not 500), without credentials", async (_what, path, encoding, message) => {
      const requestId = newRequestId();
      const res = await connectUnary(server.url, `${path}?connect=v1&encoding=${encoding}&base64=1&message=${message}`, undefined, {
        method: "GET",
        headers: { "x-request-id": requestId },
      });
      expect(res.status).toBe(400);
      expectMalformed(res, requestId);
    });

    test("when the GET message is valid base64, then it is read (and refused only for lack of a credential)", async () => {
      const requestId = newRequestId();
      const message = Buffer.from(JSON.stringify({ name: "tenants/acme" })).toString("base64url");
      const res = await connectUnary(server.url, `/keyward.v1.DirectoryService/GetTenant?connect=v1&encoding=json&base64=1&message=${message}`, undefined, {
        method: "GET",
        headers: { "x-request-id": requestId },
      });
      expect(res.error?.code).toBe(Code.Unauthenticated);
    });
  });

  describe("frame flags and encodings (review of issue 10)", () => {
    test("when a gRPC or gRPC-Web request frame carries the trailer flag 0x80, then InvalidArgument (not processed as a message)", async () => {
      const health = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }));
      let requestId = newRequestId();
      const grpc = await grpcCall(server.url, "/grpc.health.v1.Health/Check", frame(0x80, health), { headers: { "x-request-id": requestId } });
      expectMalformed(grpc, requestId);
      requestId = newRequestId();
      const web = await grpcWebCall(server.url, "/grpc.health.v1.Health/Check", frame(0x80, health), { headers: { "x-request-id": requestId } });
      expectMalformed(web, requestId);
      // The same message unflagged is answered.
      expect((await grpcCall(server.url, "/grpc.health.v1.Health/Check", frame(0, health))).error).toBeUndefined();
    });

    test("when a request names an encoding the server does not support, then Unimplemented on Connect and gRPC", async () => {
      let requestId = newRequestId();
      const connect = await connectUnary(server.url, "/grpc.health.v1.Health/Check", "{}", { contentType: "application/json", headers: { "x-request-id": requestId, "content-encoding": "zstd" } });
      expect(connect.error?.code).toBe(Code.Unimplemented);
      expect(connect.headers.get("x-request-id")).toBe(requestId);
      expect(rpcLines(requestId)).toEqual([expect.objectContaining({ code: "Unimplemented" })]);
      requestId = newRequestId();
      const grpc = await grpcCall(server.url, "/grpc.health.v1.Health/Check", frame(1, "x"), { headers: { "x-request-id": requestId, "grpc-encoding": "zstd" } });
      expect(grpc.error?.code).toBe(Code.Unimplemented);
      expect(rpcLines(requestId)).toEqual([expect.objectContaining({ code: "Unimplemented" })]);
    });

    test("when a body is brotli-compressed and says content-encoding br, then it is read (br is supported)", async () => {
      const res = await connectUnary(server.url, "/grpc.health.v1.Health/Check", brotliCompressSync(Buffer.from("{}")), { contentType: "application/json", headers: { "content-encoding": "br" } });
      expect(res.error).toBeUndefined();
    });
  });

  describe("timestamps out of range (review of issue 10)", () => {
    /** Asserts InvalidArgument INVALID_TIMESTAMP (naming `field` when given), with the request id and one log line. */
    function expectBadTimestamp(res: RawAnswer, requestId: string, field?: string): void {
      expect(res.error?.code).toBe(Code.InvalidArgument);
      const info = res.error?.findDetails(ErrorInfoSchema)[0];
      expect(info?.reason).toBe("INVALID_TIMESTAMP");
      if (field !== undefined) expect(info?.metadata["field"]).toBe(field);
      expect(res.headers.get("x-request-id")).toBe(requestId);
      expect(rpcLines(requestId)).toEqual([expect.objectContaining({ code: "InvalidArgument" })]);
    }

    test.each([
      ["nanos of 1,000,000,000", { seconds: 1_700_000_000n, nanos: 1_000_000_000 }],
      ["negative nanos", { seconds: 1_700_000_000n, nanos: -1 }],
      ["seconds before 0001-01-01", { seconds: -62_135_596_801n, nanos: 0 }],
      ["seconds after 9999-12-31", { seconds: 253_402_300_800n, nanos: 0 }],
    ])("when ListAuditEvents start_time (binary, gRPC) has %s, then InvalidArgument INVALID_TIMESTAMP naming start_time, without credentials", async (_what, startTime) => {
      const requestId = newRequestId();
      const body = toBinary(ListAuditEventsRequestSchema, create(ListAuditEventsRequestSchema, { parent: "tenants/acme", startTime }));
      const res = await grpcCall(server.url, "/keyward.v1.AuditService/ListAuditEvents", frame(0, body), { headers: { "x-request-id": requestId } });
      expectBadTimestamp(res, requestId, "start_time");
    });

    test("when a JSON start_time is year 0000, then InvalidArgument INVALID_TIMESTAMP", async () => {
      const requestId = newRequestId();
      const res = await connectUnary(server.url, "/keyward.v1.AuditService/ListAuditEvents", JSON.stringify({ parent: "tenants/acme", startTime: "0000-01-01T00:00:00Z" }), {
        contentType: "application/json",
        headers: { "x-request-id": requestId },
      });
      expectBadTimestamp(res, requestId);
    });
  });

  describe("requests that reach no RPC (review of issue 10)", () => {
    test("when a path is unknown, then 404 with x-request-id and one info line that does not repeat the path", async () => {
      const requestId = newRequestId();
      const res = await connectUnary(server.url, "/keyward.v1.KeyService/NoSuchMethod-kwfg_secretish", "{}", { contentType: "application/json", headers: { "x-request-id": requestId } });
      expect(res.status).toBe(404);
      expect(res.headers.get("x-request-id")).toBe(requestId);
      const lines = server.logs.filter((l) => l.includes(requestId)).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toEqual([expect.objectContaining({ level: 30, httpStatus: 404 })]);
      expect(JSON.stringify(lines)).not.toContain("secretish");
    });

    test("when the Host header is not a host name, then 400 with x-request-id and one log line", async () => {
      const requestId = newRequestId();
      const { port } = new URL(server.url);
      const answer = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port, path: "/grpc.health.v1.Health/Check", method: "POST", headers: { host: "a b", "content-type": "application/json", "x-request-id": requestId }, timeout: 10_000 }, resolve);
        req.on("error", reject);
        req.on("timeout", () => req.destroy(new Error("no answer within 10 s")));
        req.end("{}");
      });
      answer.resume();
      expect(answer.statusCode).toBe(400);
      expect(answer.headers["x-request-id"]).toBe(requestId);
      expect(rpcLines(requestId)).toEqual([expect.objectContaining({ code: "InvalidArgument", httpStatus: 400 })]);
    });
  });
});
