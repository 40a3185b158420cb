// A trust policy's required claims (DESIGN.md §4): what a request may ask for, and how an
// org-scoped policy is pinned to its organization's GitHub owner. Pure functions; the
// policy service validates with them, the repository applies the pin when it reads
// policies for matching.
import { textField } from "../common/text-fields.ts";
import { ErrorKind, KeywardError, invalidArgument } from "../errors.ts";
import { asciiLower, claimNames, type ClaimName, type RequiredClaims } from "./claim-matching.ts";

/** Every claim a request names, `""` for "any value" (the shape of keyward.v1.ClaimConstraints). */
export type ClaimInput = Readonly<Record<ClaimName, string>>;

/** An organization as the pin sees it: its slug and its GitHub owner (null when unbound). */
export type OrgPin = Readonly<{ slug: string; githubOwner: string | null }>;

/** Longest value of a required claim. */
const maxClaimLength = 300;

/** A GitHub user or organization name (Enterprise Managed Users add `_shortcode`). */
const ownerPattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;
/** `owner/name`, as GitHub's `repository` claim spells it. */
const repositoryPattern = /^([A-Za-z0-9][A-Za-z0-9_-]{0,99})\/[A-Za-z0-9._-]{1,100}$/;

/** Formats beyond "text without control characters", with what the error says is expected. */
const formats: Partial<Record<ClaimName, { pattern: RegExp; expected: string }>> = {
  repository_owner: { pattern: ownerPattern, expected: "a GitHub user or organization name, e.g. acme" },
  repository: { pattern: repositoryPattern, expected: "owner/name, e.g. acme/deploy" },
  repository_id: { pattern: /^[0-9]+$/, expected: "decimal digits, e.g. 123456789 (kept exactly as written)" },
  repository_owner_id: { pattern: /^[0-9]+$/, expected: "decimal digits, e.g. 123456 (kept exactly as written)" },
  event_name: { pattern: /^[a-z_]+$/, expected: "a GitHub event name such as push or workflow_dispatch (lowercase letters and _)" },
};

/** The owner part of a repository claim (`acme` of `acme/deploy`). */
function ownerOfRepository(repository: string): string {
  return repository.slice(0, repository.indexOf("/"));
}

/** True when two GitHub names are the same name (ASCII case-insensitive, as GitHub compares them). */
function sameGithubName(a: string, b: string): boolean {
  return asciiLower(a) === asciiLower(b);
}

/**
 * Validates the claims of a create or update request: each value is text without control
 * characters (trimmed, at most 300 characters); `repository_owner` a GitHub name,
 * `repository` `owner/name`, the ids decimal digits (kept as written: `01234` stays
 * `01234`), `event_name` `[a-z_]+`. A repository under another owner than
 * `repository_owner` is INVALID_ARGUMENT `CONTRADICTORY_CLAIMS` (such a policy can never
 * match). Other refusals are INVALID_ARGUMENT `INVALID_FORMAT`, `FIELD_TOO_LONG`,
 * `INVALID_CHARACTERS` with `field` `<prefix>.<claim>`.
 *
 * @returns the non-empty claims only, keyed by GitHub claim name (an omitted claim is a wildcard).
 */
export function validateClaims(input: ClaimInput, prefix = "policy.claims"): RequiredClaims {
  const claims: RequiredClaims = {};
  for (const claim of claimNames) {
    const field = `${prefix}.${claim}`;
    const value = textField(input[claim], field, { max: maxClaimLength, required: false });
    if (value === "") continue;
    const format = formats[claim];
    if (format !== undefined && !format.pattern.test(value)) throw invalidArgument("INVALID_FORMAT", `${field}: expected ${format.expected}`, { field });
    claims[claim] = value;
  }
  const { repository_owner: owner, repository } = claims;
  if (owner !== undefined && repository !== undefined && !sameGithubName(owner, ownerOfRepository(repository))) {
    throw invalidArgument(
      "CONTRADICTORY_CLAIMS",
      `${prefix}: repository ${JSON.stringify(repository)} is not owned by repository_owner ${JSON.stringify(owner)}, so the policy could never match`,
      { field: `${prefix}.repository` },
    );
  }
  return claims;
}

/** Refuses claims that name neither an owner nor a repository (DESIGN.md §4): INVALID_ARGUMENT `OWNER_OR_REPOSITORY_REQUIRED`. */
export function requireOwnerOrRepository(claims: RequiredClaims, prefix = "policy.claims"): void {
  if (claims.repository_owner === undefined && claims.repository === undefined) {
    throw invalidArgument("OWNER_OR_REPOSITORY_REQUIRED", `${prefix}: at least one of repository_owner or repository is required`, { field: prefix });
  }
}

/**
 * Pins the claims of an org-scoped policy to its organization's GitHub owner: an empty
 * `repository_owner` becomes the org's owner; another owner, or a repository under another
 * owner, is INVALID_ARGUMENT `ORG_OWNER_MISMATCH`. An org bound to no GitHub owner is
 * FAILED_PRECONDITION `ORG_HAS_NO_GITHUB_OWNER` (bind one with UpdateOrganization first).
 */
export function pinClaimsToOrg(claims: RequiredClaims, org: OrgPin, prefix = "policy.claims"): RequiredClaims {
  const owner = org.githubOwner;
  if (owner === null || owner === "") {
    throw new KeywardError(
      ErrorKind.FAILED_PRECONDITION,
      "ORG_HAS_NO_GITHUB_OWNER",
      `organization ${JSON.stringify(org.slug)} is bound to no GitHub owner: set its github_owner before making policies for it`,
      { org: org.slug },
    );
  }
  const mismatch = (field: string, what: string) =>
    invalidArgument("ORG_OWNER_MISMATCH", `${field}: ${what} is not the GitHub owner ${JSON.stringify(owner)} of organization ${JSON.stringify(org.slug)}`, { field, org: org.slug });
  if (claims.repository_owner !== undefined && !sameGithubName(claims.repository_owner, owner)) {
    throw mismatch(`${prefix}.repository_owner`, JSON.stringify(claims.repository_owner));
  }
  if (claims.repository !== undefined && !sameGithubName(ownerOfRepository(claims.repository), owner)) {
    throw mismatch(`${prefix}.repository`, `the owner of ${JSON.stringify(claims.repository)}`);
  }
  return { ...claims, repository_owner: claims.repository_owner ?? owner };
}

/**
 * The claims a policy requires now: its stored claims, with an org-scoped policy's
 * `repository_owner` replaced by the org's CURRENT GitHub owner (the org may have been
 * rebound since the policy was saved). An org bound to no owner any more yields a
 * `repository_owner` no GitHub owner can have (it names the org), so the policy matches
 * nothing: fail closed, and a dry run says why.
 */
export function effectiveClaims(stored: RequiredClaims, org: OrgPin | null): RequiredClaims {
  if (org === null) return { ...stored };
  const owner = org.githubOwner === null || org.githubOwner === "" ? `(organization ${org.slug} is bound to no GitHub owner)` : org.githubOwner;
  return { ...stored, repository_owner: owner };
}
