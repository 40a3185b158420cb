// Persistence shape of a trust policy for OIDC token exchange.
import { defineEntity, p } from "@mikro-orm/core";
import type { RequiredClaims } from "./claim-matching.ts";

/** The claims a policy requires, stored as one JSON document keyed by GitHub claim name. */
export type StoredClaims = RequiredClaims;

/** Table schema of a trust policy. */
export const TrustPolicySchema = defineEntity({
  name: "TrustPolicy",
  tableName: "trust_policy",
  properties: {
    id: p.uuid().primary(),
    tenantId: p.uuid(),
    orgId: p.uuid().nullable(),
    displayName: p.string().length(100),
    description: p.string().length(1000),
    claims: p.json<StoredClaims>(),
    maxSessionSeconds: p.integer(),
    permissions: p.array(),
    creatorId: p.uuid(),
    /** Principals besides the creator whose current authority bounds the policy's tokens (as ApiKey.boundedBy). */
    boundedBy: p.array().columnType("uuid[]"),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    version: p.integer().version(),
  },
});
/** A trust policy row. */
export class TrustPolicy extends TrustPolicySchema.class {}
TrustPolicySchema.setClass(TrustPolicy);
