// Breaking trust policies and keyward's signing keys (issue 11): a policy that lets a CI
// token administer keyward is flagged; two updates racing on one etag cannot both win; and a
// tenant's admin, who can rotate the signing key every tenant shares, cannot grow the
// published key set without bound.
import { describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { createTestTenant, withKey } from "../harness.ts";
import { attempt, reasonOf, server, useServer } from "../rpc.ts";
import { maxPublishedSigningKeys } from "../../src/tokens/signing-keys.ts";
import { codesOf, createPolicy, policyClient, policyOf, strongClaims } from "../policies/policy-helpers.ts";

useServer();

describe("policies that let a workflow administer keyward", () => {
  test.each<[string, string[], string[]]>([
    ["keys:write", ["keys:write"], ["GRANTS_ADMINISTRATION"]],
    ["policies:write", ["policies:write", "harden_runner:read"], ["GRANTS_ADMINISTRATION"]],
    ["directory:write", ["directory:write"], ["GRANTS_ADMINISTRATION"]],
    ["*:write (implies all three)", ["*:write"], ["GRANTS_ADMINISTRATION"]],
    ["only reads and a product permission", ["keys:read", "policies:read", "harden_runner:write"], []],
  ])("when a strong policy allows %s, then its warnings are %j", async (_what, permissions, codes) => {
    const t = await createTestTenant(server);
    const res = await createPolicy(t, { permissions });
    expect(codesOf(res.warnings)).toEqual(codes);
    if (codes.length > 0) expect(res.warnings[0]).toMatch(/outlive/);
  });

  test("when a policy's permissions are updated to keys:write, then the update answer warns GRANTS_ADMINISTRATION", async () => {
    const t = await createTestTenant(server);
    const p = policyOf(await createPolicy(t, { claims: strongClaims, permissions: ["keys:read"] }));
    const res = await policyClient().updatePolicy(
      { policy: { name: p.name, etag: p.etag, permissions: ["keys:write"] }, updateMask: { paths: ["permissions"] } },
      withKey(t.adminKey),
    );
    expect(codesOf(res.warnings)).toEqual(["GRANTS_ADMINISTRATION"]);
  });
});

describe("etag races", () => {
  test("when eight updates carrying the same etag race, then exactly one wins and the others are Aborted ETAG_MISMATCH", async () => {
    const t = await createTestTenant(server);
    const p = policyOf(await createPolicy(t));
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        policyClient().updatePolicy(
          { policy: { name: p.name, etag: p.etag, description: `writer ${i}` }, updateMask: { paths: ["description"] } },
          withKey(t.adminKey),
        ),
      ),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    expect(won).toHaveLength(1);
    expect(lost.map((e) => [Code[(e as { code: Code }).code], reasonOf(e)])).toEqual(Array.from({ length: 7 }, () => ["Aborted", "ETAG_MISMATCH"]));
    const stored = await policyClient().getPolicy({ name: p.name }, withKey(t.adminKey));
    expect(stored.policy?.description).toBe((won[0] as PromiseFulfilledResult<{ policy?: { description: string } }>).value.policy?.description);
  });
});

describe("the shared signing key", () => {
  // The signing keys serve every tenant, and a retired key stays published for 12 h 1 min:
  // rotation is capped so one tenant's admin cannot grow every tenant's JWKS.
  test("when one tenant's admin rotates the signing key in a loop, then rotations stop at FailedPrecondition TOO_MANY_SIGNING_KEYS and the published key set stays at the cap", async () => {
    const t = await createTestTenant(server);
    const tokens = server.client(TokenExchangeService);
    let refused: Awaited<ReturnType<typeof attempt>>;
    for (let i = 0; i < 25 && refused === undefined; i++) refused = await attempt(tokens.rotateSigningKey({}, withKey(t.adminKey)));
    expect([refused === undefined ? "OK" : Code[refused.code], reasonOf(refused)]).toEqual(["FailedPrecondition", "TOO_MANY_SIGNING_KEYS"]);
    expect(refused!.rawMessage).toContain("rotate again after");
    expect((await tokens.getJwks({})).keys.length).toBe(maxPublishedSigningKeys);
  });
});
