// Guards that protect a service's own endpoints with keyward (DESIGN.md §3 and §7): they read
// `Authorization: Bearer <key>`, ask a KeyVerifier, and answer the conventional 401 / 403
// (Connect: Unauthenticated / PermissionDenied) without revealing why a key failed, and fail
// closed with 503 / Unavailable when the verifier cannot answer.
import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import type { KeyVerifier, KeywardIdentity, VerifyOutcome } from "./guard-types.ts";

/** Body of a 401 (DESIGN.md §3), exactly. */
export const UNAUTHORIZED_BODY = '{"error":{"code":"unauthorized","message":"Missing or invalid API key"}}';
/** Body of a 403 (DESIGN.md §3), exactly. */
export const FORBIDDEN_BODY = '{"error":{"code":"forbidden","message":"Insufficient scope for this action"}}';
/** Body of a 503 when keyward cannot be reached (fail closed). */
export const UNAVAILABLE_BODY = '{"error":{"code":"unavailable","message":"Authentication service unavailable"}}';

/** Messages of the ConnectErrors keywardInterceptor throws. */
export const UNAUTHENTICATED_MESSAGE = "Missing or invalid API key";
export const PERMISSION_DENIED_MESSAGE = "Insufficient scope for this action";
export const UNAVAILABLE_MESSAGE = "Authentication service unavailable";

/**
 * The key in `Authorization: Bearer <key>`: the scheme in any case, one or more spaces, then
 * one token without whitespace. Anything else (absent header, other scheme, empty or
 * several tokens) is undefined — treated as a missing key.
 */
export function bearerKey(authorization: string | null | undefined): string | undefined {
  if (authorization === null || authorization === undefined) return undefined;
  const m = /^bearer +(\S+)$/i.exec(authorization.trim());
  return m?.[1];
}

/** What a guard does with a verdict: let through, 401, or 403. INSUFFICIENT_PERMISSIONS and WRONG_SCOPE are 403; every other failure is 401. */
export type GuardDecision = "allow" | "unauthenticated" | "forbidden";

/** The decision for a verifier's outcome (a valid outcome without an identity is refused). */
export function decide(outcome: VerifyOutcome<unknown>): GuardDecision {
  if (outcome.valid && outcome.identity !== undefined) return "allow";
  if (outcome.resultName === "INSUFFICIENT_PERMISSIONS" || outcome.resultName === "WRONG_SCOPE") return "forbidden";
  return "unauthenticated";
}

/** A node:http request that passed keywardMiddleware: `keyward` is the credential's identity. */
export type KeywardRequest<I = KeywardIdentity> = IncomingMessage & { keyward: I };

/** Options of keywardMiddleware. */
export type KeywardMiddlewareOptions<I = KeywardIdentity> = {
  verifier: KeyVerifier<I>;
  /** Permissions every request must hold (e.g. ["keys:read"]). */
  permissions?: readonly string[];
  /** Org of the resource accessed: a slug, or a function of the request (undefined/"" = none). */
  org?: string | ((req: IncomingMessage) => string | undefined);
};

/**
 * Both an Express-style middleware and a plain node:http guard:
 * - `app.use(mw)`: on success sets `req.keyward` and calls `next()`; on failure answers and
 *   does not call `next`.
 * - `if (await mw(req, res)) { … }` in a node:http handler: resolves true (and sets
 *   `req.keyward`) when the request may proceed; false when the guard has already answered.
 */
export type KeywardMiddleware = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => Promise<boolean>;

/**
 * Guard for node:http / Express-style handlers. Answers, with `content-type: application/json`:
 * - 401 {@link UNAUTHORIZED_BODY} and `WWW-Authenticate: Bearer` for a missing or malformed
 *   header and for every refused key (malformed, unknown, revoked, expired, owner suspended, …);
 * - 403 {@link FORBIDDEN_BODY} for INSUFFICIENT_PERMISSIONS and WRONG_SCOPE (which one is not said);
 * - 503 {@link UNAVAILABLE_BODY} when the verifier rejects (keyward unreachable): fail closed.
 */
export function keywardMiddleware<I = KeywardIdentity>(opts: KeywardMiddlewareOptions<I>): KeywardMiddleware {
  const permissions = opts.permissions ?? [];
  return async (req, res, next) => {
    const key = bearerKey(req.headers.authorization);
    if (key === undefined) return refuse(res, 401, UNAUTHORIZED_BODY);
    const org = typeof opts.org === "function" ? opts.org(req) : opts.org;
    let outcome: VerifyOutcome<I>;
    try {
      outcome = await opts.verifier.verify(key, org === undefined || org === "" ? { permissions } : { permissions, org });
    } catch {
      return refuse(res, 503, UNAVAILABLE_BODY);
    }
    switch (decide(outcome)) {
      case "allow":
        (req as KeywardRequest<I>).keyward = outcome.identity as I;
        next?.();
        return true;
      case "forbidden":
        return refuse(res, 403, FORBIDDEN_BODY);
      case "unauthenticated":
        return refuse(res, 401, UNAUTHORIZED_BODY);
    }
  };
}

/** Writes a refusal (unless the response has started) and returns false. */
function refuse(res: ServerResponse, status: 401 | 403 | 503, body: string): false {
  if (!res.headersSent) {
    const headers: Record<string, string> = { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), "cache-control": "no-store" };
    if (status === 401) headers["www-authenticate"] = "Bearer";
    res.writeHead(status, headers);
    res.end(body);
  }
  return false;
}

/** Context value holding the identity of the credential that passed keywardInterceptor (`ctx.values.get(keywardIdentityKey)`; undefined outside a guarded call). */
export const keywardIdentityKey = createContextKey<KeywardIdentity | undefined>(undefined, { description: "keyward identity" });

/** Options of keywardInterceptor. */
export type KeywardInterceptorOptions = {
  verifier: KeyVerifier<KeywardIdentity>;
  /** Permissions every call must hold. */
  permissions?: readonly string[];
  /** Org of the resource accessed: a slug, or a function of the request headers (undefined/"" = none). */
  org?: string | ((header: Headers) => string | undefined);
};

/**
 * Server-side Connect interceptor (pass it to connectNodeAdapter's `interceptors`): reads
 * `Authorization: Bearer <key>` from the request header and throws ConnectError
 * `Unauthenticated` "Missing or invalid API key" (missing/malformed header, every refused key),
 * `PermissionDenied` "Insufficient scope for this action" (INSUFFICIENT_PERMISSIONS,
 * WRONG_SCOPE) or `Unavailable` when the verifier rejects; otherwise puts the identity in
 * {@link keywardIdentityKey} and calls the handler.
 */
export function keywardInterceptor(opts: KeywardInterceptorOptions): Interceptor {
  const permissions = opts.permissions ?? [];
  return (next) => async (req) => {
    const key = bearerKey(req.header.get("authorization"));
    if (key === undefined) throw new ConnectError(UNAUTHENTICATED_MESSAGE, Code.Unauthenticated);
    const org = typeof opts.org === "function" ? opts.org(req.header) : opts.org;
    let outcome: VerifyOutcome<KeywardIdentity>;
    try {
      outcome = await opts.verifier.verify(key, org === undefined || org === "" ? { permissions } : { permissions, org });
    } catch {
      throw new ConnectError(UNAVAILABLE_MESSAGE, Code.Unavailable);
    }
    switch (decide(outcome)) {
      case "allow":
        req.contextValues.set(keywardIdentityKey, outcome.identity);
        return next(req);
      case "forbidden":
        throw new ConnectError(PERMISSION_DENIED_MESSAGE, Code.PermissionDenied);
      case "unauthenticated":
        throw new ConnectError(UNAUTHENTICATED_MESSAGE, Code.Unauthenticated);
    }
  };
}
