// The admin console's shell (issue 15, DESIGN.md §7b): GET /console and its assets over HTTP
// (CSP, allowlist, 404/405/301, 503 before a build), and in chromium against a live keyward:
// sign-in with a bootstrap admin key, a refused key, the credential kept in memory only, a
// revoked credential ending the session, keyboard tabs, sign-out, and the API reference tab
// authorized with the same credential. Screenshots go to test-output/console/.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { cp, mkdtemp, readFile, realpath, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { describeError, SignInRefused } from "../../console/src/describe-error.ts";
import { implies } from "../../console/src/permissions.ts";
import { consoleContentSecurityPolicy, createConsoleRoutes, defaultConsoleBuild } from "../../src/server/console-routes.ts";
import { createLogger } from "../../src/logger.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { createUser, userToken } from "../tokens/helpers.ts";
import { buildConsoleOnce, openConsole, screenshotDir, type ConsoleBrowser } from "./console-browser.ts";

let server: TestServer;
let tenant: TestTenant;
let origin: string;

beforeAll(async () => {
  await buildConsoleOnce();
  server = await startTestServer();
  tenant = await createTestTenant(server, "console");
  origin = new URL(server.url).origin;
}, 120_000);

afterAll(async () => {
  await server?.stop();
}, 60_000);

/** A raw HTTP/1.1 request (the path is sent as written, not normalised as fetch would). */
function rawGet(path: string, method = "GET", base = origin): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/`, { method, path, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}

/** The asset URLs the console page refers to. */
function assetUrls(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1]!);
}

/** A fine-grained key of the tenant made through the API; returns its name and secret. */
let made = 0;
async function makeKey(permissions: string[]): Promise<{ name: string; secret: string }> {
  made += 1;
  const created = await server.client(KeyService).createKey({ parent: `tenants/${tenant.slug}`, displayName: `console ${made} ${permissions.join(" ")}`, permissions, expireDays: 7 }, withKey(tenant.adminKey));
  return { name: created.key!.name, secret: created.secret };
}

/** The session ended on its own: the sign-in screen's notice says `why` and no tab is left. */
async function expectSessionEnded(c: ConsoleBrowser, why: RegExp): Promise<void> {
  const notice = c.page.getByTestId("signin-notice");
  await notice.waitFor({ state: "visible" });
  expect(await notice.textContent()).toMatch(why);
  expect(await c.page.getByRole("tablist").count()).toBe(0);
}

/** Everything the browser keeps and shows: cookies, storages, IndexedDB, URL, the DOM, every input's value. */
async function keptByBrowser(c: ConsoleBrowser): Promise<string> {
  const state = await c.context.storageState({ indexedDB: true });
  const frames = await Promise.all(
    c.page.frames().map((f) =>
      f.evaluate<string>(
        "JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie, url: location.href, dom: document.documentElement.outerHTML, inputs: [...document.querySelectorAll('input, textarea')].map((i) => i.value) })",
      ),
    ),
  );
  return JSON.stringify(state) + frames.join("") + c.page.url();
}

describe("GET /console over HTTP", () => {
  it("when requested, then the page answers 200 HTML with the strict CSP, nosniff, no-referrer and no framing, and refers only to its own hashed assets, with no inline script or style", async () => {
    const res = await rawGet("/console");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["content-security-policy"]).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    expect(res.headers["content-security-policy"]).toBe(consoleContentSecurityPolicy);
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["referrer-policy"]).toBe("no-referrer");
    expect(res.headers["x-frame-options"]).toBe("DENY");
    expect(res.headers["cache-control"]).toBe("no-cache");
    const urls = assetUrls(res.body);
    expect(urls.filter((u) => /^\/console\/assets\/console\.[A-Z0-9]+\.js$/.test(u))).toHaveLength(1);
    expect(urls.filter((u) => /^\/console\/assets\/console\.[A-Z0-9]+\.css$/.test(u))).toHaveLength(1);
    expect(res.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(res.body).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    expect(res.body).not.toMatch(/https?:\/\//);
  });

  it("when its assets are requested, then each answers with its type, cached for a year, gzipped when asked, with the same CSP; and the bundle names no other origin", async () => {
    const page = await rawGet("/console");
    for (const url of assetUrls(page.body)) {
      const res = await rawGet(url);
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe(url.endsWith(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8");
      expect(res.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect(res.headers["content-security-policy"]).toBe(consoleContentSecurityPolicy);
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      // Only the XML namespace names preact's renderer compares with; nothing is fetched from them.
      const others = [...res.body.matchAll(/https?:\/\/[^"'`\s)]*/g)].map((m) => m[0]).filter((u) => !/^http:\/\/www\.w3\.org\/(1999\/xhtml|2000\/svg|1998\/Math\/MathML|1999\/xlink|XML\/1998\/namespace)$/.test(u));
      expect(others).toEqual([]);
      const zipped = await fetch(`${origin}${url}`, { headers: { "accept-encoding": "gzip" } });
      expect(zipped.headers.get("content-encoding")).toBe("gzip");
      expect(await zipped.text()).toBe(res.body);
    }
  });

  it("when a path is not the page nor one of its assets, then 404; /console/ redirects to /console; a POST is 405", async () => {
    const page = await rawGet("/console");
    const asset = assetUrls(page.body)[0]!;
    for (const p of ["/console/index.html", "/console/assets/", "/console/assets/nope.js", "/console/assets/../index.html", "/console/assets/..%2Findex.html", `${asset}x`, asset.replace(/[^/]+$/, (n) => n.toLowerCase()), "/console/builds", "/console/current/index.html", "/console/assets/%2e%2e/%2e%2e/package.json"]) {
      const res = await rawGet(p);
      expect({ p, status: res.status, csp: res.headers["content-security-policy"] }).toEqual({ p, status: 404, csp: consoleContentSecurityPolicy });
    }
    const slash = await rawGet("/console/");
    expect(slash.status).toBe(301);
    expect(slash.headers["location"]).toBe("/console");
    const post = await rawGet("/console", "POST");
    expect(post.status).toBe(405);
    expect(post.headers["allow"]).toBe("GET, HEAD");
    const head = await rawGet("/console", "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
  });

  it("when the console is not built, then /console answers 503 saying to run npm run build:console, and serves the build on the first request after it appears", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "kw-console-"));
    const build = path.join(dir, "current");
    const routes = createConsoleRoutes({ logger: createLogger({ level: "silent" }), build });
    const scratch = http.createServer((req, res) => routes(req, res, (req.url ?? "").split("?")[0]!));
    await new Promise<void>((resolve) => scratch.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(scratch.address() as { port: number }).port}`;
    try {
      const missing = await rawGet("/console", "GET", base);
      expect(missing.status).toBe(503);
      expect(missing.body).toContain("npm run build:console");
      expect(missing.headers["content-security-policy"]).toBe(consoleContentSecurityPolicy);
      expect((await rawGet("/console/assets/x.js", "GET", base)).status).toBe(503);

      await cp(await realpath(defaultConsoleBuild), build, { recursive: true });
      const served = await rawGet("/console", "GET", base);
      expect(served.status).toBe(200);
      expect(served.body).toBe(await readFile(path.join(build, "index.html"), "utf8"));
    } finally {
      await new Promise((resolve) => scratch.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("when /docs is requested, then its CSP lets the console (same origin) frame it and no other site", async () => {
    const res = await rawGet("/docs");
    expect(res.headers["content-security-policy"]).toContain("frame-ancestors 'self'");
  });
});

/** The failure of `call`, which must fail. */
async function failureOf(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded");
}

describe("the console's words for errors (console/src/describe-error.ts) on keyward's real answers", () => {
  it("when a key lacks the permission a call needs, then the words name that permission, with code PermissionDenied and reason INSUFFICIENT_SCOPE", async () => {
    const reader = await makeKey(["keys:read"]);
    const err = await failureOf(() => server.client(KeyService).createKey({ parent: `tenants/${tenant.slug}`, displayName: "x", permissions: ["keys:read"], expireDays: 7 }, withKey(reader.secret)));
    const d = describeError(err);
    expect(d).toEqual({ code: "PermissionDenied", reason: "INSUFFICIENT_SCOPE", message: "Permission denied: this needs the permission keys:write, which your credential does not hold." });
  });

  it("when a key grants what its caller does not hold, then the words name the exceeding permissions, with reason PERMISSIONS_EXCEED_CALLER", async () => {
    const writer = await makeKey(["keys:write"]);
    const err = await failureOf(() => server.client(KeyService).createKey({ parent: `tenants/${tenant.slug}`, displayName: "x", permissions: ["policies:read", "audit:read"], expireDays: 7 }, withKey(writer.secret)));
    const d = describeError(err);
    expect(d.code).toBe("PermissionDenied");
    expect(d.reason).toBe("PERMISSIONS_EXCEED_CALLER");
    expect(d.message).toMatch(/^Permission denied: you do not hold (audit:read, policies:read|policies:read, audit:read)\./);
  });

  it("when a request is invalid, unauthenticated or not found, then the words lead with what it means, keep keyward's message and give the reason", async () => {
    const invalid = describeError(await failureOf(() => server.client(KeyService).createKey({ parent: `tenants/${tenant.slug}`, displayName: "", permissions: ["keys:read"], expireDays: 7 }, withKey(tenant.adminKey))));
    expect(invalid.code).toBe("InvalidArgument");
    expect(invalid.reason).toMatch(/^[A-Z_]+$/);
    expect(invalid.message).toMatch(/^Check the form: .+/);
    const unauthenticated = describeError(await failureOf(() => server.client(KeyService).listKeys({ parent: `tenants/${tenant.slug}` })));
    expect(unauthenticated.code).toBe("Unauthenticated");
    expect(unauthenticated.message).toMatch(/^Not signed in, or the credential is no longer valid: .+/);
    const missing = describeError(await failureOf(() => server.client(KeyService).getKey({ name: `tenants/${tenant.slug}/keys/AAAAAAAAAAAAAAAA` }, withKey(tenant.adminKey))));
    expect(missing.code).toBe("NotFound");
    expect(missing.message).toMatch(/^Not found: .+/);
  });

  it("when the failure is no RPC answer, then it says the request failed; a refused sign-in keeps its sentence", () => {
    expect(describeError(new TypeError("Failed to fetch"))).toEqual({ code: "Unknown", reason: undefined, message: "The request failed: Failed to fetch" });
    expect(describeError(new SignInRefused(5, "This key or token has been revoked."))).toEqual({ code: "Refused", reason: undefined, message: "This key or token has been revoked." });
  });

  it("when a call got no answer (keyward down: connect-web wraps fetch's TypeError), then the words say keyward could not be reached, not just \"Failed to fetch\"", () => {
    const described = describeError(ConnectError.from(new TypeError("Failed to fetch")));
    expect(described).toEqual({ code: "Unknown", reason: undefined, message: expect.stringMatching(/^keyward could not be reached: check that it is running .*\(the browser said: Failed to fetch\)\.$/) });
    // An Unknown answered by a server keeps its own message.
    expect(describeError(new ConnectError("boom", Code.Unknown)).message).toBe("boom");
  });

  it("when the console asks whether the signed-in credential may do something, then write implies read and *: covers every category", () => {
    expect(implies(["*:write"], "keys:write")).toBe(true);
    expect(implies(["*:read"], "keys:read")).toBe(true);
    expect(implies(["*:read"], "keys:write")).toBe(false);
    expect(implies(["*:read", "policies:write"], "policies:write")).toBe(true);
    expect(implies(["keys:write"], "keys:read")).toBe(true);
    expect(implies(["keys:read"], "keys:write")).toBe(false);
    expect(implies(["keys:write"], "policies:read")).toBe(false);
    expect(implies(["keys:write"], "*:read")).toBe(false);
    expect(implies(["*:write"], "*:read")).toBe(true);
    expect(implies(["keys:write"], "keys")).toBe(false);
    expect(implies([], "keys:read")).toBe(false);
  });
});

describe("the console in chromium", () => {
  it("when signed in with the tenant's bootstrap admin key, then the three tabs show, the header names the tenant and key, and nothing of the key is kept by the browser, shown in the DOM or in the URL", async () => {
    const c = await openConsole(server);
    try {
      await c.screenshot("signin");
      await c.signIn(tenant.adminKey);
      const tabs = c.page.getByRole("tab");
      expect(await tabs.allTextContents()).toEqual(["API keys", "OIDC federation", "API reference"]);
      await expect(c.page.getByRole("tab", { name: "API keys" }).getAttribute("aria-selected")).resolves.toBe("true");
      const who = await c.page.getByTestId("signed-in-as").textContent();
      expect(who).toContain(tenant.slug);
      expect(who).toMatch(new RegExp(`tenants/${tenant.slug}/keys/[0-9A-Za-z]{16}`));
      expect(who).toContain("*:write");
      await c.screenshot("keys-tab");

      const kept = await keptByBrowser(c);
      expect(kept).not.toContain(tenant.adminKey);
      expect(kept).not.toContain(tenant.adminKey.slice(-16));
      expect(c.violations).toEqual([]);
      expect(c.requests.every((r) => r.split(" ")[1]!.startsWith(`${origin}/`))).toBe(true);
    } finally {
      await c.close();
    }
  });

  it("when signed in with a per-user token, then the tabs show with the token's tenant, id and permissions, and the token is kept nowhere but in memory", async () => {
    const user = await createUser(server, tenant, ["keys:write", "policies:read"]);
    const minted = await userToken(server, tenant, user, { permissions: ["keys:read", "policies:read"], durationSeconds: 600 });
    const c = await openConsole(server);
    try {
      await c.signIn(minted.accessToken);
      const who = await c.page.getByTestId("signed-in-as").textContent();
      expect(who).toContain(tenant.slug);
      expect(who).toContain("keys:read, policies:read");
      expect(who).not.toMatch(/\/keys\//);
      const kept = await keptByBrowser(c);
      expect(kept).not.toContain(minted.accessToken.split(".")[2]!);
      expect(c.violations).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("when the pasted key is not one keyward knows, then the sign-in screen says so, the field is emptied and no tab shows", async () => {
    const c = await openConsole(server);
    try {
      const field = c.page.getByLabel("API key or token");
      await field.fill("certainly-not-a-key");
      await c.page.getByRole("button", { name: "Authorize" }).click();
      const alert = c.page.getByRole("alert");
      await alert.waitFor({ state: "visible" });
      expect(await alert.textContent()).toMatch(/not a keyward API key or token|does not know this key/);
      expect(await field.inputValue()).toBe("");
      expect(await c.page.getByRole("tablist").count()).toBe(0);
      await c.screenshot("signin-refused");

      // A revoked key: refused in words too.
      const revoked = await makeKey(["keys:read"]);
      await server.client(KeyService).revokeKey({ name: revoked.name, reason: "console test" }, withKey(tenant.adminKey));
      await field.fill(revoked.secret);
      await c.page.getByRole("button", { name: "Authorize" }).click();
      await c.page.getByRole("alert").filter({ hasText: "revoked" }).waitFor({ state: "visible" });
      expect(await field.inputValue()).toBe("");
      expect(await keptByBrowser(c)).not.toContain(revoked.secret.slice(-16));
      expect(c.violations).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("when the signed-in key is revoked through the API, then the next action returns to the sign-in screen with a message saying why", async () => {
    const key = await makeKey(["keys:read", "policies:read"]);
    const c = await openConsole(server);
    try {
      await c.signIn(key.secret);
      expect(await c.page.getByTestId("signed-in-as").textContent()).toContain(key.name);
      await server.client(KeyService).revokeKey({ name: key.name, reason: "console test" }, withKey(tenant.adminKey));
      await c.page.getByRole("tab", { name: "OIDC federation" }).click();
      await expectSessionEnded(c, /session ended.*revoked/i);
      await c.page.getByLabel("API key or token").waitFor({ state: "visible" });
      await c.screenshot("session-ended");
      expect(await keptByBrowser(c)).not.toContain(key.secret.slice(-16));
      expect(c.violations).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("when any call is answered 401 unauthenticated, then the session ends at once (the transport's interceptor) and the sign-in screen says why", async () => {
    const c = await openConsole(server);
    try {
      await c.signIn(tenant.adminKey);
      // keyward answers 401 to a credential it no longer knows; simulated for the next call.
      await c.page.route("**/keyward.v1.KeyService/VerifyKey", (route) =>
        route.fulfill({ status: 401, contentType: "application/json", body: JSON.stringify({ code: "unauthenticated", message: "missing or invalid credential" }) }),
      );
      await c.page.getByRole("tab", { name: "OIDC federation" }).click();
      await expectSessionEnded(c, /no longer accepts this credential/);
      expect(await c.page.locator("iframe").count()).toBe(0);
      expect(c.violations).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("when the tabs are used with the keyboard, then arrow keys, Home and End move the selection and focus, and only the selected tab is in the tab order", async () => {
    const c = await openConsole(server);
    try {
      await c.signIn(tenant.adminKey);
      const tab = (name: string) => c.page.getByRole("tab", { name });
      await tab("API keys").focus();
      await c.page.keyboard.press("ArrowRight");
      await expect(tab("OIDC federation").getAttribute("aria-selected")).resolves.toBe("true");
      await expect(c.page.evaluate<string>("document.activeElement.textContent")).resolves.toBe("OIDC federation");
      expect(await c.page.getByRole("tabpanel", { name: "OIDC federation" }).isVisible()).toBe(true);
      expect(await c.page.getByRole("tabpanel", { name: "API keys" }).isVisible()).toBe(false);
      await c.page.keyboard.press("End");
      await expect(tab("API reference").getAttribute("aria-selected")).resolves.toBe("true");
      await c.page.keyboard.press("ArrowRight");
      await expect(tab("API keys").getAttribute("aria-selected")).resolves.toBe("true");
      await c.page.keyboard.press("ArrowLeft");
      await expect(tab("API reference").getAttribute("aria-selected")).resolves.toBe("true");
      await c.page.keyboard.press("Home");
      await expect(tab("API keys").getAttribute("aria-selected")).resolves.toBe("true");
      expect(await c.page.locator('[role="tab"][tabindex="0"]').count()).toBe(1);
      await expect(c.page.evaluate<string>("document.activeElement.textContent")).resolves.toBe("API keys");
      expect(c.violations).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("when the API reference tab is opened, then /docs shows in it already authorized with the session's credential, and an authorized ListKeys through it answers 200", async () => {
    const c = await openConsole(server, { viewport: { width: 1280, height: 1200 } });
    try {
      await c.signIn(tenant.adminKey);
      await c.page.getByRole("tab", { name: "API reference" }).click();
      await c.page.getByTestId("docs-status").filter({ hasText: "authorized with your credential" }).waitFor({ state: "visible" });
      const docs = c.page.frameLocator('iframe[title="API reference"]');
      await docs.locator(".opblock-tag").first().waitFor({ state: "visible" });
      // swagger-ui shows a locked padlock once a scheme is authorized.
      await docs.locator(".auth-wrapper button.authorize.locked").waitFor({ state: "visible" });
      await c.screenshot("api-reference-tab");

      const op = docs.locator(".opblock", { has: docs.locator('[data-path="/keyward.v1.KeyService/ListKeys"]') });
      await op.locator(".opblock-summary").first().click();
      await op.locator("button.try-out__btn").click();
      await op.locator("textarea.body-param__text").fill(JSON.stringify({ parent: `tenants/${tenant.slug}` }));
      const [response] = await Promise.all([
        c.page.waitForResponse((r) => new URL(r.url()).pathname === "/keyward.v1.KeyService/ListKeys"),
        op.locator("button.execute").click(),
      ]);
      expect(response.status()).toBe(200);
      expect((await response.request().allHeaders())["authorization"]).toBe(`Bearer ${tenant.adminKey}`);
      const answer = op.locator(".live-responses-table tr.response").first();
      await answer.locator(".response-col_status").waitFor({ state: "visible" });
      expect(await answer.locator(".response-col_status").textContent()).toContain("200");
      // The answer only (the curl line above it shows the key).
      await answer.screenshot({ path: path.join(screenshotDir, "api-reference-list-keys.png") });

      expect(JSON.stringify(await c.context.storageState({ indexedDB: true }))).not.toContain(tenant.adminKey.slice(-16));
      expect(c.violations).toEqual([]);
      expect(c.requests.every((r) => r.split(" ")[1]!.startsWith(`${origin}/`))).toBe(true);
    } finally {
      await c.close();
    }
  });

  it("when Sign out is clicked, then the sign-in screen returns, the API reference frame is gone and nothing of the key remains in the page", async () => {
    const c = await openConsole(server);
    try {
      await c.signIn(tenant.adminKey);
      await c.page.getByRole("tab", { name: "API reference" }).click();
      await c.page.getByTestId("docs-status").filter({ hasText: "authorized with your credential" }).waitFor({ state: "visible" });
      await c.page.getByRole("button", { name: "Sign out" }).click();
      await c.page.getByLabel("API key or token").waitFor({ state: "visible" });
      expect(await c.page.getByTestId("signin-notice").textContent()).toContain("signed out");
      expect(await c.page.locator("iframe").count()).toBe(0);
      expect(c.page.frames()).toHaveLength(1);
      expect(await keptByBrowser(c)).not.toContain(tenant.adminKey.slice(-16));
      expect(c.violations).toEqual([]);
    } finally {
      await c.close();
    }
  });
});
