// The API reference page in a real browser (issue 14, item 3): Debian's chromium driven by
// playwright-core against a live keyward. The page loads with no failed request, no request
// to any other host, no console error and no CSP violation; it lists the five services;
// "Authorize" with a real admin key, then "Try it out" on ListKeys answers 200 and shows the
// tenant's key; CreateKey without a key answers 401; the key is never stored by the browser.
// A screenshot is saved to test-output/docs/docs-page.png (gitignored).
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createFileRegistry } from "@bufbuild/protobuf";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { anonymous } from "../../gen/keyward/v1/options_pb.ts";
import { buildOpenApiDocument } from "../../tools/protoc-gen-openapi/openapi-document.ts";
import { bufBuild } from "../openapi/openapi-doc.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";

const services = ["KeyService", "PolicyService", "TokenExchangeService", "DirectoryService", "AuditService"];
const outputDir = path.resolve(import.meta.dirname, "../../test-output/docs");
/** Every playwright wait in this file is bounded by this (ms). */
const uiBoundMs = 15_000;

let server: TestServer;
let tenant: TestTenant;
let browser: Browser | undefined;
let origin: string;

beforeAll(async () => {
  server = await startTestServer();
  tenant = await createTestTenant(server, "docs");
  origin = new URL(server.url).origin;
  // No skip: when chromium is missing or cannot start, this fails the file.
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    timeout: 30_000,
  });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
}, 60_000);

/** What a page did: every request, and everything that went wrong while it ran. */
type Watched = { page: Page; context: BrowserContext; requests: string[]; problems: string[] };

/**
 * Opens /docs in a fresh browser context (fresh storage), recording every request; a request
 * to any origin but the server's is aborted and recorded as a problem, as are failed requests,
 * error answers (other than the RPCs the test calls on purpose), console errors, page errors
 * and CSP violations. `document`: served instead of the server's /openapi.json (a scratch one);
 * `pagePath`: the page's path with any query and fragment.
 */
async function openDocs(document?: string, pagePath = "/docs"): Promise<Watched> {
  if (browser === undefined) throw new Error("chromium did not start");
  const context = await browser.newContext({ viewport: { width: 1280, height: 1600 } });
  context.setDefaultTimeout(uiBoundMs);
  const requests: string[] = [];
  const problems: string[] = [];
  await context.route("**/*", async (route) => {
    const url = route.request().url();
    requests.push(`${route.request().method()} ${url}`);
    if (!url.startsWith(`${origin}/`)) {
      problems.push(`request to another origin: ${url}`);
      return route.abort("blockedbyclient");
    }
    if (document !== undefined && url === `${origin}/openapi.json`) return route.fulfill({ status: 200, contentType: "application/json", body: document });
    return route.continue();
  });
  const page = await context.newPage();
  await page.exposeFunction("keywardTestCspViolation", (text: string) => problems.push(`CSP violation: ${text}`));
  // Runs in the page (a string: the test's TypeScript has no DOM types).
  await page.addInitScript(`document.addEventListener("securitypolicyviolation", (e) =>
    window.keywardTestCspViolation(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " (" + e.sourceFile + ":" + e.lineNumber + ")"));`);
  page.on("console", (m) => {
    // The browser logs the deliberate RPCs' error answers (the 401) as "Failed to load resource":
    // those are asserted by the tests themselves; any other console error is a problem.
    const deliberate = m.location().url.startsWith(`${origin}/keyward.v1.`) && m.text().startsWith("Failed to load resource");
    if (m.type() === "error" && !deliberate) problems.push(`console error: ${m.text()} (${m.location().url})`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    if (r.url().startsWith(`${origin}/`)) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ""}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400 && !new URL(r.url()).pathname.startsWith("/keyward.v1.")) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  const response = await page.goto(`${origin}${pagePath}`, { waitUntil: "load" });
  expect(response?.status()).toBe(200);
  // swagger-ui has fetched /openapi.json and rendered the operations.
  await page.locator(".opblock-tag").first().waitFor({ state: "visible" });
  return { page, context, requests, problems };
}

/** The operation block of `/keyward.v1.<service>/<method>`, expanded, with "Try it out" on. */
async function tryItOut(page: Page, service: string, method: string): Promise<Locator> {
  const op = page.locator(".opblock", { has: page.locator(`[data-path="/keyward.v1.${service}/${method}"]`) });
  await op.locator(".opblock-summary").first().click();
  await op.locator("button.try-out__btn").click();
  return op;
}

/** Fills the JSON body of an expanded operation, executes it, and returns the HTTP status shown. */
async function execute(page: Page, op: Locator, body: object, rpcPath: string): Promise<{ status: number; request: Record<string, string> }> {
  await op.locator("textarea.body-param__text").fill(JSON.stringify(body));
  const [response] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === rpcPath && r.request().method() === "POST"),
    op.locator("button.execute").click(),
  ]);
  await op.locator(".live-responses-table tr.response .response-col_status").first().waitFor({ state: "visible" });
  return { status: response.status(), request: await response.request().allHeaders() };
}

/** Enters `key` in the "Authorize" dialog for the bearer scheme and closes the dialog. */
async function authorize(page: Page, key: string): Promise<void> {
  await page.locator(".auth-wrapper button.authorize").click();
  const modal = page.locator(".modal-ux");
  await modal.locator("input").first().fill(key);
  await modal.locator("button.authorize").first().click();
  await modal.locator("button.btn-done").first().click();
  await modal.waitFor({ state: "detached" });
}

/** Everything the browser keeps for the origin, as one string: cookies, storages, IndexedDB, URL. */
async function storedByBrowser(w: Watched): Promise<string> {
  const state = await w.context.storageState({ indexedDB: true });
  const storages = await w.page.evaluate<string>("JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie })");
  return JSON.stringify(state) + storages + w.page.url();
}

describe("the /docs page in chromium", () => {
  it("when opened, then it loads only from the server's origin, without failures or CSP violations, lists the five services and offers the document for download", async () => {
    const w = await openDocs();
    try {
      const tags = await w.page.locator(".opblock-tag").allTextContents();
      for (const service of services) expect(tags.some((t) => new RegExp(`\\b${service}\\b`).test(t))).toBe(true);
      expect(await w.page.locator('a[href="/openapi.json"][download]').isVisible()).toBe(true);
      expect(w.requests.some((r) => r === `GET ${origin}/openapi.json`)).toBe(true);
      expect(w.requests.some((r) => /\/swagger-ui-bundle\.[\w-]+\.js$/.test(r))).toBe(true);
      await mkdir(outputDir, { recursive: true });
      await w.page.screenshot({ path: path.join(outputDir, "docs-page.png"), fullPage: false });
      expect(w.problems).toEqual([]);
      expect(w.requests.every((r) => r.split(" ")[1]!.startsWith(`${origin}/`))).toBe(true);
    } finally {
      await w.context.close();
    }
  });

  it("when authorized with the tenant's admin key, then Try it out on ListKeys answers 200 with the key listed, and the browser stores the key nowhere", async () => {
    const listed = await server.client(KeyService).listKeys({ parent: `tenants/${tenant.slug}` }, withKey(tenant.adminKey));
    const keyName = listed.keys[0]?.name;
    expect(keyName).toMatch(new RegExp(`^tenants/${tenant.slug}/keys/`));
    const w = await openDocs();
    try {
      await authorize(w.page, tenant.adminKey);
      const op = await tryItOut(w.page, "KeyService", "ListKeys");
      const { status, request } = await execute(w.page, op, { parent: `tenants/${tenant.slug}` }, "/keyward.v1.KeyService/ListKeys");
      expect(status).toBe(200);
      expect(request["authorization"]).toBe(`Bearer ${tenant.adminKey}`);
      expect(request["connect-protocol-version"]).toBe("1");
      expect(request["content-type"]).toMatch(/^application\/json/);
      await expect(op.locator(".live-responses-table tr.response .response-col_status").first().textContent()).resolves.toContain("200");
      await expect(op.locator(".live-responses-table tr.response .response-col_description").first().textContent()).resolves.toContain(keyName!);
      await mkdir(outputDir, { recursive: true });
      // The answer only (the curl line above it shows the key).
      await op.locator(".live-responses-table tr.response").first().screenshot({ path: path.join(outputDir, "docs-list-keys.png") });

      const stored = await storedByBrowser(w);
      expect(stored).not.toContain(tenant.adminKey);
      // Not even a recognisable piece of it (the secret part after the prefix).
      expect(stored).not.toContain(tenant.adminKey.slice(-16));
      expect(w.page.url()).not.toContain(tenant.adminKey.slice(-16));
      expect(w.problems).toEqual([]);
    } finally {
      await w.context.close();
    }
  });

  it("when not authorized, then Try it out on CreateKey answers 401 and the page shows it", async () => {
    const w = await openDocs();
    try {
      const op = await tryItOut(w.page, "KeyService", "CreateKey");
      const { status, request } = await execute(w.page, op, { parent: `tenants/${tenant.slug}`, displayName: "from the docs page" }, "/keyward.v1.KeyService/CreateKey");
      expect(status).toBe(401);
      expect(request["authorization"]).toBeUndefined();
      await expect(op.locator(".live-responses-table tr.response .response-col_status").first().textContent()).resolves.toContain("401");
      await expect(op.locator(".live-responses-table tr.response .response-col_description").first().textContent()).resolves.toContain("unauthenticated");
      expect(w.problems).toEqual([]);
    } finally {
      await w.context.close();
    }
  });

  it("when a proto comment carries HTML and markdown made to run script or reach elsewhere, then the page shows it inert: nothing runs, no handler, script, frame, form or javascript: link reaches the DOM, nothing loads from elsewhere", async () => {
    // The plugin copies comments into descriptions verbatim and swagger-ui renders them as
    // markdown: its sanitiser and the CSP must both hold (a swagger-ui upgrade must keep them).
    const hostile = [
      "XSSMARK <img src=\"data:,\" onerror=\"window.__kwXss='img'\"> <script>window.__kwXss='script'</script>",
      "[link](javascript:window.__kwXss='link') <a href=\"javascript:window.__kwXss='a'\">a</a> <svg onload=\"window.__kwXss='svg'\"></svg>",
      "<iframe srcdoc=\"<script>parent.__kwXss='iframe'</script>\"></iframe> <style>body{display:none}</style>",
      "![t](https://evil.example/t.png) <form action=\"https://evil.example/\"><button formaction=\"javascript:window.__kwXss='form'\">go</button></form>",
    ];
    const dir = await mkdtemp(path.join(tmpdir(), "keyward-docs-xss-"));
    let document: string;
    try {
      await writeFile(path.join(dir, "buf.yaml"), "version: v2\n");
      const comment = (indent: string): string => hostile.map((line) => `${indent}// ${line}`).join("\n");
      await writeFile(path.join(dir, "xss.proto"), [
        'syntax = "proto3";', "package keyward.v1;",
        comment(""), "service XssService {", comment("  "), "  rpc Echo(Hostile) returns (Hostile);", "}",
        comment(""), "message Hostile {", comment("  "), "  string text = 1;", "}", "",
      ].join("\n"));
      const file = createFileRegistry(await bufBuild(dir)).getFile("xss.proto")!;
      document = JSON.stringify(buildOpenApiDocument({ files: [file], anonymous, errorInfo: undefined }));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // The comments reach the document as they are: the page is what must render them inert.
    expect(document).toContain("onerror=\\\"window.__kwXss");
    const w = await openDocs(document);
    try {
      const op = w.page.locator(".opblock", { has: w.page.locator('[data-path="/keyward.v1.XssService/Echo"]') });
      await op.locator(".opblock-summary").first().click();
      await op.locator(".opblock-description-wrapper").filter({ hasText: "XSSMARK" }).first().waitFor({ state: "visible" });
      // The request body's schema, with the field's comment.
      await op.locator('button[data-name="model"]').first().click();
      await op.locator(".model-box, .json-schema-2020-12").first().waitFor({ state: "visible" });
      await op.locator("a", { hasText: "link" }).first().click({ timeout: 2_000 }).catch(() => undefined);
      const found = await w.page.evaluate<{ ran: unknown; dangerous: string[] }>(`(() => {
        const dangerous = [];
        for (const el of document.querySelectorAll("#swagger-ui *")) {
          if (["SCRIPT", "IFRAME", "FORM", "STYLE", "OBJECT", "EMBED"].includes(el.tagName)) dangerous.push(el.outerHTML.slice(0, 100));
          for (const a of el.attributes) {
            if (/^on/i.test(a.name) || /javascript:|evil\\.example/i.test(a.value) || a.name === "srcdoc") dangerous.push(a.name + "=" + a.value.slice(0, 60));
          }
        }
        return { ran: window.__kwXss, dangerous };
      })()`);
      expect(found).toEqual({ ran: undefined, dangerous: [] });
      expect(w.requests.every((r) => r.split(" ")[1]!.startsWith(`${origin}/`))).toBe(true);
      // The CSP may report the inline handlers it blocked; anything else is a problem.
      const blockedInline = /^(CSP violation: (script-src-attr|style-src-elem) blocked inline|console error: (Executing inline event handler|Applying inline style) violates)/;
      expect(w.problems.filter((p) => !blockedInline.test(p))).toEqual([]);
    } finally {
      await w.context.close();
    }
  });

  it("when the page's URL asks for another document (?url=, ?configUrl=, urls.primaryName) or carries markup in its #fragment, then it loads only /openapi.json and runs nothing", async () => {
    const foreign = encodeURIComponent("https://evil.example/openapi.json");
    const asked = [
      `/docs?url=${foreign}&configUrl=${foreign}`,
      `/docs?urls.primaryName=x&url=/docs/assets/swagger-ui.css.map`,
      // (No "_" in a fragment: swagger-ui logs a deprecation error for any deep link with one.)
      `/docs#/${encodeURIComponent("<img src=\"data:,\" onerror=\"window.kwFragment=1\">")}`,
      `/docs#/KeyService/${encodeURIComponent("\"><svg onload=\"window.kwFragment=2\">")}`,
    ];
    for (const pagePath of asked) {
      const w = await openDocs(undefined, pagePath);
      try {
        // Everything but the page and its assets: the one document, from this origin.
        const documents = w.requests.filter((r) => !/^\/docs(\/assets\/[^/]+)?$/.test(new URL(r.split(" ")[1]!).pathname));
        expect({ pagePath, documents }).toEqual({ pagePath, documents: [`GET ${origin}/openapi.json`] });
        expect(await w.page.locator(".opblock-tag").count()).toBe(services.length);
        expect(await w.page.evaluate<unknown>("window.kwFragment")).toBeUndefined();
        expect({ pagePath, problems: w.problems }).toEqual({ pagePath, problems: [] });
      } finally {
        await w.context.close();
      }
    }
  });
});
