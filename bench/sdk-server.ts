// The SDK's guard under load (issue 13, "Measure"): a service's own no-op endpoint, with or
// without the SDK's guard in front of it, in a process of its own. The guard is the SDK as a
// user wires it (sdk/src): `createVerifier` (local cache fed by WatchInvalidations) and
// `keywardMiddleware` (node:http) or `keywardInterceptor` (Connect, connect-node on node:http).
//
// Env:
// - BENCH_SDK_SERVER: "http" (default) — every request but GET /__stats answers 200 `{"ok":true}`;
//   "connect" — grpc.health.v1.Health/Check answers SERVING (Connect, gRPC or gRPC-web).
// - BENCH_SDK_GUARD: "1" puts the guard in front (permissions BENCH_SDK_PERMISSIONS, comma-separated,
//   default "keys:read"); anything else serves unguarded.
// - KEYWARD_URL, BENCH_SDK_API_KEY: the verifier's keyward and the key its invalidation stream
//   uses (needs keys:read), when guarded.
// GET /__stats (never guarded) answers the verifier's counters (VerifierStats) or `{}` unguarded.
// Prints {"port":N} once listening on 127.0.0.1 and, when guarded, once the verifier's stream
// is up (bounded: exits 1 after 20 s without it).
import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http from "node:http";
import { Health, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../gen/health/v1/health_pb.ts";
import { createVerifier, keywardInterceptor, keywardMiddleware, type Verifier } from "../sdk/src/index.ts";

const kind = process.env["BENCH_SDK_SERVER"] === "connect" ? "connect" : "http";
const guarded = process.env["BENCH_SDK_GUARD"] === "1";
const permissions = (process.env["BENCH_SDK_PERMISSIONS"] ?? "keys:read").split(",").filter((p) => p !== "");

let verifier: Verifier | undefined;
if (guarded) {
  const baseUrl = process.env["KEYWARD_URL"];
  const apiKey = process.env["BENCH_SDK_API_KEY"];
  if (baseUrl === undefined || apiKey === undefined) {
    process.stderr.write("sdk-server: BENCH_SDK_GUARD=1 needs KEYWARD_URL and BENCH_SDK_API_KEY\n");
    process.exit(2);
  }
  verifier = createVerifier({ baseUrl, apiKey });
}

const ok = Buffer.from('{"ok":true}');
const serving = create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });

let handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;
if (kind === "http") {
  const answer = (res: http.ServerResponse): void => {
    res.writeHead(200, { "content-type": "application/json", "content-length": String(ok.length) });
    res.end(ok);
  };
  if (verifier === undefined) {
    handler = (req, res) => {
      req.resume();
      answer(res);
    };
  } else {
    const guard = keywardMiddleware({ verifier, permissions });
    handler = (req, res) => {
      req.resume();
      void guard(req, res).then((allowed) => {
        if (allowed) answer(res);
      });
    };
  }
} else {
  handler = connectNodeAdapter({
    interceptors: verifier === undefined ? [] : [keywardInterceptor({ verifier, permissions })],
    routes: (router) => {
      router.service(Health, { check: () => serving });
    },
  });
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/__stats") {
    const body = JSON.stringify(verifier?.stats() ?? {});
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
    return;
  }
  handler(req, res);
});
server.keepAliveTimeout = 65_000;

if (verifier !== undefined) {
  // Measured with the stream up: that is the verifier's normal state (and what makes revocation prompt).
  const deadline = Date.now() + 20_000;
  while (!verifier.stats().streamUp) {
    if (Date.now() > deadline) {
      process.stderr.write("sdk-server: the verifier's invalidation stream was not up within 20 s\n");
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === "object" && address !== null ? address.port : 0 })}\n`);
});
process.on("SIGTERM", () => {
  verifier?.close();
  server.closeAllConnections();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2_000).unref();
});
