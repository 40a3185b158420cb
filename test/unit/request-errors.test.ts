// How connect's refusals of unreadable requests are relabelled: client errors with a reason,
// never Internal, and never repeating a long value the client sent.
import { describe, expect, test } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { ListKeysRequestSchema, VerifyKeyRequestSchema } from "../../gen/keyward/v1/key_service_pb.ts";
import { requestErrorOf } from "../../src/server/request-errors.ts";

describe("requestErrorOf", () => {
  test.each([
    ["parse binary: illegal tag: field no 536870911 wire type 7", "MALFORMED_REQUEST"],
    ["received compressed envelope, but do not know how to decompress", "MALFORMED_REQUEST"],
    ["decompression failed", "MALFORMED_REQUEST"],
  ])("when connect says Internal %j, then it is InvalidArgument %s", (message, reason) => {
    const e = requestErrorOf(new ConnectError(message, Code.Internal), VerifyKeyRequestSchema);
    expect(e).toMatchObject({ kind: "INVALID_ARGUMENT", reason });
    expect(e?.message).not.toContain("parse binary");
  });

  test("when an Internal error is not about the request (a server failure), then it is kept", () => {
    expect(requestErrorOf(new ConnectError("internal error", Code.Internal), VerifyKeyRequestSchema)).toBeUndefined();
    expect(requestErrorOf(new ConnectError("serialize binary: x", Code.Internal), VerifyKeyRequestSchema)).toBeUndefined();
  });

  test("when the JSON parser refuses an unknown key, then UNKNOWN_FIELD names it", () => {
    const e = requestErrorOf(new ConnectError('cannot decode message keyward.v1.VerifyKeyRequest from JSON: key "requiredPermission" is unknown', Code.InvalidArgument), VerifyKeyRequestSchema);
    expect(e).toMatchObject({ reason: "UNKNOWN_FIELD", metadata: { field: "requiredPermission" } });
  });

  test("when the unknown key is long, then it is neither in the message nor in the metadata", () => {
    const key = "kwfg_" + "x".repeat(60);
    const e = requestErrorOf(new ConnectError(`cannot decode message keyward.v1.VerifyKeyRequest from JSON: key "${key}" is unknown`, Code.InvalidArgument), VerifyKeyRequestSchema);
    expect(e?.reason).toBe("UNKNOWN_FIELD");
    expect(JSON.stringify({ m: e?.message, d: e?.metadata })).not.toContain("x".repeat(30));
  });

  test("when the JSON parser refuses an enum name, then INVALID_ENUM_VALUE names the field that has that enum", () => {
    const e = requestErrorOf(new ConnectError('cannot decode enum keyward.v1.KeyState from JSON: "KEY_STATE_BOGUS"', Code.InvalidArgument), ListKeysRequestSchema);
    expect(e).toMatchObject({ reason: "INVALID_ENUM_VALUE", metadata: { field: "state", enum: "keyward.v1.KeyState" } });
  });

  test("when another JSON refusal quotes a long value, then the value is cut out", () => {
    const secret = "kwfg_AAAAAAAAAAAAAAAA_" + "b".repeat(39);
    const e = requestErrorOf(new ConnectError(`cannot decode field keyward.v1.VerifyKeyRequest.required_permissions from JSON: "${secret}"`, Code.InvalidArgument), VerifyKeyRequestSchema);
    expect(e).toMatchObject({ reason: "MALFORMED_REQUEST", metadata: { field: "required_permissions" } });
    expect(e?.message).not.toContain("bbbbbbbbbbbbbbbbbbbb");
  });

  test("when a size limit is hit, then ResourceExhausted REQUEST_TOO_LARGE", () => {
    expect(requestErrorOf(new ConnectError("message size 9000 is larger than configured readMaxBytes 4096", Code.ResourceExhausted), VerifyKeyRequestSchema)).toMatchObject({
      kind: "RESOURCE_EXHAUSTED",
      reason: "REQUEST_TOO_LARGE",
    });
  });

  test("when the error is a deliberate code (Unimplemented, DeadlineExceeded), then it is kept", () => {
    expect(requestErrorOf(new ConnectError("nope", Code.Unimplemented), VerifyKeyRequestSchema)).toBeUndefined();
    expect(requestErrorOf(new ConnectError("late", Code.DeadlineExceeded), VerifyKeyRequestSchema)).toBeUndefined();
  });
});
