// Who may make a management call: turns a bearer credential into a Caller, or refuses it.
// Every refusal of a credential whose key id (or minted token) resolves to a tenant is
// audited in that tenant (`auth.refused`, folded per minute by refusal-fold.ts; a token's
// credential is its `jti`); unknown and malformed credentials are refused without a trace,
// as they belong to no tenant.
import type { RefusalFold } from "../audit/refusal-fold.ts";
import { ErrorKind, KeywardError } from "../errors.ts";
import type { CredentialIdentity, Verifier } from "../verify/verifier.ts";
import { callerFromIdentity, type Caller } from "./caller.ts";

/** What the authenticator knows of the call it authenticates (for auditing refusals). */
export type AuthenticationCall = Readonly<{ procedure: string; requestId: string; signal?: AbortSignal | undefined }>;

/**
 * Authenticates one management call: the Caller of a usable credential; undefined for a
 * credential that is unknown, malformed, revoked, expired or disabled (the transport
 * answers 401 with one message for all); PERMISSION_DENIED for a known, valid key whose
 * owner — or creator, for a key made for someone else — is suspended.
 */
export type Authenticator = (credential: string, call: AuthenticationCall) => Promise<Caller | undefined>;

/** Creates the authenticator over the verifier and the refusal fold. */
export function createAuthenticator(deps: { verifier: Verifier; refusals: RefusalFold }): Authenticator {
  const { verifier, refusals } = deps;

  const refuse = (identity: CredentialIdentity, reason: string, call: AuthenticationCall) =>
    refusals.record({
      tenantId: identity.tenantId, orgId: identity.orgId, actor: identity.ownerName, credential: identity.keyId,
      reason, requestId: call.requestId, procedure: call.procedure,
    });
  /** Why a key or token of a suspended principal is refused: its owner first, then its creator. */
  const suspensionOf = (identity: CredentialIdentity) => (identity.ownerActive ? "CREATOR_SUSPENDED" : "PRINCIPAL_SUSPENDED");

  return async (credential, call) => {
    const recognition = await verifier.authenticate(credential, call.signal);
    switch (recognition.result) {
      case "malformed":
        return undefined;
      case "not_found": {
        // The key id is real but the secret (or kind) is wrong: someone holds a key id of
        // this tenant and is guessing. Audited without an actor.
        const resolved = recognition.resolved;
        if (resolved !== undefined) {
          await refusals.record({
            tenantId: resolved.tenantId, orgId: resolved.orgId, actor: "", credential: resolved.keyId,
            reason: "SECRET_MISMATCH", requestId: call.requestId, procedure: call.procedure,
          });
        }
        return undefined;
      }
      case "revoked":
        // A token is revoked when the policy it was minted under is deleted.
        await refuse(recognition.identity, recognition.identity.token === null ? "KEY_REVOKED" : "TOKEN_REVOKED", call);
        return undefined;
      case "expired":
        await refuse(recognition.identity, recognition.identity.token === null ? "KEY_EXPIRED" : "TOKEN_EXPIRED", call);
        return undefined;
      case "owner_suspended":
        // The tenant disables credentials (keys and minted tokens) of suspended principals: as good as revoked.
        await refuse(recognition.identity, suspensionOf(recognition.identity), call);
        return undefined;
      case "valid": {
        const { identity } = recognition;
        // A suspended principal's keys may keep verifying for the services that check
        // them, but never administer keyward; nor may a key a suspended principal made
        // for someone else (DESIGN.md §1: the creator's authority bounds the key).
        if (!identity.ownerActive || !identity.creatorActive) {
          const reason = suspensionOf(identity);
          await refuse(identity, reason, call);
          throw new KeywardError(
            ErrorKind.PERMISSION_DENIED,
            reason,
            reason === "PRINCIPAL_SUSPENDED" ? "the principal that owns this credential is suspended" : "the principal that made this credential is suspended",
          );
        }
        return callerFromIdentity(identity);
      }
    }
  };
}
