// Serving a small static site from memory: one page and an allowlist of assets whose names
// carry a hash of their content. Used by GET /docs (docs/docs-routes.ts) and GET /console
// (console-routes.ts). The request path is only ever compared with the allowlist's names,
// never joined to a directory.
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import type http from "node:http";
import type http2 from "node:http2";
import type { Logger } from "../logger.ts";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** The handler of a site: `path` is the request's path without its query. */
export type StaticRoutes = (req: Req, res: Res, path: string) => void;

/** One file held in memory, ready to send (gzip precomputed for text types). */
export type StaticAsset = { body: Buffer; gzipped: Buffer | undefined; type: string; etag: string; cacheControl: string };
/** A site: its page and its assets by served name. */
export type StaticSite = { page: StaticAsset; assets: ReadonlyMap<string, StaticAsset> };

/** One year, immutable: for assets whose URLs carry a hash of their content. */
export const versionedCache = "public, max-age=31536000, immutable";

/** The first 12 base64url characters of the SHA-256 of `body`. */
export function contentHash(body: Buffer): string {
  return createHash("sha256").update(body).digest("base64url").slice(0, 12);
}

/** An asset of `body` (`type`: its Content-Type), with an ETag of `hash`; gzipped unless an image. */
export async function staticAsset(body: Buffer, type: string, hash: string, cacheControl: string): Promise<StaticAsset> {
  const compressible = !type.startsWith("image/");
  return { body, type, etag: `"${hash}"`, cacheControl, gzipped: compressible ? await promisify(gzip)(body) : undefined };
}

/** How a load failure is answered: the status and a plain-text body. */
export type LoadFailure = { status: number; text: string };

/**
 * The handler of a static site at `base` (e.g. "/docs"): the page at `base`, `base/` redirected
 * (301) to it, the assets at `base/assets/<name>`. `load` is called on the first request and its
 * result kept in memory; a failed load is not kept (the next request tries again) and is
 * answered as `onLoadFailure` says (logged as an error unless it returns `quiet`). Answers:
 * - `GET|HEAD base`: 200 text/html, revalidated each time (ETag, 304);
 * - `GET|HEAD base/assets/<name>` for a name of the site: 200 with its type and cache control
 *   (gzip when accepted); any other path under `base`: 404; another method: 405.
 * Every answer carries `headers` (the site's CSP, nosniff, no-referrer, …).
 */
export function createStaticRoutes(opts: {
  base: string;
  headers: Readonly<Record<string, string>>;
  load: () => Promise<StaticSite>;
  onLoadFailure: (err: unknown) => LoadFailure & { quiet?: boolean };
  logger: Logger;
}): StaticRoutes {
  const assetsPath = `${opts.base}/assets/`;
  let loading: Promise<StaticSite> | undefined;
  const load = (): Promise<StaticSite> => {
    loading ??= opts.load().catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };
  const send = (res: Res, status: number, headers: Record<string, string | number>, body: string | Buffer) => sendWith(opts.headers, res, status, headers, body);
  const text = (res: Res, status: number, body: string, extra: Record<string, string> = {}) =>
    send(res, status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...extra }, body);

  return (req, res, urlPath) => {
    const method = req.method ?? "";
    if (method !== "GET" && method !== "HEAD") return text(res, 405, "use GET\n", { allow: "GET, HEAD" });
    if (urlPath === `${opts.base}/`) return text(res, 301, `see ${opts.base}\n`, { location: opts.base, "cache-control": "no-cache" });
    if (urlPath !== opts.base && !urlPath.startsWith(assetsPath)) return text(res, 404, "not found\n");
    load().then(
      ({ page, assets }) => {
        const asset = urlPath === opts.base ? page : assets.get(urlPath.slice(assetsPath.length));
        if (asset === undefined) return text(res, 404, "not found\n");
        const headers: Record<string, string | number> = { "content-type": asset.type, "cache-control": asset.cacheControl, etag: asset.etag, vary: "accept-encoding" };
        if (req.headers["if-none-match"] === asset.etag) return send(res, 304, headers, "");
        if (asset.gzipped !== undefined && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""))) {
          return send(res, 200, { ...headers, "content-encoding": "gzip" }, asset.gzipped);
        }
        send(res, 200, headers, asset.body);
      },
      (err: unknown) => {
        const failure = opts.onLoadFailure(err);
        if (failure.quiet !== true) opts.logger.error({ err }, `${opts.base} assets unavailable`);
        text(res, failure.status, failure.text);
      },
    );
  };
}

/** Writes a response with the site's headers, unless the client has gone (no body for HEAD nor 304). */
function sendWith(site: Readonly<Record<string, string>>, res: Res, status: number, headers: Record<string, string | number>, body: string | Buffer): void {
  const h1 = res as http.ServerResponse;
  if (h1.destroyed || h1.writableEnded) return;
  if (status === 304) {
    h1.writeHead(status, { ...site, ...headers });
    return void h1.end();
  }
  const length = typeof body === "string" ? Buffer.byteLength(body) : body.length;
  h1.writeHead(status, { ...site, ...headers, "content-length": length });
  h1.end(body);
}
