// The admin console (/console) in a real browser, for the console tests: Debian's chromium
// driven by playwright-core (never a downloaded browser) against a live keyward. Builds the
// console first (console/build.mjs: idempotent, safe to run concurrently), records every
// request (any request to another origin is aborted and reported), and collects what went
// wrong: console errors, page errors, CSP violations, failed requests, error answers.
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

/** Every playwright wait of a console page is bounded by this (ms). */
export const uiBoundMs = 15_000;

/** Where screenshots go (gitignored). */
export const screenshotDir = path.resolve(import.meta.dirname, "../../test-output/console");

const repoRoot = path.resolve(import.meta.dirname, "../..");

/** A console page opened by openConsole. */
export type ConsoleBrowser = {
  page: Page;
  context: BrowserContext;
  /** Every request the page and its frames made, as "METHOD url", in order. */
  requests: string[];
  /**
   * Everything that went wrong, in words: requests to another origin (aborted), CSP
   * violations (of the console and of the framed /docs), console errors, page errors, failed
   * requests, HTTP error answers of non-RPC URLs. Tolerated, not listed: the browser's "Failed
   * to load resource" for RPC error answers (`/keyward.v1.…`: the UI shows those, the tests
   * assert them) and swagger-ui's deep-link deprecation message. A test expects it empty.
   */
  violations: string[];
  /** Pastes `key` on the sign-in screen, clicks Authorize, and waits for the tabs. */
  signIn(key: string): Promise<void>;
  /** Saves a screenshot of the viewport to test-output/console/<name>.png; returns the path. */
  screenshot(name: string): Promise<string>;
  /** Closes the page, its context and the browser. */
  close(): Promise<void>;
};

let built: Promise<void> | undefined;

/** Builds the console once per test process (`npm run build:console`). */
export function buildConsoleOnce(): Promise<void> {
  built ??= promisify(execFile)(process.execPath, [path.join(repoRoot, "console/build.mjs")], { cwd: repoRoot, timeout: 120_000 }).then(
    () => undefined,
    (err: unknown) => {
      built = undefined;
      throw err;
    },
  );
  return built;
}

/**
 * Opens `/console` of `server` in a fresh chromium (fresh storage; clipboard permissions granted
 * so copy buttons work and tests can read what was copied) and waits for the sign-in screen.
 * `viewport` defaults to 1280×900. Close it with `close()` (in a finally).
 */
export async function openConsole(server: { url: string }, opts: { viewport?: { width: number; height: number } } = {}): Promise<ConsoleBrowser> {
  await buildConsoleOnce();
  const origin = new URL(server.url).origin;
  const browser: Browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    timeout: 30_000,
  });
  try {
    const context = await browser.newContext({ viewport: opts.viewport ?? { width: 1280, height: 900 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
    context.setDefaultTimeout(uiBoundMs);
    const requests: string[] = [];
    const violations: string[] = [];
    await context.route("**/*", async (route) => {
      const url = route.request().url();
      requests.push(`${route.request().method()} ${url}`);
      if (!url.startsWith(`${origin}/`)) {
        violations.push(`request to another origin: ${url}`);
        return route.abort("blockedbyclient");
      }
      return route.continue();
    });
    await context.exposeBinding("keywardTestCspViolation", (_source, text: string) => void violations.push(`CSP violation: ${text}`));
    // Runs in the console and in the framed /docs (a string: the test's TypeScript has no DOM types).
    await context.addInitScript(`document.addEventListener("securitypolicyviolation", (e) =>
      window.keywardTestCspViolation(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " in " + location.pathname + " (" + e.sourceFile + ":" + e.lineNumber + ")"));`);
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() !== "error") return;
      const from = m.location().url;
      const rpcAnswer = from.startsWith(`${origin}/keyward.v1.`) && m.text().startsWith("Failed to load resource");
      const deepLinkDeprecation = /deprecat/i.test(m.text()) && from.includes("/docs/assets/swagger-ui-bundle.");
      if (!rpcAnswer && !deepLinkDeprecation) violations.push(`console error: ${m.text()} (${from})`);
    });
    page.on("pageerror", (e) => violations.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => {
      // A call the console itself aborted (a list's AbortController when its tab unmounts, e.g.
      // at sign-out while ListKeys is still in flight on a loaded machine) is not a failure.
      const ownAbort = r.failure()?.errorText === "net::ERR_ABORTED" && r.url().startsWith(`${origin}/keyward.v1.`);
      if (r.url().startsWith(`${origin}/`) && !ownAbort) violations.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ""}`);
    });
    page.on("response", (r) => {
      if (r.status() >= 400 && !new URL(r.url()).pathname.startsWith("/keyward.v1.")) violations.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    const response = await page.goto(`${origin}/console`, { waitUntil: "load" });
    if (response?.status() !== 200) throw new Error(`GET /console answered ${response?.status()}`);
    await page.getByLabel("API key or token").waitFor({ state: "visible" });
    return {
      page,
      context,
      requests,
      violations,
      async signIn(key) {
        await page.getByLabel("API key or token").fill(key);
        await page.getByRole("button", { name: "Authorize" }).click();
        await page.getByRole("tablist").waitFor({ state: "visible" });
      },
      async screenshot(name) {
        await mkdir(screenshotDir, { recursive: true });
        const file = path.join(screenshotDir, `${name}.png`);
        await page.screenshot({ path: file });
        return file;
      },
      async close() {
        await browser.close();
      },
    };
  } catch (err) {
    await browser.close();
    throw err;
  }
}
