// Per-user tokens (CreateUserToken): minted JWTs that VerifyKey accepts, that verify offline
// against /.well-known/jwks.json, that work as bearer credentials, and that stay bounded by
// the principal's (and their maker's) current authority.
import { describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from "jose";
import { AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { PrincipalStatus, PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { KeyKind } from "../../gen/keyward/v1/key_pb.ts";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { createTestTenant, withKey } from "../harness.ts";
import { attempt, audit, directory, keys, reasonOf, server, uniq, useServer } from "../rpc.ts";
import { createUser, encodeSegment, segment, sql, userToken } from "./helpers.ts";

useServer();

const hourMs = 60 * 60 * 1000;

describe("CreateUserToken", () => {
  test("when an admin makes a user token, then VerifyKey says VALID with token=true, the subject, owner, permissions and expiry, and the response is RFC 8693-shaped", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["harden_runner:write", "keys:read"]);
    const made = await userToken(server, t, user, { durationSeconds: 600 });
    expect(made).toMatchObject({ tokenType: "Bearer", issuedTokenType: "urn:ietf:params:oauth:token-type:access_token", expiresIn: 600n });
    expect([...made.permissions].sort()).toEqual(["harden_runner:write", "keys:read"]);
    expect(made.accessToken.split(".")).toHaveLength(3);

    const res = await keys.verifyKey({ key: made.accessToken, requiredPermissions: ["harden_runner:write"] });
    expect(res.result).toBe(VerifyResult.VALID);
    expect(res).toMatchObject({ token: true, kind: KeyKind.UNSPECIFIED, tenant: t.slug, org: "", owner: user, subject: user, policy: "" });
    expect([...res.permissions].sort()).toEqual(["harden_runner:write", "keys:read"]);
    expect(Number(res.expireTime?.seconds)).toBe(Number(made.expireTime?.seconds));
    // key_id is the token's jti.
    expect(res.keyId).toBe(segment(made.accessToken, 1)["jti"]);
    expect((await keys.verifyKey({ key: made.accessToken, requiredPermissions: ["audit:read"] })).missingPermissions).toEqual(["audit:read"]);
  });

  test("when a user token is verified offline with jose against /.well-known/jwks.json, then it verifies as an RFC 9068 access token of the tenant's audience", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["harden_runner:read"]);
    const { accessToken } = await userToken(server, t, user);
    const jwks = createRemoteJWKSet(new URL(`${server.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(accessToken, jwks, {
      issuer: server.config.tokenIssuer,
      audience: `${t.slug}.${server.config.audienceDomain}`,
      typ: "at+jwt",
      algorithms: ["ES256"],
      currentDate: server.clock.now(),
    });
    expect(protectedHeader).toMatchObject({ alg: "ES256", typ: "at+jwt" });
    expect(typeof protectedHeader.kid).toBe("string");
    expect(payload).toMatchObject({ sub: user, tenant: t.slug, token_kind: "user", client_id: "keyward", scope: "harden_runner:read" });
    expect(payload.nbf).toBe(payload.iat);
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(payload).not.toHaveProperty("org");
    expect(payload).not.toHaveProperty("policy");
  });

  test("when a user token is the bearer credential, then management calls within its permissions work, one beyond them is PermissionDenied, and the audit log names its jti", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["keys:read", "harden_runner:write"]);
    const { accessToken } = await userToken(server, t, user);
    const jti = segment(accessToken, 1)["jti"] as string;
    await keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(accessToken));
    await keys.listKeys({ parent: `tenants/${t.slug}` }, { headers: { authorization: `Bearer ${accessToken}` } });

    const denied = await attempt(keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("k"), permissions: ["harden_runner:read"], expireDays: 7 }, withKey(accessToken)));
    expect(denied?.code).toBe(Code.PermissionDenied);
    expect(reasonOf(denied)).toBe("INSUFFICIENT_SCOPE");
    const { events } = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, action: "key.create" }, withKey(t.adminKey));
    expect(events[0]).toMatchObject({ outcome: AuditOutcome.DENIED, actor: user, credential: jti, reason: "INSUFFICIENT_SCOPE" });

    // Another tenant's management calls are refused to it.
    const other = await createTestTenant(server);
    const foreign = await attempt(keys.listKeys({ parent: `tenants/${other.slug}` }, withKey(accessToken)));
    expect(foreign?.code).toBe(Code.PermissionDenied);
    expect(reasonOf(foreign)).toBe("TENANT_MISMATCH");
  });

  test("when the principal's permissions are reduced, then the token's effective permissions shrink at once; restored, they come back", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["harden_runner:write", "keys:read"]);
    const { accessToken } = await userToken(server, t, user);
    await directory.updatePrincipal({ principal: { name: user, permissions: ["harden_runner:read"] }, updateMask: { paths: ["permissions"] } }, withKey(t.adminKey));
    const reduced = await keys.verifyKey({ key: accessToken, requiredPermissions: ["harden_runner:write"] });
    expect(reduced.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
    expect(reduced.permissions).toEqual(["harden_runner:read"]);
    expect((await attempt(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(accessToken))))?.code).toBe(Code.PermissionDenied);

    await directory.updatePrincipal({ principal: { name: user, permissions: ["*:write"] }, updateMask: { paths: ["permissions"] } }, withKey(t.adminKey));
    // Never more than it was minted with.
    const restored = await keys.verifyKey({ key: accessToken, requiredPermissions: ["harden_runner:write"] });
    expect(restored.result).toBe(VerifyResult.VALID);
    expect([...restored.permissions].sort()).toEqual(["harden_runner:write", "keys:read"]);
  });

  test("when the token was made by another principal who loses permissions, then the token shrinks with them (the maker bounds it, as for keys)", async () => {
    const t = await createTestTenant(server);
    const maker = await createUser(server, t, ["keys:write", "harden_runner:write"]);
    const { secret: makerKey } = await keys.createKey(
      { parent: `tenants/${t.slug}`, displayName: uniq("maker"), permissions: ["keys:write", "harden_runner:write"], expireDays: 7, owner: maker },
      withKey(t.adminKey),
    );
    const user = await createUser(server, t, ["harden_runner:write"]);
    const { accessToken } = await userToken(server, t, user, { as: makerKey });
    expect((await keys.verifyKey({ key: accessToken, requiredPermissions: ["harden_runner:write"] })).result).toBe(VerifyResult.VALID);
    await directory.updatePrincipal({ principal: { name: maker, permissions: ["keys:write", "harden_runner:read"] }, updateMask: { paths: ["permissions"] } }, withKey(t.adminKey));
    const bounded = await keys.verifyKey({ key: accessToken, requiredPermissions: ["harden_runner:write"] });
    expect(bounded.result).toBe(VerifyResult.INSUFFICIENT_PERMISSIONS);
    expect(bounded.permissions).toEqual(["harden_runner:read"]);
  });

  test("when the principal is suspended, then the token still verifies but administers nothing; once the tenant disables such credentials, then OWNER_SUSPENDED", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["keys:read"]);
    const { accessToken } = await userToken(server, t, user);
    await directory.updatePrincipal({ principal: { name: user, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(t.adminKey));
    expect((await keys.verifyKey({ key: accessToken })).result).toBe(VerifyResult.VALID);
    const refused = await attempt(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(accessToken)));
    expect(refused?.code).toBe(Code.PermissionDenied);
    expect(reasonOf(refused)).toBe("PRINCIPAL_SUSPENDED");

    await directory.updateTenant(
      { tenant: { name: `tenants/${t.slug}`, disableKeysOfSuspendedPrincipals: true }, updateMask: { paths: ["disable_keys_of_suspended_principals"] } },
      withKey(t.adminKey),
    );
    expect((await keys.verifyKey({ key: accessToken })).result).toBe(VerifyResult.OWNER_SUSPENDED);
    // No new token for a suspended principal.
    const late = await attempt(userToken(server, t, user));
    expect(late?.code).toBe(Code.FailedPrecondition);
    expect(reasonOf(late)).toBe("PRINCIPAL_SUSPENDED");
  });

  test("when the token's lifetime passes on the server's clock, then EXPIRED, and as a bearer it is refused and audited TOKEN_EXPIRED with its jti", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["keys:read"]);
    const { accessToken } = await userToken(server, t, user, { durationSeconds: 120 });
    const jti = segment(accessToken, 1)["jti"] as string;
    server.clock.advance(119_000);
    expect((await keys.verifyKey({ key: accessToken })).result).toBe(VerifyResult.VALID);
    server.clock.advance(1_000);
    const expired = await keys.verifyKey({ key: accessToken });
    expect(expired.result).toBe(VerifyResult.EXPIRED);
    expect(expired).toMatchObject({ token: true, keyId: jti, owner: user });
    server.clock.advance(hourMs);
    expect((await keys.verifyKey({ key: accessToken })).result).toBe(VerifyResult.EXPIRED);

    const refused = await attempt(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(accessToken)));
    expect(refused?.code).toBe(Code.Unauthenticated);
    const { events } = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, action: "auth.refused" }, withKey(t.adminKey));
    expect(events.filter((e) => e.credential === jti).map((e) => [e.reason, e.actor])).toEqual([["TOKEN_EXPIRED", user]]);
  });

  test("when the duration is 0, then one hour; 43200 s (12 h) is the most; beyond it or negative, then InvalidArgument INVALID_DURATION and no token row", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["keys:read"]);
    expect((await userToken(server, t, user, { durationSeconds: 0 })).expiresIn).toBe(3600n);
    const longest = await userToken(server, t, user, { durationSeconds: 43_200 });
    expect(longest.expiresIn).toBe(43_200n);
    const before = await sql<{ n: string }>(server, "select count(*) as n from minted_token m join tenant t on t.id = m.tenant_id where t.slug = ?", [t.slug]);
    for (const durationSeconds of [43_201, -1, 2_000_000_000]) {
      const err = await attempt(userToken(server, t, user, { durationSeconds }));
      expect(err?.code).toBe(Code.InvalidArgument);
      expect(reasonOf(err)).toBe("INVALID_DURATION");
    }
    const after = await sql<{ n: string }>(server, "select count(*) as n from minted_token m join tenant t on t.id = m.tenant_id where t.slug = ?", [t.slug]);
    expect(after).toEqual(before);
  });

  test("when permissions are asked, then the token carries exactly them; more than the principal holds is PERMISSIONS_EXCEED_PRINCIPAL, more than the caller holds PERMISSIONS_EXCEED_CALLER", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["harden_runner:write", "keys:read"]);
    const narrow = await userToken(server, t, user, { permissions: ["harden_runner:read"] });
    expect(narrow.permissions).toEqual(["harden_runner:read"]);
    expect((await keys.verifyKey({ key: narrow.accessToken })).permissions).toEqual(["harden_runner:read"]);

    const exceeding = await attempt(userToken(server, t, user, { permissions: ["audit:read"] }));
    expect(exceeding?.code).toBe(Code.FailedPrecondition);
    expect(reasonOf(exceeding)).toBe("PERMISSIONS_EXCEED_PRINCIPAL");
    const unknown = await attempt(userToken(server, t, user, { permissions: ["nonsense:read"] }));
    expect(unknown?.code).toBe(Code.InvalidArgument);
    expect(reasonOf(unknown)).toBe("UNKNOWN_PERMISSION");

    // A keys:write key that does not hold what the principal holds has no authority over it...
    const { secret: writer } = await keys.createKey(
      { parent: `tenants/${t.slug}`, displayName: uniq("writer"), permissions: ["keys:write", "harden_runner:read"], expireDays: 7 },
      withKey(t.adminKey),
    );
    const noAuthority = await attempt(userToken(server, t, user, { as: writer, permissions: ["harden_runner:read"] }));
    expect(noAuthority?.code).toBe(Code.PermissionDenied);
    expect(reasonOf(noAuthority)).toBe("PERMISSIONS_EXCEED_CALLER");
    // ...and a principal's own narrow key cannot mint itself a wider token.
    const self = await createUser(server, t, ["keys:write", "harden_runner:write"]);
    const { secret: selfKey } = await keys.createKey(
      { parent: `tenants/${t.slug}`, displayName: uniq("self"), permissions: ["keys:write"], expireDays: 7, owner: self },
      withKey(t.adminKey),
    );
    const wider = await attempt(userToken(server, t, self, { as: selfKey, permissions: ["harden_runner:write"] }));
    expect(reasonOf(wider)).toBe("PERMISSIONS_EXCEED_CALLER");
    expect((await userToken(server, t, self, { as: selfKey, permissions: ["keys:write"] })).permissions).toEqual(["keys:write"]);
  });

  test("when the principal is of another tenant, unknown, a service account, or the caller lacks keys:write, then PermissionDenied / NotFound / FailedPrecondition", async () => {
    const t = await createTestTenant(server);
    const other = await createTestTenant(server);
    const foreign = await createUser(server, other, ["keys:read"]);
    const crossTenant = await attempt(userToken(server, t, foreign));
    expect(crossTenant?.code).toBe(Code.PermissionDenied);
    expect(reasonOf(crossTenant)).toBe("TENANT_MISMATCH");

    const missing = await attempt(userToken(server, t, `tenants/${t.slug}/principals/nobody`));
    expect(missing?.code).toBe(Code.NotFound);
    expect(reasonOf(missing)).toBe("PRINCIPAL_NOT_FOUND");
    const malformed = await attempt(userToken(server, t, "principals/x"));
    expect(malformed?.code).toBe(Code.InvalidArgument);

    const bot = await createUser(server, t, ["keys:read"], { type: PrincipalType.SERVICE_ACCOUNT });
    const notUser = await attempt(userToken(server, t, bot));
    expect(notUser?.code).toBe(Code.FailedPrecondition);
    expect(reasonOf(notUser)).toBe("PRINCIPAL_NOT_USER");

    const { secret: reader } = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: uniq("reader"), permissions: ["*:read"], expireDays: 7 }, withKey(t.adminKey));
    const user = await createUser(server, t, ["keys:read"]);
    const noWrite = await attempt(userToken(server, t, user, { as: reader }));
    expect(noWrite?.code).toBe(Code.PermissionDenied);
    expect(reasonOf(noWrite)).toBe("INSUFFICIENT_SCOPE");
    const unauthenticated = await attempt(server.client(TokenExchangeService).createUserToken({ principal: user }));
    expect(unauthenticated?.code).toBe(Code.Unauthenticated);
  });

  test("when a principal is confined to an org, then its token is pinned to that org (WRONG_SCOPE elsewhere), and an org-scoped caller cannot reach principals outside its org", async () => {
    const t = await createTestTenant(server);
    const org = uniq("org");
    await directory.createOrganization({ parent: `tenants/${t.slug}`, slug: org }, withKey(t.adminKey));
    const member = await createUser(server, t, ["harden_runner:read"], { org });
    const { accessToken } = await userToken(server, t, member);
    expect(segment(accessToken, 1)["org"]).toBe(org);
    const inOrg = await keys.verifyKey({ key: accessToken, org });
    expect(inOrg).toMatchObject({ result: VerifyResult.VALID, org });
    expect((await keys.verifyKey({ key: accessToken, org: "" })).result).toBe(VerifyResult.WRONG_SCOPE);

    const { secret: orgAdmin } = await keys.createKey(
      { parent: `tenants/${t.slug}`, displayName: uniq("org-admin"), permissions: ["*:write"], expireDays: 7, org },
      withKey(t.adminKey),
    );
    const outsider = await createUser(server, t, ["harden_runner:read"]);
    const hidden = await attempt(userToken(server, t, outsider, { as: orgAdmin }));
    expect(hidden?.code).toBe(Code.NotFound);
    expect((await userToken(server, t, member, { as: orgAdmin })).permissions).toEqual(["harden_runner:read"]);
  });

  test("when a token is made, then it is audited token.user.create with the principal, permissions, expiry and jti, and the token itself appears in no audit detail and no log line", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["keys:read"]);
    const { accessToken, expireTime } = await userToken(server, t, user, { durationSeconds: 300 });
    const jti = segment(accessToken, 1)["jti"] as string;
    await keys.verifyKey({ key: accessToken });
    await keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(accessToken));
    await attempt(keys.verifyKey({ key: accessToken, requiredPermissions: ["bogus:read"] }));

    const { events } = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, action: "token.user.create" }, withKey(t.adminKey));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: AuditOutcome.SUCCESS, resource: user, actor: `tenants/${t.slug}/principals/admin` });
    expect(events[0]?.details).toEqual({ principal: user, permissions: "keys:read", expireTime: new Date(Number(expireTime!.seconds) * 1000).toISOString(), jti });
    const all = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, pageSize: 100 }, withKey(t.adminKey));
    expect(JSON.stringify(all.events.map((e) => e.details))).not.toContain(accessToken.split(".")[2]);
    const signature = accessToken.split(".")[2]!;
    expect(server.logs.filter((l) => l.includes(signature) || l.includes(accessToken.split(".")[1]!))).toEqual([]);
  });
});

describe("VerifyKey with forged or broken tokens", () => {
  test("when a token is tampered, truncated, signed by another key under the same kid, unsigned (alg none), HS256 with the public key, or oversized, then MALFORMED", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["keys:read"]);
    const { accessToken } = await userToken(server, t, user);
    const [head, body, signature] = accessToken.split(".") as [string, string, string];
    const header = segment(accessToken, 0);
    const claims = segment(accessToken, 1);

    const tampered = `${head}.${encodeSegment({ ...claims, scope: "*:write" })}.${signature}`;
    const truncated = accessToken.slice(0, -8);
    const otherPair = await generateKeyPair("ES256");
    const otherKey = await new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: header["kid"] as string, typ: "at+jwt" }).sign(otherPair.privateKey);
    const algNone = `${encodeSegment({ alg: "none", typ: "at+jwt", kid: header["kid"] })}.${body}.`;
    const { keys: published } = await server.client(TokenExchangeService).getJwks({});
    const publicX = Buffer.from(published[0]!.x, "base64url");
    const hs256 = await new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: header["kid"] as string, typ: "at+jwt" }).sign(publicX);
    const unknownKid = await new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: "not-a-kid", typ: "at+jwt" }).sign(otherPair.privateKey);
    const oversized = `${head}.${"A".repeat(9000)}.${signature}`;
    const forgedJwk = await exportJWK(otherPair.publicKey);
    const embeddedJwk = await new SignJWT(claims).setProtectedHeader({ alg: "ES256", jwk: forgedJwk, typ: "at+jwt" }).sign(otherPair.privateKey);

    for (const [what, key] of Object.entries({ tampered, truncated, otherKey, algNone, hs256, unknownKid, oversized, embeddedJwk })) {
      const res = await keys.verifyKey({ key });
      expect({ what, result: res.result, token: res.token, keyId: res.keyId }).toEqual({ what, result: VerifyResult.MALFORMED, token: false, keyId: "" });
      expect((await attempt(keys.listKeys({ parent: `tenants/${t.slug}` }, withKey(key))))?.code).toBe(Code.Unauthenticated);
    }
    // The genuine one still verifies.
    expect((await keys.verifyKey({ key: accessToken })).result).toBe(VerifyResult.VALID);
  });

  test("when a genuine token's row is gone, then NOT_FOUND", async () => {
    const t = await createTestTenant(server);
    const user = await createUser(server, t, ["keys:read"]);
    const { accessToken } = await userToken(server, t, user);
    await sql(server, "delete from minted_token where jti = ?", [segment(accessToken, 1)["jti"]]);
    expect((await keys.verifyKey({ key: accessToken })).result).toBe(VerifyResult.NOT_FOUND);
  });
});
