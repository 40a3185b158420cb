// Reads and writes of tenants, organizations and principals. The only directory code that
// touches the EntityManager; it returns plain objects and checks no authorization.
import { LockMode, OptimisticLockError, UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { entityManagerOf, type UnitOfWork } from "../db/unit-of-work.ts";
import { randomUUID } from "node:crypto";
import { ErrorKind, KeywardError } from "../errors.ts";
import { Organization, Principal, Tenant } from "./directory-entities.ts";

/** A tenant as the services see it. */
export type TenantRecord = Readonly<{
  id: string; slug: string; displayName: string; disableKeysOfSuspendedPrincipals: boolean;
  createdAt: Date; updatedAt: Date; version: number;
}>;
/** An organization as the services see it. */
export type OrgRecord = Readonly<{
  id: string; tenantId: string; slug: string; displayName: string; githubOwner: string | null;
  createdAt: Date; updatedAt: Date; version: number;
}>;
/** Principal types and statuses as stored. */
export type PrincipalType = "user" | "service_account";
/** Whether a principal may act. */
export type PrincipalStatus = "active" | "suspended";
/** A principal as the services see it. */
export type PrincipalRecord = Readonly<{
  id: string; tenantId: string; principalId: string; displayName: string; type: PrincipalType; status: PrincipalStatus;
  permissions: readonly string[]; orgId: string | null; createdAt: Date; updatedAt: Date; version: number;
}>;

const tenantOf = (r: Tenant): TenantRecord => ({
  id: r.id, slug: r.slug, displayName: r.displayName, disableKeysOfSuspendedPrincipals: r.disableKeysOfSuspendedPrincipals,
  createdAt: r.createdAt, updatedAt: r.updatedAt, version: r.version,
});
const orgOf = (r: Organization): OrgRecord => ({
  id: r.id, tenantId: r.tenantId, slug: r.slug, displayName: r.displayName, githubOwner: r.githubOwner ?? null,
  createdAt: r.createdAt, updatedAt: r.updatedAt, version: r.version,
});
const principalOf = (r: Principal): PrincipalRecord => ({
  id: r.id, tenantId: r.tenantId, principalId: r.principalId, displayName: r.displayName, type: r.type as PrincipalType,
  status: r.status as PrincipalStatus, permissions: [...r.permissions], orgId: r.orgId ?? null,
  createdAt: r.createdAt, updatedAt: r.updatedAt, version: r.version,
});

/** Turns a unique violation into ALREADY_EXISTS; passes other errors on. */
async function uniquely<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof UniqueConstraintViolationException) throw new KeywardError(ErrorKind.ALREADY_EXISTS, "ALREADY_EXISTS", `${what} already exists`);
    throw e;
  }
}

/** Flushes an update; a concurrent change of the same row becomes ABORTED (retry). */
async function flushUpdate(em: EntityManager): Promise<void> {
  try {
    await em.flush();
  } catch (e) {
    if (e instanceof OptimisticLockError) {
      throw new KeywardError(ErrorKind.ABORTED, "CONCURRENT_MODIFICATION", "the resource was changed concurrently: read it again and retry");
    }
    throw e;
  }
}

/** Refuses an update whose etag is stale. */
function checkEtag(given: string, version: number): void {
  if (given !== "" && given !== String(version)) {
    throw new KeywardError(ErrorKind.ABORTED, "ETAG_MISMATCH", "the resource changed since it was read (etag mismatch): read it again and retry");
  }
}

/** Tenant, organization and principal persistence. */
export const directoryRepository = {
  async findTenantBySlug(uow: UnitOfWork, slug: string): Promise<TenantRecord | undefined> {
    const em = entityManagerOf(uow);
    const row = await em.findOne(Tenant, { slug });
    return row === null ? undefined : tenantOf(row);
  },
  async countTenants(uow: UnitOfWork): Promise<number> {
    return entityManagerOf(uow).count(Tenant, {});
  },
  async insertTenant(uow: UnitOfWork, data: { slug: string; displayName: string; now: Date }): Promise<TenantRecord> {
    const em = entityManagerOf(uow);
    const row = em.create(Tenant, { id: randomUUID(), slug: data.slug, displayName: data.displayName, disableKeysOfSuspendedPrincipals: false, createdAt: data.now, updatedAt: data.now });
    await uniquely(`tenant ${data.slug}`, () => em.flush());
    return tenantOf(row);
  },
  async updateTenant(uow: UnitOfWork, id: string, etag: string, patch: { displayName?: string; disableKeysOfSuspendedPrincipals?: boolean }, now: Date): Promise<TenantRecord> {
    const em = entityManagerOf(uow);
    const row = await em.findOneOrFail(Tenant, { id });
    checkEtag(etag, row.version);
    em.assign(row, { ...patch, updatedAt: now });
    await flushUpdate(em);
    return tenantOf(row);
  },

  async findOrgBySlug(uow: UnitOfWork, tenantId: string, slug: string): Promise<OrgRecord | undefined> {
    const em = entityManagerOf(uow);
    const row = await em.findOne(Organization, { tenantId, slug });
    return row === null ? undefined : orgOf(row);
  },
  async orgSlugs(uow: UnitOfWork, ids: readonly string[]): Promise<Map<string, string>> {
    const em = entityManagerOf(uow);
    if (ids.length === 0) return new Map();
    const rows = await em.find(Organization, { id: { $in: [...new Set(ids)] } });
    return new Map(rows.map((r) => [r.id, r.slug]));
  },
  async listOrgs(uow: UnitOfWork, tenantId: string, opts: { onlyId?: string; afterSlug?: string; limit: number }): Promise<OrgRecord[]> {
    const em = entityManagerOf(uow);
    const where: Record<string, unknown> = { tenantId };
    if (opts.onlyId !== undefined) where["id"] = opts.onlyId;
    if (opts.afterSlug !== undefined) where["slug"] = { $gt: opts.afterSlug };
    const rows = await em.find(Organization, where, { orderBy: { slug: "asc" }, limit: opts.limit });
    return rows.map(orgOf);
  },
  async insertOrg(uow: UnitOfWork, data: { tenantId: string; slug: string; displayName: string; githubOwner: string | null; now: Date }): Promise<OrgRecord> {
    const em = entityManagerOf(uow);
    const row = em.create(Organization, { id: randomUUID(), tenantId: data.tenantId, slug: data.slug, displayName: data.displayName, githubOwner: data.githubOwner, createdAt: data.now, updatedAt: data.now });
    await uniquely(`organization ${data.slug}`, () => em.flush());
    return orgOf(row);
  },
  async updateOrg(uow: UnitOfWork, id: string, etag: string, patch: { displayName?: string; githubOwner?: string | null }, now: Date): Promise<OrgRecord> {
    const em = entityManagerOf(uow);
    const row = await em.findOneOrFail(Organization, { id });
    checkEtag(etag, row.version);
    em.assign(row, { ...patch, updatedAt: now });
    await flushUpdate(em);
    return orgOf(row);
  },

  async findPrincipal(uow: UnitOfWork, tenantId: string, principalId: string): Promise<PrincipalRecord | undefined> {
    const em = entityManagerOf(uow);
    const row = await em.findOne(Principal, { tenantId, principalId });
    return row === null ? undefined : principalOf(row);
  },
  /**
   * Reads a principal and locks its row until the transaction of `uow` ends, so an
   * authority check made on what it returns still holds when the change is written.
   */
  async lockPrincipal(uow: UnitOfWork, tenantId: string, principalId: string): Promise<PrincipalRecord | undefined> {
    const em = entityManagerOf(uow);
    const row = await em.findOne(Principal, { tenantId, principalId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    return row === null ? undefined : principalOf(row);
  },
  async findPrincipalByRowId(uow: UnitOfWork, id: string): Promise<PrincipalRecord | undefined> {
    const em = entityManagerOf(uow);
    const row = await em.findOne(Principal, { id });
    return row === null ? undefined : principalOf(row);
  },
  async principalIds(uow: UnitOfWork, rowIds: readonly string[]): Promise<Map<string, string>> {
    const em = entityManagerOf(uow);
    if (rowIds.length === 0) return new Map();
    const rows = await em.find(Principal, { id: { $in: [...new Set(rowIds)] } });
    return new Map(rows.map((r) => [r.id, r.principalId]));
  },
  async listPrincipals(uow: UnitOfWork, tenantId: string, opts: { orgId?: string; status?: PrincipalStatus; afterId?: string; limit: number }): Promise<PrincipalRecord[]> {
    const em = entityManagerOf(uow);
    const where: Record<string, unknown> = { tenantId };
    if (opts.orgId !== undefined) where["orgId"] = opts.orgId;
    if (opts.status !== undefined) where["status"] = opts.status;
    if (opts.afterId !== undefined) where["principalId"] = { $gt: opts.afterId };
    const rows = await em.find(Principal, where, { orderBy: { principalId: "asc" }, limit: opts.limit });
    return rows.map(principalOf);
  },
  async insertPrincipal(uow: UnitOfWork, data: Omit<PrincipalRecord, "id" | "createdAt" | "updatedAt" | "version"> & { now: Date }): Promise<PrincipalRecord> {
    const em = entityManagerOf(uow);
    const row = em.create(Principal, {
      id: randomUUID(), tenantId: data.tenantId, principalId: data.principalId, displayName: data.displayName, type: data.type,
      status: data.status, permissions: [...data.permissions], orgId: data.orgId, createdAt: data.now, updatedAt: data.now,
    });
    await uniquely(`principal ${data.principalId}`, () => em.flush());
    return principalOf(row);
  },
  async updatePrincipal(
    uow: UnitOfWork,
    id: string,
    etag: string,
    patch: { displayName?: string; permissions?: string[]; status?: PrincipalStatus },
    now: Date,
  ): Promise<PrincipalRecord> {
    const em = entityManagerOf(uow);
    const row = await em.findOneOrFail(Principal, { id });
    checkEtag(etag, row.version);
    em.assign(row, { ...patch, updatedAt: now });
    await flushUpdate(em);
    return principalOf(row);
  },
};
