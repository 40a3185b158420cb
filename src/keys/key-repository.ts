// Reads and writes of API keys. The only key code that touches the EntityManager (inside
// the unit of work the service opened); it returns plain objects (never the secret hash)
// and checks no authorization.
import { UniqueConstraintViolationException } from "@mikro-orm/core";
import { entityManagerOf, type UnitOfWork } from "../db/unit-of-work.ts";
import { ErrorKind, KeywardError } from "../errors.ts";
import { ApiKey } from "./api-key-entity.ts";
import type { KeyKindName } from "./key-format.ts";

/** A key's slot, as stored. */
export type SlotName = "primary" | "secondary";
/** A key's lifecycle state, derived from its expiry and revocation. */
export type KeyState = "active" | "expired" | "revoked";

/** An API key's metadata as the services see it. */
export type KeyRecord = Readonly<{
  keyId: string; tenantId: string; kind: KeyKindName; slot: SlotName | null; displayName: string; orgId: string | null;
  permissions: readonly string[]; ownerId: string;
  /** The principal who made the key; its current authority bounds the key when it is not the owner. */
  creatorId: string;
  /** Principals besides the owner whose current authority bounds the key: the creator and the chain above it. */
  boundedBy: readonly string[];
  hint: string; createdAt: Date; expiresAt: Date | null;
  lastUsedAt: Date | null; rotatedAt: Date | null; revokedAt: Date | null; revokeReason: string | null; clonedFrom: string | null;
}>;

/** What a new key row holds. */
export type NewKey = Omit<KeyRecord, "lastUsedAt" | "revokedAt" | "revokeReason"> & { secretHash: Buffer };

/** Filters of a key listing. */
export type KeyFilter = { kind?: KeyKindName; state?: KeyState; ownerId?: string; creatorId?: string; orgId?: string; onlyOrgId?: string };

const keyOf = (r: ApiKey): KeyRecord => ({
  keyId: r.keyId, tenantId: r.tenantId, kind: r.kind as KeyKindName, slot: (r.slot ?? null) as SlotName | null, displayName: r.displayName,
  orgId: r.orgId ?? null, permissions: [...r.permissions], ownerId: r.ownerId, creatorId: r.creatorId, boundedBy: [...r.boundedBy], hint: r.hint, createdAt: r.createdAt,
  expiresAt: r.expiresAt ?? null, lastUsedAt: r.lastUsedAt ?? null, rotatedAt: r.rotatedAt ?? null, revokedAt: r.revokedAt ?? null,
  revokeReason: r.revokeReason ?? null, clonedFrom: r.clonedFrom ?? null,
});

/** The state of a key at `now`. */
export function keyState(key: Pick<KeyRecord, "revokedAt" | "expiresAt">, now: Date): KeyState {
  if (key.revokedAt !== null) return "revoked";
  if (key.expiresAt !== null && key.expiresAt.getTime() <= now.getTime()) return "expired";
  return "active";
}

/** API key persistence. */
export const keyRepository = {
  /** Inserts a key; a live name or slot clash becomes ALREADY_EXISTS / ABORTED. */
  async insert(uow: UnitOfWork, key: NewKey): Promise<KeyRecord> {
    const em = entityManagerOf(uow);
    const row = em.create(ApiKey, { ...key, permissions: [...key.permissions], boundedBy: [...key.boundedBy], lastUsedAt: null, revokedAt: null, revokeReason: null });
    try {
      await em.flush();
    } catch (e) {
      if (!(e instanceof UniqueConstraintViolationException)) throw e;
      if (key.slot !== null) {
        throw new KeywardError(ErrorKind.ABORTED, "CONCURRENT_ROTATION", "the slot was rotated concurrently; retry", { slot: key.slot });
      }
      throw new KeywardError(ErrorKind.ALREADY_EXISTS, "KEY_NAME_TAKEN", "an unrevoked key with this name already exists", { field: "display_name" });
    }
    return keyOf(row);
  },

  async find(uow: UnitOfWork, tenantId: string, keyId: string): Promise<KeyRecord | undefined> {
    const em = entityManagerOf(uow);
    const row = await em.findOne(ApiKey, { tenantId, keyId });
    return row === null ? undefined : keyOf(row);
  },

  /** The unrevoked value of a slot, if any. */
  async findLiveSlot(uow: UnitOfWork, tenantId: string, orgId: string | null, kind: KeyKindName, slot: SlotName): Promise<KeyRecord | undefined> {
    const em = entityManagerOf(uow);
    const row = await em.findOne(ApiKey, { tenantId, orgId, kind, slot, revokedAt: null });
    return row === null ? undefined : keyOf(row);
  },

  /** Revokes a key unless already revoked; false when someone else revoked it first. */
  async revoke(uow: UnitOfWork, tenantId: string, keyId: string, reason: string, now: Date): Promise<boolean> {
    const em = entityManagerOf(uow);
    const changed = await em.nativeUpdate(ApiKey, { tenantId, keyId, revokedAt: null }, { revokedAt: now, revokeReason: reason });
    return changed === 1;
  },

  /** A page of keys, newest first; `after` is the (createdAt, keyId) of the previous page's last key. */
  async list(uow: UnitOfWork, tenantId: string, filter: KeyFilter, now: Date, limit: number, after?: { createdAt: Date; keyId: string }): Promise<KeyRecord[]> {
    const em = entityManagerOf(uow);
    const and: Record<string, unknown>[] = [{ tenantId }];
    if (filter.kind !== undefined) and.push({ kind: filter.kind });
    if (filter.ownerId !== undefined) and.push({ ownerId: filter.ownerId });
    if (filter.creatorId !== undefined) and.push({ creatorId: filter.creatorId });
    if (filter.orgId !== undefined) and.push({ orgId: filter.orgId });
    if (filter.onlyOrgId !== undefined) and.push({ orgId: filter.onlyOrgId });
    if (filter.state === "revoked") and.push({ revokedAt: { $ne: null } });
    if (filter.state === "expired") and.push({ revokedAt: null, expiresAt: { $lte: now } });
    if (filter.state === "active") and.push({ revokedAt: null, $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }] });
    if (after !== undefined) {
      and.push({ $or: [{ createdAt: { $lt: after.createdAt } }, { createdAt: after.createdAt, keyId: { $lt: after.keyId } }] });
    }
    const rows = await em.find(ApiKey, { $and: and }, { orderBy: [{ createdAt: "desc" }, { keyId: "desc" }], limit });
    return rows.map(keyOf);
  },
};
