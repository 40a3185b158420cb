// The console's shared widgets in chromium (console/src/ui.tsx, errors.tsx), on a fixture page
// (console/test/ui-fixture.tsx) bundled here with esbuild and served on 127.0.0.1 under the
// console's CSP: the modal dialog (focus inside, Esc and × close it, focus returns to the
// opener, its content leaves the DOM), the confirmation (Cancel first, Esc cancels), the copy
// button (the clipboard gets the text), the error alert naming the missing permission.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser, type Locator, type Page } from "playwright-core";
import { consoleContentSecurityPolicy } from "../../src/server/console-routes.ts";
import { screenshotDir, uiBoundMs } from "./console-browser.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const secret = "kwfg_FIXTURE_SECRET_0123456789";

let dir: string;
let server: http.Server;
let origin: string;
let browser: Browser;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "kw-ui-fixture-"));
  await promisify(execFile)(
    path.join(repoRoot, "node_modules/.bin/esbuild"),
    ["console/test/ui-fixture.tsx", "--bundle", "--format=iife", "--jsx=automatic", "--jsx-import-source=preact", "--legal-comments=none", `--outdir=${dir}`, "--entry-names=fixture"],
    { cwd: repoRoot, timeout: 60_000 },
  );
  const files: Record<string, { type: string; body: Buffer }> = {
    "/": { type: "text/html; charset=utf-8", body: Buffer.from('<!doctype html><html lang="en"><head><link rel="icon" href="data:,"><link rel="stylesheet" href="/fixture.css"><script defer src="/fixture.js"></script></head><body><div id="app"></div></body></html>') },
    "/fixture.js": { type: "text/javascript; charset=utf-8", body: await readFile(path.join(dir, "fixture.js")) },
    "/fixture.css": { type: "text/css; charset=utf-8", body: await readFile(path.join(dir, "fixture.css")) },
  };
  server = http.createServer((req, res) => {
    const file = files[req.url ?? ""];
    if (file === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": file.type, "content-security-policy": consoleContentSecurityPolicy }).end(file.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"], timeout: 30_000 });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => server?.close(resolve));
  await rm(dir, { recursive: true, force: true });
}, 30_000);

/** The fixture in a fresh context; `problems` collects console errors, page errors and CSP violations. */
async function openFixture(): Promise<{ page: Page; problems: string[]; close: () => Promise<void> }> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  context.setDefaultTimeout(uiBoundMs);
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  const problems: string[] = [];
  await context.route("**/*", (route) => (route.request().url().startsWith(`${origin}/`) ? route.continue() : (problems.push(`elsewhere: ${route.request().url()}`), route.abort())));
  const page = await context.newPage();
  await page.exposeFunction("keywardTestCspViolation", (text: string) => problems.push(`CSP violation: ${text}`));
  await page.addInitScript(`document.addEventListener("securitypolicyviolation", (e) => window.keywardTestCspViolation(e.violatedDirective + " " + e.blockedURI));`);
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`${origin}/`);
  await page.getByRole("button", { name: "Show secret" }).waitFor({ state: "visible" });
  return { page, problems, close: () => context.close() };
}

const focused = (page: Page) => page.evaluate<string>("(document.activeElement?.getAttribute('aria-label') || document.activeElement?.textContent || '').trim()");

/** Presses `key` and waits (bounded by the context's default timeout) until `dialog` is `state`. */
async function pressAndWait(page: Page, key: "Enter" | "Escape", dialog: Locator, state: "visible" | "hidden"): Promise<void> {
  await page.keyboard.press(key);
  await dialog.waitFor({ state });
}

describe("the console's shared widgets in chromium", () => {
  it("when a dialog is opened from the keyboard, then it is modal (Tab stays inside), Esc closes it, focus returns to its opener and its content leaves the DOM", async () => {
    const f = await openFixture();
    try {
      await f.page.getByRole("button", { name: "Show secret" }).focus();
      await f.page.keyboard.press("Enter");
      const dialog = f.page.getByRole("dialog", { name: "New key" });
      await dialog.waitFor({ state: "visible" });
      expect(await f.page.getByTestId("secret").textContent()).toBe(secret);
      await f.page.screenshot({ path: path.join(screenshotDir, "ui-dialog.png") });
      for (let i = 0; i < 6; i += 1) {
        await f.page.keyboard.press("Tab");
        expect(await f.page.evaluate<boolean>("document.querySelector('dialog[open]').contains(document.activeElement) || document.activeElement === document.body")).toBe(true);
      }
      await pressAndWait(f.page, "Escape", dialog, "hidden");
      expect(await focused(f.page)).toBe("Show secret");
      expect(await f.page.content()).not.toContain(secret);
      expect(f.problems).toEqual([]);
    } finally {
      await f.close();
    }
  });

  it("when the dialog's Close button is used, then it closes the same way; Esc twice without a click closes it too and the parent knows", async () => {
    const f = await openFixture();
    try {
      const open = f.page.getByRole("button", { name: "Show secret" });
      const dialog = f.page.getByRole("dialog", { name: "New key" });
      await open.click();
      await dialog.getByRole("button", { name: "Close" }).click();
      await dialog.waitFor({ state: "hidden" });
      expect(await focused(f.page)).toBe("Show secret");
      expect(await f.page.content()).not.toContain(secret);
      // Opened, then Esc with no click in between, twice (Chromium may refuse to let a page cancel the second).
      await open.focus();
      await pressAndWait(f.page, "Enter", dialog, "visible");
      await pressAndWait(f.page, "Escape", dialog, "hidden");
      await pressAndWait(f.page, "Enter", dialog, "visible");
      await pressAndWait(f.page, "Escape", dialog, "hidden");
      expect(await f.page.content()).not.toContain(secret);
      // The parent's state followed: it opens again.
      await open.click();
      await dialog.waitFor({ state: "visible" });
      expect(f.problems).toEqual([]);
    } finally {
      await f.close();
    }
  });

  it("when Esc closes a dialog a second time with no click between, then the parent already knows as the dialog closes: the opener clicked at once opens it again", async () => {
    const f = await openFixture();
    try {
      const open = f.page.getByRole("button", { name: "Show secret" });
      const dialog = f.page.getByRole("dialog", { name: "New key" });
      await open.focus();
      await pressAndWait(f.page, "Enter", dialog, "visible");
      await pressAndWait(f.page, "Escape", dialog, "hidden");
      await pressAndWait(f.page, "Enter", dialog, "visible");
      // Clicks the opener at the first microtask checkpoint after the dialog loses `open`, before
      // any later task runs: the moment a fast user (or a loaded test) may click.
      await f.page.evaluate(`(() => {
        const d = document.querySelector("dialog[data-testid=secret-dialog]");
        const opener = [...document.querySelectorAll("button")].find((b) => b.textContent.trim() === "Show secret");
        new MutationObserver((_, o) => { if (!d.open) { o.disconnect(); opener.click(); } }).observe(d, { attributes: true, attributeFilter: ["open"] });
      })()`);
      await f.page.keyboard.press("Escape");
      await dialog.waitFor({ state: "visible", timeout: 3000 });
      expect(await f.page.getByTestId("secret").textContent()).toBe(secret);
      expect(f.problems).toEqual([]);
    } finally {
      await f.close();
    }
  });

  it("when Copy is pressed, then the clipboard holds the text and the button says Copied", async () => {
    const f = await openFixture();
    try {
      await f.page.getByRole("button", { name: "Show secret" }).click();
      await f.page.getByRole("button", { name: "Copy key" }).click();
      await f.page.getByRole("status").filter({ hasText: "Copied" }).waitFor({ state: "visible" });
      expect(await f.page.evaluate<string>("navigator.clipboard.readText()")).toBe(secret);
      expect(f.problems).toEqual([]);
    } finally {
      await f.close();
    }
  });

  it("when a confirmation opens, then Cancel has focus; Esc cancels; the confirm button confirms; focus returns each time", async () => {
    const f = await openFixture();
    try {
      const opener = f.page.getByRole("button", { name: "Delete thing" });
      const dialog = f.page.getByRole("dialog", { name: "Delete the thing?" });
      await opener.click();
      await dialog.waitFor({ state: "visible" });
      expect(await dialog.textContent()).toContain("The thing goes for good.");
      expect(await focused(f.page)).toBe("Cancel");
      await pressAndWait(f.page, "Escape", dialog, "hidden");
      expect(await f.page.getByTestId("outcome").textContent()).toBe("canceled");
      expect(await focused(f.page)).toBe("Delete thing");
      await opener.click();
      await dialog.getByRole("button", { name: "Delete" }).click();
      await dialog.waitFor({ state: "hidden" });
      expect(await f.page.getByTestId("outcome").textContent()).toBe("confirmed");
      expect(await focused(f.page)).toBe("Delete thing");
      expect(f.problems).toEqual([]);
    } finally {
      await f.close();
    }
  });

  it("when an RPC failed for a missing permission, then the alert names the permission, the code and the reason; loading and empty states show", async () => {
    const f = await openFixture();
    try {
      const alert = f.page.getByRole("alert");
      expect(await alert.textContent()).toContain("this needs the permission keys:write");
      expect(await alert.textContent()).toContain("PermissionDenied · INSUFFICIENT_SCOPE");
      expect(await f.page.getByRole("status").filter({ hasText: "Loading…" }).count()).toBe(1);
      expect(await f.page.getByText("Nothing here yet.").isVisible()).toBe(true);
      expect(f.problems).toEqual([]);
    } finally {
      await f.close();
    }
  });
});
