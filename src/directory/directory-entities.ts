// Persistence shape of the directory: tenants, organizations and principals.
import { defineEntity, p } from "@mikro-orm/core";

/** Table schema of a tenant, the top scope of every credential. */
export const TenantSchema = defineEntity({
  name: "Tenant",
  tableName: "tenant",
  properties: {
    id: p.uuid().primary(),
    slug: p.string().length(63).unique(),
    displayName: p.string().length(200),
    disableKeysOfSuspendedPrincipals: p.boolean().default(false),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    version: p.integer().version(),
  },
});
/** A tenant row. */
export class Tenant extends TenantSchema.class {}
TenantSchema.setClass(Tenant);

/** Table schema of an organization inside a tenant. */
export const OrganizationSchema = defineEntity({
  name: "Organization",
  tableName: "organization",
  properties: {
    id: p.uuid().primary(),
    tenantId: p.uuid(),
    slug: p.string().length(63),
    displayName: p.string().length(200),
    githubOwner: p.string().length(100).nullable(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    version: p.integer().version(),
  },
  uniques: [{ properties: ["tenantId", "slug"] }],
});
/** An organization row. */
export class Organization extends OrganizationSchema.class {}
OrganizationSchema.setClass(Organization);

/** Table schema of a principal (user or service account). */
export const PrincipalSchema = defineEntity({
  name: "Principal",
  tableName: "principal",
  properties: {
    id: p.uuid().primary(),
    tenantId: p.uuid(),
    principalId: p.string().length(100),
    displayName: p.string().length(200),
    type: p.string().length(20),
    status: p.string().length(20),
    permissions: p.array(),
    orgId: p.uuid().nullable(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    version: p.integer().version(),
  },
  uniques: [{ properties: ["tenantId", "principalId"] }],
});
/** A principal row. */
export class Principal extends PrincipalSchema.class {}
PrincipalSchema.setClass(Principal);
