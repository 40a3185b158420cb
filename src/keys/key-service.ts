// The key lifecycle: create, get, list, revoke, clone, rotate. Plain functions over
// explicit dependencies; every state change and its audit event share one transaction.
import type { Clock } from "../clock.ts";
import type { UnitOfWork, UnitsOfWork } from "../db/unit-of-work.ts";
import { actorOf, type AuditLog } from "../audit/audit-log.ts";
import { boundsFor, canSeeOrg, requireAuthorityOver, requireHeld, requireOwnTenant, refuseExchangedToken, requirePermission, type CallContext } from "../directory/caller.ts";
import { directoryRepository as directory, type PrincipalRecord } from "../directory/directory-repository.ts";
import { decodePageToken, pageOf, pageSizeOf, timestampPart } from "../common/page-token.ts";
import { notImplied, parsePermissions, toPermissionSet, type Catalogue } from "../directory/permissions.ts";
import { auditedName, parseResourceName, parseTenantName, resourceName, slugPattern } from "../common/resource-names.ts";
import { textField } from "../common/text-fields.ts";
import { ErrorKind, KeywardError, invalidArgument } from "../errors.ts";
import { hashKey, isKeyId, KeyKindName, mintKey } from "./key-format.ts";
import { keyRepository as keys, keyState, type KeyFilter, type KeyRecord, type KeyState, type SlotName } from "./key-repository.ts";

/** A key as callers see it: the record plus names and state. */
export type KeyView = KeyRecord & { tenantSlug: string; orgSlug: string | null; ownerName: string; creatorName: string; state: KeyState };

/** A key and its raw value, shown once. */
export type MintedKeyView = { key: KeyView; secret: string };

/** The fixed permissions of the slot kinds. */
const slotKindPermissions: Record<Exclude<KeyKindName, "fine_grained">, readonly string[]> = {
  admin: ["*:write"],
  read_only: ["*:read"],
  registry: ["secure_registry:write"],
};

const dayMs = 24 * 60 * 60 * 1000;
const maxExpireDays = 365;

function expireDaysOf(days: number, field = "expire_days"): number {
  if (!Number.isInteger(days) || days < 1 || days > maxExpireDays) {
    throw invalidArgument("INVALID_EXPIRY", `${field} must be 7, 30, 90, 365 or a custom number of days from 1 to ${maxExpireDays}`, { field });
  }
  return days;
}

/** The permissions a key grants as stored: its slot kind's, or those granted at creation. */
function grantsOf(key: Pick<KeyRecord, "kind" | "permissions">): readonly string[] {
  return key.kind === KeyKindName.FINE_GRAINED ? key.permissions : slotKindPermissions[key.kind];
}

/** The owner and creator of a key, for the details of its audit events. */
function peopleOf(key: KeyView): { owner: string; creator: string } {
  return { owner: key.ownerName, creator: key.creatorName };
}

function notFound(): KeywardError {
  return new KeywardError(ErrorKind.NOT_FOUND, "KEY_NOT_FOUND", "key not found");
}

/** How raw keys are minted and hashed in this deployment. */
export type KeyMinting = { keyPrefix: string; keyPepper: string | undefined };

/** Mints a raw key and stores its row (hash only); the raw key is returned once. */
async function storeNewKey(
  uow: UnitOfWork,
  minting: KeyMinting,
  data: Omit<KeyRecord, "keyId" | "hint" | "lastUsedAt" | "revokedAt" | "revokeReason">,
): Promise<{ record: KeyRecord; secret: string }> {
  const minted = mintKey(minting.keyPrefix, data.kind);
  const record = await keys.insert(uow, { ...data, keyId: minted.keyId, hint: minted.hint, secretHash: hashKey(minted.raw, minting.keyPepper) });
  return { record, secret: minted.raw };
}

/**
 * Who a key made by the caller for `ownerId` belongs to and who bounds it: the caller is its
 * creator, and the caller's principal plus every principal bounding the caller's credential
 * bound it (see boundsFor).
 */
function madeBy(ctx: CallContext, ownerId: string): { ownerId: string; creatorId: string; boundedBy: string[] } {
  return { ownerId, creatorId: ctx.caller.principalRowId, boundedBy: boundsFor(ctx.caller, ownerId) };
}

/** Replaces the live value of a slot (if any) with a new one, inside `uow`'s transaction. */
export async function rotateSlot(
  uow: UnitOfWork,
  minting: KeyMinting,
  target: {
    tenantId: string; orgId: string | null; kind: Exclude<KeyKindName, "fine_grained">; slot: SlotName;
    ownerId: string; creatorId: string; boundedBy: readonly string[]; now: Date; reason: string;
  },
): Promise<{ record: KeyRecord; secret: string; replaced: KeyRecord | undefined }> {
  const { tenantId, orgId, kind, slot, now } = target;
  const old = await keys.findLiveSlot(uow, tenantId, orgId, kind, slot);
  if (old !== undefined && !(await keys.revoke(uow, tenantId, old.keyId, target.reason, now))) {
    throw new KeywardError(ErrorKind.ABORTED, "CONCURRENT_ROTATION", "the slot was rotated concurrently; retry", { slot });
  }
  const { record, secret } = await storeNewKey(uow, minting, {
    tenantId, kind, slot, displayName: `${kind} (${slot})`, orgId, permissions: slotKindPermissions[kind],
    ownerId: target.ownerId, creatorId: target.creatorId, boundedBy: target.boundedBy, createdAt: now, expiresAt: null, rotatedAt: now, clonedFrom: null,
  });
  return { record, secret, replaced: old };
}

/** Creates the key service. */
export function createKeyService(deps: { units: UnitsOfWork; audit: AuditLog; clock: Clock; catalogue: Catalogue; keyPrefix: string; keyPepper: string | undefined }) {
  const { units, audit, clock, catalogue } = deps;

  async function views(uow: UnitOfWork, tenantSlug: string, records: readonly KeyRecord[]): Promise<KeyView[]> {
    const orgs = await directory.orgSlugs(uow, records.flatMap((r) => (r.orgId === null ? [] : [r.orgId])));
    const principals = await directory.principalIds(uow, records.flatMap((r) => [r.ownerId, r.creatorId]));
    const nameOf = (tenantSlug: string, rowId: string) => resourceName(tenantSlug, "principals", principals.get(rowId) ?? "unknown");
    const now = clock.now();
    return records.map((r) => ({
      ...r,
      tenantSlug,
      orgSlug: r.orgId === null ? null : (orgs.get(r.orgId) ?? null),
      ownerName: nameOf(tenantSlug, r.ownerId),
      creatorName: nameOf(tenantSlug, r.creatorId),
      state: keyState(r, now),
    }));
  }

  async function view(uow: UnitOfWork, tenantSlug: string, record: KeyRecord): Promise<KeyView> {
    const [one] = await views(uow, tenantSlug, [record]);
    return one!;
  }

  /**
   * The principal a new key is made for: visible to the caller, under the caller's
   * authority (another principal: the caller holds every permission it holds), active,
   * holding the permissions.
   */
  async function ownerFor(uow: UnitOfWork, ctx: CallContext, name: string, permissions: readonly string[]): Promise<PrincipalRecord> {
    const { tenant, id } = parseResourceName(name, "principals", "owner");
    requireOwnTenant(ctx.caller, tenant);
    const owner = await directory.findPrincipal(uow, ctx.caller.tenantId, id);
    if (owner === undefined || (ctx.caller.orgId !== null && owner.orgId !== ctx.caller.orgId)) {
      throw new KeywardError(ErrorKind.NOT_FOUND, "PRINCIPAL_NOT_FOUND", "owner: principal not found");
    }
    if (owner.id !== ctx.caller.principalRowId) requireAuthorityOver(catalogue, ctx.caller, "owner", owner.permissions);
    if (owner.status !== "active") throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "OWNER_SUSPENDED", "owner: the principal is suspended");
    const exceeding = notImplied(catalogue, toPermissionSet(catalogue, owner.permissions), permissions);
    if (exceeding.length > 0) {
      throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "PERMISSIONS_EXCEED_OWNER", `the owner does not hold: ${exceeding.join(", ")}`, { exceeding: exceeding.join(",") });
    }
    return owner;
  }

  /**
   * Resolves the org a new key is pinned to: the caller's own for org-scoped callers, the
   * owner's for owners confined to an org.
   */
  async function scopeOrg(uow: UnitOfWork, ctx: CallContext, orgSlug: string, ownerOrgId?: string): Promise<{ id: string; slug: string } | null> {
    const { caller } = ctx;
    if (orgSlug !== "" && !slugPattern.test(orgSlug)) throw invalidArgument("INVALID_FORMAT", "org: expected an organization slug", { field: "org" });
    if (ownerOrgId !== undefined && caller.orgId === null) {
      const slug = (await directory.orgSlugs(uow, [ownerOrgId])).get(ownerOrgId) ?? "";
      if (orgSlug !== "" && orgSlug !== slug) throw invalidArgument("OWNER_ORG_MISMATCH", "org: the owner is confined to another organization", { field: "org" });
      return { id: ownerOrgId, slug };
    }
    if (caller.orgId !== null) {
      if (orgSlug !== "" && orgSlug !== caller.orgSlug) {
        throw new KeywardError(ErrorKind.PERMISSION_DENIED, "ORG_SCOPE", "the credential is pinned to another organization");
      }
      return { id: caller.orgId, slug: caller.orgSlug ?? "" };
    }
    if (orgSlug === "") return null;
    const org = await directory.findOrgBySlug(uow, caller.tenantId, orgSlug);
    if (org === undefined) throw invalidArgument("UNKNOWN_ORG", `org: no organization ${JSON.stringify(orgSlug)} in this tenant`, { field: "org" });
    return { id: org.id, slug: org.slug };
  }

  /** Loads a key the caller may see; NOT_FOUND otherwise (same answer either way). */
  async function visibleKey(uow: UnitOfWork, ctx: CallContext, keyId: string): Promise<KeyRecord> {
    const key = await keys.find(uow, ctx.caller.tenantId, keyId);
    if (key === undefined || !canSeeOrg(ctx.caller, key.orgId)) throw notFound();
    return key;
  }

  return {
    async create(
      ctx: CallContext,
      input: { parent: string; displayName: string; permissions: readonly string[]; org: string; expireDays: number; owner: string },
    ): Promise<MintedKeyView> {
      return audit.guard(ctx, "key.create", resourceName(ctx.caller.tenantSlug, "keys", "-"), async () => {
        requirePermission(catalogue, ctx.caller, "keys:write");
        refuseExchangedToken(ctx.caller, "API keys");
        requireOwnTenant(ctx.caller, parseTenantName(input.parent));
        const displayName = textField(input.displayName, "display_name", { max: 100, required: true });
        if (input.permissions.length === 0) throw invalidArgument("REQUIRED_FIELD", "permissions: at least one permission is required", { field: "permissions" });
        const permissions = parsePermissions(catalogue, input.permissions);
        const days = expireDaysOf(input.expireDays);
        requireHeld(catalogue, ctx.caller, permissions);
        return units.write(ctx, async (uow) => {
          const owner = input.owner === "" ? undefined : await ownerFor(uow, ctx, input.owner, permissions);
          const org = await scopeOrg(uow, ctx, input.org, owner?.orgId ?? undefined);
          const now = clock.now();
          const { record, secret } = await storeNewKey(uow, deps, {
            tenantId: ctx.caller.tenantId, kind: KeyKindName.FINE_GRAINED, slot: null, displayName, orgId: org?.id ?? null, permissions,
            ...madeBy(ctx, owner?.id ?? ctx.caller.principalRowId),
            createdAt: now, expiresAt: new Date(now.getTime() + days * dayMs), rotatedAt: null, clonedFrom: null,
          });
          const key = await view(uow, ctx.caller.tenantSlug, record);
          audit.record(uow, {
            ...actorOf(ctx), orgId: record.orgId, action: "key.create", resource: resourceName(ctx.caller.tenantSlug, "keys", record.keyId), outcome: "success",
            details: { permissions: permissions.join(","), expireDays: String(days), org: org?.slug ?? "", ...peopleOf(key) },
          });
          return { key, secret };
        });
      });
    },

    async get(ctx: CallContext, name: string): Promise<KeyView> {
      return audit.guard(ctx, "key.get", auditedName(name, "keys", ctx.caller.tenantSlug), async () => {
        requirePermission(catalogue, ctx.caller, "keys:read");
        const { tenant, id } = parseResourceName(name, "keys");
        requireOwnTenant(ctx.caller, tenant);
        return units.read(ctx, async (uow) => view(uow, ctx.caller.tenantSlug, await visibleKey(uow, ctx, id)));
      });
    },

    async list(
      ctx: CallContext,
      input: { parent: string; pageSize: number; pageToken: string; kind?: KeyKindName; state?: KeyState; owner: string; creator: string; org: string },
    ): Promise<{ keys: KeyView[]; nextPageToken: string }> {
      return audit.guard(ctx, "key.list", `tenants/${ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "keys:read");
        requireOwnTenant(ctx.caller, parseTenantName(input.parent));
        const limit = pageSizeOf(input.pageSize);
        const query = { listing: "ListKeys", parent: ctx.caller.tenantId, filters: { kind: input.kind, state: input.state, owner: input.owner, creator: input.creator, org: input.org } };
        const position = decodePageToken(input.pageToken, query, [timestampPart, isKeyId]);
        return units.read(ctx, async (uow) => {
          const filter: KeyFilter = {};
          if (input.kind !== undefined) filter.kind = input.kind;
          if (input.state !== undefined) filter.state = input.state;
          if (ctx.caller.orgId !== null) filter.onlyOrgId = ctx.caller.orgId;
          for (const field of ["owner", "creator"] as const) {
            if (input[field] === "") continue;
            const { tenant, id } = parseResourceName(input[field], "principals", field);
            requireOwnTenant(ctx.caller, tenant);
            const principal = await directory.findPrincipal(uow, ctx.caller.tenantId, id);
            if (principal === undefined) return { keys: [], nextPageToken: "" }; // nobody by that name has keys
            filter[`${field}Id`] = principal.id;
          }
          if (input.org !== "") {
            if (!slugPattern.test(input.org)) throw invalidArgument("INVALID_FORMAT", "org: expected an organization slug", { field: "org" });
            const org = await directory.findOrgBySlug(uow, ctx.caller.tenantId, input.org);
            if (org === undefined) return { keys: [], nextPageToken: "" };
            filter.orgId = org.id;
          }
          const after = position === undefined ? undefined : { createdAt: new Date(position[0]!), keyId: position[1]! };
          const rows = await keys.list(uow, ctx.caller.tenantId, filter, clock.now(), limit + 1, after);
          const page = pageOf(rows, limit, (k) => [k.createdAt.toISOString(), k.keyId], query);
          return { keys: await views(uow, ctx.caller.tenantSlug, page.items), nextPageToken: page.nextPageToken };
        });
      });
    },

    async revoke(ctx: CallContext, input: { name: string; reason: string }): Promise<KeyView> {
      const resource = auditedName(input.name, "keys", ctx.caller.tenantSlug);
      return audit.guard(ctx, "key.revoke", resource, async () => {
        requirePermission(catalogue, ctx.caller, "keys:write");
        const { tenant, id } = parseResourceName(input.name, "keys");
        requireOwnTenant(ctx.caller, tenant);
        const reason = textField(input.reason, "reason", { max: 500, required: true, multiline: true });
        return units.write(ctx, async (uow) => {
          const key = await visibleKey(uow, ctx, id);
          // A principal may always revoke its own keys; anyone else's needs authority over
          // the key (a keys:write key must not revoke the tenant admin key).
          if (key.ownerId !== ctx.caller.principalRowId) requireAuthorityOver(catalogue, ctx.caller, "key", grantsOf(key));
          if (key.revokedAt !== null) throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "ALREADY_REVOKED", "the key is already revoked");
          const now = clock.now();
          if (!(await keys.revoke(uow, ctx.caller.tenantId, key.keyId, reason, now))) {
            throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "ALREADY_REVOKED", "the key is already revoked");
          }
          const revoked = await view(uow, ctx.caller.tenantSlug, { ...key, revokedAt: now, revokeReason: reason });
          audit.record(uow, { ...actorOf(ctx), orgId: key.orgId, action: "key.revoke", resource, outcome: "success", details: { reason, ...peopleOf(revoked) } });
          return revoked;
        });
      });
    },

    async clone(ctx: CallContext, input: { name: string; displayName: string; expireDays: number }): Promise<MintedKeyView> {
      const source = auditedName(input.name, "keys", ctx.caller.tenantSlug);
      return audit.guard(ctx, "key.clone", source, async () => {
        requirePermission(catalogue, ctx.caller, "keys:write");
        refuseExchangedToken(ctx.caller, "API keys");
        const { tenant, id } = parseResourceName(input.name, "keys");
        requireOwnTenant(ctx.caller, tenant);
        const displayName = textField(input.displayName, "display_name", { max: 100, required: true });
        const days = input.expireDays === 0 ? undefined : expireDaysOf(input.expireDays);
        return units.write(ctx, async (uow) => {
          const from = await visibleKey(uow, ctx, id);
          if (from.kind !== KeyKindName.FINE_GRAINED) {
            throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "NOT_CLONEABLE", "only fine-grained keys can be cloned; use RotateKey for admin, read-only and registry keys");
          }
          const now = clock.now();
          if (keyState(from, now) !== "active") throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "KEY_NOT_ACTIVE", "only an active key can be cloned");
          // Authority over the source key, which is also what the clone grants.
          requireAuthorityOver(catalogue, ctx.caller, "key", grantsOf(from));
          const lifetimeMs = days !== undefined ? days * dayMs : (from.expiresAt?.getTime() ?? now.getTime()) - from.createdAt.getTime();
          const { record, secret } = await storeNewKey(uow, deps, {
            tenantId: from.tenantId, kind: from.kind, slot: null, displayName, orgId: from.orgId, permissions: from.permissions,
            ...madeBy(ctx, ctx.caller.principalRowId),
            createdAt: now, expiresAt: new Date(now.getTime() + Math.min(lifetimeMs, maxExpireDays * dayMs)), rotatedAt: null, clonedFrom: from.keyId,
          });
          const key = await view(uow, ctx.caller.tenantSlug, record);
          audit.record(uow, {
            ...actorOf(ctx), orgId: record.orgId, action: "key.clone", resource: resourceName(ctx.caller.tenantSlug, "keys", record.keyId), outcome: "success",
            details: { clonedFrom: source, permissions: record.permissions.join(","), ...peopleOf(key) },
          });
          return { key, secret };
        });
      });
    },

    async rotate(ctx: CallContext, input: { parent: string; kind: KeyKindName | undefined; slot: SlotName | undefined; org: string }): Promise<MintedKeyView & { replaced: string }> {
      return audit.guard(ctx, "key.rotate", `tenants/${ctx.caller.tenantSlug}`, async () => {
        requirePermission(catalogue, ctx.caller, "keys:write");
        refuseExchangedToken(ctx.caller, "API keys");
        requireOwnTenant(ctx.caller, parseTenantName(input.parent));
        const kind = input.kind;
        if (kind === undefined || kind === KeyKindName.FINE_GRAINED) {
          throw invalidArgument("INVALID_KIND", "kind must be KEY_KIND_ADMIN, KEY_KIND_READ_ONLY or KEY_KIND_REGISTRY (clone and revoke fine-grained keys instead)", { field: "kind" });
        }
        if (input.slot === undefined) throw invalidArgument("REQUIRED_FIELD", "slot must be KEY_SLOT_PRIMARY or KEY_SLOT_SECONDARY", { field: "slot" });
        const slot = input.slot;
        // Authority over the slot's key (and over what the new value grants).
        requireAuthorityOver(catalogue, ctx.caller, "key", slotKindPermissions[kind]);
        return units.write(ctx, async (uow) => {
          const org = await scopeOrg(uow, ctx, input.org);
          const orgId = org?.id ?? null;
          const now = clock.now();
          const { record, secret, replaced: old } = await rotateSlot(uow, deps, {
            tenantId: ctx.caller.tenantId, orgId, kind, slot, ...madeBy(ctx, ctx.caller.principalRowId), now, reason: "rotated",
          });
          const replaced = old === undefined ? "" : resourceName(ctx.caller.tenantSlug, "keys", old.keyId);
          const key = await view(uow, ctx.caller.tenantSlug, record);
          audit.record(uow, {
            ...actorOf(ctx), orgId, action: "key.rotate", resource: resourceName(ctx.caller.tenantSlug, "keys", record.keyId), outcome: "success",
            details: { kind, slot, org: org?.slug ?? "", replaced, ...peopleOf(key) },
          });
          return { key, secret, replaced };
        });
      });
    },
  };
}

/** The key service's operations. */
export type KeyService = ReturnType<typeof createKeyService>;
