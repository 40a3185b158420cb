// The audience of a tenant (DESIGN.md §1): what a workflow requests its OIDC ID token for,
// what ExchangeToken requires of it, and the `aud` of every token keyward mints for the tenant.

/** `<tenant slug>.<audience domain>` (KEYWARD_AUDIENCE_DOMAIN), e.g. `acme.keyward.example.com`. */
export function tenantAudience(tenantSlug: string, audienceDomain: string): string {
  return `${tenantSlug}.${audienceDomain}`;
}
