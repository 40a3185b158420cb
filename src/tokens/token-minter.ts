// Mints keyward's access tokens: JWTs in the RFC 9068 profile (`typ: at+jwt`), signed with
// the active signing key, each with a minted_token row that VerifyKey reads (so deleting a
// policy or suspending a principal stops its tokens at once).
import { randomBytes } from "node:crypto";
import { SignJWT, type JWTPayload } from "jose";
import type { Clock } from "../clock.ts";
import { tenantAudience } from "../common/tenant-audience.ts";
import type { UnitOfWork } from "../db/unit-of-work.ts";
import { maxTokenLifetimeSeconds, type MintedAccessToken, type MintRequest, type TokenMinter } from "./minting.ts";
import { mintedTokenRepository } from "./minted-token-repository.ts";
import { signingAlgorithm, type SigningKeys } from "./signing-keys.ts";
import { accessTokenTyp } from "./token-types.ts";

/** `client_id` of per-user tokens (RFC 9068 §2.2: the client the token was issued to). */
const userTokenClientId = "keyward";

/**
 * Creates the minter. Claims (RFC 9068 §2.2): `iss` (config tokenIssuer), `sub`, `aud`
 * (`<tenant>.<audience domain>`), `exp`, `iat`, `nbf` = `iat`, `jti` (128 random bits,
 * base64url), `client_id` (the policy's resource name, or `keyward` for user tokens),
 * `scope` (permissions, space-separated); private claims `tenant`, `org` (omitted for tenant
 * scope), `policy`, `token_kind` (`exchanged` | `user`), and for exchanged tokens
 * `repository`, `run_id`, `job_workflow_ref`. Times are whole seconds.
 */
export function createTokenMinter(deps: { signingKeys: SigningKeys; clock: Clock; tokenIssuer: string; audienceDomain: string }): TokenMinter {
  return {
    async mint(uow: UnitOfWork, request: MintRequest): Promise<MintedAccessToken> {
      const lifetime = request.lifetimeSeconds;
      if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > maxTokenLifetimeSeconds) {
        throw new RangeError(`token lifetime must be 1 to ${maxTokenLifetimeSeconds} seconds, got ${lifetime}`);
      }
      if ((request.kind === "exchanged") !== (request.policy !== null)) throw new RangeError("an exchanged token has a policy, a user token none");
      const iat = Math.floor(deps.clock.now().getTime() / 1000);
      const issuedAt = new Date(iat * 1000);
      const expiresAt = new Date((iat + lifetime) * 1000);
      const jti = randomBytes(16).toString("base64url");
      await mintedTokenRepository.insert(uow, {
        jti, tenantId: request.tenantId, kind: request.kind, policyId: request.policy?.id ?? null, principalId: request.principalId,
        boundedBy: request.boundedBy, orgId: request.orgId, permissions: request.permissions, subject: request.subject, issuedAt, expiresAt,
      });
      const claims: JWTPayload = {
        client_id: request.policy?.name ?? userTokenClientId,
        scope: request.permissions.join(" "),
        tenant: request.tenantSlug,
        ...(request.orgSlug === null ? {} : { org: request.orgSlug }),
        ...(request.policy === null ? {} : { policy: request.policy.name }),
        token_kind: request.kind,
        ...(request.source === undefined
          ? {}
          : { repository: request.source.repository, run_id: request.source.runId, job_workflow_ref: request.source.jobWorkflowRef }),
      };
      const { kid, privateKey } = deps.signingKeys.signer();
      const accessToken = await new SignJWT(claims)
        .setProtectedHeader({ alg: signingAlgorithm, kid, typ: accessTokenTyp })
        .setIssuer(deps.tokenIssuer)
        .setSubject(request.subject)
        .setAudience(tenantAudience(request.tenantSlug, deps.audienceDomain))
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(iat + lifetime)
        .setJti(jti)
        .sign(privateKey);
      return { accessToken, jti, issuedAt, expiresAt, expiresIn: lifetime };
    },
  };
}
