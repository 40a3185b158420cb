// Trust-policy matching (DESIGN.md §4): each required claim is compared on its own with
// the token's claim of the same name — never by parsing `sub`, whose format GitHub
// changes. Exact equality, no patterns (`refs/heads/main|refs/heads/dev` is a literal);
// owner and repository case-insensitively (ASCII only, as GitHub names are); ids as exact
// strings (`01234` is not `1234`). Pure functions: PolicyService's dry run and
// TokenExchangeService's exchange share them.

/**
 * The claims a policy may require, by their names in GitHub Actions' OIDC ID token, in the
 * order they are checked (the first that fails is the one reported).
 */
export const claimNames = [
  "repository_owner",
  "repository_owner_id",
  "repository",
  "repository_id",
  "job_workflow_ref",
  "ref",
  "environment",
  "event_name",
] as const;

/** One of `claimNames`. */
export type ClaimName = (typeof claimNames)[number];

/** The claims a policy requires: a missing or empty one is a wildcard. */
export type RequiredClaims = Partial<Record<ClaimName, string>>;

/** Events whose tokens run with the base repository's secrets on code from elsewhere. */
export const guardedEvents: ReadonlySet<string> = new Set(["pull_request_target", "workflow_run"]);

/** Claims compared without regard to ASCII case, as GitHub treats owner and repository names. */
const caseInsensitive: ReadonlySet<ClaimName> = new Set(["repository_owner", "repository"]);

/**
 * How one policy fared: matched, or the first claim that failed with what the policy
 * expects and what the token carries (`""` when it lacks the claim). `expected` is for the
 * audit log and the dry run only, never for an exchange's error message.
 */
export type ClaimMatch =
  | Readonly<{ matched: true }>
  | Readonly<{ matched: false; claim: ClaimName; expected: string; actual: string; explanation: string }>;

/** Lowercases A–Z only: no Unicode folding can make two different names equal (GitHub names are ASCII). */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** True when the token's value satisfies the policy's required value for `claim`. */
function claimHolds(claim: ClaimName, required: string, actual: string | undefined): boolean {
  if (actual === undefined) return false;
  return caseInsensitive.has(claim) ? asciiLower(required) === asciiLower(actual) : required === actual;
}

/**
 * Compares a token's claims with a policy's required claims.
 *
 * @param required the policy's claims; empty or missing values match anything.
 * @param claims the verified token's claims (string values; ids as GitHub sends them, as strings).
 * @returns `{matched: true}`, or the first failing claim in `claimNames` order. A token from a
 *   `pull_request_target` or `workflow_run` event fails on `event_name` unless the policy
 *   names that event.
 */
export function matchClaims(required: RequiredClaims, claims: Readonly<Record<string, string | undefined>>): ClaimMatch {
  for (const claim of claimNames) {
    const expected = required[claim] ?? "";
    if (expected === "") continue;
    const actual = claims[claim];
    if (!claimHolds(claim, expected, actual)) {
      return {
        matched: false, claim, expected, actual: actual ?? "",
        explanation: actual === undefined
          ? `${claim}: the policy requires ${JSON.stringify(expected)}; the token has no ${claim} claim`
          : `${claim}: the policy requires ${JSON.stringify(expected)}, the token has ${JSON.stringify(actual)}`,
      };
    }
  }
  const event = claims["event_name"];
  if (event !== undefined && guardedEvents.has(event) && (required.event_name ?? "") !== event) {
    return {
      matched: false, claim: "event_name", expected: required.event_name ?? "", actual: event,
      explanation: `event_name: tokens from ${event} events are refused unless the policy names that event`,
    };
  }
  return { matched: true };
}
