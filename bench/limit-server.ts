// The limit: a bare node:http2 server answering every POST with a fixed, valid gRPC
// VerifyKeyResponse (one frame, then trailers grpc-status 0). Nothing is decoded, nothing
// is looked up: this is what node:http2 alone can do on this machine.
// Prints {"port":N} once listening on 127.0.0.1.
import { create, toBinary } from "@bufbuild/protobuf";
import http2 from "node:http2";
import { KeyKind } from "../gen/keyward/v1/key_pb.ts";
import { VerifyKeyResponseSchema, VerifyResult } from "../gen/keyward/v1/key_service_pb.ts";
import { grpcFrame } from "./bodies.ts";

const frame = grpcFrame(
  toBinary(
    VerifyKeyResponseSchema,
    create(VerifyKeyResponseSchema, {
      result: VerifyResult.VALID,
      keyId: "w000000000000001",
      kind: KeyKind.FINE_GRAINED,
      tenant: "bench",
      owner: "tenants/bench/principals/admin",
      permissions: ["keys:read"],
    }),
  ),
);

const server = http2.createServer({ maxSessionMemory: 64 });
server.on("stream", (stream) => {
  stream.on("data", () => {});
  stream.on("end", () => {
    if (stream.destroyed) return;
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(frame);
  });
  stream.on("error", () => {});
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === "object" && address !== null ? address.port : 0 })}\n`);
});
process.on("SIGTERM", () => process.exit(0));
