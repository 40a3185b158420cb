// A GitHub Actions OIDC token's claims, as the tests of policy matching use them.

/**
 * The claims of a push to main of acme/infra deploying to production, as GitHub sends them
 * (ids as JSON strings; `sub` and `run_id` too, which no policy claim reads).
 */
export const infraPush = {
  repository: "acme/infra",
  repository_owner: "acme",
  repository_id: "1234",
  repository_owner_id: "77",
  ref: "refs/heads/main",
  job_workflow_ref: "acme/infra/.github/workflows/deploy.yml@refs/heads/main",
  environment: "production",
  event_name: "push",
  sub: "repo:acme/infra:environment:production",
  run_id: "9876543210",
} as const;
