// Reflection answers an unexpected failure with a generic message and logs the exception,
// which may describe the server's internals.
import { describe, expect, test } from "@jest/globals";
import { create } from "@bufbuild/protobuf";
import { ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import { file_keyward_v1_key_service } from "../../gen/keyward/v1/key_service_pb.ts";
import { buildIndex, respond, type ReflectionIndex } from "../../src/server/reflection.ts";

describe("reflection failures", () => {
  test("when answering throws, then the client gets Internal 'internal error' and the exception goes to the log", () => {
    const index = buildIndex([file_keyward_v1_key_service]);
    const broken: ReflectionIndex = {
      ...index,
      registry: new Proxy(index.registry, {
        get(target, prop, receiver) {
          if (prop === "getFile") return () => {
            throw new Error("ENOENT: /srv/keyward/secret-path/descriptor.bin");
          };
          return Reflect.get(target, prop, receiver) as unknown;
        },
      }),
    };
    const logged: unknown[] = [];
    const res = respond(broken, create(ServerReflectionRequestSchema, { messageRequest: { case: "fileByFilename", value: "keyward/v1/key_service.proto" } }), (e) => logged.push(e));
    expect(res.messageResponse.case).toBe("errorResponse");
    const error = res.messageResponse.case === "errorResponse" ? res.messageResponse.value : undefined;
    expect(error).toMatchObject({ errorCode: 13, errorMessage: "internal error" });
    expect(logged).toHaveLength(1);
    expect(String(logged[0])).toContain("secret-path");
  });

  test("when a file is asked for, then it is answered as before", () => {
    const index = buildIndex([file_keyward_v1_key_service]);
    const res = respond(index, create(ServerReflectionRequestSchema, { messageRequest: { case: "fileByFilename", value: "keyward/v1/key_service.proto" } }), () => undefined);
    expect(res.messageResponse.case).toBe("fileDescriptorResponse");
  });
});
