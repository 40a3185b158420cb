// The first credential of a tenant: create the tenant (and its `admin` service account) if
// needed and mint a new tenant admin key, shown once. Used by `keyward bootstrap` and by
// the first `npm start` on an empty embedded database. It is also the break-glass path:
// it restores the `admin` principal (active, `*:write`) if someone suspended or stripped it.
import type { Clock } from "../clock.ts";
import type { UnitsOfWork } from "../db/unit-of-work.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import { rotateSlot, type KeyMinting } from "../keys/key-service.ts";
import { keyRepository } from "../keys/key-repository.ts";
import { isKeywardError } from "../errors.ts";
import { StartupError } from "../startup-error.ts";
import { directoryRepository as directory } from "./directory-repository.ts";
import { resourceName, slugPattern } from "../common/resource-names.ts";

/** What bootstrap made. `secret` is the raw admin key: print it once, never log it. */
export type BootstrapResult = { tenant: string; tenantCreated: boolean; keyName: string; keyId: string; slot: string; replaced: string; secret: string };

/** The service account that owns bootstrap admin keys. */
const bootstrapPrincipalId = "admin";

/** Creates the tenant if needed and mints a new admin key into a free (or the older) slot. */
export async function bootstrapTenant(deps: { units: UnitsOfWork; clock: Clock; audit: AuditLog; minting: KeyMinting }, slug: string): Promise<BootstrapResult> {
  if (!slugPattern.test(slug)) {
    throw new StartupError(`invalid tenant slug ${JSON.stringify(slug.slice(0, 80))}: use 1 to 63 lowercase letters, digits and inner hyphens`);
  }
  const { audit } = deps;
  for (let attempt = 0; ; attempt++) {
    try {
      return await deps.units.write({}, async (uow) => {
        const now = deps.clock.now();
        let tenant = await directory.findTenantBySlug(uow, slug);
        const tenantCreated = tenant === undefined;
        tenant ??= await directory.insertTenant(uow, { slug, displayName: slug, now });
        const bootstrapActor = { tenantId: tenant.id, actor: "keyward:bootstrap", credential: "", requestId: "", outcome: "success" as const };
        if (tenantCreated) audit.record(uow, { ...bootstrapActor, action: "tenant.create", resource: `tenants/${slug}` });
        const adminName = resourceName(slug, "principals", bootstrapPrincipalId);
        let admin = await directory.findPrincipal(uow, tenant.id, bootstrapPrincipalId);
        if (admin === undefined) {
          admin = await directory.insertPrincipal(uow, {
            tenantId: tenant.id, principalId: bootstrapPrincipalId, displayName: "Tenant administrator (bootstrap)", type: "service_account",
            status: "active", permissions: ["*:write"], orgId: null, now,
          });
          audit.record(uow, { ...bootstrapActor, action: "principal.create", resource: adminName, details: { permissions: "*:write" } });
        } else if (admin.status !== "active" || admin.permissions.join(",") !== "*:write" || admin.orgId !== null) {
          // Break-glass: the admin principal may have been suspended or stripped; restore it.
          admin = await directory.updatePrincipal(uow, admin.id, "", { status: "active", permissions: ["*:write"] }, now);
          audit.record(uow, { ...bootstrapActor, action: "principal.update", resource: adminName, details: { status: "active", permissions: "*:write" } });
        }
        const primary = await keyRepository.findLiveSlot(uow, tenant.id, null, "admin", "primary");
        const secondary = await keyRepository.findLiveSlot(uow, tenant.id, null, "admin", "secondary");
        // Fill an empty slot; with both in use, replace the older value.
        const slot = primary === undefined ? "primary" : secondary === undefined ? "secondary" : primary.createdAt <= secondary.createdAt ? "primary" : "secondary";
        const { record, secret, replaced } = await rotateSlot(uow, deps.minting, {
          tenantId: tenant.id, orgId: null, kind: "admin", slot, ownerId: admin.id, creatorId: admin.id, boundedBy: [], now, reason: "replaced by keyward bootstrap",
        });
        const keyName = resourceName(slug, "keys", record.keyId);
        const replacedName = replaced === undefined ? "" : resourceName(slug, "keys", replaced.keyId);
        audit.record(uow, { ...bootstrapActor, action: "key.rotate", resource: keyName, details: { kind: "admin", slot, replaced: replacedName } });
        return { tenant: slug, tenantCreated, keyName, keyId: record.keyId, slot, replaced: replacedName, secret };
      });
    } catch (e) {
      // Two bootstraps of a new tenant at once: the loser retries and finds the tenant.
      if (attempt < 2 && isKeywardError(e) && ["ALREADY_EXISTS", "CONCURRENT_ROTATION", "CONCURRENT_MODIFICATION"].includes(e.reason)) continue;
      throw e;
    }
  }
}

/** True when the database holds no tenant yet (first start). */
export async function isEmptyDirectory(units: UnitsOfWork): Promise<boolean> {
  return (await units.read({}, (uow) => directory.countTenants(uow))) === 0;
}
