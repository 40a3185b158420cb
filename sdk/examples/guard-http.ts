// Protect one endpoint of a node:http server with keyward: GET /hello needs a key holding
// harden_runner:read; GET /healthz is open.
//
//   KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_KEY=kwfg_... PORT=3000 node guard-http.ts
//   curl -H "Authorization: Bearer $SOME_KEY" http://127.0.0.1:3000/hello
//
// KEYWARD_KEY is this service's own key (keys:read): the verifier opens keyward's invalidation
// stream with it, so a revoked key is refused within a second. PORT defaults to 0 (any free
// port); the URL is printed once listening. SIGTERM (or Ctrl-C) closes it cleanly.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createVerifier, keywardMiddleware, type KeywardRequest } from "@keyward/sdk";

const verifier = createVerifier({ baseUrl: process.env["KEYWARD_URL"] ?? "http://127.0.0.1:8080", apiKey: process.env["KEYWARD_KEY"] });
const guard = keywardMiddleware({ verifier, permissions: ["harden_runner:read"] });

const server = createServer(async (req, res) => {
  if (req.url === "/hello") {
    if (!(await guard(req, res))) return; // it answered 401, 403 or 503 itself
    const { keyId, tenant } = (req as KeywardRequest).keyward; // who called: for your logs
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ hello: keyId, tenant }));
  } else if (req.url === "/healthz") {
    res.end("ok\n");
  } else {
    res.writeHead(404).end();
  }
});

server.listen(Number(process.env["PORT"] ?? 0), process.env["HOST"] ?? "127.0.0.1", () => {
  const { address, port } = server.address() as AddressInfo;
  console.log(`listening on http://${address}:${port}`);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    server.close(() => console.log("closed")); // finishes requests in flight, then exits 0
    server.closeIdleConnections();
    verifier.close(); // ends the invalidation stream
  });
}
