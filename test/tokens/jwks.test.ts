// The published keys: TokenExchangeService.GetJwks and GET /.well-known/jwks.json give the
// same public keys, and nothing private.
import { describe, expect, test } from "@jest/globals";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { createTestTenant } from "../harness.ts";
import { attempt, server, useServer } from "../rpc.ts";
import { createUser, segment, userToken } from "./helpers.ts";

useServer();

const publicMembers = ["alg", "crv", "kid", "kty", "use", "x", "y"];

describe("JWKS", () => {
  test("when GetJwks (Connect and gRPC) and GET /.well-known/jwks.json are read, then they hold the same public ES256 keys, with no private member, cacheable for 5 minutes", async () => {
    const rpc = await server.client(TokenExchangeService).getJwks({});
    const grpc = await server.client(TokenExchangeService, server.grpcTransport).getJwks({});
    const res = await fetch(`${server.url}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    const body = (await res.json()) as { keys: Record<string, string>[] };

    expect(body.keys.length).toBeGreaterThanOrEqual(1);
    for (const key of body.keys) {
      expect(Object.keys(key).sort()).toEqual(publicMembers);
      expect(key).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
    }
    const fromRpc = rpc.keys.map(({ kty, kid, alg, use, crv, x, y }) => ({ kty, kid, alg, use, crv, x, y }));
    expect(fromRpc).toEqual(body.keys.map(({ kty, kid, alg, use, crv, x, y }) => ({ kty, kid, alg, use, crv, x, y })));
    expect(grpc.keys.map((k) => k.kid)).toEqual(rpc.keys.map((k) => k.kid));

    // A token the server mints names one of them.
    const t = await createTestTenant(server);
    const { accessToken } = await userToken(server, t, await createUser(server, t, ["keys:read"]));
    expect(rpc.keys.map((k) => k.kid)).toContain(segment(accessToken, 0)["kid"]);
  });

  test("when /.well-known/jwks.json is asked with HEAD, then headers only; with POST, then 405; GetJwks needs no credential and answers Connect GET", async () => {
    const head = await fetch(`${server.url}/.well-known/jwks.json`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("application/json");
    expect(await head.text()).toBe("");
    const post = await fetch(`${server.url}/.well-known/jwks.json`, { method: "POST", body: "{}" });
    expect(post.status).toBe(405);
    expect(await attempt(server.client(TokenExchangeService).getJwks({}))).toBeUndefined();
    // GetJwks is NO_SIDE_EFFECTS: Connect GET works (cacheable by proxies).
    const get = await fetch(`${server.url}/keyward.v1.TokenExchangeService/GetJwks?connect=v1&encoding=json&message=%7B%7D`);
    expect(get.status).toBe(200);
    expect(((await get.json()) as { keys: unknown[] }).keys.length).toBeGreaterThanOrEqual(1);
  });
});
