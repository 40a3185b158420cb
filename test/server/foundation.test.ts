// The service skeleton through the network: both protocols on one port, health,
// reflection, Unimplemented, malformed and oversized requests, request ids.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { repoRoot } from "../cli.ts";
import { startTestServer, type TestServer } from "../harness.ts";

const exec = promisify(execFile);
const buf = join(repoRoot, "node_modules", ".bin", "buf");

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ env: { KEYWARD_MAX_REQUEST_BYTES: "4096" } });
});
afterAll(async () => {
  await server?.stop();
});

async function bufCurl(...args: string[]): Promise<string> {
  const { stdout } = await exec(buf, ["curl", "--http2-prior-knowledge", ...args], { timeout: 30_000 });
  return stdout;
}

describe("health", () => {
  test("when asked over gRPC/HTTP2, then the server answers SERVING", async () => {
    const health = createClient(Health, server.grpcTransport);
    const res = await health.check({ service: "" });
    expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  test("when asked about an unknown service, then it answers NotFound", async () => {
    const health = createClient(Health, server.grpcTransport);
    await expect(health.check({ service: "no.such.Service" })).rejects.toMatchObject({ code: Code.NotFound });
  });

  test("when GET /healthz over HTTP/1.1, then 200 with SERVING", async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "SERVING", components: { database: { status: "available" } } });
  });
});

describe("reflection", () => {
  test("when buf curl lists services through reflection v1, then all five keyward services are there", async () => {
    const services = (await bufCurl(server.url, "--list-services")).trim().split("\n");
    for (const name of ["KeyService", "PolicyService", "TokenExchangeService", "DirectoryService", "AuditService"]) {
      expect(services).toContain(`keyward.v1.${name}`);
    }
    expect(services).toContain("grpc.health.v1.Health");
  });

  test("when buf curl uses reflection v1alpha, then it lists the same services", async () => {
    const services = (await bufCurl("--reflect-protocol", "grpc-v1alpha", server.url, "--list-services")).trim().split("\n");
    expect(services).toContain("keyward.v1.KeyService");
  });

  test("when buf curl calls Health/Check with no schema, then it answers SERVING", async () => {
    const out = JSON.parse(await bufCurl(`${server.url}/grpc.health.v1.Health/Check`)) as { status: string };
    expect(out.status).toBe("SERVING");
  });

  test("when buf curl lists KeyService methods, then VerifyKey is among them", async () => {
    const methods = await bufCurl("--list-methods", server.url);
    expect(methods).toContain("keyward.v1.KeyService/VerifyKey");
  });
});

describe("protocols and errors", () => {
  test("when called over gRPC-Web (HTTP/1.1), Connect binary (HTTP/2) and Connect JSON (HTTP/1.1), then the same port answers", async () => {
    const transports = [
      createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true }),
      server.connectTransport,
    ];
    for (const transport of transports) {
      const res = await createClient(Health, transport).check({ service: "" });
      expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    }
  });

  test("when every method is built, then an ExchangeToken without a token is InvalidArgument over gRPC and Connect, not Unimplemented", async () => {
    for (const transport of [server.grpcTransport, server.connectTransport]) {
      const tokens = createClient(TokenExchangeService, transport);
      await expect(tokens.exchangeToken({ parent: "tenants/default" })).rejects.toMatchObject({ code: Code.InvalidArgument });
    }
  });

  test("when the JSON body is malformed, then the answer is invalid_argument", async () => {
    const res = await fetch(`${server.url}/keyward.v1.TokenExchangeService/GetJwks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
  });

  test("when a field has the wrong type, then the answer is invalid_argument", async () => {
    const res = await fetch(`${server.url}/keyward.v1.KeyService/VerifyKey`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: 42, requiredPermissions: "keys:read" }),
    });
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
  });

  test("when a request is larger than KEYWARD_MAX_REQUEST_BYTES, then it is refused with resource_exhausted", async () => {
    const res = await fetch(`${server.url}/keyward.v1.KeyService/VerifyKey`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: "x".repeat(10_000) }),
    });
    expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
  });

  test("when an oversized request comes over gRPC, then it is refused with ResourceExhausted", async () => {
    const tokens = createClient(TokenExchangeService, server.grpcTransport);
    const err = await tokens.exchangeToken({ subjectToken: "x".repeat(10_000) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
  });

  test("when an RPC completes, then one log line records its procedure, code and duration", async () => {
    const requestId = `test-${Date.now()}`;
    await fetch(`${server.url}/keyward.v1.TokenExchangeService/GetJwks`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": requestId },
      body: "{}",
    });
    const lines = server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l["requestId"] === requestId && l["msg"] === "rpc");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ procedure: "keyward.v1.TokenExchangeService/GetJwks", code: "OK" });
    expect(typeof lines[0]?.["durationMs"]).toBe("number");
  });

  test("when an unknown path is requested, then 404", async () => {
    const res = await fetch(`${server.url}/nope`);
    expect(res.status).toBe(404);
  });
});
