// PolicyService handlers: read the caller, convert the request, call one service method,
// convert the result. Names, masks and values go to the service as they came; it
// validates them inside its audited guard.
import type { ServiceImpl } from "@connectrpc/connect";
import type { TrustPolicy } from "../../gen/keyward/v1/policy_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import type { PolicyInput, PolicyService as PolicyDomainService } from "../policies/policy-service.ts";
import { callContextOf } from "./auth-interceptor.ts";
import { claimsFromProto, policyToProto } from "./convert.ts";

/** The writable fields of a request's policy, as sent (absent: all unset). */
function policyInputOf(p: TrustPolicy | undefined): PolicyInput {
  return {
    displayName: p?.displayName ?? "",
    description: p?.description ?? "",
    claims: claimsFromProto(p?.claims),
    maxSessionSeconds: p?.maxSessionDurationSeconds ?? 0,
    permissions: p?.permissions ?? [],
  };
}

/** The PolicyService implementation. */
export function createPolicyHandlers(deps: { policies: PolicyDomainService }): ServiceImpl<typeof PolicyService> {
  const { policies } = deps;
  return {
    async createPolicy(req, ctx) {
      const p = req.policy;
      const { policy, warnings } = await policies.create(callContextOf(ctx), {
        parent: req.parent,
        org: p?.org ?? "",
        ...policyInputOf(p),
      });
      return { policy: policyToProto(policy), warnings };
    },
    async getPolicy(req, ctx) {
      return { policy: policyToProto(await policies.get(callContextOf(ctx), req.name)) };
    },
    async listPolicies(req, ctx) {
      const page = await policies.list(callContextOf(ctx), { parent: req.parent, pageSize: req.pageSize, pageToken: req.pageToken, org: req.org });
      return { policies: page.policies.map(policyToProto), nextPageToken: page.nextPageToken };
    },
    async updatePolicy(req, ctx) {
      const p = req.policy;
      const { policy, warnings } = await policies.update(callContextOf(ctx), {
        name: p?.name ?? "",
        etag: p?.etag ?? "",
        paths: req.updateMask?.paths ?? [],
        ...policyInputOf(p),
      });
      return { policy: policyToProto(policy), warnings };
    },
    async deletePolicy(req, ctx) {
      await policies.delete(callContextOf(ctx), { name: req.name, etag: req.etag });
      return {};
    },
    async testPolicy(req, ctx) {
      return policies.test(callContextOf(ctx), { parent: req.parent, subjectToken: req.subjectToken, claims: req.claims, org: req.org });
    },
  };
}
