// The signed-in credential and the RPC clients that carry it (DESIGN.md §7b). The credential —
// an API key or a per-user token — lives in one module variable, in this page's memory only:
// never localStorage, sessionStorage, cookies, IndexedDB nor the URL. Reloading forgets it.
// Every call sends it as `Authorization: Bearer <credential>` (DESIGN.md §8); any answer
// Unauthenticated (HTTP 401) signs out everywhere and tells the listener set by the shell.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { SignInRefused } from "./describe-error.ts";
import { implies } from "./permissions.ts";

export { SignInRefused } from "./describe-error.ts";
export { implies } from "./permissions.ts";

/** One Connect client per keyward service, all carrying the signed-in credential. */
export type Api = {
  keys: Client<typeof KeyService>;
  policies: Client<typeof PolicyService>;
  directory: Client<typeof DirectoryService>;
  tokens: Client<typeof TokenExchangeService>;
  audit: Client<typeof AuditService>;
};

/** Who is signed in, from KeyService.VerifyKey at sign-in. */
export type Session = {
  api: Api;
  /** Tenant slug of the credential. */
  tenant: string;
  /** Organization slug the credential is pinned to; "" for tenant scope. */
  org: string;
  /** Resource name of the signed-in key (`tenants/{tenant}/keys/{id}`), or a minted token's id. */
  keyName: string;
  /** Effective permissions of the credential, spelled as VerifyKey returns them (`*:write`, `keys:read`, …). */
  permissions: readonly string[];
  /** True when the effective permissions imply `permission` (`category:read|write`; write implies read; `*:` covers every category). */
  can(permission: string): boolean;
};

/** The credential of the session; undefined when signed out. Never copied anywhere else. */
let credential: string | undefined;

/** Told when an answer Unauthenticated ended the session (the shell shows the sign-in screen). */
let onUnauthenticated: ((message: string) => void) | undefined;

/** Sets the one listener of "a call answered Unauthenticated: signed out". */
export function setUnauthenticatedListener(listener: ((message: string) => void) | undefined): void {
  onUnauthenticated = listener;
}

/** Adds the bearer credential; on Unauthenticated forgets it and tells the shell. */
const bearer: Interceptor = (next) => async (req) => {
  const sent = credential;
  if (sent !== undefined) req.header.set("Authorization", `Bearer ${sent}`);
  try {
    return await next(req);
  } catch (err) {
    // Only a refusal of the credential this call carried ends the session (not a late answer
    // to a call made with a credential already replaced).
    // The caller's own credential refused is reason UNAUTHENTICATED (src/server/auth-interceptor.ts);
    // other Unauthenticated answers judge a token in the request, e.g. the dry run's pasted ID
    // token (TestPolicy: MISSING_KEY_ID, INVALID_SIGNATURE, …): that call's error, not a sign-out.
    const refused = ConnectError.from(err);
    const reason = refused.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
    if (sent !== undefined && sent === credential && refused.code === Code.Unauthenticated && (reason === "" || reason === "UNAUTHENTICATED")) {
      credential = undefined;
      onUnauthenticated?.("Your session ended: keyward no longer accepts this credential (revoked, expired or rotated). Sign in again.");
    }
    throw err;
  }
};

/** The clients, on the page's own origin, JSON (readable in the browser's network panel). */
function createApi(): Api {
  const transport = createConnectTransport({ baseUrl: location.origin, useBinaryFormat: false, interceptors: [bearer] });
  return {
    keys: createClient(KeyService, transport),
    policies: createClient(PolicyService, transport),
    directory: createClient(DirectoryService, transport),
    tokens: createClient(TokenExchangeService, transport),
    audit: createClient(AuditService, transport),
  };
}

const api = createApi();

/** Words for the VerifyKey results that refuse a sign-in. */
const refusals: Readonly<Record<number, string>> = {
  [VerifyResult.MALFORMED]: "This is not a keyward API key or token: check that you pasted all of it.",
  [VerifyResult.NOT_FOUND]: "keyward does not know this key or token.",
  [VerifyResult.EXPIRED]: "This key or token has expired.",
  [VerifyResult.REVOKED]: "This key or token has been revoked.",
  [VerifyResult.INSUFFICIENT_PERMISSIONS]: "This key or token lacks the permissions needed.",
  [VerifyResult.WRONG_SCOPE]: "This key or token is not valid here (wrong scope).",
  [VerifyResult.OWNER_SUSPENDED]: "The owner of this key or token is suspended.",
};

/**
 * Checks `key` with KeyService.VerifyKey (anonymous: the key travels in the body) and, when
 * VALID, makes it the session's credential. Throws SignInRefused for any other result (words
 * in its message), or the ConnectError of a failed call.
 */
export async function signIn(key: string): Promise<Session> {
  const trimmed = key.trim();
  if (trimmed === "") throw new SignInRefused(VerifyResult.MALFORMED, "Paste an API key or a per-user token.");
  credential = undefined;
  const verified = await api.keys.verifyKey({ key: trimmed });
  if (verified.result !== VerifyResult.VALID) {
    throw new SignInRefused(verified.result, refusals[verified.result] ?? "keyward refused this key or token.");
  }
  credential = trimmed;
  const permissions = [...verified.permissions];
  return {
    api,
    tenant: verified.tenant,
    org: verified.org,
    keyName: verified.token ? verified.keyId : `tenants/${verified.tenant}/keys/${verified.keyId}`,
    permissions,
    can: (permission) => implies(permissions, permission),
  };
}

/**
 * Checks the session's credential again with VerifyKey. Resolves undefined while it is VALID
 * (or when signed out); otherwise forgets it and resolves the sentence saying why. Rejects
 * when the call itself fails (keyward unreachable): the session stays.
 */
export async function recheck(): Promise<string | undefined> {
  const checked = credential;
  if (checked === undefined) return undefined;
  const verified = await api.keys.verifyKey({ key: checked });
  if (verified.result === VerifyResult.VALID || checked !== credential) return undefined;
  credential = undefined;
  return `Your session ended. ${refusals[verified.result] ?? "keyward no longer accepts this key or token."} Sign in again.`;
}

/** Forgets the credential. */
export function signOut(): void {
  credential = undefined;
}

/**
 * The credential, for the one place that must hand it on: the API reference tab authorizes
 * the /docs page (same origin) with it. Undefined when signed out.
 */
export function currentCredential(): string | undefined {
  return credential;
}
