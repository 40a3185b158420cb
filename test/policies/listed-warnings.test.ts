// TrustPolicy.warnings (output only): every policy the server returns — GetPolicy,
// ListPolicies, CreatePolicy, UpdatePolicy — carries the weak-policy warnings
// (src/policies/policy-warnings.ts, DESIGN.md §4) of the policy as stored, the same list the
// create/update responses' `warnings` give.
import { beforeAll, describe, expect, test } from "@jest/globals";
import type { Client } from "@connectrpc/connect";
import type { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { server, useServer } from "../rpc.ts";
import { createOrg, createPolicy, policyClient, policyOf, strongClaims } from "./policy-helpers.ts";

useServer();

let policies: Client<typeof PolicyService>;
let t: TestTenant;
beforeAll(async () => {
  policies = policyClient();
  t = await createTestTenant(server, "warn");
});

const codes = (warnings: readonly string[]) => warnings.map((w) => w.split(":")[0]);

async function listed(name: string) {
  const res = await policies.listPolicies({ parent: `tenants/${t.slug}`, pageSize: 1000 }, withKey(t.adminKey));
  const found = res.policies.find((p) => p.name === name);
  if (found === undefined) throw new Error(`${name} is not listed`);
  return found;
}

describe("warnings on every returned policy", () => {
  test("when a weak policy is created, then GetPolicy and ListPolicies return the same warnings as CreatePolicy, on the policy itself", async () => {
    const created = await createPolicy(t, { claims: { repositoryOwner: "acme" }, permissions: ["*:write"] });
    expect(codes(created.warnings)).toEqual(["NO_STRONG_CLAIM", "OWNER_WILDCARD", "NO_IMMUTABLE_ID", "GRANTS_ADMINISTRATION"]);
    const p = policyOf(created);
    expect(p.warnings).toEqual(created.warnings);
    const got = await policies.getPolicy({ name: p.name }, withKey(t.adminKey));
    expect(got.policy?.warnings).toEqual(created.warnings);
    expect((await listed(p.name)).warnings).toEqual(created.warnings);
  });

  test("when a strong policy is created, then its warnings are empty everywhere", async () => {
    const created = await createPolicy(t, { claims: strongClaims, permissions: ["keys:read"] });
    expect(created.warnings).toEqual([]);
    const p = policyOf(created);
    expect(p.warnings).toEqual([]);
    expect((await policies.getPolicy({ name: p.name }, withKey(t.adminKey))).policy?.warnings).toEqual([]);
    expect((await listed(p.name)).warnings).toEqual([]);
  });

  test("when an update strengthens a policy, then UpdatePolicy, GetPolicy and ListPolicies all return the new (fewer) warnings", async () => {
    const p = policyOf(await createPolicy(t, { claims: { repositoryOwner: "acme", repository: "acme/deploy" }, permissions: ["keys:read"] }));
    expect(codes(p.warnings)).toEqual(["NO_IMMUTABLE_ID"]);
    const updated = await policies.updatePolicy(
      { policy: { name: p.name, etag: p.etag, claims: { ...strongClaims } }, updateMask: { paths: ["claims"] } },
      withKey(t.adminKey),
    );
    expect(updated.warnings).toEqual([]);
    expect(updated.policy?.warnings).toEqual([]);
    expect((await policies.getPolicy({ name: p.name }, withKey(t.adminKey))).policy?.warnings).toEqual([]);
    expect((await listed(p.name)).warnings).toEqual([]);
  });

  test("when an org-scoped policy names only the org's owner, then it has no OWNER_WILDCARD (org scope), as on create", async () => {
    const org = await createOrg(t, "acme");
    const created = await createPolicy(t, { org, claims: { repositoryOwner: "acme" }, permissions: ["keys:read"] });
    expect(codes(created.warnings)).toEqual(["NO_STRONG_CLAIM", "NO_IMMUTABLE_ID"]);
    const p = policyOf(created);
    expect((await policies.getPolicy({ name: p.name }, withKey(t.adminKey))).policy?.warnings).toEqual(created.warnings);
    expect((await listed(p.name)).warnings).toEqual(created.warnings);
  });
});
