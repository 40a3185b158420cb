// The OIDC federation tab of the admin console (issue 15 item 3, DESIGN.md §4, §7b) in
// Debian's chromium against a live keyward and PostgreSQL, with a local OIDC issuer on
// 127.0.0.1 trusted for the dry run's token: sign in with the bootstrap admin key; create a
// trust policy with a weak claim set and see the server's warnings; the form refuses a bad
// duration before calling and shows the server's refusals; edit it and read the change back
// with GetPolicy; a concurrent edit is reported; copy the workflow snippet and compare it with
// the server's; dry runs with claims that match, that fail on one claim, bad JSON and a
// pasted ID token (gone from the DOM once cleared); delete; a read-only key sees no write
// button; no request leaves 127.0.0.1. Screenshots go to test-output/console/oidc-*.png.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Code, type Client } from "@connectrpc/connect";
import type { Page } from "playwright-core";
import { KeyKind, KeySlot } from "../../gen/keyward/v1/key_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import type { TrustPolicy } from "../../gen/keyward/v1/policy_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { startLocalIssuer, type LocalIssuer } from "../oidc/local-issuer.ts";
import { reasonOf, rpcError } from "../rpc.ts";
import { openConsole, uiBoundMs, type ConsoleBrowser } from "./console-browser.ts";

let server: TestServer;
let issuer: LocalIssuer;
let tenant: TestTenant;
let policies: Client<typeof PolicyService>;
let origin: string;

beforeAll(async () => {
  issuer = await startLocalIssuer();
  server = await startTestServer({ env: { KEYWARD_OIDC_ISSUERS: issuer.issuer } });
  origin = new URL(server.url).origin;
  tenant = await createTestTenant(server, "oidc-ui");
  policies = server.client(PolicyService);
}, 90_000);

afterAll(async () => {
  await server?.stop();
  await issuer?.close();
}, 60_000);

/** The tenant's policy named `displayName`, as stored. */
async function storedPolicy(displayName: string): Promise<TrustPolicy> {
  const res = await policies.listPolicies({ parent: `tenants/${tenant.slug}`, pageSize: 1000 }, withKey(tenant.adminKey));
  const found = res.policies.find((p) => p.displayName === displayName);
  if (found === undefined) throw new Error(`no policy ${displayName}`);
  return found;
}

/** Opens the console signed in with `key`, on the OIDC federation tab (`height`: of the viewport, for screenshots). */
async function openOidcTab(key: string, height = 900): Promise<ConsoleBrowser> {
  const c = await openConsole(server, { viewport: { width: 1280, height } });
  try {
    await c.signIn(key);
    await c.page.getByRole("tab", { name: "OIDC federation" }).click();
    await c.page.getByTestId("oidc-tab").waitFor({ state: "visible" });
    return c;
  } catch (err) {
    await c.close();
    throw err;
  }
}

/** The RPCs of `method` the page made so far (`PolicyService/CreatePolicy`). */
function calls(c: ConsoleBrowser, method: string): number {
  return c.requests.filter((r) => r === `POST ${origin}/keyward.v1.${method}`).length;
}

/** What the page holds as text anywhere: its HTML and every field's current value. */
async function pageText(page: Page): Promise<string> {
  const values = await page.evaluate<string>("JSON.stringify([...document.querySelectorAll('input, textarea')].map((e) => e.value))");
  return (await page.content()) + values;
}

/**
 * Waits until the field `selector` holds `value`, polling for at most uiBoundMs (playwright's
 * waitForFunction would evaluate a string, which the console's CSP forbids).
 */
async function fieldHolds(page: Page, selector: string, value: string): Promise<void> {
  const field = page.locator(selector);
  for (const started = Date.now(); (await field.inputValue()) !== value; ) {
    if (Date.now() - started > uiBoundMs) throw new Error(`${selector} does not hold ${JSON.stringify(value)} within ${uiBoundMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every request went to the server's own origin, and nothing went wrong in the page. */
function expectClean(c: ConsoleBrowser): void {
  expect(c.requests.filter((r) => !r.split(" ")[1]!.startsWith(`${origin}/`))).toEqual([]);
  expect(c.requests.every((r) => new URL(r.split(" ")[1]!).hostname === "127.0.0.1")).toBe(true);
  expect(c.violations).toEqual([]);
}

const weakName = "weak deploys";

describe("the OIDC federation tab in chromium", () => {
  it("when the admin creates a policy with a weak claim set, then the form refuses a bad duration before calling, shows the server's refusals, and the saved policy shows the server's warnings in the result and the list", async () => {
    const c = await openOidcTab(tenant.adminKey, 1500);
    const { page } = c;
    try {
      // The audience, from GetTenant, and the empty state.
      await expect(page.getByTestId("audience-value").textContent()).resolves.toBe(`${tenant.slug}.${server.config.audienceDomain}`);
      await page.getByRole("button", { name: "Create your first policy" }).click();
      const dialog = page.getByRole("dialog", { name: "New trust policy" });
      await dialog.waitFor({ state: "visible" });
      await expect(dialog.getByTestId("owner-or-repository").isVisible()).resolves.toBe(true);
      await expect(dialog.getByText("An empty field is a wildcard: it matches any value.").isVisible()).resolves.toBe(true);

      await page.locator("#policy-name").fill(weakName);
      await page.locator("#policy-description").fill("any repository of acme");
      await page.locator("#claim-repository_owner").fill("acme");
      await page.locator("#perm-harden_runner").selectOption("2");
      await page.locator("#policy-duration").fill("3601");
      await dialog.getByRole("button", { name: "Create policy" }).click();
      await expect(dialog.getByTestId("duration-hint").textContent()).resolves.toMatch(/from 1 to 3600, or 0 for the server default/);
      expect(calls(c, "PolicyService/CreatePolicy")).toBe(0);

      // Neither owner nor repository: the server refuses, and its reason is shown.
      await page.locator("#policy-duration").fill("900");
      await page.locator("#claim-repository_owner").fill("");
      await dialog.getByRole("button", { name: "Create policy" }).click();
      await expect(dialog.getByRole("alert").textContent()).resolves.toMatch(/at least one of repository_owner or repository is required.*OWNER_OR_REPOSITORY_REQUIRED/);
      expect(calls(c, "PolicyService/CreatePolicy")).toBe(1);

      await page.locator("#claim-repository_owner").fill("acme");
      await c.screenshot("oidc-form");
      await dialog.getByRole("button", { name: "Create policy" }).click();
      const saved = dialog.getByTestId("policy-saved");
      await saved.waitFor({ state: "visible" });
      const shown = await saved.getByTestId("policy-warnings").locator("li code").allTextContents();
      expect(shown).toEqual(["NO_STRONG_CLAIM", "OWNER_WILDCARD", "NO_IMMUTABLE_ID"]);
      await c.screenshot("oidc-form-warning");

      const stored = await storedPolicy(weakName);
      expect(stored.claims?.repositoryOwner).toBe("acme");
      expect(stored.maxSessionDurationSeconds).toBe(900);
      expect(stored.permissions).toEqual(["harden_runner:write"]);
      expect(stored.description).toBe("any repository of acme");

      await saved.getByRole("button", { name: "Done" }).click();
      await dialog.waitFor({ state: "hidden" });
      const row = page.locator(`[data-testid="policy-row"][data-policy="${weakName}"]`);
      await expect(row.getByTestId("policy-warnings").locator("summary").textContent()).resolves.toMatch(/3 warnings/);
      // The list shows the server's TrustPolicy.warnings (ListPolicies), the same as CreatePolicy answered.
      const listedCodes = await row.getByTestId("policy-warnings").locator("li code").allTextContents();
      expect(listedCodes).toEqual(stored.warnings.map((w) => w.split(":")[0]));
      expect(listedCodes).toEqual(shown);
      await expect(row.textContent()).resolves.toMatch(/repository_owner = acme.*harden_runner:write.*900 s \(15 min\)/);

      // The name is unique: the server's refusal is shown.
      await page.getByRole("button", { name: "New policy" }).click();
      const again = page.getByRole("dialog", { name: "New trust policy" });
      await page.locator("#policy-name").fill(weakName.toUpperCase());
      await page.locator("#claim-repository").fill("acme/other");
      await page.locator("#perm-harden_runner").selectOption("1");
      await again.getByRole("button", { name: "Create policy" }).click();
      await expect(again.getByRole("alert").textContent()).resolves.toMatch(/POLICY_NAME_TAKEN/);
      await page.keyboard.press("Escape");
      await again.waitFor({ state: "hidden" });
      await c.screenshot("oidc-list");
      expectClean(c);
    } finally {
      await c.close();
    }
  });

  it("when used from the keyboard, then Enter on New policy opens the form with focus inside, Tab walks its fields, and Esc closes it and gives focus back", async () => {
    const c = await openOidcTab(tenant.adminKey);
    const { page } = c;
    try {
      const opener = page.getByRole("button", { name: "New policy" });
      await opener.focus();
      await page.keyboard.press("Enter");
      const dialog = page.getByRole("dialog", { name: "New trust policy" });
      await dialog.waitFor({ state: "visible" });
      const focusedId = () => page.evaluate<string>("document.activeElement?.id ?? ''");
      const inDialog = () => page.evaluate<boolean>("document.querySelector('[data-testid=policy-dialog]').contains(document.activeElement)");
      expect(await inDialog()).toBe(true);
      await page.locator("#policy-name").focus();
      await page.keyboard.type("typed by keyboard");
      await page.keyboard.press("Tab");
      expect(await focusedId()).toBe("policy-description");
      await expect(page.locator("#policy-name").inputValue()).resolves.toBe("typed by keyboard");
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "hidden" });
      expect(await page.evaluate<string>("document.activeElement?.textContent ?? ''")).toBe("New policy");
      expect(calls(c, "PolicyService/CreatePolicy")).toBe(0);
      expectClean(c);
    } finally {
      await c.close();
    }
  });

  it("when the admin edits the policy, then UpdatePolicy stores the change (read back with GetPolicy), the warnings shrink, and an edit made meanwhile by someone else is reported with a way to reload", async () => {
    const c = await openOidcTab(tenant.adminKey);
    const { page } = c;
    try {
      const row = page.locator(`[data-testid="policy-row"][data-policy="${weakName}"]`);
      await row.getByRole("button", { name: `Edit ${weakName}` }).click();
      const dialog = page.getByRole("dialog", { name: `Edit trust policy "${weakName}"` });
      await dialog.waitFor({ state: "visible" });
      await expect(page.locator("#policy-org").getAttribute("readonly")).resolves.not.toBeNull();
      await page.locator("#claim-repository").fill("acme/deploy");
      await page.locator("#claim-repository_id").fill("123456789");
      await page.locator("#policy-description").fill("the deploy repository");
      await dialog.getByRole("button", { name: "Save changes" }).click();
      const saved = dialog.getByTestId("policy-saved");
      await saved.waitFor({ state: "visible" });
      // Repository and its id pinned: the server has no more advice.
      await expect(saved.getByRole("status").textContent()).resolves.toMatch(/saved\. The server gave no warnings\./);
      await expect(saved.getByTestId("policy-warnings").count()).resolves.toBe(0);

      const stored = await storedPolicy(weakName);
      const got = (await policies.getPolicy({ name: stored.name }, withKey(tenant.adminKey))).policy!;
      expect([got.claims?.repositoryOwner, got.claims?.repository, got.claims?.repositoryId, got.description]).toEqual(["acme", "acme/deploy", "123456789", "the deploy repository"]);
      expect(got.maxSessionDurationSeconds).toBe(900);
      await saved.getByRole("button", { name: "Done" }).click();
      await dialog.waitFor({ state: "hidden" });
      await expect(row.getByText("none", { exact: true }).count()).resolves.toBe(1);

      // Someone else changes it after the form opened.
      await row.getByRole("button", { name: `Edit ${weakName}` }).click();
      await dialog.waitFor({ state: "visible" });
      await policies.updatePolicy({ policy: { name: got.name, etag: got.etag, description: "changed elsewhere" }, updateMask: { paths: ["description"] } }, withKey(tenant.adminKey));
      await page.locator("#policy-duration").fill("600");
      await dialog.getByRole("button", { name: "Save changes" }).click();
      await expect(dialog.getByTestId("edit-conflict").textContent()).resolves.toMatch(/Someone else changed this policy/);
      expect((await storedPolicy(weakName)).maxSessionDurationSeconds).toBe(900);
      await dialog.getByRole("button", { name: "Load the current version" }).click();
      await fieldHolds(page, "#policy-description", "changed elsewhere");
      await expect(page.locator("#policy-duration").inputValue()).resolves.toBe("900");
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "hidden" });
      expectClean(c);
    } finally {
      await c.close();
    }
  });

  it("when the admin copies the workflow snippet, then the clipboard holds exactly the server's snippet for that policy", async () => {
    const c = await openOidcTab(tenant.adminKey);
    const { page } = c;
    try {
      await page.getByRole("button", { name: `Show ready-to-paste workflow snippet for ${weakName}` }).click();
      const dialog = page.getByRole("dialog", { name: `Workflow snippet: ${weakName}` });
      await dialog.waitFor({ state: "visible" });
      await dialog.getByRole("button", { name: "Copy snippet" }).click();
      await dialog.getByText("Copied").waitFor({ state: "visible" });
      const copied = await page.evaluate<string>("navigator.clipboard.readText()");
      const stored = await storedPolicy(weakName);
      const fromServer = (await policies.getPolicy({ name: stored.name }, withKey(tenant.adminKey))).policy!.workflowSnippet;
      expect(copied).toBe(fromServer);
      expect(copied).toContain(`policy='${stored.name}'`);
      await expect(dialog.getByTestId("workflow-snippet-text").textContent()).resolves.toBe(fromServer);
      await c.screenshot("oidc-snippet");
      await dialog.getByRole("button", { name: "Close", exact: true }).first().click();
      await dialog.waitFor({ state: "hidden" });
      expectClean(c);
    } finally {
      await c.close();
    }
  });

  it("when claims are dry-run, then bad JSON is refused before any call, matching claims name the policy, and claims failing on one claim name that claim with expected and actual", async () => {
    const c = await openOidcTab(tenant.adminKey, 1200);
    const { page } = c;
    try {
      const panel = page.getByTestId("dry-run");
      const input = page.locator("#dry-run-claims");
      await input.fill('{"repository": "acme/deploy",');
      await panel.getByRole("button", { name: "Run dry run" }).click();
      await expect(panel.getByTestId("dry-run-input-error").textContent()).resolves.toMatch(/not valid JSON/);
      expect(calls(c, "PolicyService/TestPolicy")).toBe(0);

      const claims = { repository_owner: "acme", repository: "acme/deploy", repository_id: "123456789", ref: "refs/heads/main", iat: 1700000000 };
      await input.fill(JSON.stringify(claims));
      await panel.getByRole("button", { name: "Run dry run" }).click();
      await expect(panel.getByTestId("dry-run-verdict").textContent()).resolves.toBe(`The policy "${weakName}" matches: an exchange would use it.`);

      await input.fill(JSON.stringify({ ...claims, repository: "acme/deploy-evil" }, null, 2));
      await panel.getByRole("button", { name: "Run dry run" }).click();
      await expect(panel.getByTestId("dry-run-verdict").textContent()).resolves.toMatch(/^No policy matches/);
      const row = panel.locator(`[data-testid="dry-run-row"][data-policy="${weakName}"]`);
      await expect(row.textContent()).resolves.toContain('fails on repository — the policy requires "acme/deploy", the token has "acme/deploy-evil"');
      await panel.scrollIntoViewIfNeeded();
      await c.screenshot("oidc-dry-run");
      expect(calls(c, "PolicyService/TestPolicy")).toBe(2);
      expectClean(c);
    } finally {
      await c.close();
    }
  });

  it("when an ID token is pasted into the dry run, then keyward verifies and compares it, and Clear (or leaving the tab) leaves no trace of it in the DOM", async () => {
    const audience = `${tenant.slug}.${server.config.audienceDomain}`;
    const tokenPolicy = "token deploys";
    const created = await policies.createPolicy(
      { parent: `tenants/${tenant.slug}`, policy: { displayName: tokenPolicy, claims: { repository: "acme/tokens", repositoryId: "555" }, permissions: ["harden_runner:read"] } },
      withKey(tenant.adminKey),
    );
    const token = await issuer.token({ repository: "acme/tokens", repository_owner: "acme", repository_id: "555" }, { audience });
    const secretPart = token.split(".")[2]!;
    const c = await openOidcTab(tenant.adminKey);
    const { page } = c;
    try {
      const panel = page.getByTestId("dry-run");
      await panel.getByRole("radio", { name: "ID token" }).check();
      await page.locator("#dry-run-token").fill(token);
      await panel.getByRole("button", { name: "Run dry run" }).click();
      const row = panel.locator(`[data-testid="dry-run-row"][data-policy="${tokenPolicy}"]`);
      await expect(row.textContent()).resolves.toMatch(/✓ matches/);
      await expect(panel.getByTestId("dry-run-verdict").textContent()).resolves.toBe(`The policy "${tokenPolicy}" matches: an exchange would use it.`);
      expect(c.requests.some((r) => r.includes(secretPart))).toBe(false);
      // The probe sees the token while it is pasted (so its absence below means something).
      expect(await pageText(page)).toContain(secretPart);
      await panel.getByRole("button", { name: "Clear" }).click();
      await panel.getByTestId("dry-run-result").waitFor({ state: "detached" });
      expect(await pageText(page)).not.toContain(secretPart);

      // Leaving the tab forgets it too (the shell keeps the panel mounted, hidden).
      await page.locator("#dry-run-token").fill(token);
      await page.getByRole("tab", { name: "API keys" }).click();
      await fieldHolds(page, "#dry-run-token", "");
      expect(await pageText(page)).not.toContain(secretPart);
      expectClean(c);
    } finally {
      await c.close();
      await policies.deletePolicy({ name: created.policy!.name, etag: created.policy!.etag }, withKey(tenant.adminKey));
    }
  });

  it("when a token that does not verify is pasted, then its refusal is shown in words and the console stays signed in", async () => {
    const c = await openOidcTab(tenant.adminKey);
    const { page } = c;
    try {
      const panel = page.getByTestId("dry-run");
      await panel.getByRole("radio", { name: "ID token" }).check();
      await page.locator("#dry-run-token").fill(`eyJhbGciOiJSUzI1NiJ9.e30.${"s".repeat(20)}`);
      await panel.getByRole("button", { name: "Run dry run" }).click();
      await expect(panel.getByRole("alert").textContent()).resolves.toMatch(/MISSING_KEY_ID/);
      await expect(page.getByRole("tablist").isVisible()).resolves.toBe(true);
      expectClean(c);
    } finally {
      await c.close();
    }
  });

  it("when a fine-grained key with policies:write and harden_runner:read creates a policy, then the allowlist offers only what the key holds", async () => {
    const keys = server.client(KeyService);
    const { secret } = await keys.createKey(
      { parent: `tenants/${tenant.slug}`, displayName: "policy editor", permissions: ["policies:write", "harden_runner:read"], expireDays: 7 },
      withKey(tenant.adminKey),
    );
    const c = await openOidcTab(secret);
    const { page } = c;
    try {
      await page.getByRole("button", { name: "New policy" }).click();
      const dialog = page.getByRole("dialog", { name: "New trust policy" });
      await dialog.waitFor({ state: "visible" });
      const selects = await dialog.locator(".permissions-grid select").evaluateAll((els) => els.map((e) => e.id));
      expect(selects).toEqual(["perm-harden_runner", "perm-policies"]);
      await expect(page.locator("#perm-harden_runner option").allTextContents()).resolves.toEqual(["none", "read"]);
      await expect(dialog.getByRole("button", { name: "Read & write all" }).count()).resolves.toBe(0);
      expectClean(c);
    } finally {
      await c.close();
    }
  });

  it("when a read-only key signs in, then it sees the policies, snippet and dry run but no write button, and the server refuses its writes anyway", async () => {
    const keys = server.client(KeyService);
    const { secret } = await keys.rotateKey({ parent: `tenants/${tenant.slug}`, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY }, withKey(tenant.adminKey));
    const c = await openOidcTab(secret);
    const { page } = c;
    try {
      const row = page.locator(`[data-testid="policy-row"][data-policy="${weakName}"]`);
      await row.waitFor({ state: "visible" });
      await expect(row.getByRole("button", { name: `Show ready-to-paste workflow snippet for ${weakName}` }).count()).resolves.toBe(1);
      const tab = page.getByTestId("oidc-tab");
      for (const name of [/^New policy$/, /^Create your first policy$/, /^Edit /, /^Delete /]) {
        await expect(tab.getByRole("button", { name }).count()).resolves.toBe(0);
      }
      await expect(page.getByTestId("dry-run").getByRole("button", { name: "Run dry run" }).count()).resolves.toBe(1);
      await c.screenshot("oidc-read-only");
      const stored = await storedPolicy(weakName);
      const refused = await rpcError(policies.deletePolicy({ name: stored.name, etag: stored.etag }, withKey(secret)));
      expect([Code[refused.code], reasonOf(refused)]).toEqual(["PermissionDenied", "INSUFFICIENT_SCOPE"]);
      expectClean(c);
    } finally {
      await c.close();
    }
  });

  it("when the admin deletes the policy after confirming, then GetPolicy answers NotFound and the list is empty again", async () => {
    const c = await openOidcTab(tenant.adminKey);
    const { page } = c;
    try {
      const stored = await storedPolicy(weakName);
      await page.getByRole("button", { name: `Delete ${weakName}` }).click();
      const confirm = page.getByTestId("confirm-dialog");
      await expect(confirm.textContent()).resolves.toContain(`Delete "${weakName}"?`);
      // Cancel first: nothing is deleted.
      await confirm.getByRole("button", { name: "Cancel" }).click();
      await confirm.waitFor({ state: "hidden" });
      expect(calls(c, "PolicyService/DeletePolicy")).toBe(0);
      await page.getByRole("button", { name: `Delete ${weakName}` }).click();
      await confirm.getByRole("button", { name: "Delete policy" }).click();
      await expect(page.getByTestId("oidc-notice").textContent()).resolves.toContain(`"${weakName}" deleted`);
      await page.getByRole("button", { name: "Create your first policy" }).waitFor({ state: "visible" });
      const err = await rpcError(policies.getPolicy({ name: stored.name }, withKey(tenant.adminKey)));
      expect([Code[err.code], reasonOf(err)]).toEqual(["NotFound", "POLICY_NOT_FOUND"]);
      expectClean(c);
    } finally {
      await c.close();
    }
  });
});
