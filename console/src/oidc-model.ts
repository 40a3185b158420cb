// The OIDC federation tab's pure helpers (DESIGN.md §4, §7b): the claim fields a trust policy
// has, the form's draft and its update mask, the dry run's claim parsing and words, and the
// permissions the signed-in credential may put in an allowlist. No DOM, no RPC: the rules
// stay on the server (it validates everything again); this module only shapes input and
// output. Tested by test/console/oidc-model.test.ts.
import type { ClaimConstraints, TrustPolicy } from "../../gen/keyward/v1/policy_pb.ts";
import type { PolicyMatch } from "../../gen/keyward/v1/policy_service_pb.ts";
import { levelIn, type Level } from "./permissions.ts";

export { levelIn, type Level } from "./permissions.ts";

/** A ClaimConstraints field, by its name in the generated message (lowerCamelCase). */
export type ClaimKey = "repositoryOwner" | "repository" | "repositoryOwnerId" | "repositoryId" | "jobWorkflowRef" | "ref" | "environment" | "eventName";

/** One required-claim input of the form. */
export type ClaimField = Readonly<{
  key: ClaimKey;
  /** The claim's name in GitHub's ID token (and in the dry run), e.g. `repository_owner`. */
  claim: string;
  label: string;
  example: string;
  hint: string;
}>;

/** The claims a policy may require, in the order GitHub users think of them (the proto's fields). */
export const claimFields: readonly ClaimField[] = [
  { key: "repositoryOwner", claim: "repository_owner", label: "Repository owner", example: "acme", hint: "The GitHub user or organization. Compared without regard to case." },
  { key: "repository", claim: "repository", label: "Repository", example: "acme/deploy", hint: "owner/name. Compared without regard to case." },
  { key: "repositoryOwnerId", claim: "repository_owner_id", label: "Repository owner id", example: "4242", hint: "Immutable numeric id of the owner: pins it against renames." },
  { key: "repositoryId", claim: "repository_id", label: "Repository id", example: "123456789", hint: "Immutable numeric id: pins the policy against a renamed or re-registered repository." },
  { key: "jobWorkflowRef", claim: "job_workflow_ref", label: "Job workflow ref", example: "acme/deploy/.github/workflows/release.yml@refs/heads/main", hint: "The workflow file and ref that runs the job (reusable workflows match on this)." },
  { key: "ref", claim: "ref", label: "Ref", example: "refs/heads/main", hint: "The branch or tag, exactly; no patterns." },
  { key: "environment", claim: "environment", label: "Environment", example: "production", hint: "The job's deployment environment." },
  { key: "eventName", claim: "event_name", label: "Event", example: "push", hint: "Tokens from pull_request_target and workflow_run are refused unless named here." },
];

/** What the policy form edits: strings as typed (the duration too, validated on submit). */
export type PolicyDraft = {
  displayName: string;
  description: string;
  /** Organization slug; "" for a tenant-scoped policy. Immutable after create. */
  org: string;
  claims: Record<ClaimKey, string>;
  /** As typed; an integer 0–3600 on submit. */
  maxSessionDuration: string;
  permissions: string[];
};

/** The longest max session duration a policy may have, in seconds (DESIGN.md §4). */
export const maxSessionSeconds = 3600;

/** A draft for a new policy (`org` preset for an org-pinned credential), or the values of `policy`. */
export function draftOf(policy: TrustPolicy | undefined, org = ""): PolicyDraft {
  const claims = Object.fromEntries(claimFields.map((f) => [f.key, policy?.claims?.[f.key] ?? ""])) as Record<ClaimKey, string>;
  return {
    displayName: policy?.displayName ?? "",
    description: policy?.description ?? "",
    org: policy?.org ?? org,
    claims,
    maxSessionDuration: String(policy?.maxSessionDurationSeconds ?? 0),
    permissions: [...(policy?.permissions ?? [])],
  };
}

/** A problem the form shows next to `field` before any call. */
export type FieldProblem = Readonly<{ field: "displayName" | "maxSessionDuration"; message: string }>;

/** The max session duration of `draft` in seconds, or undefined when it is not an integer 0–3600. */
export function sessionSecondsOf(draft: PolicyDraft): number | undefined {
  const text = draft.maxSessionDuration.trim();
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const seconds = Number(text);
  return seconds <= maxSessionSeconds ? seconds : undefined;
}

/**
 * What the form refuses before calling (the server checks the same and more: its errors are
 * shown as they come): a name, and a duration that is an integer from 0 to 3600.
 */
export function draftProblems(draft: PolicyDraft): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (draft.displayName.trim() === "") problems.push({ field: "displayName", message: "Give the policy a name." });
  if (sessionSecondsOf(draft) === undefined) {
    problems.push({ field: "maxSessionDuration", message: `Max session duration must be a whole number of seconds from 1 to ${maxSessionSeconds}, or 0 for the server default.` });
  }
  return problems;
}

/** True when neither the owner nor the repository is filled in (the server refuses it: OWNER_OR_REPOSITORY_REQUIRED). */
export function lacksOwnerAndRepository(draft: PolicyDraft): boolean {
  return draft.claims.repositoryOwner.trim() === "" && draft.claims.repository.trim() === "";
}

/** The claims of `draft`, trimmed, as the request's ClaimConstraints. */
export function claimsOf(draft: PolicyDraft): Record<ClaimKey, string> {
  return Object.fromEntries(claimFields.map((f) => [f.key, draft.claims[f.key].trim()])) as Record<ClaimKey, string>;
}

/** The policy fields of `draft` that CreatePolicy and UpdatePolicy take (duration assumed valid). */
export function policyFieldsOf(draft: PolicyDraft): {
  displayName: string;
  description: string;
  claims: Record<ClaimKey, string>;
  maxSessionDurationSeconds: number;
  permissions: string[];
} {
  return {
    displayName: draft.displayName.trim(),
    description: draft.description.trim(),
    claims: claimsOf(draft),
    maxSessionDurationSeconds: sessionSecondsOf(draft) ?? 0,
    permissions: [...draft.permissions],
  };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/**
 * The UpdatePolicy mask (proto field names) for what `draft` changes in `policy`:
 * `display_name`, `description`, `claims` (as a whole), `max_session_duration_seconds`,
 * `permissions` (compared as sets). Empty when nothing changed.
 */
export function updateMaskOf(policy: TrustPolicy, draft: PolicyDraft): string[] {
  const next = policyFieldsOf(draft);
  const paths: string[] = [];
  if (next.displayName !== policy.displayName) paths.push("display_name");
  if (next.description !== policy.description) paths.push("description");
  if (claimFields.some((f) => next.claims[f.key] !== (policy.claims?.[f.key] ?? ""))) paths.push("claims");
  if (next.maxSessionDurationSeconds !== policy.maxSessionDurationSeconds) paths.push("max_session_duration_seconds");
  if (!sameSet(next.permissions, policy.permissions)) paths.push("permissions");
  return paths;
}

/** The required claims of `claims` in words, e.g. `repository = acme/deploy · ref = refs/heads/main`; "" for none. */
export function claimsSummary(claims: ClaimConstraints | undefined): string {
  return claimFields
    .filter((f) => (claims?.[f.key] ?? "") !== "")
    .map((f) => `${f.claim} = ${claims?.[f.key] ?? ""}`)
    .join(" · ");
}

/** "15 minutes (default)" for 0, else seconds in words: "900 s (15 min)". */
export function durationText(seconds: number): string {
  if (seconds === 0) return "server default (15 min)";
  return seconds % 60 === 0 ? `${seconds} s (${seconds / 60} min)` : `${seconds} s`;
}

/** A warning `CODE: advice` split for display; a warning without a code is all advice. */
export function splitWarning(warning: string): { code: string; advice: string } {
  const match = /^([A-Z][A-Z_]+):\s*(.*)$/s.exec(warning);
  return match === null ? { code: "", advice: warning } : { code: match[1] ?? "", advice: match[2] ?? "" };
}

// ---- permissions -----------------------------------------------------------------------

/**
 * The categories the allowlist editor shows: those of `catalogue` (the deployment's, from
 * GetPermissionCatalogue: catalogue.ts) that `held` or `current` (the policy's own allowlist)
 * gives a level (`*:` counts for every one), in catalogue order; then, by name, any category
 * `current` names that the catalogue no longer has (so an old allowlist still shows whole).
 */
export function categoriesFor(catalogue: readonly string[], held: readonly string[], current: readonly string[] = []): string[] {
  const shown = catalogue.filter((c) => levelIn(held, c) > 0 || levelIn(current, c) > 0);
  const stale = current.map((p) => p.split(":")[0] ?? "").filter((c) => c !== "" && c !== "*" && !catalogue.includes(c));
  return [...shown, ...[...new Set(stale)].sort()];
}

/**
 * `permissions` with `category` set to `level`: `*:` entries are spelled out per category
 * first (over `categories`), so the other categories keep their level.
 */
export function withLevel(permissions: readonly string[], categories: readonly string[], category: string, level: Level): string[] {
  const levels = new Map(categories.map((c) => [c, levelIn(permissions, c)]));
  levels.set(category, level);
  const out: string[] = [];
  for (const [c, l] of levels) if (l > 0) out.push(`${c}:${l === 2 ? "write" : "read"}`);
  return out;
}

// ---- dry run ---------------------------------------------------------------------------

/** A parsed dry-run input, or words for what is wrong with it. */
export type ParsedClaims = { ok: true; claims: Record<string, string> } | { ok: false; error: string };

/**
 * Parses pasted claims: a JSON object whose values are strings (numbers and booleans, such
 * as `iat` or `exp`, are sent as their text; null is left out). Anything else is refused in
 * words, before any call.
 */
export function parseClaims(text: string): ParsedClaims {
  const trimmed = text.trim();
  if (trimmed === "") return { ok: false, error: "Paste the claims as a JSON object, e.g. {\"repository\": \"acme/deploy\", \"ref\": \"refs/heads/main\"}." };
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    return { ok: false, error: `The claims are not valid JSON (${detail}). Paste a JSON object such as {"repository": "acme/deploy"}.` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, error: "The claims must be a JSON object of claim names to values, e.g. {\"repository\": \"acme/deploy\"}." };
  }
  const claims: Record<string, string> = {};
  for (const [name, v] of Object.entries(value)) {
    if (v === null) continue;
    if (typeof v === "string") claims[name] = v;
    else if (typeof v === "number" || typeof v === "boolean") claims[name] = String(v);
    else return { ok: false, error: `The claim "${name}" is ${Array.isArray(v) ? "a list" : "an object"}; each claim must be a string (or a number).` };
  }
  if (Object.keys(claims).length === 0) return { ok: false, error: "The JSON object has no claims: add at least one, e.g. \"repository\"." };
  return { ok: true, claims };
}

/** True when `text` has the shape of a compact JWS (three base64url parts), as a pasted ID token does. */
export function looksLikeToken(text: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(text.trim());
}

/** One dry-run result in words: "Matches", or which claim failed with what was expected and found. */
export function matchInWords(match: PolicyMatch): string {
  if (match.matched) return "Matches: every claim the policy requires holds.";
  const claim = match.failedClaim;
  if (match.expected === "" && claim === "event_name") {
    return `Does not match: fails on ${claim} — tokens from ${match.actual} events are refused unless the policy names that event.`;
  }
  if (match.actual === "") return `Does not match: fails on ${claim} — the policy requires "${match.expected}", the token has no ${claim} claim.`;
  return `Does not match: fails on ${claim} — the policy requires "${match.expected}", the token has "${match.actual}".`;
}
