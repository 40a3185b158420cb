// Reads and writes of trust policies. The only policy code that touches the EntityManager
// (inside the unit of work the service opened); it returns plain objects and checks no
// authorization. `policiesForMatching` and `findPolicyForMatching` are what token exchange
// and the dry run match tokens against.
import { LockMode, OptimisticLockError, raw, UniqueConstraintViolationException } from "@mikro-orm/core";
import { randomUUID } from "node:crypto";
import { policyIdPattern, resourceName } from "../common/resource-names.ts";
import { entityManagerOf, type UnitOfWork } from "../db/unit-of-work.ts";
import { Organization, Tenant } from "../directory/directory-entities.ts";
import { ErrorKind, KeywardError } from "../errors.ts";
import type { RequiredClaims } from "./claim-matching.ts";
import { effectiveClaims, type OrgPin } from "./policy-claims.ts";
import { TrustPolicy, type StoredClaims } from "./trust-policy-entity.ts";

/** A trust policy as the services see it (claims as stored). */
export type PolicyRecord = Readonly<{
  id: string;
  tenantId: string;
  /** The organization of an org-scoped policy; null for tenant scope. */
  orgId: string | null;
  displayName: string;
  description: string;
  claims: StoredClaims;
  /** Longest lifetime of a minted token in seconds; 0 = the server default. */
  maxSessionSeconds: number;
  permissions: readonly string[];
  /** The principal who created the policy. */
  creatorId: string;
  /** Principals besides the creator whose current authority bounds the policy's tokens (the creator's chain, later updaters). */
  boundedBy: readonly string[];
  createdAt: Date;
  updatedAt: Date;
  /** Optimistic-locking version; the etag is its decimal string. */
  version: number;
}>;

/** What a new policy row holds. */
export type NewPolicy = Omit<PolicyRecord, "id" | "updatedAt" | "version">;

/** What an update may change. */
export type PolicyPatch = { -readonly [K in "displayName" | "description" | "claims" | "maxSessionSeconds" | "permissions" | "boundedBy"]?: PolicyRecord[K] };

/** Filters of a listing: `orgId` narrows to one org (the service confines org-scoped callers to theirs through it). */
export type PolicyFilter = { orgId?: string };

/**
 * A policy as token matching needs it (for ExchangeToken and TestPolicy).
 * `claims` are the effective claims: for an org-scoped policy `repository_owner` is the
 * org's CURRENT GitHub owner (see effectiveClaims: an org bound to no owner yields a value
 * no token carries, so the policy matches nothing). Compare them with matchClaims.
 */
export type MatchablePolicy = Readonly<{
  id: string;
  /** Resource name, `tenants/{tenant}/policies/{id}`. */
  name: string;
  displayName: string;
  orgId: string | null;
  orgSlug: string | null;
  claims: RequiredClaims;
  /** Longest lifetime of a minted token in seconds; 0 = the server default (15 minutes). */
  maxSessionSeconds: number;
  /** The allowlist; a minted token carries at most these, bounded by the creator's and boundedBy's current permissions. */
  permissions: readonly string[];
  creatorId: string;
  boundedBy: readonly string[];
}>;

const policyOf = (r: TrustPolicy): PolicyRecord => ({
  id: r.id, tenantId: r.tenantId, orgId: r.orgId ?? null, displayName: r.displayName, description: r.description,
  claims: { ...r.claims }, maxSessionSeconds: r.maxSessionSeconds, permissions: [...r.permissions], creatorId: r.creatorId,
  boundedBy: [...r.boundedBy], createdAt: r.createdAt, updatedAt: r.updatedAt, version: r.version,
});

/** ALREADY_EXISTS `POLICY_NAME_TAKEN`: the name (when known) is taken in the policy's scope. */
export function policyNameTaken(displayName?: string): KeywardError {
  const named = displayName === undefined ? "with this display name" : `named ${JSON.stringify(displayName)}`;
  return new KeywardError(ErrorKind.ALREADY_EXISTS, "POLICY_NAME_TAKEN", `a policy ${named} already exists in this scope (names compare case-insensitively)`, {
    field: "policy.display_name",
  });
}

/** Flushes; the name index (trust_policy_name_uq) becomes POLICY_NAME_TAKEN, a concurrent change ABORTED. */
async function flush(uow: UnitOfWork): Promise<void> {
  try {
    await entityManagerOf(uow).flush();
  } catch (e) {
    if (e instanceof UniqueConstraintViolationException) throw policyNameTaken();
    if (e instanceof OptimisticLockError) {
      throw new KeywardError(ErrorKind.ABORTED, "CONCURRENT_MODIFICATION", "the policy was changed concurrently: read it again and retry");
    }
    throw e;
  }
}

/** The organizations of `ids` with what the pin needs. */
async function orgPins(uow: UnitOfWork, ids: readonly (string | null)[]): Promise<Map<string, OrgPin>> {
  const wanted = [...new Set(ids.filter((id): id is string => id !== null))];
  if (wanted.length === 0) return new Map();
  const rows = await entityManagerOf(uow).find(Organization, { id: { $in: wanted } });
  return new Map(rows.map((r) => [r.id, { slug: r.slug, githubOwner: r.githubOwner ?? null }]));
}

/** Policies as matching needs them (the tenant's slug and the orgs' current owners read once). */
async function matchable(uow: UnitOfWork, tenantId: string, rows: readonly PolicyRecord[]): Promise<MatchablePolicy[]> {
  if (rows.length === 0) return [];
  const tenant = await entityManagerOf(uow).findOne(Tenant, { id: tenantId });
  if (tenant === null) return [];
  const orgs = await orgPins(uow, rows.map((r) => r.orgId));
  return rows.map((r) => {
    // A policy's org cannot be deleted while it has policies (foreign key); null here would be a bug, and matches nothing.
    const org = r.orgId === null ? null : (orgs.get(r.orgId) ?? { slug: "unknown", githubOwner: null });
    return {
      id: r.id,
      name: resourceName(tenant.slug, "policies", r.id),
      displayName: r.displayName,
      orgId: r.orgId,
      orgSlug: org?.slug ?? null,
      claims: effectiveClaims(r.claims, org),
      maxSessionSeconds: r.maxSessionSeconds,
      permissions: r.permissions,
      creatorId: r.creatorId,
      boundedBy: r.boundedBy,
    };
  });
}

/** The order of every listing: case-insensitive name, then id (index trust_policy_tenant_idx). */
const byName = [{ [raw((a: string) => `lower(${a}.display_name)`)]: "asc" }, { id: "asc" }] as const;

/** Trust policy persistence. */
export const policyRepository = {
  /** Inserts a policy; a name taken in its scope (trust_policy_name_uq) is ALREADY_EXISTS `POLICY_NAME_TAKEN`. */
  async insert(uow: UnitOfWork, data: NewPolicy): Promise<PolicyRecord> {
    const em = entityManagerOf(uow);
    const row = em.create(TrustPolicy, {
      ...data, id: randomUUID(), claims: { ...data.claims }, permissions: [...data.permissions], boundedBy: [...data.boundedBy], updatedAt: data.createdAt,
    });
    await flush(uow);
    return policyOf(row);
  },

  /**
   * True when another policy of the same scope (the tenant level, or the org) has this name,
   * compared case-insensitively as the unique index does. `exceptId` skips the policy being renamed.
   */
  async nameTaken(uow: UnitOfWork, tenantId: string, orgId: string | null, displayName: string, exceptId?: string): Promise<boolean> {
    const where: Record<string, unknown> = { tenantId, orgId, [raw((a: string) => `lower(${a}.display_name) = lower(?)`, [displayName])]: [] };
    if (exceptId !== undefined) where["id"] = { $ne: exceptId };
    return (await entityManagerOf(uow).count(TrustPolicy, where)) > 0;
  },

  async find(uow: UnitOfWork, tenantId: string, id: string): Promise<PolicyRecord | undefined> {
    const row = await entityManagerOf(uow).findOne(TrustPolicy, { tenantId, id });
    return row === null ? undefined : policyOf(row);
  },

  /** Reads a policy and locks its row until the transaction of `uow` ends (checks made on it hold when the change is written). */
  async lock(uow: UnitOfWork, tenantId: string, id: string): Promise<PolicyRecord | undefined> {
    const row = await entityManagerOf(uow).findOne(TrustPolicy, { tenantId, id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    return row === null ? undefined : policyOf(row);
  },

  /** Changes a policy read (and locked) in this unit of work; the version moves on. */
  async update(uow: UnitOfWork, tenantId: string, id: string, patch: PolicyPatch, now: Date): Promise<PolicyRecord> {
    const em = entityManagerOf(uow);
    const row = await em.findOneOrFail(TrustPolicy, { tenantId, id });
    const values: Record<string, unknown> = { updatedAt: now };
    if (patch.displayName !== undefined) values["displayName"] = patch.displayName;
    if (patch.description !== undefined) values["description"] = patch.description;
    if (patch.claims !== undefined) values["claims"] = { ...patch.claims };
    if (patch.maxSessionSeconds !== undefined) values["maxSessionSeconds"] = patch.maxSessionSeconds;
    if (patch.permissions !== undefined) values["permissions"] = [...patch.permissions];
    if (patch.boundedBy !== undefined) values["boundedBy"] = [...patch.boundedBy];
    em.assign(row, values);
    await flush(uow);
    return policyOf(row);
  },

  /** Deletes a policy; false when it is gone already. Tokens minted under it lose their policy (minted_token.policy_id set null). */
  async delete(uow: UnitOfWork, tenantId: string, id: string): Promise<boolean> {
    return (await entityManagerOf(uow).nativeDelete(TrustPolicy, { tenantId, id })) === 1;
  },

  /**
   * A page of policies ordered by lower(display_name), id; `after` is the previous page's last
   * (display name, id), lowercased by PostgreSQL exactly as the order is.
   */
  async list(uow: UnitOfWork, tenantId: string, filter: PolicyFilter, limit: number, after?: { displayName: string; id: string }): Promise<PolicyRecord[]> {
    const and: Record<string, unknown>[] = [{ tenantId }];
    if (filter.orgId !== undefined) and.push({ orgId: filter.orgId });
    if (after !== undefined) and.push({ [raw((a: string) => `(lower(${a}.display_name), ${a}.id) > (lower(?), ?::uuid)`, [after.displayName, after.id])]: [] });
    const rows = await entityManagerOf(uow).find(TrustPolicy, { $and: and }, { orderBy: [...byName], limit });
    return rows.map(policyOf);
  },

  /** The slug and current GitHub owner of each organization in `ids` (missing ids are left out). */
  orgPins,
};

/**
 * Every policy a token may be matched against, ordered by lower(display_name), id, with
 * effective claims (an org-scoped policy's `repository_owner` is its org's current GitHub
 * owner). For ExchangeToken (scope `{}`) and TestPolicy.
 *
 * @param scope `orgId` undefined: every policy of the tenant (tenant-level and every org's);
 *   a string: only that org's policies; null: only tenant-level policies.
 * @returns `[]` for an unknown tenant. Reads the whole scope (one indexed query, bounded by
 *   the database query timeout).
 */
export async function policiesForMatching(uow: UnitOfWork, tenantId: string, scope: { orgId?: string | null }): Promise<MatchablePolicy[]> {
  const where: Record<string, unknown> = { tenantId };
  if (scope.orgId !== undefined) where["orgId"] = scope.orgId;
  const rows = await entityManagerOf(uow).find(TrustPolicy, where, { orderBy: [...byName] });
  return matchable(uow, tenantId, rows.map(policyOf));
}

/**
 * One policy of the tenant as matching needs it (see policiesForMatching), e.g. the policy
 * an ExchangeToken request names; undefined when the tenant has no such policy.
 */
export async function findPolicyForMatching(uow: UnitOfWork, tenantId: string, policyId: string): Promise<MatchablePolicy | undefined> {
  if (!policyIdPattern.test(policyId)) return undefined;
  const row = await policyRepository.find(uow, tenantId, policyId);
  return row === undefined ? undefined : (await matchable(uow, tenantId, [row]))[0];
}
