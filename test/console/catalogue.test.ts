// The console offers the deployment's permission catalogue as the server publishes it
// (DirectoryService.GetPermissionCatalogue; KEYWARD_PERMISSION_CATEGORIES, DESIGN.md §1), not
// a list of its own: against a server configured with its own categories, the new-key dialog
// and the trust-policy form offer exactly those, read once per session; and the built bundle
// carries neither the default category list nor the server's weak-policy rules
// (TrustPolicy.warnings comes from the server). Screenshots: test-output/console/catalogue-*.png.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { buildConsoleOnce, openConsole } from "./console-browser.ts";

/** The configured categories; keyward adds its own (src/config.ts). */
const expected = ["deploy", "billing", "keys", "policies", "directory", "audit"];

let server: TestServer;
let tenant: TestTenant;
let origin: string;

beforeAll(async () => {
  server = await startTestServer({ env: { KEYWARD_PERMISSION_CATEGORIES: "deploy,billing" } });
  origin = new URL(server.url).origin;
  tenant = await createTestTenant(server, "cat-ui");
}, 90_000);

afterAll(async () => {
  await server?.stop();
}, 60_000);

describe("the permission catalogue in chromium", () => {
  it("when the server has its own categories, then the new-key dialog and the policy form offer exactly those, from one GetPermissionCatalogue call", async () => {
    expect([...server.config.permissionCategories]).toEqual(expected);
    const c = await openConsole(server, { viewport: { width: 1280, height: 1200 } });
    const { page } = c;
    try {
      await c.signIn(tenant.adminKey);
      await page.getByRole("tab", { name: "API keys" }).click();
      await page.getByRole("button", { name: "Create your first key" }).click();
      const dialog = page.getByTestId("new-key-dialog");
      const rows = dialog.locator("table tbody th[scope=row]");
      await rows.first().waitFor();
      expect(await rows.allTextContents()).toEqual(expected);
      await expect(dialog.getByRole("checkbox", { name: "deploy:write", exact: true }).count()).resolves.toBe(1);
      await expect(dialog.getByRole("checkbox", { name: "harden_runner:read", exact: true }).count()).resolves.toBe(0);
      await c.screenshot("catalogue-new-key");
      await page.keyboard.press("Escape");
      await dialog.getByLabel("Name").waitFor({ state: "detached" });

      await page.getByRole("tab", { name: "OIDC federation" }).click();
      await page.getByRole("button", { name: "Create your first policy" }).click();
      const form = page.getByRole("dialog", { name: "New trust policy" });
      const selects = form.locator(".permissions-grid select");
      await selects.first().waitFor();
      const ids = await selects.evaluateAll((els) => els.map((e) => e.id));
      expect(ids).toEqual(expected.map((cat) => `perm-${cat}`));
      await c.screenshot("catalogue-policy-form");

      // Once per session: both tabs share the one answer.
      const catalogueCalls = c.requests.filter((r) => r === `POST ${origin}/keyward.v1.DirectoryService/GetPermissionCatalogue`);
      expect(catalogueCalls).toHaveLength(1);
      expect(c.violations).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("when a key holds only keys:write, then the new-key dialog offers keys alone, from the catalogue it may read", async () => {
    const created = await server.client(KeyService).createKey(
      { parent: `tenants/${tenant.slug}`, displayName: "keys writer", permissions: ["keys:write"], expireDays: 7 },
      withKey(tenant.adminKey),
    );
    const c = await openConsole(server);
    const { page } = c;
    try {
      await c.signIn(created.secret);
      await page.getByRole("tab", { name: "API keys" }).click();
      await page.getByRole("button", { name: /^(New key|Create your first key)$/ }).click();
      const dialog = page.getByTestId("new-key-dialog");
      const rows = dialog.locator("table tbody th[scope=row]");
      await rows.first().waitFor();
      expect(await rows.allTextContents()).toEqual(["keys"]);
      await expect(dialog.getByRole("alert").count()).resolves.toBe(0);
    } finally {
      await c.close();
    }
  });

  it("when the console is built, then its bundle holds no copy of the category list nor of the weak-policy rules", async () => {
    await buildConsoleOnce();
    const assets = path.join(import.meta.dirname, "../../console/dist/current/assets");
    const files = (await readdir(assets)).filter((f) => f.endsWith(".js"));
    expect(files.length).toBeGreaterThan(0);
    const bundle = (await Promise.all(files.map((f) => readFile(path.join(assets, f), "utf8")))).join("\n");
    // The bundle is the current build (it has the catalogue's loading state); never printed whole.
    expect(bundle.includes("Loading the permission catalogue")).toBe(true);
    for (const copied of ["orchestrate_security", "oss_package_security", "no claim narrows this policy", "OWNER_WILDCARD"]) {
      expect({ copied, found: bundle.includes(copied) }).toEqual({ copied, found: false });
    }
  });
});
