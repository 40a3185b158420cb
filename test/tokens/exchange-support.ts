// Shared by the ExchangeToken attack and policy-selection tests: one server trusting local
// OIDC issuers (all on one test clock, so token times need no sleeping), and the checks
// every refused exchange must pass — its code, ErrorInfo reason and metadata, one denied
// `token.exchange` audit event carrying the token's SHA-256 (never the token, in the
// answer, the audit or the logs), and nothing minted.
import { expect } from "@jest/globals";
import { Code, type Client, type ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { AuditOutcome, type AuditEvent } from "../../gen/keyward/v1/audit_pb.ts";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import type { ClaimConstraintsSchema, TrustPolicy } from "../../gen/keyward/v1/policy_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService, type ExchangeTokenRequest } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { createTestClock, startTestServer, withKey, type TestClock, type TestServer, type TestTenant } from "../harness.ts";
import { reasonOf, rpcError, uniq } from "../rpc.ts";
import { startLocalIssuer, type LocalIssuer } from "../oidc/local-issuer.ts";
import { sql } from "./helpers.ts";

/** Claims as the proto spells them. */
export type Claims = MessageInitShape<typeof ClaimConstraintsSchema>;
/** An ExchangeToken request. */
export type ExchangeRequest = Partial<Pick<ExchangeTokenRequest, "parent" | "policy" | "permissions" | "durationSeconds" | "subjectTokenType">>;

/** The claims of the issuer's default token (acme/deploy, push to main, production). */
export const deployClaims: Claims = { repositoryOwner: "acme", repository: "acme/deploy", repositoryId: "123456789", repositoryOwnerId: "987654" };

/** A server trusting `trusted.length` local issuers, its clients, and the shared clock. */
export type ExchangeWorld = {
  clock: TestClock;
  server: TestServer;
  /** The trusted issuers, in the order asked for (names as given to `startExchangeWorld`). */
  issuers: Record<string, LocalIssuer>;
  policies: Client<typeof PolicyService>;
  exchange: Client<typeof TokenExchangeService>;
  keys: Client<typeof KeyService>;
  audit: Client<typeof AuditService>;
  stop(): Promise<void>;
};

/**
 * Starts one local issuer per name (all trusted through KEYWARD_OIDC_ISSUERS) and a server,
 * all on one test clock.
 */
export async function startExchangeWorld(names: readonly string[]): Promise<ExchangeWorld> {
  const clock = createTestClock();
  const issuers: Record<string, LocalIssuer> = {};
  let server: TestServer;
  try {
    for (const name of names) issuers[name] = await startLocalIssuer({ clock });
    server = await startTestServer({ clock, env: { KEYWARD_OIDC_ISSUERS: Object.values(issuers).map((i) => i.issuer).join(",") } });
  } catch (e) {
    // Nothing started may outlive a failed start: the caller has no world to stop.
    for (const issuer of Object.values(issuers)) await issuer.close();
    throw e;
  }
  return {
    clock, server, issuers,
    policies: server.client(PolicyService),
    exchange: server.client(TokenExchangeService),
    keys: server.client(KeyService),
    audit: server.client(AuditService),
    async stop() {
      try {
        await server.stop();
      } finally {
        for (const issuer of Object.values(issuers)) await issuer.close();
      }
    },
  };
}

/** The audience a tenant's ID tokens must carry. */
export function audienceOf(w: ExchangeWorld, t: TestTenant): string {
  return `${t.slug}.${w.server.config.audienceDomain}`;
}

/** Creates a policy in `t` as its admin (or `key`); 600 s and harden_runner:read + keys:read unless told. */
export async function newPolicy(
  w: ExchangeWorld,
  t: TestTenant,
  claims: Claims,
  opts: { permissions?: string[]; maxSessionDurationSeconds?: number; org?: string; key?: string; displayName?: string } = {},
): Promise<TrustPolicy> {
  const res = await w.policies.createPolicy(
    {
      parent: `tenants/${t.slug}`,
      policy: {
        displayName: opts.displayName ?? uniq("policy"), claims, org: opts.org ?? "",
        permissions: opts.permissions ?? ["harden_runner:read", "keys:read"], maxSessionDurationSeconds: opts.maxSessionDurationSeconds ?? 600,
      },
    },
    withKey(opts.key ?? t.adminKey),
  );
  if (res.policy === undefined) throw new Error("createPolicy answered no policy");
  return res.policy;
}

/** Lowercase hex SHA-256 of a token, as the audit log records it. */
export function sha256(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** The `token.exchange` events of `t` about the token with this hash, newest first. */
export async function exchangeEvents(w: ExchangeWorld, t: TestTenant, token: string): Promise<AuditEvent[]> {
  const { events } = await w.audit.listAuditEvents({ parent: `tenants/${t.slug}`, action: "token.exchange", pageSize: 1000 }, withKey(t.adminKey));
  return events.filter((e) => e.details["tokenSha256"] === sha256(token));
}

/** The tenant's denied `token.exchange` events with `reason`. */
async function deniedEvents(w: ExchangeWorld, t: TestTenant, reason: string): Promise<AuditEvent[]> {
  const { events } = await w.audit.listAuditEvents({ parent: `tenants/${t.slug}`, action: "token.exchange", outcome: AuditOutcome.DENIED, pageSize: 1000 }, withKey(t.adminKey));
  return events.filter((e) => e.reason === reason);
}

/** How many exchanges of the tenant were refused for `reason`: the sum of the folded counts. */
async function deniedCount(w: ExchangeWorld, t: TestTenant, reason: string): Promise<number> {
  return (await deniedEvents(w, t, reason)).reduce((n, e) => n + Number(e.details["count"] ?? "1"), 0);
}

/** Rows of minted_token for the tenant (tokens minted there, by exchange or for users). */
export async function mintedCount(w: ExchangeWorld, t: TestTenant): Promise<number> {
  const [row] = await sql<{ n: string }>(w.server, "select count(*) as n from minted_token m join tenant t on t.id = m.tenant_id where t.slug = ?", [t.slug]);
  return Number(row?.n ?? 0);
}

/** What a refusal must look like. */
export type Expected = {
  code: Code;
  reason: string;
  /** ErrorInfo metadata entries that must be present with these values. */
  metadata?: Record<string, string>;
  /** Audit details entries that must be present with these values. */
  details?: Record<string, string>;
  /** Whether a denied audit event is expected (default true). */
  audited?: boolean;
};

/**
 * Sends the exchange of `subjectToken` at tenant `t` (plus `extra` fields) and checks the
 * refusal: the code, the ErrorInfo reason and metadata, one denied `token.exchange` event in
 * `t` with that reason and `details.tokenSha256` = SHA-256 of the token (and `details`),
 * and no minted token. Returns the error and the audit event.
 */
export async function expectRefused(
  w: ExchangeWorld,
  t: TestTenant,
  subjectToken: string,
  expected: Expected,
  extra: ExchangeRequest = {},
): Promise<{ err: ConnectError; event: AuditEvent | undefined }> {
  const before = await mintedCount(w, t);
  const refusalsBefore = await deniedCount(w, t, expected.reason);
  const err = await rpcError(w.exchange.exchangeToken({ parent: `tenants/${t.slug}`, ...extra, subjectToken }));
  expect([Code[err.code], reasonOf(err)]).toEqual([Code[expected.code], expected.reason]);
  if (expected.metadata !== undefined) expect(err.findDetails(ErrorInfoSchema)[0]?.metadata).toMatchObject(expected.metadata);
  expect(await mintedCount(w, t)).toBe(before);
  // The token itself (or its signature) never comes back in the error.
  const signature = subjectToken.split(".")[2] ?? "";
  if (signature.length > 16) {
    expect(err.rawMessage).not.toContain(signature);
    expect(w.server.logs.filter((l) => l.includes(signature))).toEqual([]);
  }

  // Refusals are folded (src/audit/refusal-fold.ts): this one adds exactly 1 to the count of
  // the tenant's denied `token.exchange` events with its reason, on the event of this token
  // (`id-token:<SHA-256>`) or, for a token whose signature did not hold, on the minute's
  // `id-token:unverified` event (whose details are its first refusal's).
  await w.server.flushRefusals();
  if (expected.audited === false) {
    expect(await deniedCount(w, t, expected.reason)).toBe(refusalsBefore);
    return { err, event: undefined };
  }
  expect(await deniedCount(w, t, expected.reason)).toBe(refusalsBefore + 1);
  const hash = sha256(subjectToken);
  const events = (await deniedEvents(w, t, expected.reason)).filter((e) => e.credential === `id-token:${hash}` || e.credential === "id-token:unverified");
  expect(events.length).toBeGreaterThan(0);
  const event = events.find((e) => e.details["tokenSha256"] === hash) ?? events[0]!;
  expect({ outcome: event.outcome, reason: event.reason }).toEqual({ outcome: AuditOutcome.DENIED, reason: expected.reason });
  if (event.details["tokenSha256"] === hash) expect(event.details).toMatchObject({ ...expected.details });
  else expect(event.credential).toBe("id-token:unverified");
  if (signature.length > 16) expect(JSON.stringify([event.actor, event.resource, event.details])).not.toContain(signature);
  return { err, event };
}
