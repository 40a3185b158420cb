// GET /docs: the interactive API reference (DESIGN.md §6). A page of ours that runs swagger-ui
// (package swagger-ui-dist) on keyward's own GET /openapi.json, every asset served by keyward
// itself from an allowlist fixed at startup: no CDN, no fonts, no telemetry, no validator badge.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import type http from "node:http";
import type http2 from "node:http2";
import type { Logger } from "../../logger.ts";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** The canonical address of the page; `/docs/` redirects here. */
export const docsPath = "/docs";
/** Where the page's assets are served: `/docs/assets/<name>`, names from the allowlist only. */
export const docsAssetsPath = "/docs/assets/";

/**
 * The Content-Security-Policy of the page and of every asset. `style-src` needs no
 * 'unsafe-inline': swagger-ui's React code sets styles through the CSSOM (element.style),
 * which CSP allows, and injects no <style> element nor style="" markup (the browser test
 * fails on any `securitypolicyviolation`). `frame-ancestors 'self'`: the admin console on the
 * same origin embeds /docs in a tab; no other site may frame it.
 */
export const docsContentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'self'",
].join("; ");

const securityHeaders = {
  "content-security-policy": docsContentSecurityPolicy,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
} as const;

/** One year, immutable: the URLs of these assets carry a hash of their content. */
const versionedCache = "public, max-age=31536000, immutable";

type Source = { file: string; type: string; versioned: boolean };
type Asset = { body: Buffer; gzipped: Buffer | undefined; type: string; etag: string; cacheControl: string };
type Loaded = { page: Asset; assets: Map<string, Asset> };

/**
 * Resolves the allowlist of files behind /docs once (throws when swagger-ui-dist is not
 * installed), and returns the handler of `/docs`, `/docs/` and `/docs/assets/<name>`; the
 * files are read and hashed on the first request and kept in memory. Answers:
 * - `GET|HEAD /docs`: 200 text/html, revalidated each time (ETag);
 * - `GET|HEAD /docs/`: 301 to `/docs`;
 * - `GET|HEAD /docs/assets/<name>` for a name of the allowlist: 200 with its content type
 *   (gzip when accepted), cached for a year (the names carry a content hash);
 * - any other path under /docs: 404; another method: 405.
 * The request path is only ever compared with the allowlist's names, never joined to a
 * directory. Every answer carries the CSP above, `nosniff` and `Referrer-Policy: no-referrer`.
 */
export function createDocsRoutes(opts: { logger: Logger }): (req: Req, res: Res, path: string) => void {
  const require = createRequire(import.meta.url);
  const dist = path.dirname(require.resolve("swagger-ui-dist/package.json"));
  const own = path.dirname(fileURLToPath(import.meta.url));
  const sources: Record<string, Source> = {
    "swagger-ui-bundle.js": { file: path.join(dist, "swagger-ui-bundle.js"), type: "text/javascript; charset=utf-8", versioned: true },
    "swagger-ui.css": { file: path.join(dist, "swagger-ui.css"), type: "text/css; charset=utf-8", versioned: true },
    // swagger-ui.css ends with `sourceMappingURL=swagger-ui.css.map` (fetched by devtools only):
    // served under that plain name, so the reference resolves.
    "swagger-ui.css.map": { file: path.join(dist, "swagger-ui.css.map"), type: "application/json; charset=utf-8", versioned: false },
    "favicon-32x32.png": { file: path.join(dist, "favicon-32x32.png"), type: "image/png", versioned: true },
    "docs.js": { file: path.join(own, "docs.js"), type: "text/javascript; charset=utf-8", versioned: true },
    "docs.css": { file: path.join(own, "docs.css"), type: "text/css; charset=utf-8", versioned: true },
  };
  const pageFile = path.join(own, "index.html");
  let loading: Promise<Loaded> | undefined;
  const load = (): Promise<Loaded> => {
    loading ??= loadAll(sources, pageFile).catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };

  return (req, res, urlPath) => {
    const method = req.method ?? "";
    if (method !== "GET" && method !== "HEAD") {
      return send(res, 405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD", "cache-control": "no-store" }, "use GET\n");
    }
    if (urlPath === "/docs/") return send(res, 301, { location: docsPath, "cache-control": "no-cache", "content-type": "text/plain; charset=utf-8" }, `see ${docsPath}\n`);
    if (urlPath !== docsPath && !urlPath.startsWith(docsAssetsPath)) return notFound(res);
    load().then(
      ({ page, assets }) => {
        const asset = urlPath === docsPath ? page : assets.get(urlPath.slice(docsAssetsPath.length));
        if (asset === undefined) return notFound(res);
        sendAsset(req, res, asset);
      },
      (err: unknown) => {
        opts.logger.error({ err }, "docs assets unavailable");
        send(res, 500, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }, "docs unavailable\n");
      },
    );
  };
}

/** Reads, hashes and gzips the allowlist; the page's `{{asset:<name>}}` become the assets' URLs. */
async function loadAll(sources: Record<string, Source>, pageFile: string): Promise<Loaded> {
  const assets = new Map<string, Asset>();
  const urls = new Map<string, string>();
  for (const [name, source] of Object.entries(sources)) {
    const body = await readFile(source.file);
    const hash = contentHash(body);
    // swagger-ui-bundle.js → swagger-ui-bundle.<hash>.js
    const served = source.versioned ? name.replace(/(\.[a-z0-9]+)$/, `.${hash}$1`) : name;
    urls.set(name, docsAssetsPath + served);
    assets.set(served, await asset(body, source.type, hash, source.versioned ? versionedCache : "no-cache"));
  }
  const template = await readFile(pageFile, "utf8");
  const html = template.replace(/\{\{asset:([^}]+)\}\}/g, (_m, name: string) => {
    const url = urls.get(name);
    if (url === undefined) throw new Error(`docs page refers to an asset not in the allowlist: ${name}`);
    return url;
  });
  const body = Buffer.from(html, "utf8");
  return { page: await asset(body, "text/html; charset=utf-8", contentHash(body), "no-cache"), assets };
}

async function asset(body: Buffer, type: string, hash: string, cacheControl: string): Promise<Asset> {
  const compressible = !type.startsWith("image/");
  return { body, type, etag: `"${hash}"`, cacheControl, gzipped: compressible ? await promisify(gzip)(body) : undefined };
}

function contentHash(body: Buffer): string {
  return createHash("sha256").update(body).digest("base64url").slice(0, 12);
}

function sendAsset(req: Req, res: Res, asset: Asset): void {
  const headers: Record<string, string | number> = {
    "content-type": asset.type,
    "cache-control": asset.cacheControl,
    etag: asset.etag,
    vary: "accept-encoding",
  };
  if (req.headers["if-none-match"] === asset.etag) return send(res, 304, headers, "");
  const acceptsGzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
  if (asset.gzipped !== undefined && acceptsGzip) {
    headers["content-encoding"] = "gzip";
    return send(res, 200, headers, asset.gzipped);
  }
  send(res, 200, headers, asset.body);
}

function notFound(res: Res): void {
  send(res, 404, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }, "not found\n");
}

/** Writes a response with the security headers, unless the client has gone (no body for HEAD). */
function send(res: Res, status: number, headers: Record<string, string | number>, body: string | Buffer): void {
  const h1 = res as http.ServerResponse;
  if (h1.destroyed || h1.writableEnded) return;
  if (status === 304) {
    h1.writeHead(status, { ...securityHeaders, ...headers });
    return void h1.end();
  }
  const length = typeof body === "string" ? Buffer.byteLength(body) : body.length;
  h1.writeHead(status, { ...securityHeaders, ...headers, "content-length": length });
  h1.end(body);
}
