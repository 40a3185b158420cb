// OIDC ID-token verification for token exchange (DESIGN.md §4), tighter than jose's defaults.
// Cheap refusals come first and make no network call: size and shape, then the protected
// header (no key-locating headers, asymmetric `alg` only, a `kid`), then the unverified
// `iss`, which must be one of the configured issuers. Only then are that issuer's keys
// looked up (jwks-cache.ts) and the token verified with jose (RFC 7515 signature, RFC 7519
// claims), with `exp`, `iat`, `nbf`, `jti`, `sub` required, a leeway, and a maximum age.
import {
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyOptions,
  type ProtectedHeaderParameters,
} from "jose";
import { isCompactJws } from "../common/compact-jws.ts";
import { sha256Hex } from "../common/sha256-hex.ts";
import { ErrorKind, KeywardError } from "../errors.ts";
import type { OidcVerifier, VerifiedIdToken } from "./id-token.ts";
import { createJwksCache, type JwksCacheOptions } from "./jwks-cache.ts";

/** The signature algorithms accepted (asymmetric only: RFC 7518 §3.3–3.5, RFC 8037). */
const allowedAlgorithms: readonly string[] = Object.freeze(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]);

/** Longest ID token accepted, in characters: GitHub's are about 1.2 KB. */
export const maxIdTokenLength = 16 * 1024;

/** Header parameters refused: they name keys or rules the token chooses itself (RFC 7515 §4.1). */
const refusedHeaders = ["jku", "x5u", "jwk", "x5c", "crit"] as const;

/** Claims that must be present (RFC 7519 §4.1); `iss` and `aud` are required by the checks themselves. */
const requiredClaims = ["exp", "iat", "nbf", "jti", "sub"];

/** Longest `jti` and `kid` accepted, in characters. */
const maxIdLength = 200;
/**
 * Longest `sub` accepted, in characters: what minted_token.subject and audit_event.actor
 * hold. GitHub's subject grows with a customized template (repository, environment,
 * job_workflow_ref, ids…) and passes 200 characters in real use.
 */
const maxSubjectLength = 300;

/** Options of createOidcVerifier: the issuers and clock, plus JwksCache bounds and the time rules. */
export type OidcVerifierOptions = JwksCacheOptions &
  Readonly<{
    /** Clock skew allowed on `exp`, `nbf` and `iat`, in seconds, 30–60. Default 60. */
    leewaySeconds?: number | undefined;
    /** Oldest `iat` accepted (before leeway), in seconds. Default 600 (10 minutes). */
    maxTokenAgeSeconds?: number | undefined;
  }>;

/**
 * Creates the verifier of OidcVerifier's contract (src/oidc/id-token.ts: the refusals and
 * their reasons). Throws RangeError at once when `leewaySeconds` is outside 30–60 or
 * `maxTokenAgeSeconds` is not positive.
 */
export function createOidcVerifier(opts: OidcVerifierOptions): OidcVerifier {
  const leeway = opts.leewaySeconds ?? 60;
  if (!Number.isInteger(leeway) || leeway < 30 || leeway > 60) throw new RangeError(`leewaySeconds must be an integer from 30 to 60, not ${leeway}`);
  const maxAge = opts.maxTokenAgeSeconds ?? 600;
  if (!Number.isInteger(maxAge) || maxAge <= 0) throw new RangeError(`maxTokenAgeSeconds must be a positive integer, not ${maxAge}`);
  // Configured issuers by their form without trailing slashes: an `iss` that differs from a
  // configured issuer only by a trailing slash is that issuer (the config strips them too).
  const issuers: ReadonlyMap<string, string> = new Map(opts.issuers.map((i) => [withoutTrailingSlash(i), i]));
  const cache = createJwksCache(opts);
  const { clock } = opts;

  return {
    async verify(token, audience, signal, verifyOpts) {
      const { header, payload, issuer } = inspect(token, issuers);
      const kid = header.kid as string;
      const keys = await cache.keysFor(issuer, kid, signal);
      // A dry run may look at an expired token's claims: its signature, issuer and audience
      // are still verified, as of one second after it was issued.
      const now = clock.now();
      const stale = typeof payload.iat === "number" && typeof payload.exp === "number" &&
        (now.getTime() > (payload.exp + leeway) * 1000 || now.getTime() > (payload.iat + maxAge + leeway) * 1000);
      const expired = stale && verifyOpts?.allowExpired === true;
      const options: JWTVerifyOptions = {
        issuer: payload.iss as string,
        audience,
        algorithms: [...allowedAlgorithms],
        clockTolerance: leeway,
        maxTokenAge: maxAge,
        requiredClaims,
        currentDate: expired ? new Date(((payload.iat as number) + 1) * 1000) : now,
      };
      let verified: JWTPayload;
      try {
        verified = (await jwtVerify(token, keys.resolve, options)).payload;
      } catch (e) {
        if (!(e instanceof errors.JWKSMultipleMatchingKeys)) throw refusal(e, { issuer, kid, audience, payload, maxAgeSeconds: maxAge, cooldownMs: opts.unknownKidCooldownMs });
        verified = await verifyWithAny(token, e, options, { issuer, kid, audience, payload, maxAgeSeconds: maxAge, cooldownMs: opts.unknownKidCooldownMs });
      }
      return Object.freeze({ ...result(token, issuer, audience, verified), expired });
    },
    stop() {
      cache.stop();
    },
  };
}

/**
 * The checks made before any network call, on the unverified token: size, compact shape,
 * header, and `iss` among `issuers`. Returns the decoded header and payload (unverified).
 */
function inspect(token: unknown, issuers: ReadonlyMap<string, string>): { header: ProtectedHeaderParameters; payload: JWTPayload; issuer: string } {
  if (typeof token !== "string" || token.length > maxIdTokenLength) {
    throw unauthenticated("MALFORMED_TOKEN", `the token is not a JWT: longer than ${maxIdTokenLength} characters`);
  }
  if (!isCompactJws(token)) throw unauthenticated("MALFORMED_TOKEN", "the token is not a JWT: expected three base64url segments (JWS compact serialization)");
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw unauthenticated("MALFORMED_TOKEN", "the token's header is not a base64url-encoded JSON object");
  }
  for (const name of refusedHeaders) {
    if (Object.hasOwn(header, name)) throw unauthenticated("HEADER_NOT_ALLOWED", `the token's header carries "${name}", which keyward does not accept`, { header: name });
  }
  if (typeof header.alg !== "string" || !allowedAlgorithms.includes(header.alg)) {
    throw unauthenticated("ALGORITHM_NOT_ALLOWED", `the token's algorithm ${quote(header.alg)} is not allowed; expected one of ${allowedAlgorithms.join(", ")}`, {
      alg: typeof header.alg === "string" ? clip(header.alg) : "",
    });
  }
  if (typeof header.kid !== "string" || header.kid === "") throw unauthenticated("MISSING_KEY_ID", 'the token\'s header has no "kid" (key id)');
  if (header.kid.length > maxIdLength) throw unauthenticated("MALFORMED_TOKEN", `the token's "kid" is longer than ${maxIdLength} characters`);
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token);
  } catch {
    throw unauthenticated("MALFORMED_TOKEN", "the token's payload is not a base64url-encoded JSON object");
  }
  const issuer = typeof payload.iss === "string" ? issuers.get(withoutTrailingSlash(payload.iss)) : undefined;
  if (issuer === undefined) {
    throw unauthenticated("ISSUER_NOT_TRUSTED", `the token's issuer ${quote(payload.iss)} is not one of the trusted OIDC issuers`, {
      issuer: typeof payload.iss === "string" ? clip(payload.iss) : "",
    });
  }
  return { header, payload, issuer };
}

/** `url` without trailing slashes (`https://a.example/` → `https://a.example`). */
function withoutTrailingSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

type Context = { issuer: string; kid: string; audience: string; payload: JWTPayload; maxAgeSeconds: number; cooldownMs?: number | undefined };

/**
 * jose's answer when several keys of the set share the token's `kid` and `alg`: each is
 * tried in turn (as jose documents); the first whose signature holds wins.
 */
async function verifyWithAny(token: string, multiple: errors.JWKSMultipleMatchingKeys, options: JWTVerifyOptions, ctx: Context): Promise<JWTPayload> {
  let last: unknown = multiple;
  for await (const key of multiple) {
    try {
      return (await jwtVerify(token, key, options)).payload;
    } catch (e) {
      if (!(e instanceof errors.JWSSignatureVerificationFailed)) throw refusal(e, ctx);
      last = e;
    }
  }
  throw refusal(last, ctx);
}

/** jose's refusal as keyward's (the reasons of OidcVerifier); anything that is not jose's is rethrown. */
function refusal(e: unknown, ctx: Context): unknown {
  if (e instanceof errors.JWSSignatureVerificationFailed) return unauthenticated("INVALID_SIGNATURE", "the token's signature does not verify");
  if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) {
    return unauthenticated("UNKNOWN_SIGNING_KEY", `no key of issuer "${ctx.issuer}" matches the token's "kid" ${quote(ctx.kid)} and "alg" (if the issuer has just rotated its keys, retry in ${Math.ceil((ctx.cooldownMs ?? 30_000) / 1000)} s: keyward refetches them at most that often)`, { issuer: ctx.issuer, kid: ctx.kid });
  }
  if (e instanceof errors.JOSEAlgNotAllowed) return unauthenticated("ALGORITHM_NOT_ALLOWED", "the token's algorithm is not allowed");
  if (e instanceof errors.JWTExpired) {
    if (e.claim === "iat") return unauthenticated("TOKEN_TOO_OLD", `the token was issued more than the allowed ${Math.round(ctx.maxAgeSeconds / 60)} minutes ago (its "iat" is ${isoOf(ctx.payload.iat)}); request a new one`);
    return unauthenticated("TOKEN_EXPIRED", `the token expired at ${isoOf(ctx.payload.exp)}`);
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.reason === "missing") return unauthenticated("MISSING_CLAIM", `the token lacks the required "${e.claim}" claim`, { claim: e.claim });
    if (e.reason === "invalid") return unauthenticated("MALFORMED_TOKEN", `the token's "${e.claim}" claim is not a number`, { claim: e.claim });
    if (e.claim === "aud") return audienceMismatch(ctx.payload.aud, ctx.audience);
    if (e.claim === "nbf") return unauthenticated("TOKEN_NOT_YET_VALID", `the token is not valid before ${isoOf(ctx.payload.nbf)}`);
    if (e.claim === "iat") return unauthenticated("TOKEN_NOT_YET_VALID", `the token's "iat" ${isoOf(ctx.payload.iat)} is in the future`);
    if (e.claim === "iss") return unauthenticated("ISSUER_NOT_TRUSTED", "the token's issuer is not one of the trusted OIDC issuers");
    return unauthenticated("MALFORMED_TOKEN", `the token's "${e.claim}" claim is not acceptable`, { claim: e.claim });
  }
  // JWSInvalid, JWTInvalid, JOSENotSupported, JWKInvalid…: the token (or the key it names) cannot be used.
  if (e instanceof errors.JOSEError) return unauthenticated("MALFORMED_TOKEN", `the token cannot be verified: ${e.message}`);
  return e;
}

/** The checks jose does not make, then the verified token as keyward keeps it. */
function result(token: string, issuer: string, audience: string, payload: JWTPayload): Omit<VerifiedIdToken, "expired"> {
  if (Array.isArray(payload.aud) && payload.aud.length !== 1) throw audienceMismatch(payload.aud, audience);
  const jti = identifier(payload, "jti");
  const subject = identifier(payload, "sub");
  const claims: Record<string, string> = {};
  for (const [name, value] of Object.entries(payload)) {
    if (typeof value === "string") claims[name] = value;
    // Beyond 2^53 JSON.parse has already rounded the number: better absent than wrong.
    else if (typeof value === "number" && Number.isSafeInteger(value)) claims[name] = String(value);
  }
  return Object.freeze({
    issuer,
    jti,
    subject,
    issuedAt: new Date((payload.iat as number) * 1000),
    expiresAt: new Date((payload.exp as number) * 1000),
    claims: Object.freeze(claims),
    sha256: sha256Hex(token),
  });
}

/** `jti` (at most 200 characters) or `sub` (at most 300): a non-empty string. */
function identifier(payload: JWTPayload, claim: "jti" | "sub"): string {
  const value = payload[claim];
  const max = claim === "sub" ? maxSubjectLength : maxIdLength;
  if (value === "") throw unauthenticated("MISSING_CLAIM", `the token's "${claim}" claim is empty`, { claim });
  if (typeof value !== "string" || value.length > max) {
    throw unauthenticated("MALFORMED_TOKEN", `the token's "${claim}" claim must be a string of at most ${max} characters`, { claim });
  }
  return value;
}

function audienceMismatch(actual: unknown, expected: string): KeywardError {
  const many = Array.isArray(actual) && actual.length > 1;
  const message = many
    ? `audience mismatch: expected the audience "${expected}" alone, the token names ${actual.length} audiences`
    : `audience mismatch: expected "${expected}", the token's audience is ${quote(Array.isArray(actual) ? actual[0] : actual)}`;
  return unauthenticated("AUDIENCE_MISMATCH", message, { expected });
}

function unauthenticated(reason: string, message: string, metadata: Record<string, string> = {}): KeywardError {
  return new KeywardError(ErrorKind.UNAUTHENTICATED, reason, message, metadata);
}

/** An untrusted value of the token, quoted and cut short for a message. */
function quote(v: unknown): string {
  if (v === undefined) return "(none)";
  return clip(JSON.stringify(v) ?? String(v));
}

function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 97)}...` : s;
}

function isoOf(seconds: unknown): string {
  return typeof seconds === "number" && Number.isFinite(seconds) && Math.abs(seconds) < 8.64e12 ? new Date(seconds * 1000).toISOString() : String(seconds);
}
