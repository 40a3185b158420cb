// Who may rotate keyward's signing keys. The signing keys serve every tenant of a database and
// at most 4 are published at once (3 rotations per 12 hours), so each rotation spends a budget
// shared by every tenant. Found by the newcomer review of issue 11. On a PostgreSQL of its
// own, since rotations here change what every tenant's tokens are signed with.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { createTestTenant, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { startLocalIssuer, type LocalIssuer } from "../oidc/local-issuer.ts";
import { attempt, reasonOf, uniq } from "../rpc.ts";
import { startServerOnOwnPostgres, type ServerOnOwnPostgres } from "../server/stoppable-postgres.ts";

let idp: LocalIssuer;
let setup: ServerOnOwnPostgres;
let server: TestServer;
let tenantA: TestTenant;
let tenantB: TestTenant;

beforeAll(async () => {
  idp = await startLocalIssuer();
  setup = await startServerOnOwnPostgres({ KEYWARD_OIDC_ISSUERS: idp.issuer });
  server = setup.server;
  tenantA = await createTestTenant(server, "a");
  tenantB = await createTestTenant(server, "b");
});
afterAll(async () => {
  await setup?.close();
  await idp?.close();
});

/** A CI workflow's exchanged token in tenant B under a policy whose allowlist is `*:write`. */
async function workflowTokenOfB(): Promise<string> {
  await server.client(PolicyService).createPolicy(
    { parent: `tenants/${tenantB.slug}`, policy: { displayName: uniq("admin-ci"), claims: { repositoryOwner: "acme", repository: "acme/deploy", repositoryId: "123456789" }, permissions: ["*:write"] } },
    withKey(tenantB.adminKey),
  );
  const idToken = await idp.token({}, { audience: `${tenantB.slug}.${server.config.audienceDomain}` });
  return (await server.client(TokenExchangeService).exchangeToken({ parent: `tenants/${tenantB.slug}`, subjectToken: idToken })).accessToken;
}

describe("RotateSigningKey scope", () => {
  // A CI workflow whose policy allows *:write must not spend the rotation budget every
  // tenant shares (three rotations would block every tenant's rotation for 12 hours).
  test("when a CI workflow's exchanged token calls RotateSigningKey, then PermissionDenied EXCHANGED_TOKEN_CANNOT_MINT", async () => {
    const token = await workflowTokenOfB();
    const err = await attempt(server.client(TokenExchangeService).rotateSigningKey({}, withKey(token)));
    expect(err === undefined ? "rotated" : [Code[err.code], reasonOf(err)]).toEqual([Code[Code.PermissionDenied], "EXCHANGED_TOKEN_CANNOT_MINT"]);
  });

  test("when tenant A's admin rotates, then the JWKS publishes the new kid", async () => {
    const { kid } = await server.client(TokenExchangeService).rotateSigningKey({}, withKey(tenantA.adminKey));
    expect((await server.client(TokenExchangeService).getJwks({})).keys.map((k) => k.kid)).toContain(kid);
  });
});
