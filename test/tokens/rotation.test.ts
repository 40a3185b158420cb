// RotateSigningKey: new tokens use the new key at once, tokens signed before keep verifying
// (on every replica), the old public key stays published until its last token has expired,
// and only a tenant-scoped admin credential may rotate. On a PostgreSQL of its own: the
// signing keys serve every tenant of a database.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { decodeProtectedHeader } from "jose";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { attempt, reasonOf, uniq } from "../rpc.ts";
import { startServerOnOwnPostgres, type ServerOnOwnPostgres } from "../server/stoppable-postgres.ts";
import { createUser, sql, userToken } from "./helpers.ts";

let setup: ServerOnOwnPostgres;
let server: TestServer;
let replica: TestServer;
let t: TestTenant;

beforeAll(async () => {
  setup = await startServerOnOwnPostgres();
  server = setup.server;
  // A second replica on the same database, started before any rotation.
  replica = await startTestServer({ env: { DATABASE_URL: setup.own.url } });
  t = await createTestTenant(server);
});
afterAll(async () => {
  await replica?.stop();
  await setup?.close();
});

const kidOf = (token: string) => decodeProtectedHeader(token).kid;
const jwksKids = async (s: TestServer) => (await s.client(TokenExchangeService).getJwks({})).keys.map((k) => k.kid);
const httpKids = async (s: TestServer) => ((await (await fetch(`${s.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);

describe("RotateSigningKey", () => {
  test("when the signing key is rotated, then old tokens still verify (here and on another replica), the JWKS holds both kids, new tokens use the new kid, and it is audited", async () => {
    const user = await createUser(server, t, ["keys:read"]);
    const before = (await userToken(server, t, user, { durationSeconds: 3600 })).accessToken;
    const oldKid = kidOf(before)!;
    expect(await jwksKids(server)).toEqual([oldKid]);

    const { kid } = await server.client(TokenExchangeService).rotateSigningKey({}, withKey(t.adminKey));
    expect(kid).not.toBe(oldKid);
    expect(await jwksKids(server)).toEqual([kid, oldKid]);
    expect(await httpKids(server)).toEqual([kid, oldKid]);
    const after = (await userToken(server, t, user)).accessToken;
    expect(kidOf(after)).toBe(kid);

    const keys = server.client(KeyService);
    expect((await keys.verifyKey({ key: before })).result).toBe(VerifyResult.VALID);
    expect((await keys.verifyKey({ key: after })).result).toBe(VerifyResult.VALID);
    // The replica has not re-read yet: the unknown kid makes it do so, once.
    const replicaKeys = replica.client(KeyService);
    expect((await replicaKeys.verifyKey({ key: after })).result).toBe(VerifyResult.VALID);
    expect((await replicaKeys.verifyKey({ key: before })).result).toBe(VerifyResult.VALID);
    expect(await jwksKids(replica)).toEqual([kid, oldKid]);
    // ...and signs with the new key from then on.
    expect(kidOf((await userToken(replica, t, user)).accessToken)).toBe(kid);

    const { events } = await server.client(AuditService).listAuditEvents({ parent: `tenants/${t.slug}`, action: "signing_key.rotate" }, withKey(t.adminKey));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: AuditOutcome.SUCCESS, resource: `signingKeys/${kid}`, actor: `tenants/${t.slug}/principals/admin` });
    expect(events[0]?.details).toEqual({ kid, retired: oldKid });
    const [row] = await sql<{ retired_at: Date; publish_until: Date }>(server, "select retired_at, publish_until from signing_key where kid = ?", [oldKid]);
    expect(new Date(row!.publish_until).getTime() - new Date(row!.retired_at).getTime()).toBe((12 * 3600 + 60) * 1000);
  });

  test("when the old key's publish_until passes on the server's clock, then its kid leaves the JWKS and its (by then expired) tokens no longer verify", async () => {
    const user = await createUser(server, t, ["keys:read"]);
    const old = (await userToken(server, t, user, { durationSeconds: 43_200 })).accessToken;
    const oldKid = kidOf(old)!;
    const { kid } = await server.client(TokenExchangeService).rotateSigningKey({}, withKey(t.adminKey));
    server.clock.advance(12 * 3600 * 1000);
    expect(await jwksKids(server)).toContain(oldKid);
    expect((await server.client(KeyService).verifyKey({ key: old })).result).toBe(VerifyResult.EXPIRED);
    server.clock.advance(61_000);
    expect(await jwksKids(server)).not.toContain(oldKid);
    expect(await httpKids(server)).toContain(kid);
    expect(await httpKids(server)).not.toContain(oldKid);
    expect((await server.client(KeyService).verifyKey({ key: old })).result).toBe(VerifyResult.MALFORMED);
  });

  test("when a credential is org-scoped, lacks *:write, lacks keys:write or is missing, then RotateSigningKey is refused and the key stays", async () => {
    const tokens = server.client(TokenExchangeService);
    const keys = server.client(KeyService);
    const before = await jwksKids(server);
    const org = uniq("org");
    await server.client(DirectoryService).createOrganization({ parent: `tenants/${t.slug}`, slug: org }, withKey(t.adminKey));
    const { secret: orgAdmin } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("org"), permissions: ["*:write"], expireDays: 7, org }, withKey(t.adminKey));
    const { secret: keysWriter } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("kw"), permissions: ["keys:write"], expireDays: 7 }, withKey(t.adminKey));
    const { secret: reader } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("r"), permissions: ["*:read"], expireDays: 7 }, withKey(t.adminKey));
    for (const [credential, reason] of [[orgAdmin, "TENANT_SCOPE_REQUIRED"], [keysWriter, "INSUFFICIENT_SCOPE"], [reader, "INSUFFICIENT_SCOPE"]] as const) {
      const err = await attempt(tokens.rotateSigningKey({}, withKey(credential)));
      expect({ code: err?.code, reason: reasonOf(err) }).toEqual({ code: Code.PermissionDenied, reason });
    }
    expect((await attempt(tokens.rotateSigningKey({})))?.code).toBe(Code.Unauthenticated);
    expect(await jwksKids(server)).toEqual(before);
  });

  test("when two rotations race, then each succeeds or is Aborted CONCURRENT_ROTATION, and exactly one key is active", async () => {
    const tokens = [server, replica].map((s) => s.client(TokenExchangeService));
    const results = await Promise.all(tokens.map((c) => attempt(c.rotateSigningKey({}, withKey(t.adminKey)))));
    for (const err of results) if (err !== undefined) expect({ code: err.code, reason: reasonOf(err) }).toEqual({ code: Code.Aborted, reason: "CONCURRENT_ROTATION" });
    expect(results.some((e) => e === undefined)).toBe(true);
    expect(await sql<{ n: string }>(server, "select count(*) as n from signing_key where retired_at is null")).toEqual([{ n: "1" }]);
  });
});
