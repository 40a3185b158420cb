// DirectoryService.GetPermissionCatalogue: the deployment's permission categories
// (KEYWARD_PERMISSION_CATEGORIES, DESIGN.md §1) for any authenticated caller of the tenant,
// whatever its permissions — the console's key and policy forms offer exactly these.
import { beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { directory, keys, reasonOf, rpcError, server, useServer } from "../rpc.ts";

/** Configured categories, in an order the default list does not have. */
const configured = ["deploy", "billing", "keys"];
/** What the server makes of them: keyward's own categories are always there (src/config.ts). */
const expected = ["deploy", "billing", "keys", "policies", "directory", "audit"];

useServer({ env: { KEYWARD_PERMISSION_CATEGORIES: configured.join(",") } });

let t: TestTenant;
let keysWriter: string;
beforeAll(async () => {
  t = await createTestTenant(server, "cat");
  keysWriter = (await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "keys only", permissions: ["keys:write"], expireDays: 7 }, withKey(t.adminKey))).secret;
});

describe("GetPermissionCatalogue", () => {
  test("when the server is configured with KEYWARD_PERMISSION_CATEGORIES, then it returns exactly those (plus keyward's own), in the configured order", async () => {
    const res = await directory.getPermissionCatalogue({ name: `tenants/${t.slug}/permissionCatalogue` }, withKey(t.adminKey));
    expect(res.catalogue?.name).toBe(`tenants/${t.slug}/permissionCatalogue`);
    expect(res.catalogue?.categories).toEqual(expected);
    expect(res.catalogue?.categories).toEqual([...server.config.permissionCategories]);
    expect(res.catalogue?.categories).not.toContain("harden_runner");
  });

  test("when the caller holds only keys:write (no directory:read), then it may read the catalogue, though GetTenant refuses it", async () => {
    const res = await directory.getPermissionCatalogue({ name: `tenants/${t.slug}/permissionCatalogue` }, withKey(keysWriter));
    expect(res.catalogue?.categories).toEqual(expected);
    const refused = await rpcError(directory.getTenant({ name: `tenants/${t.slug}` }, withKey(keysWriter)));
    expect([refused.code, reasonOf(refused)]).toEqual([Code.PermissionDenied, "INSUFFICIENT_SCOPE"]);
  });

  test("when the name is empty, then it is the caller's tenant's catalogue", async () => {
    const res = await directory.getPermissionCatalogue({ name: "" }, withKey(keysWriter));
    expect(res.catalogue).toMatchObject({ name: `tenants/${t.slug}/permissionCatalogue`, categories: expected });
  });

  test("when the name is another tenant's, then PermissionDenied TENANT_MISMATCH; a malformed name is InvalidArgument INVALID_RESOURCE_NAME", async () => {
    const other = await rpcError(directory.getPermissionCatalogue({ name: "tenants/someone-else/permissionCatalogue" }, withKey(t.adminKey)));
    expect([other.code, reasonOf(other)]).toEqual([Code.PermissionDenied, "TENANT_MISMATCH"]);
    for (const name of [`tenants/${t.slug}`, `tenants/${t.slug}/permissionCatalog`, `tenants/${t.slug}/permissionCatalogue/x`]) {
      const bad = await rpcError(directory.getPermissionCatalogue({ name }, withKey(t.adminKey)));
      expect([name, bad.code, reasonOf(bad)]).toEqual([name, Code.InvalidArgument, "INVALID_RESOURCE_NAME"]);
    }
  });

  test("when there is no credential or a bad one, then Unauthenticated", async () => {
    for (const key of [undefined, "kw_not_a_real_key"]) {
      const err = await rpcError(directory.getPermissionCatalogue({ name: `tenants/${t.slug}/permissionCatalogue` }, withKey(key)));
      expect(err.code).toBe(Code.Unauthenticated);
    }
  });
});
