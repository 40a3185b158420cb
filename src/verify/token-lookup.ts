// The hot-path read of a minted token (its signature already checked): one indexed query (by
// primary key) joining what verification needs (tenant, principal, org, policy, the
// principals bounding the token) — no ORM unit of work, no entity hydration. Mirrors key-lookup.ts.
import type { Database } from "../db/orm.ts";
import type { PrincipalStatus } from "../directory/directory-repository.ts";
import { boundsOf, createRowReader, type BoundRow } from "./key-lookup.ts";

/** Everything VerifyKey needs to judge a minted token, read in one query. */
export type TokenLookupRecord = Readonly<{
  jti: string;
  kind: "exchanged" | "user";
  tenantId: string;
  tenantSlug: string;
  disableKeysOfSuspendedPrincipals: boolean;
  orgId: string | null;
  orgSlug: string | null;
  /** Permissions granted when it was minted. */
  permissions: readonly string[];
  subject: string;
  principalRowId: string;
  principalId: string;
  principalStatus: PrincipalStatus;
  principalPermissions: readonly string[];
  /** The policy of an exchanged token; null for user tokens and once the policy is deleted. */
  policyId: string | null;
  /** That policy's current permission allowlist (null when there is no policy). */
  policyPermissions: readonly string[] | null;
  /** Principals besides the principal whose authority bounds the token. */
  boundedBy: readonly string[];
  /** True when every principal of `boundedBy` exists and is active. */
  boundsActive: boolean;
  /** The current permissions of each principal of `boundedBy`. */
  boundsPermissions: readonly (readonly string[])[];
  issuedAt: Date;
  expiresAt: Date;
}>;

/** Finds a minted token by its `jti`. */
export type TokenLookup = (jti: string, signal?: AbortSignal) => Promise<TokenLookupRecord | undefined>;

const query = `
select m.jti, m.kind, m.tenant_id, t.slug as tenant_slug, t.disable_keys_of_suspended_principals,
       coalesce(m.org_id, p.org_id) as org_id, o.slug as org_slug, m.permissions, m.subject,
       m.principal_id as principal_row_id, p.principal_id, p.status as principal_status, p.permissions as principal_permissions,
       m.policy_id, tp.permissions as policy_permissions,
       m.bounded_by::text[] as bounded_by,
       x.id as bound_id, x.status as bound_status, x.permissions as bound_permissions,
       m.issued_at, m.expires_at
  from minted_token m
  join tenant t on t.id = m.tenant_id
  join principal p on p.id = m.principal_id
  left join organization o on o.id = coalesce(m.org_id, p.org_id)
  left join trust_policy tp on tp.id = m.policy_id
  -- One row per principal bounding the token (one row with nulls when none does).
  left join principal x on x.id = any(m.bounded_by)
 where m.jti = ?`;

type Row = BoundRow & {
  jti: string; kind: "exchanged" | "user"; tenant_id: string; tenant_slug: string; disable_keys_of_suspended_principals: boolean;
  org_id: string | null; org_slug: string | null; permissions: string[]; subject: string;
  principal_row_id: string; principal_id: string; principal_status: PrincipalStatus; principal_permissions: string[];
  policy_id: string | null; policy_permissions: string[] | null;
  issued_at: Date; expires_at: Date;
};

/** Creates the lookup over the database's connection pool. */
export function createTokenLookup(db: Database): TokenLookup {
  const read = createRowReader<Row>(db, query);
  return async (jti, signal) => {
    const rows = await read(jti, signal);
    const r = rows[0];
    if (r === undefined) return undefined;
    return {
      jti: r.jti,
      kind: r.kind,
      tenantId: r.tenant_id,
      tenantSlug: r.tenant_slug,
      disableKeysOfSuspendedPrincipals: r.disable_keys_of_suspended_principals,
      orgId: r.org_id,
      orgSlug: r.org_slug,
      permissions: r.permissions,
      subject: r.subject,
      principalRowId: r.principal_row_id,
      principalId: r.principal_id,
      principalStatus: r.principal_status,
      principalPermissions: r.principal_permissions,
      policyId: r.policy_id,
      policyPermissions: r.policy_id === null ? null : (r.policy_permissions ?? []),
      boundedBy: r.bounded_by,
      ...boundsOf(rows),
      issuedAt: new Date(r.issued_at),
      expiresAt: new Date(r.expires_at),
    };
  };
}
