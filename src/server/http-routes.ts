// Plain HTTP endpoints next to the RPCs: the health probe, the JWKS document and the metrics.
import type http from "node:http";
import type http2 from "node:http2";
import type { Logger } from "../logger.ts";
import { metricsContentType } from "../metrics.ts";
import { createDocsRoutes } from "./docs/docs-routes.ts";
import type { HealthReport } from "./health.ts";
import type { RequestHandler } from "./listener.ts";

type Res = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Wraps the Connect handler with `GET /healthz`: 200 and the component states when keyward can
 * serve, 503 and the same body (naming the failing component) when it cannot or is shutting down;
 * and `GET /.well-known/jwks.json`: the public keys that verify minted tokens (RFC 7517 §5,
 * the same as TokenExchangeService.GetJwks), cacheable for 5 minutes; and `GET /metrics`: the
 * Prometheus text exposition (format 0.0.4) of `metrics`, without authentication (like
 * /healthz: expose the port to the scraper, not to the internet); and `GET /docs` with its
 * `/docs/assets/…`: the interactive API reference (src/server/docs/docs-routes.ts). All answer
 * HEAD too.
 */
export function withHttpRoutes(
  connectHandler: RequestHandler,
  opts: { health: () => HealthReport; jwks: () => readonly object[]; metrics: () => Promise<string>; logger: Logger },
): RequestHandler {
  const docs = createDocsRoutes({ logger: opts.logger });
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path === "/docs" || path.startsWith("/docs/")) return docs(req, res, path);
    if (path === "/metrics") {
      if (req.method !== "GET" && req.method !== "HEAD") return sendJson(res, 405, { error: { code: "method_not_allowed", message: "use GET" } });
      opts.metrics().then(
        (text) => sendText(res, 200, text, metricsContentType),
        (err: unknown) => {
          opts.logger.error({ err }, "metrics exposition failed");
          sendText(res, 500, "metrics unavailable\n", "text/plain; charset=utf-8");
        },
      );
      return;
    }
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

/** Writes a text response, unless the client has gone meanwhile (Node sends no body for HEAD). */
function sendText(res: Res, status: number, text: string, contentType: string): void {
  const h1 = res as http.ServerResponse;
  if (h1.destroyed || h1.writableEnded) return;
  h1.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  h1.end(text);
}
