// Offline verification of the tokens keyward mints (DESIGN.md §7; issue 13 item 3): RFC 9068
// access tokens (`typ: at+jwt`, ES256) checked with jose against keyward's published keys
// (`GET /.well-known/jwks.json`, cached), with no call to VerifyKey. Opt-in: a service that
// needs revocation-prompt answers uses createVerifier (VerifyKey) instead.
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  jwtVerify,
  type CryptoKey,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
} from "jose";
import { verifyResultName } from "./client.ts";
import type { VerifyOptions } from "./guard-types.ts";
import type { VerifiedIdentity } from "./verifier.ts";
import { KeyKind } from "../../gen/keyward/v1/key_pb.ts";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";

/** The only signing algorithm keyward uses (RFC 7518 §3.4); every other `alg` is refused. */
export const MINTED_TOKEN_ALGORITHM = "ES256";
/** The JOSE `typ` header of keyward's access tokens (RFC 9068 §2.1, checked as §4 requires). */
export const MINTED_TOKEN_TYP = "at+jwt";
/** Default leeway for `exp` and `nbf` against the local clock, in seconds (as keyward's own check). */
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 5;
/** The longest token looked at, in characters; anything longer is MALFORMED without any work (as VerifyKey). */
export const MAX_MINTED_TOKEN_LENGTH = 8 * 1024;
/**
 * The longest lifetime keyward gives any token it mints (12 h, CreateUserToken's and
 * ExchangeToken's limit): how long an offline check may keep accepting a token after keyward
 * stopped honouring it (policy deleted, principal suspended, permissions reduced).
 */
export const MAX_MINTED_TOKEN_LIFETIME_SECONDS = 12 * 3600;

/**
 * Claims every accepted token must carry: RFC 9068 §2.2's `iss`, `exp`, `aud`, `sub`,
 * `client_id`, `iat`, `jti`, and keyward's `tenant`.
 */
const requiredClaims = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti", "tenant"] as const;

/** Options of createMintedTokenVerifier and verifyMintedToken. */
export type MintedTokenVerifierOptions = {
  /**
   * keyward's base URL: the keys are fetched from `${baseUrl}/.well-known/jwks.json` when
   * needed and cached. Required unless `jwks` is given.
   */
  baseUrl?: string | undefined;
  /**
   * A key set of your own (`{ keys: [...] }`, e.g. what `GET /.well-known/jwks.json` or
   * `TokenExchangeService.GetJwks` returned): used instead of fetching; never refreshed.
   */
  jwks?: JSONWebKeySet | undefined;
  /**
   * The `iss` keyward writes into its tokens: its KEYWARD_TOKEN_ISSUER (default
   * `https://<KEYWARD_AUDIENCE_DOMAIN>`, i.e. `https://keyward.localhost` out of the box).
   * Required: the JWKS does not say it, and a token is only trusted for the issuer you name.
   */
  issuer: string;
  /**
   * The audience(s) to accept (RFC 9068 §4: the resource server must check `aud`). keyward's
   * `aud` is the tenant's audience, `<tenant>.<audience domain>` (DirectoryService.GetTenant's
   * `audience`). Required: it is what keeps another tenant's tokens out.
   */
  audience: string | readonly string[];
  /** Leeway for `exp`/`nbf`, seconds, 0–60. Default 5. */
  clockToleranceSeconds?: number | undefined;
  /** The clock tokens are judged by. Default: the system clock. */
  now?: (() => Date) | undefined;
  /** How long a fetched JWKS is used before it is fetched again, ms. Default 600 000 (10 min). */
  jwksCacheMaxAgeMs?: number | undefined;
  /**
   * After a fetch, how long a token naming an unknown `kid` is refused without fetching again,
   * ms. Default 1000: a new signing key is seen within a second, and a flood of made-up kids
   * costs at most one fetch a second.
   */
  jwksCooldownMs?: number | undefined;
  /** Deadline of one JWKS fetch, ms. Default 5000. */
  jwksTimeoutMs?: number | undefined;
  /** The fetch used for the JWKS (e.g. through a proxy). Default: the global fetch. */
  fetch?: typeof fetch | undefined;
};

/**
 * Stable detail of a verdict, for the calling service's logs. Signature, key, header and
 * claim failures are all `MALFORMED` in `resultName` (as VerifyKey answers them).
 */
export type MintedTokenReason =
  | "VALID"
  | "EXPIRED"
  | "WRONG_SCOPE"
  | "INSUFFICIENT_PERMISSIONS"
  /** Not a compact JWS, bad JSON or base64url, too long. */
  | "MALFORMED"
  /** The signature does not match (tampered header, payload or signature). */
  | "INVALID_SIGNATURE"
  /** No `kid`, or a `kid` keyward does not publish. */
  | "UNKNOWN_KEY"
  /** `alg` other than ES256 (`none`, HS256, …). */
  | "ALGORITHM_NOT_ALLOWED"
  /** `typ` other than `at+jwt`. */
  | "WRONG_TYPE"
  | "WRONG_ISSUER"
  | "WRONG_AUDIENCE"
  /** A required claim (RFC 9068 §2.2, or `tenant`) is absent. */
  | "MISSING_CLAIM"
  /** A claim has the wrong type or value (e.g. `aud` not of the token's `tenant`). */
  | "INVALID_CLAIM"
  /** `nbf` is in the future (beyond the tolerance). */
  | "NOT_YET_VALID";

/** Who a verified token is: VerifyKey's identity fields as far as the token itself says them. */
export type MintedTokenIdentity = VerifiedIdentity & {
  /** `token_kind`: `user` (CreateUserToken) or `exchanged` (ExchangeToken). */
  tokenKind: string;
  /** `client_id`: the policy's resource name, or `keyward` for user tokens. */
  clientId: string;
  /** `iat`. */
  issuedAt: Date;
};

/**
 * What an offline verification answers, shaped like createVerifier's VerifyOutcome:
 * `result`/`resultName` are VerifyKey's verdicts (only VALID, MALFORMED, EXPIRED,
 * WRONG_SCOPE and INSUFFICIENT_PERMISSIONS occur offline), `reason` the finer cause.
 */
export type MintedTokenOutcome = {
  /** True exactly when `result` is VALID. */
  valid: boolean;
  result: VerifyResult;
  resultName: string;
  reason: MintedTokenReason;
  /** Set when the signature verified (VALID, EXPIRED, WRONG_SCOPE, INSUFFICIENT_PERMISSIONS). */
  identity?: MintedTokenIdentity;
  /** For INSUFFICIENT_PERMISSIONS: the required permissions the token's `scope` does not imply. */
  missingPermissions: string[];
};

/** Verifies minted tokens offline; satisfies the guards' KeyVerifier. */
export type MintedTokenVerifier = {
  /**
   * Verifies `token` for `permissions` (all required; `write` implies `read`, `*:write` and
   * `*:read` as keyward spells them) and `org` (the resource's org slug). Resolves with a
   * verdict for every token; rejects with a ConnectError `Unavailable` only when keyward's
   * JWKS is needed (nothing cached, stale, or an unknown kid past the cooldown) and cannot be
   * fetched: fail closed. Never puts the token in an error.
   */
  verify(token: string, opts?: VerifyOptions): Promise<MintedTokenOutcome>;
};

type KeyResolver = (header: JWSHeaderParameters, input: FlattenedJWSInput) => Promise<CryptoKey>;

/** Marks a JWKS that could not be obtained (as opposed to a token that does not verify). */
class JwksUnavailable extends Error {}

/** The largest JWKS body read, in bytes (keyward's holds a few public keys, about 1 KiB each); a longer one is not buffered. */
export const MAX_JWKS_BYTES = 256 * 1024;

/** A JWKS response over MAX_JWKS_BYTES (its name is what the Unavailable error says). */
class JwksTooLarge extends Error {
  override name = "JWKS_TOO_LARGE";
}

/** `base`, with the response body read up to MAX_JWKS_BYTES (declared or actual); past that it throws JwksTooLarge. */
function cappedFetch(base: typeof fetch): typeof fetch {
  return async (input, init) => {
    const res = await base(input, init);
    if (Number(res.headers.get("content-length") ?? 0) > MAX_JWKS_BYTES) {
      await res.body?.cancel();
      throw new JwksTooLarge();
    }
    if (res.body === null) return res;
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_JWKS_BYTES) {
        await reader.cancel();
        throw new JwksTooLarge();
      }
      chunks.push(value);
    }
    return new Response(Buffer.concat(chunks), { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/**
 * Creates an offline verifier of keyward's minted tokens (RFC 9068 profile): signature
 * (ES256 only, `kid` required, keys from keyward's JWKS — fetched on first use, cached for
 * `jwksCacheMaxAgeMs`, fetched again on an unknown kid at most once per `jwksCooldownMs`),
 * `typ: at+jwt`, `iss`, `aud`, the claims of RFC 9068 §2.2, `exp`/`nbf` with a tolerance of
 * `clockToleranceSeconds` (5 s), then the token's `org` against `org` and its `scope`
 * against `permissions`.
 *
 * What it cannot see: it makes no call to keyward per token, so a token stays VALID here
 * until its `exp` (plus the tolerance) even when keyward already refuses it — its policy
 * deleted, its principal suspended, its principal's or policy's permissions reduced.
 * keyward's tokens live at most 12 hours (MAX_MINTED_TOKEN_LIFETIME_SECONDS; exchanged
 * tokens usually far less, per policy): that is the bound. Use createVerifier (VerifyKey)
 * where a revocation must take effect within a second.
 *
 * When keyward is down it keeps verifying with the cached keys until they are
 * `jwksCacheMaxAgeMs` old (10 min), then fails closed with `Unavailable`.
 */
export function createMintedTokenVerifier(opts: MintedTokenVerifierOptions): MintedTokenVerifier {
  const keys = keyResolver(opts);
  return { verify: (token, vopts = {}) => check(token, keys, opts, vopts) };
}

/** JWKS fetchers of verifyMintedToken, by URL and cache settings (a few per process at most). */
const sharedResolvers = new Map<string, KeyResolver>();
const maxSharedResolvers = 16;

/**
 * Verifies one minted token offline: as createMintedTokenVerifier(opts).verify(token, opts),
 * with the JWKS cache shared by every call for the same `baseUrl` (and cache settings and
 * `fetch`) in this process (at most 16 such caches; `jwks` given: that set, nothing cached). Same verdicts, errors and revocation bound (at most the token's remaining
 * lifetime, ≤ 12 h: see createMintedTokenVerifier).
 *
 * ```ts
 * const r = await verifyMintedToken(token, { baseUrl, issuer, audience, permissions: ["keys:read"] });
 * if (!r.valid) console.log(r.resultName, r.reason); // e.g. EXPIRED EXPIRED, MALFORMED WRONG_AUDIENCE
 * ```
 */
export function verifyMintedToken(token: string, opts: MintedTokenVerifierOptions & VerifyOptions): Promise<MintedTokenOutcome> {
  let keys: KeyResolver;
  if (opts.jwks !== undefined) {
    keys = keyResolver(opts);
  } else {
    const cacheKey = JSON.stringify([jwksUrl(opts).href, opts.jwksCacheMaxAgeMs, opts.jwksCooldownMs, opts.jwksTimeoutMs, fetchId(opts.fetch)]);
    let shared = sharedResolvers.get(cacheKey);
    if (shared === undefined) {
      shared = keyResolver(opts);
      sharedResolvers.set(cacheKey, shared);
      while (sharedResolvers.size > maxSharedResolvers) sharedResolvers.delete(sharedResolvers.keys().next().value!);
    }
    keys = shared;
  }
  return check(token, keys, opts, opts);
}

/** A number per fetch function given to verifyMintedToken (0: the global fetch), so each shares its own cache. */
const fetchIds = new WeakMap<typeof fetch, number>();
function fetchId(f: typeof fetch | undefined): number {
  if (f === undefined) return 0;
  let id = fetchIds.get(f);
  if (id === undefined) fetchIds.set(f, (id = ++fetchIdCounter));
  return id;
}
let fetchIdCounter = 0;

/** `${baseUrl}/.well-known/jwks.json`. */
function jwksUrl(opts: MintedTokenVerifierOptions): URL {
  if (opts.baseUrl === undefined || opts.baseUrl === "") {
    throw new Error("verifyMintedToken: baseUrl (keyward's URL) or jwks is required");
  }
  return new URL(`${opts.baseUrl.replace(/\/+$/, "")}/.well-known/jwks.json`);
}

/**
 * The key lookup jose calls: a `kid` is required; a kid the set does not hold stays
 * jose's JWKSNoMatchingKey (a verdict); failing to obtain the set becomes JwksUnavailable.
 */
function keyResolver(opts: MintedTokenVerifierOptions): KeyResolver {
  if (typeof opts.issuer !== "string" || opts.issuer === "") throw new Error("verifyMintedToken: issuer is required (keyward's KEYWARD_TOKEN_ISSUER)");
  const audiences = typeof opts.audience === "string" ? [opts.audience] : [...(opts.audience ?? [])];
  if (audiences.length === 0 || audiences.some((a) => typeof a !== "string" || a === "")) {
    throw new Error("verifyMintedToken: audience is required (the tenant's audience, `<tenant>.<audience domain>`)");
  }
  const tolerance = opts.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > 60) throw new RangeError("verifyMintedToken: clockToleranceSeconds must be 0 to 60");
  const set =
    opts.jwks !== undefined
      ? createLocalJWKSet(opts.jwks)
      : createRemoteJWKSet(jwksUrl(opts), {
          cacheMaxAge: opts.jwksCacheMaxAgeMs ?? 600_000,
          cooldownDuration: opts.jwksCooldownMs ?? 1000,
          timeoutDuration: opts.jwksTimeoutMs ?? 5000,
          [customFetch]: cappedFetch(opts.fetch ?? ((input, init) => fetch(input, init))),
        });
  return async (header, input) => {
    if (typeof header.kid !== "string" || header.kid === "") throw new errors.JWKSNoMatchingKey();
    try {
      return await set(header, input);
    } catch (e) {
      if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) throw e;
      throw new JwksUnavailable(whyUnavailable(e));
    }
  };
}

/** A short description of why the JWKS could not be had (an error name or socket code; never a token). */
function whyUnavailable(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === "string") return cause.code;
  if (e instanceof errors.JOSEError) return e.code;
  return e instanceof Error ? e.name : "error";
}

/** The whole check of one token. */
async function check(token: string, keys: KeyResolver, opts: MintedTokenVerifierOptions, vopts: VerifyOptions): Promise<MintedTokenOutcome> {
  if (typeof token !== "string" || token.length > MAX_MINTED_TOKEN_LENGTH || token.split(".").length !== 3) return refused("MALFORMED");
  const audiences = typeof opts.audience === "string" ? [opts.audience] : [...opts.audience];
  let payload: JWTPayload;
  let expired = false;
  try {
    ({ payload } = await jwtVerify(token, keys, {
      algorithms: [MINTED_TOKEN_ALGORITHM],
      typ: MINTED_TOKEN_TYP,
      issuer: opts.issuer,
      audience: audiences,
      requiredClaims: [...requiredClaims],
      clockTolerance: opts.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS,
      ...(opts.now === undefined ? {} : { currentDate: opts.now() }),
    }));
  } catch (e) {
    // jose checks the signature, then typ, presence, iss, aud, nbf and last exp: an expired
    // token's payload is authentic and passed every other check.
    if (e instanceof errors.JWTExpired) {
      payload = e.payload;
      expired = true;
    } else if (e instanceof JwksUnavailable) {
      throw new ConnectError(`keyward's JWKS is unavailable (${e.message}); minted tokens cannot be verified`, Code.Unavailable);
    } else {
      return refused(reasonOf(e));
    }
  }
  const identity = identityOf(payload);
  if (identity === undefined) return refused("INVALID_CLAIM");
  if (expired) return { ...verdict(VerifyResult.EXPIRED, "EXPIRED"), identity };
  if (identity.org !== "" && (vopts.org ?? "") !== identity.org) return { ...verdict(VerifyResult.WRONG_SCOPE, "WRONG_SCOPE"), identity };
  const missing = missingPermissions(identity.permissions, vopts.permissions ?? []);
  if (missing.length > 0) return { ...verdict(VerifyResult.INSUFFICIENT_PERMISSIONS, "INSUFFICIENT_PERMISSIONS"), identity, missingPermissions: missing };
  return { ...verdict(VerifyResult.VALID, "VALID"), identity };
}

function verdict(result: VerifyResult, reason: MintedTokenReason): MintedTokenOutcome {
  return { valid: result === VerifyResult.VALID, result, resultName: verifyResultName(result), reason, missingPermissions: [] };
}

function refused(reason: MintedTokenReason): MintedTokenOutcome {
  return verdict(VerifyResult.MALFORMED, reason);
}

/** The reason of a jose error; anything not jose's is rethrown (not a verdict). */
function reasonOf(e: unknown): MintedTokenReason {
  if (e instanceof errors.JWSSignatureVerificationFailed) return "INVALID_SIGNATURE";
  if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) return "UNKNOWN_KEY";
  if (e instanceof errors.JOSEAlgNotAllowed) return "ALGORITHM_NOT_ALLOWED";
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.reason === "missing") return "MISSING_CLAIM";
    switch (e.claim) {
      case "typ":
        return "WRONG_TYPE";
      case "iss":
        return "WRONG_ISSUER";
      case "aud":
        return "WRONG_AUDIENCE";
      case "nbf":
        return "NOT_YET_VALID";
      default:
        return "INVALID_CLAIM";
    }
  }
  if (e instanceof errors.JOSEError) return "MALFORMED";
  throw e;
}

/** The identity of a signature-checked payload; undefined when a claim keyward always writes has the wrong shape. */
function identityOf(p: JWTPayload): MintedTokenIdentity | undefined {
  const { jti, sub, tenant, org, policy, scope, token_kind: tokenKind, client_id: clientId, exp, iat, aud } = p as Record<string, unknown>;
  const optionalString = (v: unknown): v is string | undefined => v === undefined || typeof v === "string";
  if (typeof jti !== "string" || typeof sub !== "string" || typeof tenant !== "string" || tenant === "" || typeof clientId !== "string") return undefined;
  if (typeof exp !== "number" || typeof iat !== "number" || !optionalString(org) || !optionalString(policy) || !optionalString(scope) || !optionalString(tokenKind)) return undefined;
  // keyward's `aud` is `<tenant>.<audience domain>`: a token's audience is its own tenant's.
  const audList = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
  if (audList.length !== 1 || typeof audList[0] !== "string" || !audList[0].startsWith(`${tenant}.`)) return undefined;
  const kind = tokenKind ?? "";
  return {
    keyId: jti,
    tenant,
    org: org ?? "",
    // The owner of a user token is its principal (its `sub`); an exchanged token's (its
    // policy's creator) is known to keyward only: VerifyKey says it.
    owner: kind === "user" ? sub : "",
    kind: KeyKind.UNSPECIFIED,
    token: true,
    policy: policy ?? "",
    subject: sub,
    permissions: (scope ?? "").split(" ").filter((s) => s !== ""),
    expireTime: new Date(exp * 1000),
    tokenKind: kind,
    clientId,
    issuedAt: new Date(iat * 1000),
  };
}

/**
 * The members of `required` that `held` (a token's `scope`) does not imply: `c:write`
 * implies `c:read`; `*:write` implies everything; `*:read` implies every `c:read`. A
 * required `*:read` needs `*:read` or `*:write` (the SDK does not know keyward's category
 * list, so a scope that lists every category one by one does not satisfy it: fail closed).
 */
export function missingPermissions(held: readonly string[], required: readonly string[]): string[] {
  const has = new Set(held);
  const implied = (p: string): boolean => {
    const colon = p.lastIndexOf(":");
    if (colon <= 0) return false;
    const category = p.slice(0, colon);
    const level = p.slice(colon + 1);
    if (level !== "read" && level !== "write") return false;
    if (has.has("*:write") || has.has(`${category}:write`)) return true;
    return level === "read" && (has.has("*:read") || has.has(`${category}:read`));
  };
  return [...new Set(required)].filter((p) => !implied(p));
}
