// GET /docs: the interactive API reference (DESIGN.md §6). A page of ours that runs swagger-ui
// (package swagger-ui-dist) on keyward's own GET /openapi.json, every asset served by keyward
// itself from an allowlist fixed at startup: no CDN, no fonts, no telemetry, no validator badge.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "../../logger.ts";
import { contentHash, createStaticRoutes, staticAsset, versionedCache, type StaticAsset, type StaticRoutes, type StaticSite } from "../static-assets.ts";

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

type Source = { file: string; type: string; versioned: boolean };

/**
 * Resolves the allowlist of files behind /docs once (throws when swagger-ui-dist is not
 * installed), and returns the handler of `/docs`, `/docs/` and `/docs/assets/<name>`; the
 * files are read and hashed on the first request and kept in memory. Answers:
 * - `GET|HEAD /docs`: 200 text/html, revalidated each time (ETag);
 * - `GET|HEAD /docs/`: 301 to `/docs`;
 * - `GET|HEAD /docs/assets/<name>` for a name of the allowlist: 200 with its content type
 *   (gzip when accepted), cached for a year (the names carry a content hash);
 * - any other path under /docs: 404; another method: 405; files unreadable: 500.
 * The request path is only ever compared with the allowlist's names, never joined to a
 * directory (../static-assets.ts). Every answer carries the CSP above, `nosniff` and
 * `Referrer-Policy: no-referrer`.
 */
export function createDocsRoutes(opts: { logger: Logger }): StaticRoutes {
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
  return createStaticRoutes({
    base: docsPath,
    headers: securityHeaders,
    load: () => loadAll(sources, pageFile),
    onLoadFailure: () => ({ status: 500, text: "docs unavailable\n" }),
    logger: opts.logger,
  });
}

/** Reads, hashes and gzips the allowlist; the page's `{{asset:<name>}}` become the assets' URLs. */
async function loadAll(sources: Record<string, Source>, pageFile: string): Promise<StaticSite> {
  const assets = new Map<string, StaticAsset>();
  const urls = new Map<string, string>();
  for (const [name, source] of Object.entries(sources)) {
    const body = await readFile(source.file);
    const hash = contentHash(body);
    // swagger-ui-bundle.js → swagger-ui-bundle.<hash>.js
    const served = source.versioned ? name.replace(/(\.[a-z0-9]+)$/, `.${hash}$1`) : name;
    urls.set(name, docsAssetsPath + served);
    assets.set(served, await staticAsset(body, source.type, hash, source.versioned ? versionedCache : "no-cache"));
  }
  const template = await readFile(pageFile, "utf8");
  const html = template.replace(/\{\{asset:([^}]+)\}\}/g, (_m, name: string) => {
    const url = urls.get(name);
    if (url === undefined) throw new Error(`docs page refers to an asset not in the allowlist: ${name}`);
    return url;
  });
  const body = Buffer.from(html, "utf8");
  return { page: await staticAsset(body, "text/html; charset=utf-8", contentHash(body), "no-cache"), assets };
}

