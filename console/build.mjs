// Builds the admin console (DESIGN.md §7b) with esbuild: console/src/main.tsx (Preact, the
// generated gen/ types, @connectrpc/connect-web) and the CSS it imports, bundled and minified
// into files named by their content hash, plus an index.html that only refers to them (no
// inline script or style: the page's CSP allows neither).
//
// Output: console/dist/builds/<hash>/{index.html, assets/…} and the symlink console/dist/current
// pointing at the newest build. Safe to run concurrently (tests do): each run writes into a
// temporary directory, renames it to builds/<hash> (a build already there is kept: same hash,
// same bytes), then replaces the `current` link with rename(2), which is atomic; a reader sees
// the old build or the new one, never a half-written one. Builds older than an hour that are
// not current are removed.
//
// Usage: node console/build.mjs   (npm run build:console). Prints the build's directory.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const consoleDir = path.dirname(fileURLToPath(import.meta.url));
const distDir = path.join(consoleDir, "dist");
const buildsDir = path.join(distDir, "builds");
const currentLink = path.join(distDir, "current");

/** Builds the console; resolves the directory of the build now current. */
export async function buildConsole() {
  await mkdir(buildsDir, { recursive: true });
  const tmp = path.join(distDir, `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
  try {
    const result = await esbuild.build({
      entryPoints: { console: path.join(consoleDir, "src/main.tsx") },
      outdir: path.join(tmp, "assets"),
      entryNames: "[name].[hash]",
      assetNames: "[name].[hash]",
      bundle: true,
      minify: true,
      format: "iife",
      platform: "browser",
      target: ["es2022"],
      jsx: "automatic",
      jsxImportSource: "preact",
      tsconfig: path.join(consoleDir, "tsconfig.json"),
      define: { "process.env.NODE_ENV": '"production"' },
      // Licence comments carry URLs to elsewhere; the bundle must name no other origin.
      legalComments: "none",
      sourcemap: false,
      metafile: true,
      write: true,
      logLevel: "warning",
    });
    const outputs = Object.keys(result.metafile.outputs).map((o) => path.basename(o));
    const script = outputs.find((o) => o.endsWith(".js"));
    const style = outputs.find((o) => o.endsWith(".css"));
    if (script === undefined || style === undefined) throw new Error(`esbuild produced no script or no stylesheet: ${outputs.join(", ")}`);
    const html = indexHtml(`assets/${script}`, `assets/${style}`);
    await writeFile(path.join(tmp, "index.html"), html);
    const hash = createHash("sha256").update(html).digest("hex").slice(0, 16);
    const build = path.join(buildsDir, hash);
    try {
      await rename(tmp, build);
    } catch (err) {
      // Another run built the same thing first (same hash: same files).
      if (err.code !== "ENOTEMPTY" && err.code !== "EEXIST") throw err;
    }
    await pointCurrentAt(hash);
    await prune(hash);
    return build;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The page. Asset URLs are relative to /console/ (the server maps `assets/<name>` of the build
 * to /console/assets/<name>), so the page is written with absolute /console/assets/ paths.
 */
function indexHtml(script, style) {
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>keyward console</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/console/${style}">
  <script defer src="/console/${script}"></script>
</head>
<body>
  <div id="app"></div>
  <noscript>The keyward console needs JavaScript.</noscript>
</body>
</html>
`;
}

/** Replaces console/dist/current with a link to builds/<hash>, atomically. */
async function pointCurrentAt(hash) {
  const target = path.join("builds", hash);
  try {
    if ((await readlink(currentLink)) === target) return;
  } catch {
    // Missing, or not a link (a directory from by hand): replaced below.
  }
  const staged = path.join(distDir, `.link-${process.pid}-${randomBytes(6).toString("hex")}`);
  await symlink(target, staged);
  try {
    await rename(staged, currentLink);
  } catch (err) {
    await rm(staged, { force: true });
    if (err.code !== "EISDIR" && err.code !== "ENOTDIR" && err.code !== "ENOTEMPTY") throw err;
    await rm(currentLink, { recursive: true, force: true });
    await pointCurrentAt(hash);
  }
}

/** Removes builds other than `keep` older than an hour (a running server keeps its files in memory). */
async function prune(keep) {
  const cutoff = Date.now() - 3600_000;
  for (const name of await readdir(buildsDir)) {
    if (name === keep) continue;
    const dir = path.join(buildsDir, name);
    const info = await stat(dir).catch(() => undefined);
    if (info !== undefined && info.mtimeMs < cutoff) await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const build = await buildConsole();
  const html = await readFile(path.join(build, "index.html"), "utf8");
  const assets = [...html.matchAll(/\/console\/(assets\/[^"]+)/g)].map((m) => m[1]);
  console.log(`console built: ${path.relative(process.cwd(), build)} (${assets.join(", ")})`);
}
