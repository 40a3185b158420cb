// The signing keys of the configured OIDC issuers (DESIGN.md §4): found through OpenID
// Connect Discovery 1.0 (§4: `<issuer>/.well-known/openid-configuration` → `jwks_uri`), fetched
// with bounds, cached per issuer.
//
// Why not jose's createRemoteJWKSet: it reads a response of any size into memory, and when a
// refetch fails it does not keep serving the last good key set. Both matter here: a hostile or
// broken issuer must not make keyward buffer 10 MB, and a short GitHub outage must not stop
// every exchange. jose still does all the JWK work (createLocalJWKSet over the fetched set).
//
// The rules, per configured issuer (defaults in parentheses):
// - Keys come only from the configured issuer's discovery document; its `jwks_uri` must be on
//   the issuer's own origin (https, or http when the issuer itself is loopback http).
// - Every request: global fetch, no redirects, one deadline for discovery + JWKS together
//   (`fetchTimeoutMs`, 5 s), bodies capped (`maxResponseBytes`, 256 KiB: Content-Length is
//   checked first, then streamed bytes are counted and the download aborted past the cap).
// - A key set is fresh for `refreshMs` (10 min); the first lookup after that refreshes in line.
// - A `kid` not in the set refetches only if the last attempt (successful or not) is older
//   than `unknownKidCooldownMs` (30 s), so a flood of made-up kids costs the issuer at most one
//   request pair per cool-down; the same cool-down spaces retries of an issuer that is down.
//   Concurrent lookups share one in-flight fetch.
// - When a refresh fails, the last good set keeps serving for `staleGraceMs` (1 hour) after
//   its last successful fetch; after that, and for an issuer never reached, lookups fail
//   with UNAVAILABLE ISSUER_UNAVAILABLE. A kid missing from a set whose latest refresh failed
//   is also ISSUER_UNAVAILABLE (the key may be new; the caller should retry), not
//   UNKNOWN_SIGNING_KEY.
// - Only keys a token could name are kept: `kty` RSA, EC or OKP; `use` absent or "sig"; a
//   `kid`; no private part. A set of more than 100 keys is refused.
import { createLocalJWKSet, type JSONWebKeySet, type JWK } from "jose";
import type { Clock } from "../clock.ts";
import { isLoopbackUrl } from "../common/loopback-url.ts";
import { ErrorKind, KeywardError } from "../errors.ts";
import type { Logger } from "../logger.ts";

/** The bounds and timings of a JwksCache; every field has a default (see the module header). */
export type JwksCacheOptions = Readonly<{
  /** The issuers whose keys may be fetched, exactly as configured (KEYWARD_OIDC_ISSUERS). */
  issuers: readonly string[];
  clock: Clock;
  logger?: Logger | undefined;
  /** Deadline of one refresh (discovery + JWKS), in ms. Default 5000. */
  fetchTimeoutMs?: number | undefined;
  /** Largest response body accepted, in bytes. Default 262144 (256 KiB). */
  maxResponseBytes?: number | undefined;
  /** How long a fetched set is used without refetching, in ms. Default 600000 (10 min). */
  refreshMs?: number | undefined;
  /** Least time between two fetch attempts for one issuer when a kid is unknown or a fetch failed, in ms. Default 30000. */
  unknownKidCooldownMs?: number | undefined;
  /** How long after its last successful fetch a set keeps serving while refreshes fail, in ms. Default 3600000 (1 hour). */
  staleGraceMs?: number | undefined;
}>;

/** One issuer's usable key set, as last fetched. */
export type IssuerKeySet = Readonly<{
  /** The filtered set (public keys only), for jose. */
  jwks: JSONWebKeySet;
  /** jose's key resolver over `jwks` (kept so imported keys are cached across verifications). */
  resolve: ReturnType<typeof createLocalJWKSet>;
  /** The `kid`s of `jwks`. */
  kids: ReadonlySet<string>;
  /** When the fetch that produced this set started. */
  fetchedAt: Date;
}>;

/** Per-issuer JWKS cache with bounded fetching (see the module header). */
export type JwksCache = {
  /**
   * The key set of `issuer` (one of the configured issuers) to verify a token whose header
   * names `kid`, refetching as the module header describes. The returned set may lack `kid`
   * (the caller reports UNKNOWN_SIGNING_KEY). Throws KeywardError UNAVAILABLE
   * ISSUER_UNAVAILABLE (metadata `issuer`) when no usable set can be had. `signal` ends the
   * caller's wait (rejecting with its reason), not the shared fetch.
   */
  keysFor(issuer: string, kid: string, signal?: AbortSignal): Promise<IssuerKeySet>;
  /** Aborts fetches in flight. */
  stop(): void;
};

/** The defaults of JwksCacheOptions. */
const jwksCacheDefaults = Object.freeze({
  fetchTimeoutMs: 5_000,
  maxResponseBytes: 256 * 1024,
  refreshMs: 10 * 60_000,
  unknownKidCooldownMs: 30_000,
  staleGraceMs: 60 * 60_000,
});

/** The most keys a set may hold. */
const maxKeys = 100;
const keyTypes: ReadonlySet<unknown> = new Set(["RSA", "EC", "OKP"]);

type IssuerState = {
  good: IssuerKeySet | undefined;
  /** Start of the last fetch attempt, in ms since the epoch. */
  lastAttemptAt: number | undefined;
  /** Why the last attempt failed; undefined when it succeeded (or none was made). */
  failure: string | undefined;
  inflight: Promise<void> | undefined;
};

/** Creates the cache; nothing is fetched until the first lookup. */
export function createJwksCache(opts: JwksCacheOptions): JwksCache {
  const { clock, logger } = opts;
  const fetchTimeoutMs = opts.fetchTimeoutMs ?? jwksCacheDefaults.fetchTimeoutMs;
  const maxResponseBytes = opts.maxResponseBytes ?? jwksCacheDefaults.maxResponseBytes;
  const refreshMs = opts.refreshMs ?? jwksCacheDefaults.refreshMs;
  const cooldownMs = opts.unknownKidCooldownMs ?? jwksCacheDefaults.unknownKidCooldownMs;
  const staleGraceMs = opts.staleGraceMs ?? jwksCacheDefaults.staleGraceMs;
  const states = new Map<string, IssuerState>(opts.issuers.map((i) => [i, { good: undefined, lastAttemptAt: undefined, failure: undefined, inflight: undefined }]));
  const stopped = new AbortController();

  function refresh(issuer: string, state: IssuerState): Promise<void> {
    const startedAt = clock.now();
    state.lastAttemptAt = startedAt.getTime();
    const signal = AbortSignal.any([AbortSignal.timeout(fetchTimeoutMs), stopped.signal]);
    const attempt = fetchKeySet(issuer, { signal, maxResponseBytes, timeoutMs: fetchTimeoutMs })
      .then((jwks) => {
        // createLocalJWKSet checks the set's shape once more and throws on what it cannot use.
        state.good = { jwks, resolve: createLocalJWKSet(jwks), kids: new Set(jwks.keys.map((k) => k.kid as string)), fetchedAt: startedAt };
        state.failure = undefined;
      })
      .catch((e: unknown) => {
        state.failure = e instanceof Error ? e.message : String(e);
        logger?.warn({ issuer, cause: state.failure, servingLastGoodSetFrom: state.good?.fetchedAt }, "could not fetch the OIDC issuer's signing keys");
      })
      .finally(() => {
        state.inflight = undefined;
      });
    state.inflight = attempt;
    return attempt;
  }

  function unavailable(issuer: string, why: string): KeywardError {
    return new KeywardError(ErrorKind.UNAVAILABLE, "ISSUER_UNAVAILABLE", `the signing keys of OIDC issuer "${issuer}" are unavailable: ${why}`, { issuer });
  }

  return {
    async keysFor(issuer, kid, signal) {
      const state = states.get(issuer);
      if (state === undefined) throw new Error(`issuer ${JSON.stringify(issuer)} is not configured`);
      const now = clock.now().getTime();
      const good = state.good;
      const fresh = good !== undefined && now - good.fetchedAt.getTime() < refreshMs;
      if (fresh && good.kids.has(kid)) return good;
      if (state.inflight !== undefined) await waitFor(state.inflight, signal);
      else if (state.lastAttemptAt === undefined || now - state.lastAttemptAt >= cooldownMs) await waitFor(refresh(issuer, state), signal);

      const current = state.good;
      const failure = state.failure ?? "no key set fetched yet";
      if (current === undefined) throw unavailable(issuer, `never fetched (${failure})`);
      const age = clock.now().getTime() - current.fetchedAt.getTime();
      if (age > staleGraceMs) {
        throw unavailable(issuer, `the last good key set is ${Math.round(age / 1000)} s old, past the ${Math.round(staleGraceMs / 1000)} s grace (${failure})`);
      }
      if (!current.kids.has(kid) && state.failure !== undefined) throw unavailable(issuer, `key "${kid}" is not in the last good key set and refreshing it failed (${failure})`);
      return current;
    },
    stop() {
      stopped.abort(new Error("the JWKS cache was stopped"));
    },
  };
}

/** Waits for `p`, or rejects with `signal`'s reason when it aborts first. */
function waitFor(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

type FetchBounds = { signal: AbortSignal; maxResponseBytes: number; timeoutMs: number };

/**
 * Discovery then JWKS for `issuer` (OpenID Connect Discovery 1.0 §4), filtered to usable
 * public signing keys. Throws an Error whose message says what went wrong (for logs and
 * the ISSUER_UNAVAILABLE message).
 */
async function fetchKeySet(issuer: string, bounds: FetchBounds): Promise<JSONWebKeySet> {
  const discoveryUrl = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  const discovery = await getJson(discoveryUrl, bounds);
  if (!isRecord(discovery)) throw new Error(`${discoveryUrl}: not a JSON object`);
  // The issuer as configured has no trailing slash; one on either side changes nothing.
  if (typeof discovery["issuer"] !== "string" || discovery["issuer"].replace(/\/+$/, "") !== issuer.replace(/\/+$/, "")) throw new Error(`${discoveryUrl}: its "issuer" is ${describe(discovery["issuer"])}, not "${issuer}"`);
  const jwksUri = discovery["jwks_uri"];
  if (typeof jwksUri !== "string") throw new Error(`${discoveryUrl}: "jwks_uri" is missing`);
  let url: URL;
  try {
    url = new URL(jwksUri);
  } catch {
    throw new Error(`${discoveryUrl}: "jwks_uri" ${describe(jwksUri)} is not a URL`);
  }
  const issuerUrl = new URL(issuer);
  if (url.origin !== issuerUrl.origin) throw new Error(`${discoveryUrl}: "jwks_uri" ${describe(jwksUri)} is not on the issuer's origin ${issuerUrl.origin}`);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackUrl(issuerUrl))) throw new Error(`${discoveryUrl}: "jwks_uri" ${describe(jwksUri)} is not https`);
  const set = await getJson(url.href, bounds);
  if (!isRecord(set) || !Array.isArray(set["keys"])) throw new Error(`${url.href}: not a JWK set (no "keys" array)`);
  const all: unknown[] = set["keys"];
  if (all.length > maxKeys) throw new Error(`${url.href}: ${all.length} keys, at most ${maxKeys} accepted`);
  return { keys: all.filter(isUsableKey) };
}

/** A public signing key that a token's `kid` can name. */
function isUsableKey(k: unknown): k is JWK {
  return isRecord(k) && keyTypes.has(k["kty"]) && (k["use"] === undefined || k["use"] === "sig") && typeof k["kid"] === "string" && k["kid"] !== "" && k["d"] === undefined;
}

/** GET `url` as JSON with the bounds: no redirects, the deadline, the size cap. */
async function getJson(url: string, bounds: FetchBounds): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: "error", signal: bounds.signal, headers: { accept: "application/json" } });
  } catch (e) {
    throw new Error(`${url}: ${fetchFailure(e, bounds)}`);
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`${url}: HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (declared > bounds.maxResponseBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`${url}: ${declared} bytes declared, at most ${bounds.maxResponseBytes} accepted`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body !== null) {
    const reader = res.body.getReader();
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw new Error(`${url}: ${fetchFailure(e, bounds)}`);
      }
      if (chunk.done) break;
      size += chunk.value.byteLength;
      if (size > bounds.maxResponseBytes) {
        await reader.cancel().catch(() => undefined);
        throw new Error(`${url}: more than ${bounds.maxResponseBytes} bytes, refused`);
      }
      chunks.push(chunk.value);
    }
  }
  try {
    return JSON.parse(Buffer.concat(chunks, size).toString("utf8"));
  } catch {
    throw new Error(`${url}: not JSON`);
  }
}

/** Why a fetch failed, in words: the timeout, a stop, or the network error's cause. */
function fetchFailure(e: unknown, bounds: FetchBounds): string {
  if (bounds.signal.aborted) {
    const reason: unknown = bounds.signal.reason;
    if (reason instanceof DOMException && reason.name === "TimeoutError") return `no answer within ${bounds.timeoutMs} ms`;
    return reason instanceof Error ? reason.message : "aborted";
  }
  const cause: unknown = e instanceof Error ? e.cause : undefined;
  if (cause instanceof Error) return `${e instanceof Error ? e.message : "failed"}: ${cause.message}`;
  return e instanceof Error ? e.message : String(e);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A value from a remote document, quoted and cut short for a message. */
function describe(v: unknown): string {
  const s = JSON.stringify(v) ?? "undefined";
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}
