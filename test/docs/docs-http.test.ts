// GET /docs over plain HTTP (issue 14, item 2): the page and its allowlisted assets with their
// content types, security headers and caching; everything else under /docs is 404, however
// the path is spelled; nothing the page loads points at another host.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import http from "node:http";
import http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { docsContentSecurityPolicy } from "../../src/server/docs/docs-routes.ts";
import { startTestServer, type TestServer } from "../harness.ts";

let server: TestServer;
let port: number;

beforeAll(async () => {
  server = await startTestServer();
  port = Number(new URL(server.url).port);
}, 60_000);

afterAll(() => server?.stop(), 60_000);

type Answer = { status: number; headers: http.IncomingHttpHeaders; body: Buffer };

/**
 * One HTTP/1.1 request with the path sent exactly as given (node:http does not normalise
 * `..` or percent-escapes, unlike fetch), bounded to 10 s.
 */
function raw(method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.on("error", reject);
    req.end();
  });
}

/** The asset URLs the page refers to (`href`/`src` under /docs/assets/). */
async function assetUrls(): Promise<string[]> {
  const page = (await raw("GET", "/docs")).body.toString("utf8");
  return [...page.matchAll(/(?:href|src)="(\/docs\/assets\/[^"]+)"/g)].map((m) => m[1]!);
}

function expectSecurityHeaders(a: Answer): void {
  expect(a.headers["content-security-policy"]).toBe(docsContentSecurityPolicy);
  expect(a.headers["x-content-type-options"]).toBe("nosniff");
  expect(a.headers["referrer-policy"]).toBe("no-referrer");
}

describe("GET /docs", () => {
  it("when requested, then it answers 200 text/html with the strict CSP, nosniff and no-referrer, revalidated each time", async () => {
    const a = await raw("GET", "/docs");
    expect(a.status).toBe(200);
    expect(a.headers["content-type"]).toBe("text/html; charset=utf-8");
    expectSecurityHeaders(a);
    expect(a.headers["cache-control"]).toBe("no-cache");
    const csp = a.headers["content-security-policy"];
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'", "font-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'self'"]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toContain("unsafe");
    const html = a.body.toString("utf8");
    expect(html).toContain('<a class="kw-download" href="/openapi.json" download');
    // Revalidation: the same ETag answers 304 without a body.
    const again = await raw("GET", "/docs", { "if-none-match": String(a.headers.etag) });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it("when the page is read, then it refers to no absolute http(s) URL, has no inline script, style or event handler, and loads swagger-ui and our initializer from /docs/assets", async () => {
    const html = (await raw("GET", "/docs")).body.toString("utf8");
    expect(html).not.toMatch(/(?:href|src)\s*=\s*"(?:https?:)?\/\//i);
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    expect(html).not.toMatch(/<style\b/i);
    expect(html).not.toMatch(/\sstyle\s*=/i);
    expect(html).not.toMatch(/\son[a-z]+\s*=/i);
    const urls = await assetUrls();
    expect(urls).toEqual(expect.arrayContaining([
      expect.stringMatching(/^\/docs\/assets\/swagger-ui-bundle\.[\w-]{12}\.js$/),
      expect.stringMatching(/^\/docs\/assets\/swagger-ui\.[\w-]{12}\.css$/),
      expect.stringMatching(/^\/docs\/assets\/docs\.[\w-]{12}\.js$/),
      expect.stringMatching(/^\/docs\/assets\/docs\.[\w-]{12}\.css$/),
      expect.stringMatching(/^\/docs\/assets\/favicon-32x32\.[\w-]{12}\.png$/),
    ]));
  });

  it("when each asset the page refers to is requested, then it answers 200 with its content type, the security headers and a year's immutable cache", async () => {
    const types: Record<string, string> = { js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8", png: "image/png" };
    const urls = await assetUrls();
    expect(urls.length).toBe(5);
    for (const url of urls) {
      const a = await raw("GET", url);
      expect(a.status).toBe(200);
      expect(a.headers["content-type"]).toBe(types[url.split(".").pop()!]);
      expect(a.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect(a.headers["content-length"]).toBe(String(a.body.length));
      expect(a.body.length).toBeGreaterThan(0);
      expectSecurityHeaders(a);
    }
    // The CSS's sourceMappingURL resolves (devtools fetch it), as JSON.
    const map = await raw("GET", "/docs/assets/swagger-ui.css.map");
    expect(map.status).toBe(200);
    expect(map.headers["content-type"]).toBe("application/json; charset=utf-8");
  });

  it("when a client accepts gzip, then the scripts and styles come gzipped and unzip to the same bytes", async () => {
    const bundle = (await assetUrls()).find((u) => u.includes("swagger-ui-bundle"))!;
    const plain = await raw("GET", bundle);
    const zipped = await raw("GET", bundle, { "accept-encoding": "gzip, br" });
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    expect(zipped.headers["vary"]).toBe("accept-encoding");
    expect(zipped.body.length).toBeLessThan(plain.body.length / 2);
    expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
  });

  it("when HEAD is sent, then the page and an asset answer like GET without a body", async () => {
    for (const url of ["/docs", ...(await assetUrls())]) {
      const get = await raw("GET", url);
      const head = await raw("HEAD", url);
      expect(head.status).toBe(200);
      expect(head.headers["content-type"]).toBe(get.headers["content-type"]);
      expect(head.headers["content-length"]).toBe(get.headers["content-length"]);
      expect(head.body.length).toBe(0);
    }
  });

  it("when /docs/ is requested, then it redirects to the one canonical /docs", async () => {
    const a = await raw("GET", "/docs/");
    expect(a.status).toBe(301);
    expect(a.headers.location).toBe("/docs");
  });

  it("when a path under /docs is not an allowlisted asset (traversal, escapes, files of the package not on the list, unhashed names), then it answers 404", async () => {
    const refused = [
      "/docs/assets/../../package.json",
      "/docs/assets/..%2f..%2fpackage.json",
      "/docs/assets/%2e%2e/%2e%2e/package.json",
      "/docs/assets/%2e%2e%2f%2e%2e%2fpackage.json",
      "/docs/assets/..\\..\\package.json",
      "/docs/assets/",
      "/docs/assets",
      "/docs/assets/index.html",
      "/docs/assets/swagger-initializer.js",
      "/docs/assets/swagger-ui-bundle.js.map",
      "/docs/assets/swagger-ui-bundle.js",
      "/docs/assets/docs-routes.ts",
      "/docs/assets/index.html",
      "/docs/assets//etc/passwd",
      "/docs/index.html",
      "/docs/x",
      "/docs//assets/swagger-ui.css.map",
      // Double encoding, NUL, overlong UTF-8, other case, trailing slash or dot, backslash.
      "/docs/assets/%252e%252e%252fpackage.json",
      "/docs/assets/swagger-ui.css.map%00",
      "/docs/assets/swagger-ui.css.map%00.png",
      "/docs/assets/%c0%ae%c0%ae/package.json",
      "/docs/assets/%c0%af..%c0%afpackage.json",
      "/docs/assets/SWAGGER-UI.CSS.MAP",
      "/docs/assets/swagger-ui.css.map/",
      "/docs/assets/swagger-ui.css.map/.",
      "/docs/assets/swagger-ui.css.map%20",
      "/docs/assets/swagger%2dui.css.map",
      "/docs/assets/%5c..%5cpackage.json",
      "/docs/assets/__proto__",
      "/docs/assets/constructor",
      "/docs/./",
      "/docs/../openapi.json",
    ];
    for (const path of refused) {
      const a = await raw("GET", path);
      expect({ path, status: a.status }).toEqual({ path, status: 404 });
      expect(a.body.toString("utf8")).toBe("not found\n");
    }
  });

  it("when another method is used, then it answers 405 naming GET and HEAD", async () => {
    const a = await raw("POST", "/docs");
    expect(a.status).toBe(405);
    expect(a.headers.allow).toBe("GET, HEAD");
  });

  it("when the assets are read, then the CSS loads nothing from another host and our initializer points only at /openapi.json", async () => {
    const urls = await assetUrls();
    const css = (await raw("GET", urls.find((u) => u.includes("/swagger-ui."))!)).body.toString("utf8");
    expect(css).not.toMatch(/url\(\s*["']?(?:https?:)?\/\//i);
    expect(css).not.toMatch(/@import/i);
    expect(css).not.toMatch(/@font-face/i);
    const own = (await raw("GET", urls.find((u) => /\/docs\.[\w-]+\.css$/.test(u))!)).body.toString("utf8");
    expect(own).not.toMatch(/url\(|@import|@font-face/i);
    const init = (await raw("GET", urls.find((u) => /\/docs\.[\w-]+\.js$/.test(u))!)).body.toString("utf8");
    expect(init).toContain('url: "/openapi.json"');
    expect(init).toContain("validatorUrl: null");
    expect(init).toContain("persistAuthorization: false");
    expect(init).not.toMatch(/https?:\/\//);
  });

  it("when requested over HTTP/2 (h2c), then the page answers the same", async () => {
    const session = http2.connect(server.url);
    try {
      const { status, type, csp } = await new Promise<{ status: number; type: string; csp: string }>((resolve, reject) => {
        const req = session.request({ ":path": "/docs", ":method": "GET" });
        req.setTimeout(10_000, () => req.close(http2.constants.NGHTTP2_CANCEL));
        req.on("response", (h) => resolve({ status: Number(h[":status"]), type: String(h["content-type"]), csp: String(h["content-security-policy"]) }));
        req.on("error", reject);
        req.on("close", () => reject(new Error("h2 stream closed before its answer")));
        req.resume();
      });
      expect(status).toBe(200);
      expect(type).toBe("text/html; charset=utf-8");
      expect(csp).toBe(docsContentSecurityPolicy);
    } finally {
      session.close();
    }
  });
});
