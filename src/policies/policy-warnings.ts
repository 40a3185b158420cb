// Advice about weak trust policies (DESIGN.md §4: weak policies are saved, with warnings,
// as peer platforms advise "add at least one strong claim in production"). Each warning is
// `CODE: advice`; the code is stable, the advice is for humans.
import { guardedEvents, type ClaimName, type RequiredClaims } from "./claim-matching.ts";

/** The stable codes a warning starts with. */
export const PolicyWarning = {
  /** No claim narrows the policy to one repository, workflow or environment. */
  NO_STRONG_CLAIM: "NO_STRONG_CLAIM",
  /** A tenant-scoped policy names an owner but no repository: every repository of that owner matches. */
  OWNER_WILDCARD: "OWNER_WILDCARD",
  /** Neither immutable id is pinned: a renamed or re-registered repository or owner could match. */
  NO_IMMUTABLE_ID: "NO_IMMUTABLE_ID",
  /** The policy names an event whose tokens run base-repository workflows on code from elsewhere. */
  GUARDED_EVENT: "GUARDED_EVENT",
  /**
   * The allowlist grants a permission that makes credentials or trust (keys:write,
   * policies:write, directory:write): a workflow's token could revoke keys, delete policies or
   * change principals (making keys, user tokens and policies it is refused:
   * EXCHANGED_TOKEN_CANNOT_MINT), changes that outlive the token.
   */
  GRANTS_ADMINISTRATION: "GRANTS_ADMINISTRATION",
} as const;

/** The permissions with which a token administers keyward: changes that outlive it. */
export const administrativePermissions: readonly string[] = ["keys:write", "policies:write", "directory:write"];
/** One of the PolicyWarning codes. */
export type PolicyWarning = (typeof PolicyWarning)[keyof typeof PolicyWarning];

/**
 * Claims that narrow a policy to one repository, one workflow or one deployment
 * environment. `repository_owner_id` is not among them: like the owner's name it admits
 * every repository of the owner (it only pins the owner against renames).
 */
const strongClaims: readonly ClaimName[] = ["repository", "repository_id", "job_workflow_ref", "environment"];

/**
 * The warnings for a policy's claims, in a fixed order, each `CODE: advice`.
 *
 * @param claims the policy's claims as stored (for an org-scoped policy, already pinned to its org's owner).
 * @param scope `tenant` for a tenant-scoped policy (which may match any owner), `org` for an org-scoped one.
 * @param administrative the administrativePermissions the policy's allowlist implies (e.g. `*:write` implies all three).
 * @returns `[]` for a strong policy (e.g. repository, repository_id and environment pinned).
 */
export function policyWarnings(claims: RequiredClaims, scope: "tenant" | "org", administrative: readonly string[] = []): string[] {
  const has = (claim: ClaimName) => (claims[claim] ?? "") !== "";
  const warnings: string[] = [];
  if (!strongClaims.some(has)) {
    warnings.push(
      `${PolicyWarning.NO_STRONG_CLAIM}: no claim narrows this policy to one repository, workflow or environment; add repository, repository_id, job_workflow_ref or environment before using it in production`,
    );
  }
  if (scope === "tenant" && has("repository_owner") && !has("repository") && !has("repository_id")) {
    warnings.push(
      `${PolicyWarning.OWNER_WILDCARD}: every repository of ${claims.repository_owner} can exchange tokens under this policy; name the repository (and its repository_id) unless that is intended`,
    );
  }
  if (!has("repository_id") && !has("repository_owner_id")) {
    warnings.push(`${PolicyWarning.NO_IMMUTABLE_ID}: pin repository_id or repository_owner_id so a renamed or re-registered repository cannot match`);
  }
  const event = claims.event_name ?? "";
  if (guardedEvents.has(event)) {
    warnings.push(
      `${PolicyWarning.GUARDED_EVENT}: ${event} workflows run with the base repository's permissions on code from forks or other workflows; make sure the job never runs untrusted code before it exchanges its token`,
    );
  }
  if (administrative.length > 0) {
    warnings.push(
      `${PolicyWarning.GRANTS_ADMINISTRATION}: tokens of this policy may use ${administrative.join(", ")}, so a workflow could revoke keys, delete policies or change principals, changes that outlive its token; allow only what the workflow needs`,
    );
  }
  return warnings;
}

/** The codes of warnings made by policyWarnings (`NO_STRONG_CLAIM: …` → `NO_STRONG_CLAIM`), for audit details. */
export function warningCodes(warnings: readonly string[]): string[] {
  return warnings.map((w) => w.slice(0, Math.max(0, w.indexOf(":"))));
}
