// TokenExchangeService handlers (all but ExchangeToken, which the exchange adds): read the
// caller, convert the request, call one service method, convert the result.
import type { ServiceImpl } from "@connectrpc/connect";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import type { TokenService } from "../tokens/token-service.ts";
import { callContextOf } from "./auth-interceptor.ts";
import { timestamp } from "./convert.ts";

/** RFC 8693 §3 token type URI of keyward's minted tokens. */
export const accessTokenTypeUri = "urn:ietf:params:oauth:token-type:access_token";

/**
 * The TokenExchangeService methods built here: GetJwks, CreateUserToken, RotateSigningKey.
 * Methods absent from the object answer Unimplemented; spread it to add ExchangeToken.
 */
export function createTokenHandlers(deps: { tokens: TokenService }): Partial<ServiceImpl<typeof TokenExchangeService>> {
  const { tokens } = deps;
  return {
    getJwks() {
      return { keys: tokens.jwks().map((k) => ({ ...k })) };
    },
    async createUserToken(req, ctx) {
      const minted = await tokens.createUserToken(callContextOf(ctx), { principal: req.principal, durationSeconds: req.durationSeconds, permissions: req.permissions });
      return {
        accessToken: minted.accessToken,
        expiresIn: BigInt(Math.round((minted.expiresAt.getTime() - minted.issuedAt.getTime()) / 1000)),
        expireTime: timestamp(minted.expiresAt),
        tokenType: "Bearer",
        issuedTokenType: accessTokenTypeUri,
        permissions: [...minted.permissions],
      };
    },
    async rotateSigningKey(_req, ctx) {
      return { kid: (await tokens.rotateSigningKey(callContextOf(ctx))).kid };
    },
  };
}
