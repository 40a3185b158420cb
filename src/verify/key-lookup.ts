// The hot-path read of a key: one indexed query (by primary key) joining what verification
// needs (tenant, owner, org, the principals bounding the key) — no ORM unit of
// work, no entity hydration.
import type { LoggingOptions } from "@mikro-orm/core";
import type { Database } from "../db/orm.ts";
import type { PrincipalStatus } from "../directory/directory-repository.ts";
import type { KeyKindName } from "../keys/key-format.ts";

/** Everything VerifyKey needs to judge a key, read in one query. */
export type KeyLookupRecord = Readonly<{
  keyId: string;
  tenantId: string;
  tenantSlug: string;
  disableKeysOfSuspendedPrincipals: boolean;
  kind: KeyKindName;
  orgId: string | null;
  orgSlug: string | null;
  permissions: readonly string[];
  ownerRowId: string;
  ownerPrincipalId: string;
  ownerStatus: PrincipalStatus;
  ownerPermissions: readonly string[];
  /** The principal who made the key; the same row as the owner unless made for someone else. */
  /** Principals besides the owner whose authority bounds the key (its creator and the chain above). */
  boundedBy: readonly string[];
  /** True when every principal of `boundedBy` is active. */
  boundsActive: boolean;
  /** The current permissions of each principal of `boundedBy`. */
  boundsPermissions: readonly (readonly string[])[];
  secretHash: Uint8Array;
  expiresAt: Date | null;
  revokedAt: Date | null;
}>;

/** Finds a key by id. */
export type KeyLookup = (keyId: string, signal?: AbortSignal) => Promise<KeyLookupRecord | undefined>;

/** The one statement of a key lookup (`?` is the key id); the benchmark's raw pg reference runs it too. */
export const keyLookupQuery = `
select k.key_id, k.tenant_id, t.slug as tenant_slug, t.disable_keys_of_suspended_principals,
       k.kind, coalesce(k.org_id, p.org_id) as org_id, o.slug as org_slug, k.permissions,
       k.owner_id, p.principal_id, p.status as owner_status, p.permissions as owner_permissions,
       k.bounded_by::text[] as bounded_by,
       x.id as bound_id, x.status as bound_status, x.permissions as bound_permissions,
       k.secret_hash, k.expires_at, k.revoked_at
  from api_key k
  join tenant t on t.id = k.tenant_id
  join principal p on p.id = k.owner_id
  left join organization o on o.id = coalesce(k.org_id, p.org_id)
  -- One row per principal bounding the key (one row with nulls when none does).
  left join principal x on x.id = any(k.bounded_by)
 where k.key_id = ?`;

type Row = BoundRow & {
  key_id: string; tenant_id: string; tenant_slug: string; disable_keys_of_suspended_principals: boolean; kind: KeyKindName;
  org_id: string | null; org_slug: string | null; permissions: string[]; owner_id: string; principal_id: string;
  owner_status: PrincipalStatus; owner_permissions: string[];
  secret_hash: Uint8Array; expires_at: Date | null; revoked_at: Date | null;
};

/**
 * The abort options of one hot-path query: the caller's signal (deadline, disconnect) ends
 * the wait for a connection and cancels the query in flight; the query timeout bounds it
 * otherwise. MikroORM 7 takes them on the logging-context argument of execute() (its
 * EntityManager does the same); they are stripped before anything is logged.
 */
function abortOptions(signal: AbortSignal | undefined): LoggingOptions | undefined {
  return signal === undefined ? undefined : ({ signal, inflightQueryAbortStrategy: "cancel query" } as LoggingOptions);
}

/** Runs a hot-path `query` (one `?`, the id) over the pool, bounded by the caller's signal. */
export function createRowReader<R>(db: Database, query: string): (id: string, signal: AbortSignal | undefined) => Promise<R[]> {
  const connection = db.orm.driver.getConnection();
  return (id, signal) => connection.execute<R[]>(query, [id], "all", undefined, abortOptions(signal));
}

/** The bounding principals of a credential from its rows (one per `bound_id`, or one with nulls). */
export function boundsOf(rows: readonly BoundRow[]): { boundsActive: boolean; boundsPermissions: (readonly string[])[] } {
  const bounds = rows.filter((row) => row.bound_id !== null);
  return {
    // Every bounding principal must exist and be active (a missing one fails closed).
    boundsActive: bounds.length === rows[0]!.bounded_by.length && bounds.every((b) => b.bound_status === "active"),
    boundsPermissions: bounds.map((b) => b.bound_permissions ?? []),
  };
}

/** The columns of the bounding principals both lookups join. */
export type BoundRow = { bounded_by: string[]; bound_id: string | null; bound_status: PrincipalStatus | null; bound_permissions: string[] | null };

/** Creates the lookup over the database's connection pool. */
export function createKeyLookup(db: Database): KeyLookup {
  const read = createRowReader<Row>(db, keyLookupQuery);
  return async (keyId, signal) => {
    const rows = await read(keyId, signal);
    const r = rows[0];
    if (r === undefined) return undefined;
    return {
      keyId: r.key_id,
      tenantId: r.tenant_id,
      tenantSlug: r.tenant_slug,
      disableKeysOfSuspendedPrincipals: r.disable_keys_of_suspended_principals,
      kind: r.kind,
      orgId: r.org_id,
      orgSlug: r.org_slug,
      permissions: r.permissions,
      ownerRowId: r.owner_id,
      ownerPrincipalId: r.principal_id,
      ownerStatus: r.owner_status,
      ownerPermissions: r.owner_permissions,
      boundedBy: r.bounded_by,
      ...boundsOf(rows),
      secretHash: r.secret_hash,
      expiresAt: r.expires_at === null ? null : new Date(r.expires_at),
      revokedAt: r.revoked_at === null ? null : new Date(r.revoked_at),
    };
  };
}
