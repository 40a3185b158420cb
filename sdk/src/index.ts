// Public surface of @keyward/sdk: clients, error helpers, and every generated message, enum
// and service of keyward.v1 (so `result === VerifyResult.VALID` works from the package root).
export {
  bearerAuth,
  CONNECTION_ERROR_CODES,
  connectionErrorAsUnavailable,
  connectionErrorCode,
  connectionErrorsAsUnavailable,
  createKeywardClient,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_MS,
  errorInfo,
  errorReason,
  retryIdempotentReads,
  verifyResultName,
  type KeywardClient,
  type KeywardClientOptions,
  type KeywardErrorInfo,
  type KeywardTransportKind,
  type RetryOptions,
} from "./client.ts";
export { Code, ConnectError } from "@connectrpc/connect";
export { ErrorInfoSchema, type ErrorInfo } from "../../gen/google/rpc/error_details_pb.ts";
export * from "../../gen/keyward/v1/key_pb.ts";
export * from "../../gen/keyward/v1/key_service_pb.ts";
export * from "../../gen/keyward/v1/policy_pb.ts";
export * from "../../gen/keyward/v1/policy_service_pb.ts";
export * from "../../gen/keyward/v1/token_exchange_service_pb.ts";
export * from "../../gen/keyward/v1/directory_pb.ts";
export * from "../../gen/keyward/v1/directory_service_pb.ts";
export * from "../../gen/keyward/v1/audit_pb.ts";
export * from "../../gen/keyward/v1/audit_service_pb.ts";
export type { KeyVerifier, KeywardIdentity, VerifyOptions, VerifyOutcome as GuardVerifyOutcome } from "./guard-types.ts";
export {
  bearerKey,
  decide,
  FORBIDDEN_BODY,
  keywardIdentityKey,
  keywardInterceptor,
  keywardMiddleware,
  PERMISSION_DENIED_MESSAGE,
  UNAUTHENTICATED_MESSAGE,
  UNAUTHORIZED_BODY,
  UNAVAILABLE_BODY,
  UNAVAILABLE_MESSAGE,
  type GuardDecision,
  type KeywardInterceptorOptions,
  type KeywardMiddleware,
  type KeywardMiddlewareOptions,
  type KeywardRequest,
} from "./guards.ts";
export {
  createVerifier,
  keyIdHashOf,
  type VerifiedIdentity,
  type Verifier,
  type VerifierOptions,
  type VerifierStats,
  type VerifyOutcome,
} from "./verifier.ts";
export {
  createMintedTokenVerifier,
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  MAX_MINTED_TOKEN_LENGTH,
  MAX_JWKS_BYTES,
  MAX_MINTED_TOKEN_LIFETIME_SECONDS,
  MINTED_TOKEN_ALGORITHM,
  MINTED_TOKEN_TYP,
  missingPermissions,
  verifyMintedToken,
  type MintedTokenIdentity,
  type MintedTokenOutcome,
  type MintedTokenReason,
  type MintedTokenVerifier,
  type MintedTokenVerifierOptions,
} from "./minted-token.ts";
