// The contract between the token minter (keyward's own signed access tokens, RFC 9068
// JWT profile) and what mints them: TokenExchangeService.ExchangeToken and CreateUserToken.
import type { UnitOfWork } from "../db/unit-of-work.ts";

/** Longest lifetime of any minted token: a per-user token's 12 hours (DESIGN.md §4). */
export const maxTokenLifetimeSeconds = 12 * 60 * 60;
/** Lifetime of an exchanged token when its policy says 0 (the server default), in seconds: 15 minutes (DESIGN.md §4). */
export const defaultSessionSeconds = 15 * 60;
/** Longest exchanged-token lifetime a trust policy may allow (max_session_duration_seconds), in seconds (DESIGN.md §4). */
export const maxPolicySessionSeconds = 60 * 60;

/** What to mint. Ids are row ids (uuids); names are resource names. */
export type MintRequest = Readonly<{
  /** `exchanged` (token exchange under a policy) or `user` (CreateUserToken). */
  kind: "exchanged" | "user";
  tenantId: string;
  tenantSlug: string;
  orgId: string | null;
  orgSlug: string | null;
  /** The policy of an exchanged token (row id and resource name); null for user tokens. */
  policy: Readonly<{ id: string; name: string }> | null;
  /** The principal the token acts as: the user of a user token, the policy's creator for an exchanged one. */
  principalId: string;
  /** Principals besides `principalId` whose current authority bounds the token (as a key's). */
  boundedBy: readonly string[];
  /** Permissions granted (canonical strings); still bounded at verify time. */
  permissions: readonly string[];
  /** `sub`: the workflow's OIDC `sub`, or the principal's resource name. */
  subject: string;
  /** Lifetime in seconds, 1 to maxTokenLifetimeSeconds. */
  lifetimeSeconds: number;
  /** For exchanged tokens: where it came from, carried as claims (`repository`, `run_id`, `job_workflow_ref`). */
  source?: Readonly<{ repository: string; runId: string; jobWorkflowRef: string }> | undefined;
}>;

/**
 * A minted token: the JWT (shown once, never stored) and its facts; `expiresIn` is its
 * lifetime in whole seconds (RFC 8693 §2.2.1 `expires_in`), `expiresAt` − `issuedAt`.
 */
export type MintedAccessToken = Readonly<{ accessToken: string; jti: string; issuedAt: Date; expiresAt: Date; expiresIn: number }>;

/** Signs tokens with keyward's current signing key and records them in the caller's transaction. */
export type TokenMinter = {
  /** Inserts the minted_token row through `uow` (so it commits with the exchange record and audit event) and returns the signed JWT. */
  mint(uow: UnitOfWork, request: MintRequest): Promise<MintedAccessToken>;
};
