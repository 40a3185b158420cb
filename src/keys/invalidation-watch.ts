// KeyService.WatchInvalidations (DESIGN.md §8, issue 13): one tenant's credential changes as a
// stream, so the SDK's VerifyKey cache drops an entry as soon as any replica changes it. A
// stream first reads the change log (credential_change, one indexed query) from its resume
// position, then follows the process's invalidation listener (invalidation-listener.ts
// onChanges), so open streams never query the database per notification.
//
// Position: like the listener's, by transaction id (row ids are taken before commit). A stream
// has delivered every change of its tenant whose transaction is below `cursor`, plus the ids in
// `delivered` (changes at or after it). The resume token carries both, the database time of the
// position, and a fingerprint of the tenant (a token is valid for that tenant only).
//
// A stream lives longer than the check of its credential: it authenticates the credential
// again (CallContext.reauthenticate) when a change may concern it (its own key, anything
// tenant-wide) and otherwise at the first wake-up (the listener's 5 s heartbeat, or the
// stream's own) `recheckMs` after the last check — within 10 s — and ends UNAUTHENTICATED (revoked, expired) or
// PERMISSION_DENIED (no longer keys:read, owner suspended) when it no longer may watch.
import { createHash } from "node:crypto";
import type { Catalogue } from "../directory/permissions.ts";
import { requireOwnTenant, requirePermission, type CallContext, type Caller } from "../directory/caller.ts";
import type { Database } from "../db/orm.ts";
import { ErrorKind, invalidArgument, KeywardError } from "../errors.ts";
import { parseTenantName } from "../common/resource-names.ts";
import { decodeOpaqueToken, encodeOpaqueToken, tokenFingerprint } from "../common/page-token.ts";
import type { Logger } from "../logger.ts";
import type { AppliedChanges, InvalidationListener } from "../verify/invalidation-listener.ts";

/** One entry of a batch: a key (by the hash of its id) or the whole tenant. */
export type Invalidation = Readonly<{ scope: "key" | "tenant"; keyIdHash: string; changeTime: Date }>;

/** One message of the stream. */
export type InvalidationBatch = Readonly<{ invalidations: readonly Invalidation[]; resumeToken: string; heartbeat: boolean }>;

/** The watch service. */
export type InvalidationWatch = {
  /**
   * Streams the changes of `parent`'s tenant (the caller's own; needs `keys:read`) after
   * `resumeToken` ("" = from now). The first message comes once the log is read (heartbeat
   * when it found nothing); then a message per batch of changes, and a heartbeat every
   * `heartbeatMs` without one. Ends (returns) when `ctx.signal` aborts or at shutdown.
   * Throws INVALID_ARGUMENT `INVALID_RESUME_TOKEN`, PERMISSION_DENIED, RESOURCE_EXHAUSTED
   * `TOO_MANY_WATCH_STREAMS` (the process's or the tenant's limit), FAILED_PRECONDITION
   * `WATCH_UNAVAILABLE` (no listener: the VerifyKey cache is disabled); while it runs,
   * UNAUTHENTICATED or PERMISSION_DENIED once the caller's credential may no longer watch
   * (`ctx.reauthenticate`: at once after a change of its key or tenant, else within about 10 s).
   */
  watch(ctx: CallContext, req: { parent: string; resumeToken: string }): AsyncGenerator<InvalidationBatch>;
  /** Open streams (for tests and metrics). */
  open(): number;
  /** Ends every open stream (they return after their current message); later calls end at once. */
  shutdown(): void;
};

/** The hash a key-scope invalidation carries: base64url (no padding) SHA-256 of the key id's ASCII. */
export function keyIdHash(keyId: string): string {
  return createHash("sha256").update(keyId, "ascii").digest("base64url");
}

/** Most change rows one catch-up sends one by one; past this the stream says "drop the tenant" instead. */
const maxCatchUpRows = 10_000;
/** A resume position older than this (ms) may have lost rows to the log's pruning (1 day): drop the tenant. */
const resumeHorizonMs = 23 * 60 * 60_000;
/** Most ids a resume token remembers past its cursor (transactions still open at the position; normally a handful). */
const maxDeliveredInToken = 500;
/** Largest xid8 (PostgreSQL's 64-bit unsigned transaction id): a larger cursor is no position. */
const maxXid8 = 2n ** 64n - 1n;
/** A stream authenticates its credential again at its first wake-up this long (ms) after the last check (expiry is noticed within this plus the listener's 5 s heartbeat). */
const recheckMs = 5_000;

type CatchUpRow = { xmin: string; now_ms: number; id: string | null; txid: string | null; scope: "key" | "tenant" | null; key_id: string | null; created_ms: number | null };
// The snapshot's xmin and the tenant's rows of every transaction at or after the position
// ($1, or the snapshot's own xmin when null), oldest first. Indexed by credential_change_tenant_txid_idx (migration 0008).
export const catchUpQuery = `
select s.xmin::text as xmin, (extract(epoch from clock_timestamp()) * 1000)::float8 as now_ms,
       c.id::text as id, c.txid::text as txid, c.scope, c.key_id, (extract(epoch from c.created_at) * 1000)::float8 as created_ms
  from (select pg_snapshot_xmin(pg_current_snapshot()) as xmin) s
  left join lateral (
    select * from credential_change
     where txid >= coalesce(?::xid8, s.xmin) and tenant_id = ?
     order by id limit ${maxCatchUpRows + 1}
  ) c on true`;

type Position = { cursor: bigint; delivered: Map<string, bigint>; timeMs: number };

function fingerprint(tenantId: string): string {
  return tokenFingerprint(["WatchInvalidations", tenantId]);
}

function invalidResumeToken(): KeywardError {
  return invalidArgument("INVALID_RESUME_TOKEN", "resume_token is not valid for this request (a token only works for the tenant whose stream returned it)", { field: "resume_token" });
}

/** Encodes a position for `tenantId` (exported for tests that need an old position). */
export function encodeResumeToken(tenantId: string, position: Position): string {
  const d = [...position.delivered].slice(-maxDeliveredInToken).map(([id, txid]) => [id, txid.toString()]);
  return encodeOpaqueToken({ x: position.cursor.toString(), d, t: position.timeMs, f: fingerprint(tenantId) });
}

const digits = /^[0-9]{1,20}$/;
const isXid8 = (v: unknown): v is string => typeof v === "string" && digits.test(v) && BigInt(v) <= maxXid8;

/** Decodes a token minted for `tenantId`; anything else is INVALID_ARGUMENT `INVALID_RESUME_TOKEN`. */
function decodeResumeToken(token: string, tenantId: string): Position {
  const parsed = decodeOpaqueToken(token, 64 * 1024);
  if (parsed === undefined) throw invalidResumeToken();
  const { x, d, t, f } = parsed;
  if (f !== fingerprint(tenantId) || !isXid8(x) || typeof t !== "number" || !Number.isFinite(t) || !Array.isArray(d) || d.length > maxDeliveredInToken) {
    throw invalidResumeToken();
  }
  const delivered = new Map<string, bigint>();
  for (const entry of d) {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== "string" || !digits.test(entry[0]) || !isXid8(entry[1])) throw invalidResumeToken();
    delivered.set(entry[0], BigInt(entry[1]));
  }
  return { cursor: BigInt(x), delivered, timeMs: t };
}

/** Creates the watch service. `listener` undefined (cache disabled): every call is FAILED_PRECONDITION. */
export function createInvalidationWatch(deps: {
  db: Database;
  listener: InvalidationListener | undefined;
  catalogue: Catalogue;
  logger: Logger;
  /** Heartbeat interval in ms (KEYWARD_WATCH_HEARTBEAT_MS). */
  heartbeatMs: number;
  /** Most open streams in this process (KEYWARD_WATCH_MAX_STREAMS). */
  maxStreams: number;
  /** Most open streams of one tenant in this process (KEYWARD_WATCH_MAX_STREAMS_PER_TENANT). */
  maxStreamsPerTenant: number;
}): InvalidationWatch {
  const { listener, catalogue } = deps;
  const pool = deps.db.orm.driver.getConnection();
  const closers = new Set<() => void>();
  /** Open streams by tenant id. */
  const perTenant = new Map<string, number>();
  let stopped = false;

  /** Refuses a caller that may no longer watch `tenantId` (the checks of the stream's start, again). */
  const stillAllowed = (caller: Caller, tenantId: string): void => {
    if (caller.tenantId !== tenantId) throw new KeywardError(ErrorKind.PERMISSION_DENIED, "TENANT_MISMATCH", "the credential is not valid for this tenant");
    requirePermission(catalogue, caller, "keys:read");
  };

  async function* watch(ctx: CallContext, req: { parent: string; resumeToken: string }): AsyncGenerator<InvalidationBatch> {
    const tenant = parseTenantName(req.parent);
    requireOwnTenant(ctx.caller, tenant);
    requirePermission(catalogue, ctx.caller, "keys:read");
    const tenantId = ctx.caller.tenantId;
    const resumed = req.resumeToken === "" ? undefined : decodeResumeToken(req.resumeToken, tenantId);
    if (listener === undefined) {
      throw new KeywardError(ErrorKind.FAILED_PRECONDITION, "WATCH_UNAVAILABLE", "this server does not follow credential changes (its VerifyKey cache is disabled: KEYWARD_VERIFY_CACHE_TTL_SECONDS=0)");
    }
    if (closers.size >= deps.maxStreams) {
      throw new KeywardError(ErrorKind.RESOURCE_EXHAUSTED, "TOO_MANY_WATCH_STREAMS", "too many WatchInvalidations streams are open on this server; retry later", { limit: String(deps.maxStreams) });
    }
    if ((perTenant.get(tenantId) ?? 0) >= deps.maxStreamsPerTenant) {
      throw new KeywardError(ErrorKind.RESOURCE_EXHAUSTED, "TOO_MANY_WATCH_STREAMS", "too many WatchInvalidations streams of this tenant are open on this server; share one per process, or retry later", { limit: String(deps.maxStreamsPerTenant) });
    }
    const signal = ctx.signal;
    if (stopped || signal?.aborted === true) return;

    // Subscribed before the log is read: a change committed after that read reaches the stream
    // through the listener, one committed before it is in the read (duplicates are skipped by id).
    const inbox: AppliedChanges[] = [];
    let wake: (() => void) | undefined;
    const notify = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    let closed = false;
    const close = (): void => {
      closed = true;
      notify();
    };
    const ended = (): boolean => closed || stopped || signal?.aborted === true;
    closers.add(close);
    perTenant.set(tenantId, (perTenant.get(tenantId) ?? 0) + 1);
    const credentialId = ctx.caller.credentialId;
    let checkedAt = Date.now();
    /** Authenticates the caller again when `concerned` or `recheckMs` passed; throws when it may no longer watch. */
    const recheck = async (concerned: boolean): Promise<void> => {
      if (ctx.reauthenticate === undefined || (!concerned && Date.now() - checkedAt < recheckMs)) return;
      checkedAt = Date.now();
      stillAllowed(await ctx.reauthenticate(), tenantId);
    };
    const unsubscribe = listener.onChanges((applied) => {
      inbox.push(applied);
      notify();
    });
    signal?.addEventListener("abort", close, { once: true });
    try {
      const rows = await pool.execute<CatchUpRow[]>(catchUpQuery, [resumed === undefined ? null : resumed.cursor.toString(), tenantId], "all");
      const head = rows[0]!;
      const position: Position = { cursor: resumed?.cursor ?? BigInt(head.xmin), delivered: resumed?.delivered ?? new Map(), timeMs: Number(head.now_ms) };
      const first: Invalidation[] = [];
      const found = rows.filter((r) => r.id !== null);
      if ((resumed !== undefined && Number(head.now_ms) - resumed.timeMs > resumeHorizonMs) || found.length > maxCatchUpRows) {
        // History lost (pruned) or too long to send: the client drops everything of the tenant.
        first.push(tenantWide(new Date(Number(head.now_ms))));
      }
      if (found.length <= maxCatchUpRows) {
        for (const row of found) {
          if (position.delivered.has(row.id!)) continue;
          position.delivered.set(row.id!, BigInt(row.txid!));
          first.push(invalidationOf(row.scope!, row.key_id, new Date(Number(row.created_ms))));
        }
      }
      advance(position, BigInt(head.xmin));
      yield { invalidations: first, resumeToken: encodeResumeToken(tenantId, position), heartbeat: first.length === 0 };

      for (;;) {
        if (ended()) return;
        if (inbox.length === 0) {
          const timedOut = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => {
              wake = undefined;
              resolve(true);
            }, deps.heartbeatMs);
            wake = () => {
              clearTimeout(timer);
              resolve(false);
            };
          });
          if (ended()) return;
          if (timedOut && inbox.length === 0) {
            await recheck(false);
            if (ended()) return;
            yield { invalidations: [], resumeToken: encodeResumeToken(tenantId, position), heartbeat: true };
            continue;
          }
        }
        const batch: Invalidation[] = [];
        let concerned = false;
        for (let applied = inbox.shift(); applied !== undefined; applied = inbox.shift()) {
          // The listener skipped changes (too many, or a long disconnection): drop everything.
          if (applied.reset) {
            batch.push(tenantWide(new Date()));
            concerned = true;
          }
          for (const change of applied.changes) {
            if (change.tenantId !== tenantId || change.txid < position.cursor || position.delivered.has(change.id)) continue;
            if (change.scope === "tenant" || change.keyId === credentialId) concerned = true;
            position.delivered.set(change.id, change.txid);
            batch.push(invalidationOf(change.scope, change.keyId, change.createdAt));
          }
          advance(position, applied.position);
          position.timeMs = Date.now();
        }
        // The caller's own credential may be what changed: it learns no more once it may not watch.
        await recheck(concerned);
        if (ended()) return;
        if (batch.length > 0) yield { invalidations: batch, resumeToken: encodeResumeToken(tenantId, position), heartbeat: false };
      }
    } finally {
      closers.delete(close);
      const left = (perTenant.get(tenantId) ?? 1) - 1;
      if (left > 0) perTenant.set(tenantId, left);
      else perTenant.delete(tenantId);
      unsubscribe();
      signal?.removeEventListener("abort", close);
    }
  }

  return {
    watch,
    open: () => closers.size,
    shutdown() {
      stopped = true;
      for (const close of closers) close();
    },
  };
}

/** The entry telling the client to drop everything of the tenant. */
function tenantWide(changeTime: Date): Invalidation {
  return { scope: "tenant", keyIdHash: "", changeTime };
}

function invalidationOf(scope: "key" | "tenant", keyId: string | null, changeTime: Date): Invalidation {
  return scope === "key" ? { scope, keyIdHash: keyIdHash(keyId!), changeTime } : { scope, keyIdHash: "", changeTime };
}

/** Moves the position to `cursor` when later, forgetting the delivered ids below it. */
function advance(position: Position, cursor: bigint): void {
  if (cursor > position.cursor) position.cursor = cursor;
  for (const [id, txid] of position.delivered) if (txid < position.cursor) position.delivered.delete(id);
}
