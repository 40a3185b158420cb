// The ready-to-paste GitHub Actions snippet every policy answer carries (DESIGN.md §4): the
// job requests its OIDC ID token for the tenant's audience, exchanges it for a keyward token
// under the policy, masks that token and exports it as KEYWARD_TOKEN. Pure functions: the
// same text is tested by running the script with bash.
//
// Nothing a user typed reaches the text: only the tenant slug, the policy's resource name
// (a uuid), the audience (slug + configured domain) and the configured public URL, each
// shell-quoted anyway. The script never uses `${{ }}` expressions (no script injection);
// the URL reaches it through the step's environment.

/** What the snippet is for. */
export type SnippetTarget = Readonly<{
  /** keyward's public base URL (KEYWARD_PUBLIC_URL, no trailing slash); undefined: the repository variable `vars.KEYWARD_URL`. */
  keywardUrl: string | undefined;
  /** The tenant slug: the exchange's `parent` is `tenants/<tenant>`. */
  tenant: string;
  /** The policy's resource name, `tenants/<tenant>/policies/<id>`. */
  policyName: string;
  /** The audience the ID token is requested for, `<tenant>.<audience domain>`. */
  audience: string;
}>;

/** A bash word that is exactly `value` (single-quoted). */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'"'"'`)}'`;
}

/** A YAML single-quoted scalar that is exactly `value`. */
function yamlQuote(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * The bash script of the snippet's `run:` step, unindented, ending with a newline. It needs
 * `curl` (7.76+, for `--fail-with-body`) and `jq` (both on GitHub's hosted runners) and reads:
 * `ACTIONS_ID_TOKEN_REQUEST_URL` (which already carries a query string, so `&audience=` is
 * appended) and `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (set by the runner when the job has
 * `id-token: write`), `KEYWARD_URL` (keyward's base URL) and `GITHUB_ENV` (the file whose
 * `NAME=value` lines become later steps' environment). It exits non-zero, printing keyward's
 * error (never a token), when a request fails.
 */
export function workflowScript(target: Omit<SnippetTarget, "keywardUrl">): string {
  const parent = `tenants/${target.tenant}`;
  return [
    "set -euo pipefail",
    `: "\${ACTIONS_ID_TOKEN_REQUEST_URL:?no OIDC token available: the job needs permissions: id-token: write}"`,
    `: "\${KEYWARD_URL:?set KEYWARD_URL to the base URL of keyward}"`,
    `audience=${shellQuote(encodeURIComponent(target.audience))}`,
    `parent=${shellQuote(parent)}`,
    `policy=${shellQuote(target.policyName)}`,
    "# 1. This job's OIDC ID token, requested for the tenant's audience.",
    `if ! oidc="$(curl -sS --fail-with-body --max-time 30 -H "Authorization: bearer \${ACTIONS_ID_TOKEN_REQUEST_TOKEN}" "\${ACTIONS_ID_TOKEN_REQUEST_URL}&audience=\${audience}")"; then`,
    `  echo "could not get the job's OIDC ID token: \${oidc}" >&2`,
    "  exit 1",
    "fi",
    `id_token="$(jq -er '.value' <<<"$oidc")"`,
    `echo "::add-mask::\${id_token}"`,
    "# 2. Exchange it for a short-lived keyward token under the policy.",
    `request="$(jq -n --arg parent "$parent" --arg policy "$policy" --arg subjectToken "$id_token" '{parent: $parent, policy: $policy, subjectToken: $subjectToken}')"`,
    `if ! response="$(curl -sS --fail-with-body --max-time 30 -X POST -H 'Content-Type: application/json' -H 'Connect-Protocol-Version: 1' --data-binary @- "\${KEYWARD_URL}/keyward.v1.TokenExchangeService/ExchangeToken" <<<"$request")"; then`,
    `  echo "keyward refused the exchange: \${response}" >&2`,
    "  exit 1",
    "fi",
    `token="$(jq -er '.accessToken' <<<"$response")"`,
    "# 3. Mask the token before anything can print it, then export it to the next steps.",
    `echo "::add-mask::\${token}"`,
    `echo "KEYWARD_TOKEN=\${token}" >> "$GITHUB_ENV"`,
    "",
  ].join("\n");
}

/**
 * The GitHub Actions YAML to paste into a job (`jobs.<job_id>`): the job's `permissions`
 * (`id-token: write`, `contents: read`) and one `run:` step, `shell: bash`, whose script is
 * exactly `workflowScript(target)` indented, with `KEYWARD_URL` in the step's `env` (the
 * configured public URL, or `${{ vars.KEYWARD_URL }}` with a comment saying to set that
 * repository variable). Later steps use `$KEYWARD_TOKEN` as `Authorization: Bearer`.
 */
export function workflowSnippet(target: SnippetTarget): string {
  const url = target.keywardUrl === undefined
    ? [
        "      # Set the repository variable KEYWARD_URL to keyward's base URL",
        "      # (Settings > Secrets and variables > Actions > Variables).",
        "      KEYWARD_URL: ${{ vars.KEYWARD_URL }}",
      ]
    : [`      KEYWARD_URL: ${yamlQuote(target.keywardUrl)}`];
  const script = workflowScript(target)
    .split("\n")
    .map((line) => (line === "" ? "" : `      ${line}`))
    .join("\n");
  return [
    `# keyward: exchange this job's GitHub OIDC token for a short-lived token under ${target.policyName}.`,
    "# Paste into your job; add the step before the steps that use $KEYWARD_TOKEN",
    "# (send it as \"Authorization: Bearer $KEYWARD_TOKEN\").",
    "permissions:",
    "  id-token: write # lets the job request its OIDC ID token",
    "  contents: read",
    "steps:",
    "  - name: Get a keyward token",
    "    shell: bash",
    "    env:",
    ...url,
    "    run: |",
    script,
  ].join("\n");
}
