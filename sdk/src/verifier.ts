// The SDK verifier (DESIGN.md §7, issue 13 item 3): VerifyKey with a local, bounded,
// revocation-prompt cache fed by KeyService.WatchInvalidations.
import { hash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createKeywardClient, sleep, verifyResultName, type KeywardClient } from "./client.ts";
import { InvalidationScope, VerifyResult, type VerifyKeyResponse } from "../../gen/keyward/v1/key_service_pb.ts";
import type { KeyKind } from "../../gen/keyward/v1/key_pb.ts";
import type { VerifyOptions } from "./guard-types.ts";

/** Options of createVerifier. */
export type VerifierOptions = {
  /** keyward's base URL; used when `client` is not given. */
  baseUrl?: string | undefined;
  /** A client of your own (e.g. with interceptors); takes precedence over baseUrl/apiKey. */
  client?: KeywardClient | undefined;
  /** An API key of the tenant holding `keys:read`: needed for the invalidation stream. */
  apiKey?: string | undefined;
  /**
   * Tenant slug to watch; default: the apiKey's own tenant (learned with one VerifyKey of the
   * apiKey). Only results of this tenant are kept past `degradedTtlMs`: the stream carries no
   * other tenant's changes. With a `client` and no `apiKey`, set it, or every result is
   * served at most `degradedTtlMs`.
   */
  tenant?: string | undefined;
  /** How long a VALID result is served while the stream is up, ms. Default 60 000. */
  cacheTtlMs?: number | undefined;
  /** Most cached results (least recently used evicted). Default 10 000. */
  maxEntries?: number | undefined;
  /** How long a non-VALID result is served, ms; capped at 1000. Default 1000. */
  negativeTtlMs?: number | undefined;
  /** While the stream is down (or watch is off), results older than this are not served, ms. Default 5000. */
  degradedTtlMs?: number | undefined;
  /** Subscribe to WatchInvalidations. Default: true when a client or apiKey is given. */
  watch?: boolean | undefined;
  /** Longest silence on the stream before it is considered dead and reopened, ms. Default 30 000 (3 heartbeats). */
  streamIdleMs?: number | undefined;
};

/** Who a valid credential belongs to (from VerifyKey; for the calling service's logs, never its callers). */
export type VerifiedIdentity = {
  keyId: string;
  tenant: string;
  org: string;
  owner: string;
  kind: KeyKind;
  token: boolean;
  policy: string;
  subject: string;
  permissions: string[];
  expireTime: Date | undefined;
};

/** What verify() answers. */
export type VerifyOutcome = {
  /** True exactly when `result` is VALID. */
  valid: boolean;
  result: VerifyResult;
  /** The verdict's name, e.g. `VALID`, `REVOKED`. */
  resultName: string;
  /** Present for every result but MALFORMED and NOT_FOUND. */
  identity?: VerifiedIdentity;
  /** For INSUFFICIENT_PERMISSIONS: the required permissions that do not hold. */
  missingPermissions: string[];
};

/** Counters for tests and metrics. */
export type VerifierStats = {
  /** VerifyKey calls made. */
  rpcs: number;
  /** Answers served from the cache. */
  hits: number;
  /** Cached entries. */
  size: number;
  /** Invalidation entries received. */
  invalidations: number;
  /** Whether the stream is currently established (a message received since it opened). */
  streamUp: boolean;
  /** Streams opened (the first, then every reconnect). */
  streamsOpened: number;
};

export type Verifier = {
  /**
   * Verifies `key` for `permissions` (all required) and `org` (the resource's org slug, or
   * none). Throws the ConnectError (e.g. `Unavailable`) when keyward cannot answer and
   * nothing servable is cached: fail closed.
   */
  verify(key: string, opts?: VerifyOptions): Promise<VerifyOutcome>;
  stats(): VerifierStats;
  /** Stops the stream and forgets the cache. */
  close(): void;
};

/**
 * `covered`: the stream reports every later change of the credential — it is of the watched
 * tenant, and was looked up after the current stream's start position. Other entries are
 * served at most degradedTtlMs, stream or not.
 */
type Entry = { outcome: VerifyOutcome; keyIdHash: string | undefined; storedAt: number; expiresAt: number; covered: boolean };

/** The longest credential sent to keyward, in characters (its VerifyKey answers MALFORMED past 8 KiB): longer is MALFORMED here, with no call. */
export const MAX_CREDENTIAL_LENGTH = 8 * 1024;

/** base64url (no padding) SHA-256 of the raw key's id (between its first and second `_`); undefined for minted tokens. */
export function keyIdHashOf(raw: string): string | undefined {
  const parts = raw.split("_");
  if (raw.split(".").length === 3 || parts.length < 3 || parts[1]!.length !== 16) return undefined;
  return hash("sha256", parts[1]!, "base64url");
}

/**
 * A verifier with a local cache. Positive (VALID) results are cached up to `cacheTtlMs` and
 * never past the credential's expiry, others up to `negativeTtlMs` (≤ 1 s). With the stream
 * up, a change pushed by keyward (revocation, rotation, permission or owner change, …) drops
 * the affected entries as soon as it arrives (typically well under a second). While the stream
 * is down, or without `watch`, only entries younger than `degradedTtlMs` are served: a revoked
 * key is accepted at most `degradedTtlMs` (default 5 s) after its last successful check.
 * Lookups in flight when an invalidation arrives are answered but not cached.
 */
export function createVerifier(opts: VerifierOptions): Verifier {
  const client = opts.client ?? createKeywardClient({ baseUrl: opts.baseUrl, apiKey: opts.apiKey });
  const cacheTtlMs = nonNegative("cacheTtlMs", opts.cacheTtlMs ?? 60_000);
  const maxEntries = Math.max(1, nonNegative("maxEntries", opts.maxEntries ?? 10_000));
  const negativeTtlMs = Math.min(1000, nonNegative("negativeTtlMs", opts.negativeTtlMs ?? 1000));
  const degradedTtlMs = nonNegative("degradedTtlMs", opts.degradedTtlMs ?? 5000);
  const streamIdleMs = nonNegative("streamIdleMs", opts.streamIdleMs ?? 30_000);
  const watch = opts.watch ?? (opts.client !== undefined || opts.apiKey !== undefined);

  /** The tenant whose changes the stream delivers (undefined until known). */
  let watchedTenant = opts.tenant;
  /** Counts streams that started from "now" (no resume token): lookups begun before one are not covered by it. */
  let epoch = 0;
  const cache = new Map<string, Entry>();
  const inflight = new Map<string, Promise<VerifyOutcome>>();
  const stats = { rpcs: 0, hits: 0, invalidations: 0, streamsOpened: 0 };
  let generation = 0;
  let streamUp = false;
  let closed = false;
  const ac = new AbortController();

  const invalidate = (keyIdHash: string | undefined): void => {
    generation += 1;
    stats.invalidations += 1;
    if (keyIdHash === undefined) {
      cache.clear();
      return;
    }
    for (const [k, e] of cache) if (e.keyIdHash === keyIdHash) cache.delete(k);
  };

  const servable = (e: Entry, now: number): boolean =>
    now < e.expiresAt && ((streamUp && e.covered) || now - e.storedAt < degradedTtlMs);

  const lookup = async (key: string, permissions: string[], org: string, cacheKey: string): Promise<VerifyOutcome> => {
    const startGeneration = generation;
    const startEpoch = epoch;
    stats.rpcs += 1;
    // A connection failure comes as Unavailable (createKeywardClient's connectionErrorsAsUnavailable).
    const res: VerifyKeyResponse = await client.keys.verifyKey({ key, requiredPermissions: permissions, org });
    const outcome = toOutcome(res);
    const now = Date.now();
    if (generation === startGeneration && !closed) {
      let expiresAt = now + (outcome.valid ? cacheTtlMs : negativeTtlMs);
      const exp = outcome.identity?.expireTime?.getTime();
      if (exp !== undefined && exp < expiresAt) expiresAt = exp;
      cache.delete(cacheKey);
      const covered = startEpoch === epoch && watchedTenant !== undefined && outcome.identity?.tenant === watchedTenant;
      cache.set(cacheKey, { outcome, keyIdHash: keyIdHashOf(key), storedAt: now, expiresAt, covered });
      while (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
    }
    return outcome;
  };

  const verify: Verifier["verify"] = (key, vopts = {}) => {
    if (typeof key !== "string" || key.length > MAX_CREDENTIAL_LENGTH) return Promise.resolve(malformed());
    const asked = vopts.permissions ?? [];
    // The cache key does not depend on the order or repetition of permissions (the common one-permission case skips the sort).
    const permissions = asked.length <= 1 ? [...asked] : [...new Set(asked)].sort();
    const org = vopts.org ?? "";
    // JSON: no permission or org string can make two different checks share an entry.
    const cacheKey = JSON.stringify([hash("sha256", key, "base64url"), permissions, org]);
    const hit = cache.get(cacheKey);
    if (hit !== undefined) {
      if (servable(hit, Date.now())) {
        cache.delete(cacheKey);
        cache.set(cacheKey, hit);
        stats.hits += 1;
        return Promise.resolve(hit.outcome);
      }
      cache.delete(cacheKey);
    }
    const pending = inflight.get(cacheKey);
    if (pending !== undefined) return pending;
    const p = lookup(key, permissions, org, cacheKey).finally(() => inflight.delete(cacheKey));
    inflight.set(cacheKey, p);
    return p;
  };

  /** The apiKey's tenant, by one VerifyKey (undefined when it cannot be learned now). */
  const learnTenant = async (): Promise<string | undefined> => {
    if (opts.apiKey === undefined || opts.apiKey === "") return undefined;
    try {
      const res = await client.keys.verifyKey({ key: opts.apiKey }, { signal: ac.signal });
      return res.tenant === "" ? undefined : res.tenant;
    } catch {
      return undefined;
    }
  };

  const runStream = async (): Promise<void> => {
    let resumeToken = "";
    let failures = 0;
    while (!closed) {
      if (watchedTenant === undefined) watchedTenant = await learnTenant();
      const parent = watchedTenant === undefined ? "" : `tenants/${watchedTenant}`;
      // A stream opened without a resume token starts "from now": entries and lookups from
      // before it may predate changes it will never report, so from its first message they
      // are served only as if the stream were down (degradedTtlMs).
      let fresh = resumeToken === "";
      const streamAc = new AbortController();
      const onClose = (): void => streamAc.abort();
      ac.signal.addEventListener("abort", onClose);
      let idle: NodeJS.Timeout | undefined;
      const armIdle = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => streamAc.abort(), streamIdleMs);
      };
      try {
        stats.streamsOpened += 1;
        armIdle();
        for await (const m of client.keys.watchInvalidations({ parent, resumeToken }, { signal: streamAc.signal, timeoutMs: 0 })) {
          armIdle();
          if (fresh) {
            fresh = false;
            epoch += 1;
            for (const e of cache.values()) e.covered = false;
          }
          for (const inv of m.invalidations) {
            if (inv.scope === InvalidationScope.KEY) invalidate(inv.keyIdHash);
            else invalidate(undefined);
          }
          if (m.resumeToken !== "") resumeToken = m.resumeToken;
          streamUp = true;
          failures = 0;
        }
      } catch (err) {
        // Down: reconnect below. A resume token keyward refuses (INVALID_RESUME_TOKEN) is
        // dropped, or every reconnect would be refused alike: the next stream starts fresh.
        if (ConnectError.from(err).code === Code.InvalidArgument) resumeToken = "";
      } finally {
        clearTimeout(idle);
        ac.signal.removeEventListener("abort", onClose);
        streamUp = false;
      }
      if (closed) break;
      const backoff = Math.random() * Math.min(5000, 100 * 2 ** failures);
      failures = Math.min(failures + 1, 10);
      await sleep(backoff, ac.signal);
    }
  };
  if (watch) void runStream();

  return {
    verify,
    stats: () => ({ ...stats, size: cache.size, streamUp }),
    close() {
      closed = true;
      streamUp = false;
      ac.abort();
      cache.clear();
    },
  };
}

/** `value` when it is a finite number >= 0; otherwise a RangeError naming the option (a NaN bound would disable it). */
function nonNegative(option: string, value: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) throw new RangeError(`createVerifier: ${option} must be a finite number >= 0`);
  return value;
}

/** The outcome of a credential refused before any call (too long to be one). */
function malformed(): VerifyOutcome {
  return { valid: false, result: VerifyResult.MALFORMED, resultName: verifyResultName(VerifyResult.MALFORMED), missingPermissions: [] };
}

function toOutcome(res: VerifyKeyResponse): VerifyOutcome {
  const outcome: VerifyOutcome = {
    valid: res.result === VerifyResult.VALID,
    result: res.result,
    resultName: verifyResultName(res.result),
    missingPermissions: [...res.missingPermissions],
  };
  if (res.keyId !== "") {
    outcome.identity = {
      keyId: res.keyId,
      tenant: res.tenant,
      org: res.org,
      owner: res.owner,
      kind: res.kind,
      token: res.token,
      policy: res.policy,
      subject: res.subject,
      permissions: [...res.permissions],
      expireTime: res.expireTime === undefined ? undefined : timestampDate(res.expireTime),
    };
  }
  return outcome;
}
