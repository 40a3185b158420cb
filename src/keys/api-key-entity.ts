// Persistence shape of an API key: metadata and the hash of its secret, never the secret.
import { defineEntity, p } from "@mikro-orm/core";

/** Table schema of an API key (any kind, any slot). */
export const ApiKeySchema = defineEntity({
  name: "ApiKey",
  tableName: "api_key",
  properties: {
    keyId: p.string().length(32).primary(),
    tenantId: p.uuid(),
    kind: p.string().length(20),
    slot: p.string().length(20).nullable(),
    displayName: p.string().length(100),
    orgId: p.uuid().nullable(),
    permissions: p.array(),
    ownerId: p.uuid(),
    creatorId: p.uuid(),
    /** Principals (besides the owner) whose current authority bounds the key: its creator and the chain above. */
    boundedBy: p.array().columnType("uuid[]"),
    secretHash: p.blob(),
    hint: p.string().length(4),
    createdAt: p.datetime(),
    expiresAt: p.datetime().nullable(),
    lastUsedAt: p.datetime().nullable(),
    rotatedAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
    revokeReason: p.string().length(500).nullable(),
    clonedFrom: p.string().length(32).nullable(),
    version: p.integer().version(),
  },
});
/** An API key row. */
export class ApiKey extends ApiKeySchema.class {}
ApiKeySchema.setClass(ApiKey);
