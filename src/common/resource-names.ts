// AIP resource names: `tenants/{tenant}`, `tenants/{tenant}/keys/{key}`, … parsed in one
// place so every handler refuses a malformed name the same way. Refusals never echo the
// value: a caller may have pasted a secret into the wrong field.
import { invalidArgument } from "../errors.ts";

/** Tenant and organization slugs: lowercase letters, digits, inner hyphens, 1–63. */
export const slugPattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Principal ids: lowercase letters, digits, `-`, `_`, `.`, `@`, 1–100. */
export const principalIdPattern = /^[a-z0-9][a-z0-9._@-]{0,99}$/;
/** Policy ids: a lowercase UUID (what PostgreSQL's uuid type prints). */
export const policyIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const collections = { keys: /^[0-9A-Za-z]{16}$/, principals: principalIdPattern, orgs: slugPattern, policies: policyIdPattern } as const;
/** The collections under a tenant. */
export type Collection = keyof typeof collections;

/** Parses `tenants/{tenant}`; empty means "the caller's tenant" and yields undefined. */
export function parseTenantName(value: string, field = "parent"): string | undefined {
  if (value === "") return undefined;
  const match = /^tenants\/([^/]+)$/.exec(value);
  if (match === null || !slugPattern.test(match[1] ?? "")) {
    throw invalidArgument("INVALID_RESOURCE_NAME", `${field}: expected tenants/{tenant}`, { field });
  }
  return match[1];
}

/**
 * Parses `tenants/{tenant}/{singleton}` (e.g. `permissionCatalogue`), returning the tenant;
 * empty means "the caller's tenant" and yields undefined.
 */
export function parseTenantSingletonName(value: string, singleton: string, field = "name"): string | undefined {
  if (value === "") return undefined;
  const match = /^tenants\/([^/]+)\/([^/]+)$/.exec(value);
  if (match === null || match[2] !== singleton || !slugPattern.test(match[1] ?? "")) {
    throw invalidArgument("INVALID_RESOURCE_NAME", `${field}: expected tenants/{tenant}/${singleton}`, { field });
  }
  return match[1];
}

/** Parses `tenants/{tenant}/{collection}/{id}`. */
export function parseResourceName(value: string, collection: Collection, field = "name"): { tenant: string; id: string } {
  const match = /^tenants\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(value);
  const [, tenant = "", kind = "", id = ""] = match ?? [];
  if (match === null || kind !== collection || !slugPattern.test(tenant) || !collections[collection].test(id)) {
    throw invalidArgument("INVALID_RESOURCE_NAME", `${field}: expected tenants/{tenant}/${collection}/{id}`, { field });
  }
  return { tenant, id };
}

/** Builds `tenants/{tenant}/{collection}/{id}`. */
export function resourceName(tenant: string, collection: Collection | "auditEvents", id: string): string {
  return `tenants/${tenant}/${collection}/${id}`;
}

/**
 * The resource an audit event of a refused call names: the given name when it is
 * well-formed, otherwise `tenants/{caller's tenant}/{collection}/-` (a malformed value may
 * be a secret pasted into the wrong field, and is never recorded).
 */
export function auditedName(value: string, collection: Collection, callerTenant: string): string {
  const match = /^tenants\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(value);
  const ok = match !== null && match[2] === collection && slugPattern.test(match[1] ?? "") && collections[collection].test(match[3] ?? "");
  return ok ? value : resourceName(callerTenant, collection, "-");
}
