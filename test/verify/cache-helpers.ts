// Helpers of the verification cache tests: cache counters, waiting (bounded) for a replica
// to hear of a change, and keys crafted with a chosen id.
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { hashKey, mintKey, withChecksum, KeyKindName } from "../../src/keys/key-format.ts";
import type { CredentialCacheStats } from "../../src/verify/credential-cache.ts";
import type { InvalidationState } from "../../src/verify/invalidation-listener.ts";
import type { TestServer } from "../harness.ts";
import { until } from "../wait.ts";

/** The server's cache counters (throws when its cache is disabled). */
export function statsOf(server: TestServer): CredentialCacheStats {
  const cache = server.verification.cache;
  if (cache === undefined) throw new Error("the server's verification cache is disabled");
  return cache.stats();
}

/** The server's listener state (throws when its cache is disabled). */
export function listenerOf(server: TestServer): InvalidationState {
  const listener = server.verification.listener;
  if (listener === undefined) throw new Error("the server's verification cache is disabled");
  return listener.state();
}

/** VerifyKey on `server`; the result's name (e.g. "VALID"). */
export async function verifyOn(server: TestServer, key: string, requiredPermissions: string[] = [], org = ""): Promise<string> {
  const res = await server.client(KeyService).verifyKey({ key, requiredPermissions, org });
  return Object.entries(VerifyResult).find(([, value]) => value === res.result)?.[0] ?? String(res.result);
}

/** Verifies on `server` and asserts the answer came from its cache (no database read). */
export async function verifyCached(server: TestServer, key: string, requiredPermissions: string[] = []): Promise<string> {
  const before = statsOf(server);
  const result = await verifyOn(server, key, requiredPermissions);
  const after = statsOf(server);
  if (after.hits !== before.hits + 1 || after.loads !== before.loads) {
    throw new Error(`expected a cache hit: hits ${before.hits}→${after.hits}, loads ${before.loads}→${after.loads}`);
  }
  return result;
}

/** The id of the latest committed credential change. */
export async function latestChange(server: TestServer): Promise<number> {
  const rows = await server.store.db.orm.driver.getConnection().execute<{ id: string | null }[]>("select max(id)::text as id from credential_change", [], "all");
  return Number(rows[0]?.id ?? 0);
}

/**
 * Waits (bounded) until `server` has applied every change of the tenant `slug` committed so far
 * (through its notifications, or its own writes' catch-up).
 */
export async function heard(server: TestServer, slug: string, ms = 5_000): Promise<void> {
  const listener = server.verification.listener;
  if (listener === undefined) throw new Error("the server's verification cache is disabled");
  const rows = await server.store.db.orm.driver.getConnection().execute<{ id: string }[]>(
    "select c.id::text as id from credential_change c join tenant t on t.id = c.tenant_id where t.slug = ?", [slug], "all",
  );
  const ids = rows.map((r) => Number(r.id));
  await until(() => ids.every((id) => listener.hasApplied(id)), ms, `the replica applies the ${ids.length} credential change(s) of ${slug}`);
}

/** A well-formed raw key with the chosen 16-character id (fine-grained) and its secret hash as stored. */
export function craftKey(server: TestServer, keyId: string): { raw: string; secretHash: Buffer } {
  const other = mintKey(server.config.keyPrefix, KeyKindName.FINE_GRAINED).raw;
  const [head, , secret] = other.slice(0, -6).split("_");
  const raw = withChecksum(`${head}_${keyId}_${secret}`);
  return { raw, secretHash: hashKey(raw, server.config.keyPepper) };
}

/** A random key id (16 characters of base62), as keyward mints them. */
export function randomKeyId(): string {
  return mintKey("kw", KeyKindName.FINE_GRAINED).keyId;
}
