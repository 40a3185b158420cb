// Plain HTTP endpoints next to the RPCs: the health probe and the JWKS document.
import type http from "node:http";
import type http2 from "node:http2";
import type { HealthReport } from "./health.ts";
import type { RequestHandler } from "./listener.ts";

type Res = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Wraps the Connect handler with `GET /healthz`: 200 and the component states when keyward can
 * serve, 503 and the same body (naming the failing component) when it cannot or is shutting down;
 * and `GET /.well-known/jwks.json`: the public keys that verify minted tokens (RFC 7517 §5,
 * the same as TokenExchangeService.GetJwks), cacheable for 5 minutes. Both answer HEAD too.
 */
export function withHttpRoutes(connectHandler: RequestHandler, opts: { health: () => HealthReport; jwks: () => readonly object[] }): RequestHandler {
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path === "/healthz" || path === "/.well-known/jwks.json") {
      if (req.method !== "GET" && req.method !== "HEAD") return sendJson(res, 405, { error: { code: "method_not_allowed", message: "use GET" } });
      if (path === "/.well-known/jwks.json") return sendJson(res, 200, { keys: opts.jwks() }, "public, max-age=300");
      const report = opts.health();
      return sendJson(res, report.status === "SERVING" ? 200 : 503, report);
    }
    connectHandler(req, res);
  };
}

/** Writes a small JSON response (Node sends no body for HEAD). */
function sendJson(res: Res, status: number, body: unknown, cacheControl = "no-store"): void {
  const text = JSON.stringify(body);
  (res as http.ServerResponse).writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": cacheControl,
  });
  (res as http.ServerResponse).end(text);
}
