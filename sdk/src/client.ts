// Typed clients for every keyward service (DESIGN.md §7), sharing one transport that sends the
// caller's API key as `Authorization: Bearer <key>`, with a default deadline and bounded
// retries of idempotent reads on `Unavailable`.
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyService, VerifyResultSchema, type VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";

/** Wire protocol of the client: Connect (HTTP/1.1), gRPC (HTTP/2) or gRPC-web (HTTP/1.1). */
export type KeywardTransportKind = "connect" | "grpc" | "grpc-web";

/** Retry policy of idempotent reads (see {@link retryIdempotentReads}). */
export type RetryOptions = {
  /** Retries after the first attempt; 0 disables retrying. Default 2. */
  retries?: number;
  /** Base backoff in milliseconds; attempt n waits a random time in [0, base·2ⁿ]. Default 100. */
  backoffMs?: number;
};

/** Options of createKeywardClient. */
export type KeywardClientOptions = {
  /** keyward's base URL, e.g. `http://keyward.internal:8080`. Required unless `transport` is a Transport. */
  baseUrl?: string | undefined;
  /** The caller's API key or minted token, sent on every call as a bearer credential (never logged). */
  apiKey?: string | undefined;
  /**
   * `"connect"` (default; Connect protocol over HTTP/1.1), `"grpc"` (HTTP/2) or `"grpc-web"`
   * (HTTP/1.1), or a Transport of your own (then baseUrl, timeoutMs, retries and
   * httpVersion are ignored; apiKey is still attached).
   */
  transport?: KeywardTransportKind | Transport;
  /** Deadline of each call in milliseconds unless the call passes its own `timeoutMs`. Default 5000. */
  timeoutMs?: number | undefined;
  /** Retries of idempotent reads on `Unavailable`: a count (default 2) or options; 0 disables. */
  retries?: number | RetryOptions | undefined;
  /** HTTP version; default "2" for gRPC, "1.1" otherwise. */
  httpVersion?: "1.1" | "2";
  /** More interceptors, run inside the bearer and retry interceptors. */
  interceptors?: Interceptor[];
};

/** One typed client per keyward service. */
export type KeywardClient = {
  keys: Client<typeof KeyService>;
  policies: Client<typeof PolicyService>;
  tokens: Client<typeof TokenExchangeService>;
  directory: Client<typeof DirectoryService>;
  audit: Client<typeof AuditService>;
};

/** Default deadline of a call, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 5000;
/** Default number of retries of an idempotent read. */
export const DEFAULT_RETRIES = 2;

/** Interceptor that adds `Authorization: Bearer <apiKey>` to every request. */
export function bearerAuth(apiKey: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
}

/**
 * Interceptor that retries a unary call answered `Unavailable` when its method is declared
 * idempotent in the proto (`idempotency_level` NO_SIDE_EFFECTS — the Get/List reads — or
 * IDEMPOTENT — VerifyKey); never writes, never streams. At most `retries` retries, waiting
 * a random time in [0, backoffMs·2ⁿ] (full jitter) before retry n; stops early, with the
 * last error, when the call's signal (its deadline or the caller's abort) fires.
 */
export function retryIdempotentReads(opts: RetryOptions = {}): Interceptor {
  const retries = Math.max(0, Math.floor(opts.retries ?? DEFAULT_RETRIES));
  const backoffMs = Math.max(0, opts.backoffMs ?? 100);
  return (next) => async (req) => {
    const level = req.method.idempotency;
    const retryable = !req.stream && (level === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || level === MethodOptions_IdempotencyLevel.IDEMPOTENT);
    if (!retryable || retries === 0) return next(req);
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await next(req);
      } catch (err) {
        const code = ConnectError.from(err).code;
        if (code !== Code.Unavailable || attempt >= retries || req.signal.aborted) throw err;
        const waited = await sleep(Math.random() * backoffMs * 2 ** attempt, req.signal);
        if (!waited) throw err;
      }
    }
  };
}

/** Waits `ms` milliseconds; false when `signal` fired first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Creates clients for every keyward service on one transport.
 *
 * ```ts
 * const kw = createKeywardClient({ baseUrl: "http://127.0.0.1:8080", apiKey: process.env.KEYWARD_KEY });
 * const { result } = await kw.keys.verifyKey({ key: presented, requiredPermissions: ["keys:read"] });
 * console.log(verifyResultName(result)); // "VALID"
 * ```
 *
 * Errors are ConnectErrors; {@link errorReason} gives their stable reason.
 */
export function createKeywardClient(opts: KeywardClientOptions): KeywardClient {
  const auth = opts.apiKey === undefined ? [] : [bearerAuth(opts.apiKey)];
  let transport: Transport;
  if (typeof opts.transport === "object") {
    transport = opts.apiKey === undefined ? opts.transport : withBearer(opts.transport, opts.apiKey);
  } else {
    if (opts.baseUrl === undefined || opts.baseUrl === "") throw new Error("createKeywardClient: baseUrl is required (e.g. http://127.0.0.1:8080)");
    const kind = opts.transport ?? "connect";
    const retry = typeof opts.retries === "number" ? { retries: opts.retries } : (opts.retries ?? {});
    const common = {
      baseUrl: opts.baseUrl,
      defaultTimeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      interceptors: [retryIdempotentReads(retry), ...auth, ...(opts.interceptors ?? [])],
    };
    switch (kind) {
      case "connect":
        transport = createConnectTransport({ ...common, httpVersion: opts.httpVersion ?? "1.1" });
        break;
      case "grpc":
        transport = createGrpcTransport({ ...common, ...(opts.httpVersion === undefined ? {} : { httpVersion: opts.httpVersion }) });
        break;
      case "grpc-web":
        transport = createGrpcWebTransport({ ...common, httpVersion: opts.httpVersion ?? "1.1" });
        break;
      default:
        throw new Error(`createKeywardClient: unknown transport ${String(kind)} (connect, grpc or grpc-web)`);
    }
  }
  return {
    keys: createClient(KeyService, transport),
    policies: createClient(PolicyService, transport),
    tokens: createClient(TokenExchangeService, transport),
    directory: createClient(DirectoryService, transport),
    audit: createClient(AuditService, transport),
  };
}

/** `inner` with `Authorization: Bearer <apiKey>` added to every call's headers. */
function withBearer(inner: Transport, apiKey: string): Transport {
  const withAuth = (header: Parameters<Transport["unary"]>[3]): Headers => {
    const h = new Headers(header);
    h.set("authorization", `Bearer ${apiKey}`);
    return h;
  };
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) => inner.unary(method, signal, timeoutMs, withAuth(header), input, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) => inner.stream(method, signal, timeoutMs, withAuth(header), input, contextValues),
  };
}

/** The `google.rpc.ErrorInfo` of an error: its stable reason, domain and metadata. */
export type KeywardErrorInfo = { reason: string; domain: string; metadata: Record<string, string> };

/**
 * The `google.rpc.ErrorInfo` detail of a ConnectError keyward answered (reason, domain
 * "keyward", metadata such as the offending field), or undefined for any other error.
 */
export function errorInfo(err: unknown): KeywardErrorInfo | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  const info = err.findDetails(ErrorInfoSchema)[0];
  return info === undefined ? undefined : { reason: info.reason, domain: info.domain, metadata: { ...info.metadata } };
}

/** The stable `reason` of a keyward error (e.g. "KEY_NOT_FOUND"), or undefined. */
export function errorReason(err: unknown): string | undefined {
  return errorInfo(err)?.reason;
}

/** The name of a VerifyResult without its prefix ("VALID", "REVOKED", …), or `UNKNOWN(n)`. */
export function verifyResultName(result: VerifyResult): string {
  const value = VerifyResultSchema.values.find((v) => v.number === result);
  return value === undefined ? `UNKNOWN(${String(result)})` : value.localName;
}
