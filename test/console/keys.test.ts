// The API keys tab of the admin console (issue 15, item 2) in a real browser: Debian's
// chromium driven by playwright-core (test/console/console-browser.ts) against a live keyward.
// An admin signs in with the tenant's bootstrap key, sees the empty state, creates a
// fine-grained key with 12 custom days and two permissions ("Expires at" follows the choice,
// the stored expiry matches), copies its secret from the show-once dialog and verifies it with
// VerifyKey, finds no trace of it in the DOM once the dialog closes, revokes it (VerifyKey:
// REVOKED), clones a key (the clone verifies with the same permissions), and rotates the
// secondary admin slot (its last-rotated time changes, the old value is REVOKED). A read-only
// key sees no write button, and the server refuses a write made with it. No request leaves
// 127.0.0.1. Screenshots go to test-output/console/keys-*.png (gitignored).
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Code, type Client } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { KeyKind, KeySlot, KeyState } from "../../gen/keyward/v1/key_pb.ts";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { keyIdOf, reasonOf, rpcError } from "../rpc.ts";
import { openConsole, uiBoundMs, type ConsoleBrowser } from "./console-browser.ts";

const dayMs = 86_400_000;

let server: TestServer;
let tenant: TestTenant;
let keys: Client<typeof KeyService>;
let admin: ConsoleBrowser;

beforeAll(async () => {
  server = await startTestServer();
  tenant = await createTestTenant(server, "console-keys");
  keys = server.client(KeyService);
  admin = await openConsole(server, { viewport: { width: 1400, height: 1000 } });
  await admin.signIn(tenant.adminKey);
  await admin.page.getByRole("tab", { name: "API keys" }).click();
}, 120_000);

afterAll(async () => {
  await admin?.close();
  await server?.stop();
}, 60_000);

/** The raw keys this file minted through the console, to search the DOM for. */
const secretsSeen: string[] = [];

/** Reads the secret from the open show-once dialog, checks the copy button copies it, closes the dialog and checks the DOM forgot it. */
async function takeSecret(handle: ConsoleBrowser, screenshot?: string): Promise<string> {
  const { page } = handle;
  const dialog = page.getByTestId("secret-dialog");
  await dialog.getByText("This key will not be shown again.").waitFor();
  const secret = (await dialog.getByTestId("key-secret").textContent({ timeout: uiBoundMs }))?.trim() ?? "";
  expect(secret).toMatch(/^kw[a-z]+_/);
  expect(await page.content()).toContain(secret);
  await dialog.getByRole("button", { name: "Copy key" }).click();
  await dialog.getByText("Copied", { exact: true }).waitFor();
  const copied = await page.evaluate("navigator.clipboard.readText()");
  expect(copied).toBe(secret);
  if (screenshot !== undefined) await handle.screenshot(screenshot);
  await dialog.getByRole("button", { name: "Done, I have stored it" }).click();
  await dialog.getByTestId("key-secret").waitFor({ state: "detached" });
  secretsSeen.push(secret);
  for (const s of secretsSeen) expect(await page.content()).not.toContain(s);
  return secret;
}

/** The fine-grained key row named `displayName`. */
function row(handle: ConsoleBrowser, displayName: string) {
  return handle.page.getByRole("row").filter({ has: handle.page.getByText(displayName, { exact: true }) });
}

describe("the API keys tab", () => {
  it("when the tenant has no fine-grained key, then it shows the slot keys with their last-rotated times and 'Create your first key'", async () => {
    const { page } = admin;
    await page.getByRole("button", { name: "Create your first key" }).waitFor();
    const primary = page.getByTestId("slot-admin-primary");
    const rotated = await primary.getByTestId("last-rotated").locator("time").getAttribute("datetime");
    const stored = (await keys.listKeys({ parent: `tenants/${tenant.slug}`, kind: KeyKind.ADMIN, state: KeyState.ACTIVE }, withKey(tenant.adminKey))).keys;
    expect(rotated).toBe(timestampDate(stored[0]!.lastRotateTime!).toISOString());
    await expect(page.getByTestId("slot-admin-secondary").getByTestId("last-rotated").textContent()).resolves.toBe("never");
    await admin.screenshot("keys-empty");
  });

  let created: { name: string; secret: string; keyName: string } | undefined;

  it("when an admin creates a key with 12 custom days and two permissions, then 'Expires at' shows the date, the key is stored so, and its copied secret verifies with those permissions", async () => {
    const { page } = admin;
    // Esc closes the dialog (and forgets what was typed).
    await page.getByRole("button", { name: "Create your first key" }).click();
    const dialog = page.getByTestId("new-key-dialog");
    await dialog.getByLabel("Name").fill("typed then abandoned");
    await page.keyboard.press("Escape");
    await dialog.getByLabel("Name").waitFor({ state: "detached" });
    await page.getByRole("button", { name: "Create your first key" }).click();
    expect(await dialog.getByLabel("Name").inputValue()).toBe("");
    const name = `ci-deploy-${Date.now().toString(36)}`;
    await dialog.getByLabel("Name").fill(name);
    await dialog.getByRole("radio", { name: "Custom" }).check();
    await dialog.getByLabel("Days (1 to 365)").fill("400");
    await dialog.getByText("A key lives from 1 to 365 days.").waitFor();
    await dialog.getByLabel("Days (1 to 365)").fill("12");
    const shownAt = await dialog.getByTestId("new-key-expires-at").locator("time").getAttribute("datetime");
    const expected = Date.now() + 12 * dayMs;
    expect(Math.abs(Date.parse(shownAt ?? "") - expected)).toBeLessThan(60_000);
    await expect(dialog.getByTestId("new-key-expires-at").textContent()).resolves.toContain(new Date(shownAt ?? "").toISOString().slice(0, 10));
    // The shortcuts: "Read all" implies every read; "Read & write all" every write.
    await dialog.getByRole("checkbox", { name: "Read all" }).check();
    expect(await dialog.getByRole("checkbox", { name: "audit:read", exact: true }).isChecked()).toBe(true);
    expect(await dialog.getByRole("checkbox", { name: "audit:read", exact: true }).isDisabled()).toBe(true);
    await dialog.getByRole("checkbox", { name: "Read & write all" }).check();
    expect(await dialog.getByRole("checkbox", { name: "keys:write", exact: true }).isChecked()).toBe(true);
    await dialog.getByRole("checkbox", { name: "Read & write all" }).uncheck();
    await dialog.getByRole("checkbox", { name: "Read all" }).uncheck();
    expect(await dialog.getByRole("checkbox", { name: "audit:read", exact: true }).isChecked()).toBe(false);
    await dialog.getByRole("checkbox", { name: "keys:read", exact: true }).check();
    await dialog.getByRole("checkbox", { name: "policies:write", exact: true }).check();
    await admin.screenshot("keys-new-key-dialog");
    await dialog.getByLabel("Name").press("Enter");

    const secret = await takeSecret(admin, "keys-secret-dialog");
    const verified = await keys.verifyKey({ key: secret, requiredPermissions: ["keys:read", "policies:write"] });
    expect(verified.result).toBe(VerifyResult.VALID);
    expect([...verified.permissions].sort()).toEqual(["keys:read", "policies:write"]);
    const stored = await keys.getKey({ name: `tenants/${tenant.slug}/keys/${keyIdOf(secret)}` }, withKey(tenant.adminKey));
    expect(stored.key?.displayName).toBe(name);
    expect(Math.abs(timestampDate(stored.key!.expireTime!).getTime() - expected)).toBeLessThan(60_000);
    await row(admin, name).waitFor();
    created = { name, secret, keyName: stored.key!.name };
  });

  it("when the admin clones the key, then the clone's secret is shown once and verifies with the same permissions", async () => {
    if (created === undefined) throw new Error("the create test did not run");
    const { page } = admin;
    await page.getByRole("button", { name: `Clone ${created.name}`, exact: true }).click();
    const dialog = page.getByTestId("clone-key-dialog");
    // A taken name: the server's refusal is shown in words with its reason, and nothing is lost.
    await dialog.getByLabel("Name of the clone").fill(created.name);
    await dialog.getByRole("button", { name: "Clone key" }).click();
    await dialog.getByRole("alert").getByText("AlreadyExists · KEY_NAME_TAKEN").waitFor();
    const cloneName = `${created.name}-clone`;
    await dialog.getByLabel("Name of the clone").fill(cloneName);
    await dialog.getByRole("radio", { name: "7 days" }).check();
    await dialog.getByRole("button", { name: "Clone key" }).click();
    const secret = await takeSecret(admin);
    const verified = await keys.verifyKey({ key: secret });
    expect(verified.result).toBe(VerifyResult.VALID);
    expect([...verified.permissions].sort()).toEqual(["keys:read", "policies:write"]);
    expect(Math.abs(timestampDate(verified.expireTime!).getTime() - (server.clock.now().getTime() + 7 * dayMs))).toBeLessThan(60_000);
    await row(admin, cloneName).waitFor();
  });

  it("when the admin revokes the key in the console, then VerifyKey refuses it as REVOKED and the list says revoked", async () => {
    if (created === undefined) throw new Error("the create test did not run");
    const { page } = admin;
    await page.getByRole("button", { name: `Revoke ${created.name}`, exact: true }).click();
    const dialog = page.getByTestId("revoke-key-dialog");
    await dialog.getByRole("button", { name: "Revoke key" }).click();
    await row(admin, created.name).getByTestId("key-state").getByText("revoked").waitFor();
    expect((await keys.verifyKey({ key: created.secret })).result).toBe(VerifyResult.REVOKED);
    const stored = await keys.getKey({ name: created.keyName }, withKey(tenant.adminKey));
    expect(stored.key?.revokeReason).toBe("revoked in the admin console");
    await admin.screenshot("keys-list");
  });

  it("when the admin rotates the secondary admin slot, then the confirmation names it, its last-rotated time changes and the old secondary value is REVOKED", async () => {
    const parent = `tenants/${tenant.slug}`;
    const old = await keys.rotateKey({ parent, kind: KeyKind.ADMIN, slot: KeySlot.SECONDARY }, withKey(tenant.adminKey));
    expect((await keys.verifyKey({ key: old.secret })).result).toBe(VerifyResult.VALID);
    const { page } = admin;
    await page.reload();
    await admin.signIn(tenant.adminKey);
    await page.getByRole("tab", { name: "API keys" }).click();
    const slot = page.getByTestId("slot-admin-secondary");
    const before = await slot.getByTestId("last-rotated").locator("time").getAttribute("datetime");
    expect(before).toBe(timestampDate(old.key!.lastRotateTime!).toISOString());
    server.clock.advance(5 * 60_000);
    await slot.getByRole("button", { name: "Rotate the secondary admin key" }).click();
    const confirm = page.getByTestId("confirm-dialog");
    await confirm.getByText("Rotate the secondary admin key? The current secondary value stops working").waitFor();
    await admin.screenshot("keys-rotate-confirm");
    await confirm.getByRole("button", { name: "Rotate secondary" }).click();
    const secret = await takeSecret(admin);
    expect((await keys.verifyKey({ key: secret })).result).toBe(VerifyResult.VALID);
    expect((await keys.verifyKey({ key: old.secret })).result).toBe(VerifyResult.REVOKED);
    expect((await keys.verifyKey({ key: tenant.adminKey })).result).toBe(VerifyResult.VALID);
    // The list refreshes once the secret dialog is closed: wait for a time other than before.
    const after = slot.getByTestId("last-rotated").locator(`time:not([datetime="${before ?? ""}"])`);
    await after.waitFor();
    const changed = Date.parse((await after.getAttribute("datetime")) ?? "");
    expect(Math.abs(changed - server.clock.now().getTime())).toBeLessThan(60_000);
  });

  it("when a read-only key signs in, then the tab shows no write button, and the server refuses a write made with it (PermissionDenied)", async () => {
    const parent = `tenants/${tenant.slug}`;
    const readOnly = (await keys.rotateKey({ parent, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY }, withKey(tenant.adminKey))).secret;
    const viewer = await openConsole(server, { viewport: { width: 1400, height: 1000 } });
    try {
      await viewer.signIn(readOnly);
      const { page } = viewer;
      await page.getByRole("tab", { name: "API keys" }).click();
      await row(viewer, `${(created?.name ?? "")}-clone`).waitFor();
      await page.getByTestId("slot-admin-primary").waitFor();
      for (const name of [/^Rotate/, /^New key$/, /^Create your first key$/, /^Revoke/, /^Clone/]) {
        expect(await page.getByRole("button", { name }).count()).toBe(0);
      }
      await viewer.screenshot("keys-read-only");
      const refused = await rpcError(keys.createKey({ parent, displayName: "nope", permissions: ["keys:read"], expireDays: 7 }, withKey(readOnly)));
      expect(refused.code).toBe(Code.PermissionDenied);
      expect(reasonOf(refused)).toBeDefined();
      const rotateRefused = await rpcError(keys.rotateKey({ parent, kind: KeyKind.ADMIN, slot: KeySlot.PRIMARY }, withKey(readOnly)));
      expect(rotateRefused.code).toBe(Code.PermissionDenied);
      expect(viewer.violations).toEqual([]);
      for (const r of viewer.requests) expect(new URL(r.replace(/^[A-Z]+ /, "")).hostname).toBe("127.0.0.1");
    } finally {
      await viewer.close();
    }
  });

  it("when a tenant has more keys than a page, then 'Load more' fetches the rest, and the state filter lists only what ListKeys returns for it", async () => {
    const other = await createTestTenant(server, "console-pages");
    const parent = `tenants/${other.slug}`;
    const made: string[] = [];
    for (let i = 0; i < 52; i++) {
      const res = await keys.createKey({ parent, displayName: `bulk-${String(i).padStart(2, "0")}`, permissions: ["keys:read"], expireDays: 30 }, withKey(other.adminKey));
      made.push(res.key!.name);
    }
    await keys.revokeKey({ name: made[0]!, reason: "test" }, withKey(other.adminKey));
    const viewer = await openConsole(server, { viewport: { width: 1400, height: 1000 } });
    try {
      await viewer.signIn(other.adminKey);
      const { page } = viewer;
      await page.getByRole("tab", { name: "API keys" }).click();
      const rows = page.locator("table.keys tbody tr");
      await page.getByRole("button", { name: "Load more" }).waitFor();
      expect(await rows.count()).toBe(50);
      await page.getByRole("button", { name: "Load more" }).click();
      // (The test clock stands still: the 52 keys share one create time and ListKeys orders them by key id.)
      await rows.nth(51).waitFor();
      expect(await rows.count()).toBe(52);
      expect(await page.getByRole("button", { name: "Load more" }).count()).toBe(0);
      await page.getByLabel("State").selectOption({ label: "revoked" });
      await page.getByLabel("Owner").press("Enter");
      await page.getByRole("button", { name: "Clear filters" }).waitFor();
      await row(viewer, "bulk-01").waitFor({ state: "detached" });
      await row(viewer, "bulk-00").waitFor();
      expect(await rows.count()).toBe(1);
      await expect(row(viewer, "bulk-00").getByTestId("key-state").textContent()).resolves.toBe("revoked");
      await page.getByLabel("Owner").fill("nobody-here");
      await page.getByRole("button", { name: "Apply filters" }).click();
      await page.getByText("No key matches these filters.").waitFor();
      expect(viewer.violations).toEqual([]);
    } finally {
      await viewer.close();
    }
  });

  it("then no request of the admin's console left 127.0.0.1, and no CSP violation or console error happened", () => {
    expect(admin.requests.length).toBeGreaterThan(0);
    for (const r of admin.requests) expect(new URL(r.replace(/^[A-Z]+ /, "")).hostname).toBe("127.0.0.1");
    expect(admin.violations).toEqual([]);
  });
});
