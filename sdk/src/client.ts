// Typed clients for every keyward service, sharing one transport that sends the caller's
// API key as `Authorization: Bearer <key>`.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";

/** Options of createKeywardClient. */
export type KeywardClientOptions = {
  /** keyward's base URL, e.g. `http://keyward.internal:8080`. */
  baseUrl?: string;
  /** The caller's API key or minted token, sent on every call. */
  apiKey?: string;
  /** A transport of your own (gRPC, HTTP/2, extra interceptors); overrides baseUrl. */
  transport?: Transport;
};

/** One typed client per keyward service. */
export type KeywardClient = {
  keys: Client<typeof KeyService>;
  policies: Client<typeof PolicyService>;
  tokens: Client<typeof TokenExchangeService>;
  directory: Client<typeof DirectoryService>;
  audit: Client<typeof AuditService>;
};

/** Interceptor that adds `Authorization: Bearer <apiKey>` to every request. */
export function bearerAuth(apiKey: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
}

/**
 * Creates clients for every keyward service.
 *
 * ```ts
 * const kw = createKeywardClient({ baseUrl: "http://127.0.0.1:8080", apiKey: process.env.KEYWARD_KEY });
 * const { result } = await kw.keys.verifyKey({ key: presented, requiredPermissions: ["keys:read"] });
 * ```
 */
export function createKeywardClient(opts: KeywardClientOptions): KeywardClient {
  const transport = opts.transport ?? createConnectTransport({
    baseUrl: opts.baseUrl ?? "http://127.0.0.1:8080",
    httpVersion: "1.1",
    interceptors: opts.apiKey === undefined ? [] : [bearerAuth(opts.apiKey)],
  });
  return {
    keys: createClient(KeyService, transport),
    policies: createClient(PolicyService, transport),
    tokens: createClient(TokenExchangeService, transport),
    directory: createClient(DirectoryService, transport),
    audit: createClient(AuditService, transport),
  };
}
