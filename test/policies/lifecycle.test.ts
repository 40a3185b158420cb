// Trust policies end to end through the real server: create, get, list, update, delete over
// Connect and gRPC; every answer carries the tenant's audience and a workflow snippet for
// that policy; etags; pagination; audit events in the same transaction.
import { beforeAll, describe, expect, test } from "@jest/globals";
import { Code, type Client } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import type { TrustPolicy } from "../../gen/keyward/v1/policy_pb.ts";
import type { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { workflowSnippet } from "../../src/policies/workflow-snippet.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { audit, reasonOf, rpcError, server, uniq, useServer } from "../rpc.ts";
import { codesOf, createPolicy, policyClient, policyOf, strongClaims } from "./policy-helpers.ts";

useServer();

let policies: Client<typeof PolicyService>;
let grpcPolicies: Client<typeof PolicyService>;
beforeAll(() => {
  policies = policyClient();
  grpcPolicies = policyClient(server.grpcTransport);
});

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Checks the output-only fields every answer carries for `p` of tenant `t`. */
function expectAudienceAndSnippet(t: TestTenant, p: TrustPolicy | undefined): void {
  const audience = `${t.slug}.${server.config.audienceDomain}`;
  expect(p?.audience).toBe(audience);
  expect(p?.workflowSnippet).toBe(workflowSnippet({ keywardUrl: server.config.publicUrl, tenant: t.slug, policyName: p?.name ?? "?", audience }));
  expect(p?.workflowSnippet).toContain(`audience='${audience}'`);
  expect(p?.workflowSnippet).toContain(`policy='${p?.name}'`);
}

describe("create, get, list, update, delete", () => {
  test("when a policy is created over Connect, then the answer has its name, fields, creator, etag, audience and snippet, and GetPolicy returns the same", async () => {
    const t = await createTestTenant(server, "pol");
    const before = server.clock.now().getTime();
    const res = await policies.createPolicy(
      {
        parent: `tenants/${t.slug}`,
        policy: {
          displayName: "Deploy from main",
          description: "production deploys",
          claims: { ...strongClaims, ref: "refs/heads/main", jobWorkflowRef: "acme/deploy/.github/workflows/release.yml@refs/heads/main", eventName: "push" },
          maxSessionDurationSeconds: 900,
          permissions: ["keys:read", "audit:read", "keys:read"],
        },
      },
      withKey(t.adminKey),
    );
    const p = policyOf(res);
    expect(p.policyId).toMatch(uuid);
    expect(p.name).toBe(`tenants/${t.slug}/policies/${p.policyId}`);
    expect(p).toMatchObject({ displayName: "Deploy from main", description: "production deploys", org: "", maxSessionDurationSeconds: 900, etag: "1" });
    expect(p.permissions).toEqual(["audit:read", "keys:read"]);
    expect(p.claims).toMatchObject({
      repositoryOwner: "acme", repository: "acme/deploy", repositoryId: "123456789", repositoryOwnerId: "4242", environment: "production",
      ref: "refs/heads/main", jobWorkflowRef: "acme/deploy/.github/workflows/release.yml@refs/heads/main", eventName: "push",
    });
    expect(p.creator).toBe(`tenants/${t.slug}/principals/admin`);
    expect(timestampDate(p.createTime!).getTime()).toBe(before);
    expect(res.warnings).toEqual([]);
    expectAudienceAndSnippet(t, p);

    const got = policyOf(await policies.getPolicy({ name: p.name }, withKey(t.adminKey)));
    expect(got).toEqual(p);
  });

  test("when policies are created and read over gRPC, then the same rules and answers hold", async () => {
    const t = await createTestTenant(server, "pol-grpc");
    const created = await createPolicy(t, { client: grpcPolicies, displayName: "grpc policy" });
    const p = policyOf(created);
    expectAudienceAndSnippet(t, p);
    const listed = await grpcPolicies.listPolicies({ parent: `tenants/${t.slug}` }, withKey(t.adminKey));
    expect(listed.policies.map((x) => x.name)).toEqual([p.name]);
    expectAudienceAndSnippet(t, listed.policies[0]);
    const err = await rpcError(createPolicy(t, { client: grpcPolicies, displayName: "GRPC POLICY" }));
    expect([Code[err.code], reasonOf(err)]).toEqual(["AlreadyExists", "POLICY_NAME_TAKEN"]);
    await grpcPolicies.deletePolicy({ name: p.name, etag: p.etag }, withKey(t.adminKey));
    const gone = await rpcError(grpcPolicies.getPolicy({ name: p.name }, withKey(t.adminKey)));
    expect([Code[gone.code], reasonOf(gone)]).toEqual(["NotFound", "POLICY_NOT_FOUND"]);
  });

  test("when a policy is updated with its etag, then only the masked fields change, the etag moves on and the answer carries audience and snippet", async () => {
    const t = await createTestTenant(server, "pol-upd");
    const p = policyOf(await createPolicy(t, { displayName: "before", description: "old", permissions: ["keys:read"] }));
    server.clock.advance(5_000);
    const res = await policies.updatePolicy(
      {
        policy: { name: p.name, etag: p.etag, displayName: "after", description: "ignored: not in the mask", maxSessionDurationSeconds: 3600, permissions: ["keys:write"] },
        updateMask: { paths: ["display_name", "max_session_duration_seconds", "permissions"] },
      },
      withKey(t.adminKey),
    );
    const u = policyOf(res);
    expect(u).toMatchObject({ name: p.name, displayName: "after", description: "old", maxSessionDurationSeconds: 3600, permissions: ["keys:write"], etag: "2" });
    expect(u.claims).toEqual(p.claims);
    expect(timestampDate(u.updateTime!).getTime()).toBe(timestampDate(p.updateTime!).getTime() + 5_000);
    expect(timestampDate(u.createTime!)).toEqual(timestampDate(p.createTime!));
    // Strong claims; keys:write lets a workflow make credentials that outlive it (federation-policies.test.ts).
    expect(codesOf(res.warnings)).toEqual(["GRANTS_ADMINISTRATION"]);
    expectAudienceAndSnippet(t, u);
    expect(policyOf(await policies.getPolicy({ name: p.name }, withKey(t.adminKey)))).toEqual(u);

    // Claims are replaced as a whole and checked again.
    const c = await policies.updatePolicy(
      { policy: { name: p.name, etag: u.etag, claims: { repositoryOwner: "acme" } }, updateMask: { paths: ["claims"] } },
      withKey(t.adminKey),
    );
    expect(policyOf(c).claims).toMatchObject({ repositoryOwner: "acme", repository: "", repositoryId: "", environment: "" });
    expect(c.warnings.map((w) => w.split(":")[0])).toEqual(["NO_STRONG_CLAIM", "OWNER_WILDCARD", "NO_IMMUTABLE_ID", "GRANTS_ADMINISTRATION"]);
  });

  test("when a policy is deleted with its etag, then it is gone from get and list", async () => {
    const t = await createTestTenant(server, "pol-del");
    const keep = policyOf(await createPolicy(t, { displayName: "keep" }));
    const drop = policyOf(await createPolicy(t, { displayName: "drop" }));
    await policies.deletePolicy({ name: drop.name, etag: drop.etag }, withKey(t.adminKey));
    const err = await rpcError(policies.getPolicy({ name: drop.name }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["NotFound", "POLICY_NOT_FOUND"]);
    const again = await rpcError(policies.deletePolicy({ name: drop.name, etag: drop.etag }, withKey(t.adminKey)));
    expect([Code[again.code], reasonOf(again)]).toEqual(["NotFound", "POLICY_NOT_FOUND"]);
    expect((await policies.listPolicies({ parent: `tenants/${t.slug}` }, withKey(t.adminKey))).policies.map((p) => p.name)).toEqual([keep.name]);
  });

  test("when the policy name is a well-formed id nobody has, or malformed, then NotFound or InvalidArgument, never Internal", async () => {
    const t = await createTestTenant(server, "pol-names");
    const parent = `tenants/${t.slug}`;
    const missing = await rpcError(policies.getPolicy({ name: `${parent}/policies/00000000-0000-4000-8000-000000000000` }, withKey(t.adminKey)));
    expect([Code[missing.code], reasonOf(missing)]).toEqual(["NotFound", "POLICY_NOT_FOUND"]);
    for (const name of [`${parent}/policies/------------------------------------`, `${parent}/policies/x`, `${parent}/keys/00000000-0000-4000-8000-000000000000`, ""]) {
      const err = await rpcError(policies.getPolicy({ name }, withKey(t.adminKey)));
      expect([name, Code[err.code], reasonOf(err)]).toEqual([name, "InvalidArgument", "INVALID_RESOURCE_NAME"]);
    }
  });
});

describe("etags", () => {
  test("when update or delete comes without an etag, then InvalidArgument ETAG_REQUIRED and nothing changes", async () => {
    const t = await createTestTenant(server, "pol-etag");
    const p = policyOf(await createPolicy(t, { displayName: "etag" }));
    const upd = await rpcError(policies.updatePolicy({ policy: { name: p.name, displayName: "changed" }, updateMask: { paths: ["display_name"] } }, withKey(t.adminKey)));
    expect([Code[upd.code], reasonOf(upd)]).toEqual(["InvalidArgument", "ETAG_REQUIRED"]);
    const del = await rpcError(policies.deletePolicy({ name: p.name }, withKey(t.adminKey)));
    expect([Code[del.code], reasonOf(del)]).toEqual(["InvalidArgument", "ETAG_REQUIRED"]);
    expect(policyOf(await policies.getPolicy({ name: p.name }, withKey(t.adminKey)))).toEqual(p);
  });

  test("when update or delete carries a stale etag, then Aborted ETAG_MISMATCH and nothing changes", async () => {
    const t = await createTestTenant(server, "pol-stale");
    const p = policyOf(await createPolicy(t, { displayName: "stale" }));
    const u = policyOf(await policies.updatePolicy({ policy: { name: p.name, etag: p.etag, description: "v2" }, updateMask: { paths: ["description"] } }, withKey(t.adminKey)));
    expect(u.etag).not.toBe(p.etag);
    for (const etag of [p.etag, "garbage", "99"]) {
      const upd = await rpcError(policies.updatePolicy({ policy: { name: p.name, etag, description: "v3" }, updateMask: { paths: ["description"] } }, withKey(t.adminKey)));
      expect([etag, Code[upd.code], reasonOf(upd)]).toEqual([etag, "Aborted", "ETAG_MISMATCH"]);
      const del = await rpcError(policies.deletePolicy({ name: p.name, etag }, withKey(t.adminKey)));
      expect([etag, Code[del.code], reasonOf(del)]).toEqual([etag, "Aborted", "ETAG_MISMATCH"]);
    }
    expect(policyOf(await policies.getPolicy({ name: p.name }, withKey(t.adminKey)))).toEqual(u);
  });
});

describe("update masks", () => {
  test.each([
    ["org", ["org"]],
    ["name", ["name"]],
    ["policy_id", ["policy_id"]],
    ["audience (output only)", ["audience"]],
    ["workflow_snippet (output only)", ["workflow_snippet"]],
    ["etag (output only)", ["etag"]],
    ["creator", ["creator"]],
    ["create_time", ["create_time"]],
    ["a claim path", ["claims.repository"]],
    ["the wildcard", ["*"]],
    ["a valid path next to a refused one", ["display_name", "org"]],
  ])("when the mask names %s, then InvalidArgument INVALID_UPDATE_MASK and nothing changes", async (_what, paths) => {
    const t = await createTestTenant(server, "pol-mask");
    const org = uniq("o");
    const p = policyOf(await createPolicy(t, { displayName: "masked" }));
    const err = await rpcError(policies.updatePolicy({ policy: { name: p.name, etag: p.etag, displayName: "x", org, audience: "evil" } , updateMask: { paths } }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "INVALID_UPDATE_MASK"]);
    expect(policyOf(await policies.getPolicy({ name: p.name }, withKey(t.adminKey)))).toEqual(p);
  });

  test("when the mask is empty, then InvalidArgument REQUIRED_FIELD", async () => {
    const t = await createTestTenant(server, "pol-mask0");
    const p = policyOf(await createPolicy(t));
    const err = await rpcError(policies.updatePolicy({ policy: { name: p.name, etag: p.etag, displayName: "x" } }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "REQUIRED_FIELD"]);
  });
});

describe("pagination", () => {
  test("when a tenant has more policies than a page, then pages walk them once each in case-insensitive name order, and a token is bound to its filters", async () => {
    const t = await createTestTenant(server, "pol-page");
    // In byte order "Bravo" and "Delta" would come before "alpha": the order ignores case.
    const names = ["Bravo", "alpha", "charlie", "Delta", "echo", "ÉCLAIR", "foxtrot"];
    for (const displayName of names) await createPolicy(t, { displayName });
    const seen: string[] = [];
    let pageToken = "";
    for (let i = 0; i < 10; i++) {
      const res = await policies.listPolicies({ parent: `tenants/${t.slug}`, pageSize: 2, pageToken }, withKey(t.adminKey));
      expect(res.policies.length).toBeLessThanOrEqual(2);
      for (const p of res.policies) expect(p.audience).toBe(`${t.slug}.${server.config.audienceDomain}`);
      seen.push(...res.policies.map((p) => p.displayName));
      pageToken = res.nextPageToken;
      if (pageToken === "") break;
    }
    expect(pageToken).toBe("");
    const all = (await policies.listPolicies({ parent: `tenants/${t.slug}`, pageSize: 1000 }, withKey(t.adminKey))).policies.map((p) => p.displayName);
    expect(seen).toEqual(all);
    // Where the accented name sorts depends on the database's collation; the others' order does not.
    expect(all.filter((n) => n !== "ÉCLAIR")).toEqual(["alpha", "Bravo", "charlie", "Delta", "echo", "foxtrot"]);
    expect(new Set(seen)).toEqual(new Set(names));

    const first = await policies.listPolicies({ parent: `tenants/${t.slug}`, pageSize: 1 }, withKey(t.adminKey));
    const err = await rpcError(policies.listPolicies({ parent: `tenants/${t.slug}`, pageSize: 1, pageToken: first.nextPageToken, org: "some-org" }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "INVALID_PAGE_TOKEN"]);
  });

  test("when page_size is 0 or negative, then 50 by default, or InvalidArgument", async () => {
    const t = await createTestTenant(server, "pol-size");
    for (let i = 0; i < 51; i++) await createPolicy(t, { displayName: `p${String(i).padStart(2, "0")}` });
    const res = await policies.listPolicies({ parent: `tenants/${t.slug}`, pageSize: 0 }, withKey(t.adminKey));
    expect(res.policies).toHaveLength(50);
    expect(res.nextPageToken).not.toBe("");
    const err = await rpcError(policies.listPolicies({ parent: `tenants/${t.slug}`, pageSize: -1 }, withKey(t.adminKey)));
    expect([Code[err.code], reasonOf(err)]).toEqual(["InvalidArgument", "INVALID_PAGE_SIZE"]);
  });
});

describe("audit", () => {
  test("when policies are created, updated and deleted, then each change has one success event with its details, in order", async () => {
    const t = await createTestTenant(server, "pol-audit");
    const created = await createPolicy(t, { displayName: "audited", claims: { repositoryOwner: "acme" }, permissions: ["keys:read"], maxSessionDurationSeconds: 600 });
    const p = policyOf(created);
    const u = policyOf(await policies.updatePolicy({ policy: { name: p.name, etag: p.etag, displayName: "audited 2" }, updateMask: { paths: ["display_name"] } }, withKey(t.adminKey)));
    await policies.deletePolicy({ name: u.name, etag: u.etag }, withKey(t.adminKey));

    const { events } = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, pageSize: 100, resource: p.name }, withKey(t.adminKey));
    expect(events.map((e) => [e.action, e.outcome])).toEqual([
      ["policy.delete", AuditOutcome.SUCCESS],
      ["policy.update", AuditOutcome.SUCCESS],
      ["policy.create", AuditOutcome.SUCCESS],
    ]);
    const [del, upd, cre] = events;
    expect(cre?.details).toEqual({
      displayName: "audited",
      org: "",
      claims: JSON.stringify({ repository_owner: "acme" }),
      permissions: "keys:read",
      maxSessionSeconds: "600",
      warnings: "NO_STRONG_CLAIM,OWNER_WILDCARD,NO_IMMUTABLE_ID",
    });
    expect(upd?.details).toMatchObject({ displayName: "audited 2", updateMask: "display_name" });
    expect(del?.details).toMatchObject({ displayName: "audited 2", permissions: "keys:read" });
    for (const e of events) expect(e.actor).toBe(`tenants/${t.slug}/principals/admin`);
  });

  test("when a change is refused, then only the guard's DENIED event is written, and no success event", async () => {
    const t = await createTestTenant(server, "pol-audit-refused");
    const requestId = uniq("pol-refused");
    const err = await rpcError(
      policies.createPolicy(
        { parent: `tenants/${t.slug}`, policy: { displayName: "weak", claims: { ref: "refs/heads/main" }, permissions: ["keys:read"] } },
        { headers: { ...withKey(t.adminKey).headers, "x-request-id": requestId } },
      ),
    );
    expect(reasonOf(err)).toBe("OWNER_OR_REPOSITORY_REQUIRED");
    const { events } = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, pageSize: 1000 }, withKey(t.adminKey));
    const mine = events.filter((e) => e.requestId === requestId);
    expect(mine.map((e) => [e.action, e.outcome, e.reason, e.resource])).toEqual([["policy.create", AuditOutcome.DENIED, "OWNER_OR_REPOSITORY_REQUIRED", `tenants/${t.slug}/policies/-`]]);
    expect(events.filter((e) => e.action.startsWith("policy.") && e.outcome === AuditOutcome.SUCCESS)).toEqual([]);
    expect((await policies.listPolicies({ parent: `tenants/${t.slug}` }, withKey(t.adminKey))).policies).toEqual([]);
  });

  test("when policies are read and dry-run, then no audit event is written for them", async () => {
    const t = await createTestTenant(server, "pol-audit-reads");
    const p = policyOf(await createPolicy(t));
    await policies.getPolicy({ name: p.name }, withKey(t.adminKey));
    await policies.listPolicies({ parent: `tenants/${t.slug}` }, withKey(t.adminKey));
    await policies.testPolicy({ parent: `tenants/${t.slug}`, claims: { repository: "acme/deploy" } }, withKey(t.adminKey));
    const { events } = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, pageSize: 1000 }, withKey(t.adminKey));
    expect(events.filter((e) => e.action.startsWith("policy.")).map((e) => e.action)).toEqual(["policy.create"]);
  });
});
