// A page token is valid only for the listing, parent and filters that minted it: a token
// from one listing replayed on another, or in another tenant, is InvalidArgument, never a
// page of something else and never Internal. Audit event names reveal no shared sequence.
import { describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { audit, directory, keys, reasonOf, rpcError, server, uniq, useServer } from "../rpc.ts";

useServer();

type Listing = "ListKeys" | "ListPolicies" | "ListOrganizations" | "ListPrincipals" | "ListAuditEvents";
const listings: readonly Listing[] = ["ListKeys", "ListPolicies", "ListOrganizations", "ListPrincipals", "ListAuditEvents"];

/** Calls one listing of tenant `t` with page size 1 and the given token. */
async function list(listing: Listing, t: TestTenant, pageToken = ""): Promise<string> {
  const req = { parent: `tenants/${t.slug}`, pageSize: 1, pageToken };
  const opts = withKey(t.adminKey);
  switch (listing) {
    case "ListKeys":
      return (await keys.listKeys(req, opts)).nextPageToken;
    case "ListPolicies":
      return (await server.client(PolicyService).listPolicies(req, opts)).nextPageToken;
    case "ListOrganizations":
      return (await directory.listOrganizations(req, opts)).nextPageToken;
    case "ListPrincipals":
      return (await directory.listPrincipals(req, opts)).nextPageToken;
    case "ListAuditEvents":
      return (await audit.listAuditEvents(req, opts)).nextPageToken;
  }
}

/** A tenant with at least two of everything, so every listing has a second page. */
async function populatedTenant(): Promise<TestTenant> {
  const t = await createTestTenant(server);
  const parent = `tenants/${t.slug}`;
  for (const n of [1, 2]) {
    await keys.createKey({ parent, displayName: uniq("key"), permissions: ["keys:read"], expireDays: 7 }, withKey(t.adminKey));
    await server.client(PolicyService).createPolicy({ parent, policy: { displayName: uniq("policy"), claims: { repository: "acme/x" }, permissions: ["keys:read"] } }, withKey(t.adminKey));
    await directory.createOrganization({ parent, slug: uniq("org") }, withKey(t.adminKey));
    // Principal ids that look like audit positions and key positions (the old tokens' shapes).
    await directory.createPrincipal({ parent, principalId: `${n}00`, type: PrincipalType.USER, permissions: [] }, withKey(t.adminKey));
  }
  return t;
}

describe("page tokens", () => {
  test("when a token from one listing is used on any other listing, then InvalidArgument INVALID_PAGE_TOKEN", async () => {
    const t = await populatedTenant();
    for (const from of listings) {
      const token = await list(from, t);
      expect(token).not.toBe("");
      expect(await list(from, t, token)).toBeDefined(); // valid where it was minted
      for (const to of listings.filter((l) => l !== from)) {
        const err = await rpcError(list(to, t, token));
        expect([from, to, Code[err.code], reasonOf(err)]).toEqual([from, to, "InvalidArgument", "INVALID_PAGE_TOKEN"]);
      }
    }
  });

  test("when a token from one tenant is used in another tenant, then InvalidArgument INVALID_PAGE_TOKEN", async () => {
    const [a, b] = [await populatedTenant(), await populatedTenant()];
    for (const listing of listings) {
      const err = await rpcError(list(listing, b, await list(listing, a)));
      expect([listing, Code[err.code], reasonOf(err)]).toEqual([listing, "InvalidArgument", "INVALID_PAGE_TOKEN"]);
    }
  });

  test.each([
    ["JSON null", Buffer.from("null").toString("base64url")],
    ["a JSON array", Buffer.from("[]").toString("base64url")],
    ["a JSON string", Buffer.from('"x"').toString("base64url")],
    ["a position without a fingerprint", Buffer.from(JSON.stringify({ p: ["1"] })).toString("base64url")],
    ["2 kB", "A".repeat(2048)],
  ])("when page_token is %s, then every listing answers InvalidArgument, never Internal", async (_what, token) => {
    const t = await createTestTenant(server);
    for (const listing of listings) {
      const err = await rpcError(list(listing, t, token));
      expect([listing, Code[err.code], reasonOf(err)]).toEqual([listing, "InvalidArgument", "INVALID_PAGE_TOKEN"]);
    }
  });
});

describe("audit event names", () => {
  test("when two tenants write events, then event ids are random UUIDs, not a sequence shared by all tenants, and paging still walks every event once", async () => {
    const [a, b] = [await populatedTenant(), await populatedTenant()];
    const seen: string[] = [];
    let pageToken = "";
    for (let i = 0; i < 50; i++) {
      const res = await audit.listAuditEvents({ parent: `tenants/${a.slug}`, pageSize: 2, pageToken }, withKey(a.adminKey));
      for (const e of res.events) {
        expect(e.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(e.name).toBe(`tenants/${a.slug}/auditEvents/${e.eventId}`);
        seen.push(e.eventId);
      }
      pageToken = res.nextPageToken;
      if (pageToken === "") break;
    }
    expect(pageToken).toBe("");
    const all = await audit.listAuditEvents({ parent: `tenants/${a.slug}`, pageSize: 1000 }, withKey(a.adminKey));
    expect(seen).toEqual(all.events.map((e) => e.eventId));
    expect(new Set(seen).size).toBe(seen.length);
    // Another tenant's event id is no position in this tenant's log.
    const other = (await audit.listAuditEvents({ parent: `tenants/${b.slug}`, pageSize: 1 }, withKey(b.adminKey))).events[0]!;
    expect(all.events.some((e) => e.eventId === other.eventId)).toBe(false);
  });
});
