// Caller authentication for management methods: `Authorization: Bearer <API key or minted token>`. Missing or
// bad credentials get one answer, with no hint of why. Permission checks are business
// rules and happen in the services.
import { getOption, type DescMethod } from "@bufbuild/protobuf";
import { createContextKey, type Interceptor } from "@connectrpc/connect";
import { anonymous } from "../../gen/keyward/v1/options_pb.ts";
import type { Caller, CallContext } from "../directory/caller.ts";
import type { Authenticator } from "../directory/authenticator.ts";
import { ErrorKind, KeywardError } from "../errors.ts";
import { maxAccessTokenLength } from "../verify/token-recognition.ts";
import { requestIdKey } from "./context.ts";

/** The authenticated caller of the current management call. */
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "authenticated caller" });

/** For server streams: authenticates the call's credential again (CallContext.reauthenticate). */
const reauthenticateKey = createContextKey<(() => Promise<Caller>) | undefined>(undefined, { description: "re-authenticate the caller" });

/**
 * Whether anyone may call a method: the `(keyward.v1.anonymous)` option in its proto
 * (proto/keyward/v1/options.proto), which the OpenAPI document reads too (`security: []`),
 * so the server and the reference cannot disagree. Read once per method.
 */
const anonymousMethods = new WeakMap<DescMethod, boolean>();
function isAnonymous(method: DescMethod): boolean {
  let known = anonymousMethods.get(method);
  if (known === undefined) {
    known = getOption(method, anonymous) === true;
    anonymousMethods.set(method, known);
  }
  return known;
}

/** The credential of an Authorization header: an API key, or a minted token of at most maxAccessTokenLength characters. */
const bearer = new RegExp(`^Bearer[ \\t]+(\\S{1,${maxAccessTokenLength}})[ \\t]*$`, "i");

/** The one message for every authentication failure (DESIGN.md §3). */
export const unauthenticatedMessage = "Missing or invalid API key";

/** The one answer to a missing or bad credential. */
const unauthenticated = (): KeywardError => new KeywardError(ErrorKind.UNAUTHENTICATED, "UNAUTHENTICATED", unauthenticatedMessage);

/** Authenticates keyward.v1 management calls; health and reflection stay open. */
export function createAuthInterceptor(authenticate: Authenticator): Interceptor {
  return (next) => async (req) => {
    if (!req.service.typeName.startsWith("keyward.") || isAnonymous(req.method)) return next(req);
    const call = { procedure: `${req.service.typeName}/${req.method.name}`, requestId: req.contextValues.get(requestIdKey), signal: req.signal };
    const credential = bearer.exec(req.header.get("authorization") ?? "")?.[1];
    const caller = credential === undefined ? undefined : await authenticate(credential, call);
    if (caller === undefined) throw unauthenticated();
    req.contextValues.set(callerKey, caller);
    if (credential !== undefined && req.method.methodKind === "server_streaming") {
      // A stream outlives its credential's check: it asks again while it runs (WatchInvalidations).
      req.contextValues.set(reauthenticateKey, async () => {
        const again = await authenticate(credential, call);
        if (again === undefined) throw unauthenticated();
        return again;
      });
    }
    return next(req);
  };
}

/** The CallContext of a handler's call (caller, request id, and its signal); only reachable behind the auth interceptor. */
export function callContextOf(ctx: { values: { get<T>(key: { id: symbol; defaultValue: T }): T }; signal: AbortSignal }): CallContext {
  const caller = ctx.values.get(callerKey);
  if (caller === undefined) throw unauthenticated();
  return { caller, requestId: ctx.values.get(requestIdKey), signal: ctx.signal, reauthenticate: ctx.values.get(reauthenticateKey) };
}
