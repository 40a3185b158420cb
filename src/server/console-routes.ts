// GET /console: the admin console (DESIGN.md §7b), a static page built from console/ by
// `npm run build:console` (console/build.mjs) and served from memory by keyward, with its
// assets under /console/assets/<name> (names carry a content hash). Nothing from elsewhere:
// the page talks to keyward's own RPCs and frames keyward's own /docs.
import { readdir, readFile, realpath } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "../logger.ts";
import { contentHash, createStaticRoutes, staticAsset, versionedCache, type StaticAsset, type StaticRoutes, type StaticSite } from "./static-assets.ts";

/** The canonical address of the console; `/console/` redirects here. */
export const consolePath = "/console";

/**
 * The console's Content-Security-Policy (page and assets): its own scripts and styles only, no
 * inline code, RPCs to its own origin, /docs framed from its own origin (the API reference
 * tab), nothing may frame the console, no <base>, no form posts anywhere. `img-src data:` for
 * the empty favicon.
 */
export const consoleContentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const securityHeaders = {
  "content-security-policy": consoleContentSecurityPolicy,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  "x-frame-options": "DENY",
} as const;

/** The build console/build.mjs keeps current: a link to console/dist/builds/<hash>. */
export const defaultConsoleBuild = fileURLToPath(new URL("../../console/dist/current", import.meta.url));

/** The types of the files a build may hold; any other file in its assets/ is not served. */
const assetTypes: Readonly<Record<string, string>> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** The console has not been built (no console/dist/current). */
class ConsoleNotBuilt extends Error {}

/**
 * The handler of `/console`, `/console/` and `/console/assets/<name>`. The build (`build`: a
 * directory with index.html and assets/, by default console/dist/current) is read on the first
 * request and kept in memory until keyward restarts: a rebuild is served after a restart. While
 * there is no build, every request answers 503 text saying to run `npm run build:console`, and
 * the next request looks again. Answers as ./static-assets.ts says (200, 301 from `/console/`,
 * 304, 404 for any other path, 405 for another method), each with the CSP above, `nosniff`,
 * `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`.
 */
export function createConsoleRoutes(opts: { logger: Logger; build?: string }): StaticRoutes {
  const build = opts.build ?? defaultConsoleBuild;
  return createStaticRoutes({
    base: consolePath,
    headers: securityHeaders,
    load: () => loadBuild(build),
    onLoadFailure: (err) =>
      err instanceof ConsoleNotBuilt
        ? { status: 503, text: "The admin console is not built. Run `npm run build:console` (npm start and .ci/run do it), then reload this page.\n", quiet: true }
        : { status: 500, text: "console unavailable\n" },
    logger: opts.logger,
  });
}

/**
 * Reads one build: its index.html (which refers to `/console/assets/<name>` only) and every
 * file of assets/ with a known type. Fails when the page refers to an asset the build lacks.
 */
async function loadBuild(link: string): Promise<StaticSite> {
  // Resolved once, so the files come from one build even if a rebuild moves the link meanwhile.
  const dir = await realpath(link).catch((err: NodeJS.ErrnoException) => {
    throw err.code === "ENOENT" ? new ConsoleNotBuilt(`no console build at ${link}`) : err;
  });
  const html = await readFile(path.join(dir, "index.html")).catch((err: NodeJS.ErrnoException) => {
    throw err.code === "ENOENT" ? new ConsoleNotBuilt(`no index.html in ${dir}`) : err;
  });
  const assets = new Map<string, StaticAsset>();
  for (const name of await readdir(path.join(dir, "assets"))) {
    const type = assetTypes[path.extname(name)];
    if (type === undefined || !/^[A-Za-z0-9._-]+$/.test(name)) continue;
    const body = await readFile(path.join(dir, "assets", name));
    assets.set(name, await staticAsset(body, type, contentHash(body), versionedCache));
  }
  for (const [, name] of html.toString("utf8").matchAll(/\/console\/assets\/([^"'\s>]+)/g)) {
    if (!assets.has(name ?? "")) throw new Error(`the console page refers to an asset its build lacks: ${name}`);
  }
  return { page: await staticAsset(html, "text/html; charset=utf-8", contentHash(html), "no-cache"), assets };
}
