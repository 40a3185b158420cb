// Protect a Connect service (connect-node) with keyward: keywardInterceptor checks every call's
// `Authorization: Bearer <key>` and the handler reads who called from its context.
//
//   KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_KEY=kwfg_... PORT=3000 node guard-connect.ts
//   buf curl --protocol connect -H "Authorization: Bearer $SOME_KEY" -d '{"name":"me"}' \
//     http://127.0.0.1:3000/keyward.v1.KeyService/GetKey
//
// Your service comes from your own .proto (generated with buf); to stay self-contained, this
// one serves a single method of a service the SDK already ships: KeyService.GetKey, answering
// with the caller's own identity. Every call needs harden_runner:read. Unauthenticated,
// PermissionDenied and Unavailable are answered by the interceptor (HTTP 401, 403, 503 in the
// Connect protocol); the handler runs only for a key that passed.
//
// KEYWARD_KEY is this service's own key (keys:read), for the verifier's invalidation stream.
// PORT defaults to 0 (any free port); the URL is printed once listening. SIGTERM (or Ctrl-C)
// closes it cleanly.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createVerifier, keywardIdentityKey, keywardInterceptor, KeyService } from "@keyward/sdk";

const verifier = createVerifier({ baseUrl: process.env["KEYWARD_URL"] ?? "http://127.0.0.1:8080", apiKey: process.env["KEYWARD_KEY"] });

const handler = connectNodeAdapter({
  interceptors: [keywardInterceptor({ verifier, permissions: ["harden_runner:read"] })],
  routes: (router) => {
    router.service(KeyService, {
      getKey: (_req, ctx) => {
        const caller = ctx.values.get(keywardIdentityKey); // set by the interceptor
        if (caller === undefined) throw new Error("unreachable: the interceptor lets no call through without an identity");
        return { key: { name: `tenants/${caller.tenant}/keys/${caller.keyId}`, keyId: caller.keyId, tenant: caller.tenant, owner: caller.owner, permissions: [...caller.permissions] } };
      },
    });
  },
});
const server = createServer(handler);

server.listen(Number(process.env["PORT"] ?? 0), process.env["HOST"] ?? "127.0.0.1", () => {
  const { address, port } = server.address() as AddressInfo;
  console.log(`listening on http://${address}:${port}`);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    server.close(() => console.log("closed")); // finishes calls in flight, then exits 0
    server.closeIdleConnections();
    verifier.close(); // ends the invalidation stream
  });
}
