// Helpers shared by the PolicyService tests: a client, a valid policy to start from, and
// organizations bound to a GitHub owner.
import type { Client, Transport } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ClaimConstraintsSchema, TrustPolicy } from "../../gen/keyward/v1/policy_pb.ts";
import { PolicyService, type CreatePolicyResponse } from "../../gen/keyward/v1/policy_service_pb.ts";
import { withKey, type TestTenant } from "../harness.ts";
import { directory, server, uniq } from "../rpc.ts";

/** Claims as the proto spells them. */
export type Claims = MessageInitShape<typeof ClaimConstraintsSchema>;

/** Claims no warning is given for: repository, its id, the owner's id and an environment. */
export const strongClaims: Claims = { repositoryOwner: "acme", repository: "acme/deploy", repositoryId: "123456789", repositoryOwnerId: "4242", environment: "production" };

/** A PolicyService client on the file's server (Connect/HTTP 1.1 unless a transport is given). */
export function policyClient(transport?: Transport): Client<typeof PolicyService> {
  return server.client(PolicyService, transport);
}

/** What createPolicy sends, beyond its defaults. */
export type PolicyOptions = {
  displayName?: string;
  description?: string;
  org?: string;
  claims?: Claims;
  maxSessionDurationSeconds?: number;
  permissions?: string[];
  key?: string;
  client?: Client<typeof PolicyService>;
};

/** Creates a policy in tenant `t` (strong claims, `keys:read`, a unique name unless given) as its admin or `key`. */
export async function createPolicy(t: TestTenant, opts: PolicyOptions = {}): Promise<CreatePolicyResponse> {
  return (opts.client ?? policyClient()).createPolicy(
    {
      parent: `tenants/${t.slug}`,
      policy: {
        displayName: opts.displayName ?? uniq("policy"),
        description: opts.description ?? "",
        org: opts.org ?? "",
        claims: opts.claims ?? strongClaims,
        maxSessionDurationSeconds: opts.maxSessionDurationSeconds ?? 0,
        permissions: opts.permissions ?? ["keys:read"],
      },
    },
    withKey(opts.key ?? t.adminKey),
  );
}

/** Creates an organization of `t` bound to `githubOwner` ("" for none); returns its slug. */
export async function createOrg(t: TestTenant, githubOwner: string, slug = uniq("org")): Promise<string> {
  await directory.createOrganization({ parent: `tenants/${t.slug}`, slug, githubOwner }, withKey(t.adminKey));
  return slug;
}

/** The policy of a create answer (throws when absent, so tests need no `!`). */
export function policyOf(res: { policy?: TrustPolicy | undefined }): TrustPolicy {
  if (res.policy === undefined) throw new Error("the answer carries no policy");
  return res.policy;
}

/** The codes of `CODE: advice` warnings. */
export function codesOf(warnings: readonly string[]): string[] {
  return warnings.map((w) => w.split(":")[0] ?? "");
}
