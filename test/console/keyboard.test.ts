// The admin console with the keyboard alone (issue 15, item 5): Tab, Shift+Tab, Enter, Space,
// arrows and Esc, no click and no programmatic focus, in Debian's chromium against a live
// keyward. After each dialog closes, focus must land somewhere a keyboard user can go on from —
// never on <body>, which sends Tab back to the top of the page: the secret of a key created from
// the "New key" dialog (whose own button is gone), a revoked key (whose Revoke button is gone),
// a deleted policy (whose row is gone). A form dialog opens with focus in its first field.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import type { Page } from "playwright-core";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { openConsole, type ConsoleBrowser } from "./console-browser.ts";

let server: TestServer;
let tenant: TestTenant;
let c: ConsoleBrowser;

beforeAll(async () => {
  server = await startTestServer();
  tenant = await createTestTenant(server, "console-keyboard");
  c = await openConsole(server, { viewport: { width: 1400, height: 1000 } });
}, 120_000);

afterAll(async () => {
  await c?.close();
  await server?.stop();
}, 60_000);

/** What has focus: its tag, then its accessible label (aria-label, <label>, or text). */
const focused = (page: Page) =>
  page.evaluate<string>(`(() => {
    const e = document.activeElement;
    if (e === null || e === document.body) return "body";
    const label = e.getAttribute("aria-label") || (e.labels && e.labels[0] ? e.labels[0].textContent : "") || e.textContent || "";
    return e.tagName.toLowerCase() + ":" + label.trim();
  })()`);

/** Presses Tab (or Shift+Tab) until `wanted` has focus; at most 80 presses. */
async function tabTo(page: Page, wanted: string | RegExp, back = false): Promise<void> {
  const seen: string[] = [];
  for (let i = 0; i < 80; i += 1) {
    await page.keyboard.press(back ? "Shift+Tab" : "Tab");
    const now = await focused(page);
    if (typeof wanted === "string" ? now === wanted : wanted.test(now)) return;
    seen.push(now);
  }
  throw new Error(`Tab never reached ${wanted}; saw ${seen.slice(0, 30).join(" | ")}`);
}

/** Waits (bounded) until focus is somewhere other than <body>, then says where. */
async function focusSettled(page: Page): Promise<string> {
  await page.waitForFunction("document.activeElement !== null && document.activeElement !== document.body && !document.querySelector('[role=status].kw-loading')", undefined, { timeout: 10_000 }).catch(() => undefined);
  return focused(page);
}

describe("the console with the keyboard alone", () => {
  const name = "made by keyboard";
  let secret = "";

  it("when a key is created from the keyboard and its secret dialog is closed with Esc, then focus is back in the keys section, not on <body>", async () => {
    const { page } = c;
    await page.keyboard.type(tenant.adminKey); // the sign-in field has focus on load
    await page.keyboard.press("Enter");
    await page.getByRole("tablist").waitFor({ state: "visible" });
    await page.getByRole("button", { name: "Create your first key" }).waitFor();
    await tabTo(page, "button:Create your first key");
    await page.keyboard.press("Enter");
    expect(await focused(page)).toBe("input:Name");
    await page.keyboard.type(name);
    await tabTo(page, "input:keys:read");
    await page.keyboard.press("Space");
    await tabTo(page, "button:Create key");
    await page.keyboard.press("Enter");
    const dialog = page.getByTestId("secret-dialog");
    secret = ((await dialog.getByTestId("key-secret").textContent()) ?? "").trim();
    expect((await server.client(KeyService).verifyKey({ key: secret })).result).toBe(VerifyResult.VALID);
    await page.keyboard.press("Escape");
    await dialog.getByTestId("key-secret").waitFor({ state: "detached" });
    await page.getByRole("button", { name: `Revoke ${name}` }).waitFor();
    expect(["button:New key", "h2:Fine-grained keys"]).toContain(await focusSettled(page));
    expect(await page.content()).not.toContain(secret);
  });

  it("when the key is revoked from the keyboard, then focus goes to the keys section's heading once its Revoke button is gone, and Tab goes on from there", async () => {
    const { page } = c;
    await tabTo(page, `button:Revoke ${name}`);
    await page.keyboard.press("Enter");
    expect(await focused(page)).toBe("button:Cancel");
    await tabTo(page, "button:Revoke key");
    await page.keyboard.press("Enter");
    await page.getByRole("row").filter({ hasText: name }).getByTestId("key-state").getByText("revoked").waitFor();
    expect((await server.client(KeyService).verifyKey({ key: secret })).result).toBe(VerifyResult.REVOKED);
    expect(await focusSettled(page)).toBe("h2:Fine-grained keys");
    await page.keyboard.press("Tab");
    expect(await focused(page)).toBe("button:New key");
  });

  it("when a policy is created and deleted from the keyboard, then its form opens with focus on Name, and after the delete focus is on the policies heading", async () => {
    const { page } = c;
    await tabTo(page, "button:API keys", true);
    await page.keyboard.press("ArrowRight");
    expect(await focused(page)).toBe("button:OIDC federation");
    await page.getByRole("button", { name: "Create your first policy" }).waitFor();
    await tabTo(page, "button:Create your first policy");
    await page.keyboard.press("Enter");
    expect(await focused(page)).toBe("input:Name");
    await page.keyboard.type("keyboard policy");
    await tabTo(page, /^input:.*repository_owner$/);
    await page.keyboard.type("acme");
    await tabTo(page, "select:keys");
    await page.keyboard.press("ArrowDown"); // none → read
    await tabTo(page, "button:Create policy");
    await page.keyboard.press("Enter");
    const saved = page.getByTestId("policy-saved");
    await saved.waitFor();
    await tabTo(page, "button:Done");
    await page.keyboard.press("Enter");
    await tabTo(page, "button:Delete keyboard policy");
    await page.keyboard.press("Enter");
    await tabTo(page, "button:Delete policy");
    await page.keyboard.press("Enter");
    await page.getByRole("button", { name: "Create your first policy" }).waitFor();
    expect((await server.client(PolicyService).listPolicies({ parent: `tenants/${tenant.slug}` }, withKey(tenant.adminKey))).policies).toEqual([]);
    expect(await focusSettled(page)).toBe("h3:Trust policies");
    expect(c.violations).toEqual([]);
  });
});
