// Persistence shape of token exchange: keyward's signing keys, the OIDC token ids already
// exchanged (replay protection) and the tokens keyward minted (what VerifyKey reads).
import { defineEntity, p } from "@mikro-orm/core";

/** Table schema of one of keyward's JWT signing keys. */
export const SigningKeySchema = defineEntity({
  name: "SigningKey",
  tableName: "signing_key",
  properties: {
    kid: p.string().length(64).primary(),
    alg: p.string().length(16),
    publicJwk: p.json<Record<string, string>>(),
    /** AES-256-GCM sealed PKCS#8 private key, base64url(iv ‖ ciphertext ‖ tag). Never logged. */
    privateKeySealed: p.text(),
    /** Fingerprint of the key-encryption key that sealed `privateKeySealed`. */
    kekId: p.string().length(64),
    createdAt: p.datetime(),
    retiredAt: p.datetime().nullable(),
    /** A retired key stays in the JWKS until this time (its last token's expiry). */
    publishUntil: p.datetime().nullable(),
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
/** Table schema of a token keyward minted (exchanged or per-user); VerifyKey reads it. */
export const MintedTokenSchema = defineEntity({
  name: "MintedToken",
  tableName: "minted_token",
  properties: {
    jti: p.string().length(64).primary(),
    tenantId: p.uuid(),
    kind: p.string().length(16),
    policyId: p.uuid().nullable(),
    principalId: p.uuid(),
    boundedBy: p.array().columnType("uuid[]"),
    orgId: p.uuid().nullable(),
    permissions: p.array(),
    subject: p.string().length(300),
    issuedAt: p.datetime(),
    expiresAt: p.datetime(),
  },
});
/** A minted token row. */
export class MintedToken extends MintedTokenSchema.class {}
MintedTokenSchema.setClass(MintedToken);

/** An exchanged token id row. */
export class ExchangedToken extends ExchangedTokenSchema.class {}
ExchangedTokenSchema.setClass(ExchangedToken);
