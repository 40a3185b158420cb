// Persistence shape of token exchange: keyward's signing keys and the OIDC token ids
// already exchanged (replay protection).
import { defineEntity, p } from "@mikro-orm/core";

/** Table schema of one of keyward's JWT signing keys. */
export const SigningKeySchema = defineEntity({
  name: "SigningKey",
  tableName: "signing_key",
  properties: {
    kid: p.string().length(64).primary(),
    alg: p.string().length(16),
    publicJwk: p.json<Record<string, string>>(),
    privateJwk: p.json<Record<string, string>>(),
    createdAt: p.datetime(),
    retiredAt: p.datetime().nullable(),
  },
});
/** A signing key row. */
export class SigningKey extends SigningKeySchema.class {}
SigningKeySchema.setClass(SigningKey);

/** Table schema of an exchanged OIDC token id, so each token is exchanged once. */
export const ExchangedTokenSchema = defineEntity({
  name: "ExchangedToken",
  tableName: "exchanged_token",
  properties: {
    issuer: p.string().length(500).primary(),
    jti: p.string().length(200).primary(),
    tenantId: p.uuid(),
    expiresAt: p.datetime(),
    createdAt: p.datetime(),
  },
  primaryKeys: ["issuer", "jti"],
});
/** An exchanged token id row. */
export class ExchangedToken extends ExchangedTokenSchema.class {}
ExchangedTokenSchema.setClass(ExchangedToken);
