// TokenExchangeService handlers: convert the request, call one service method (ExchangeToken
// on the exchange service, the rest on the token service), convert the result.
import type { ServiceImpl } from "@connectrpc/connect";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import type { ExchangeService } from "../tokens/exchange-service.ts";
import type { TokenService } from "../tokens/token-service.ts";
import { bearerTokenType, tokenTypes } from "../tokens/token-types.ts";
import { callContextOf } from "./auth-interceptor.ts";
import { requestIdKey } from "./context.ts";
import { timestamp } from "./convert.ts";

/** The TokenExchangeService implementation. */
export function createTokenHandlers(deps: { tokens: TokenService; exchange: ExchangeService }): ServiceImpl<typeof TokenExchangeService> {
  const { tokens, exchange } = deps;
  return {
    async exchangeToken(req, ctx) {
      const granted = await exchange.exchange({
        parent: req.parent,
        subjectToken: req.subjectToken,
        subjectTokenType: req.subjectTokenType,
        policy: req.policy,
        permissions: req.permissions,
        durationSeconds: req.durationSeconds,
        requestId: ctx.values.get(requestIdKey),
        signal: ctx.signal,
      });
      return {
        accessToken: granted.accessToken,
        tokenType: granted.tokenType,
        issuedTokenType: granted.issuedTokenType,
        expiresIn: BigInt(granted.expiresIn),
        expireTime: timestamp(granted.expiresAt),
        policy: granted.policy,
        permissions: [...granted.permissions],
      };
    },
    getJwks() {
      return { keys: tokens.jwks().map((k) => ({ ...k })) };
    },
    async createUserToken(req, ctx) {
      const minted = await tokens.createUserToken(callContextOf(ctx), { principal: req.principal, durationSeconds: req.durationSeconds, permissions: req.permissions });
      return {
        accessToken: minted.accessToken,
        expiresIn: BigInt(minted.expiresIn),
        expireTime: timestamp(minted.expiresAt),
        tokenType: bearerTokenType,
        issuedTokenType: tokenTypes.accessToken,
        permissions: [...minted.permissions],
      };
    },
    async rotateSigningKey(_req, ctx) {
      return { kid: (await tokens.rotateSigningKey(callContextOf(ctx))).kid };
    },
  };
}
