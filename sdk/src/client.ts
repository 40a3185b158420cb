// Typed clients for every keyward service (DESIGN.md §7), sharing one transport that sends the
// caller's API key as `Authorization: Bearer <key>`, with a default deadline, connection-level
// failures reported as `Unavailable`, and bounded retries of idempotent reads on `Unavailable`.
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
   * httpVersion are ignored and errors come as your transport raises them — add
   * {@link connectionErrorsAsUnavailable} and {@link retryIdempotentReads} to its interceptors
   * for the same behaviour; apiKey is still attached).
   */
  transport?: KeywardTransportKind | Transport;
  /** Deadline of each call in milliseconds unless the call passes its own `timeoutMs`. Default 5000. */
  timeoutMs?: number | undefined;
  /** Retries of idempotent reads on `Unavailable`: a count (default 2) or options; 0 disables. */
  retries?: number | RetryOptions | undefined;
  /** HTTP version; default "2" for gRPC, "1.1" otherwise. */
  httpVersion?: "1.1" | "2";
  /** More interceptors, run inside the retry, connection-error and bearer interceptors (each attempt passes through them; they see transport errors as the transport raised them). */
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
 * Node.js error codes (on an error's `cause` chain) that mean the connection to keyward could
 * not be made or was lost: refused, reset, broken pipe, timed out, host or network
 * unreachable, name not resolved, and HTTP/2 session failures.
 */
export const CONNECTION_ERROR_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_HTTP2_PING_CANCEL",
]);

/**
 * The connection-level Node.js error code on `err`'s `cause` chain (e.g. "ECONNRESET"), or
 * undefined. Follows at most 8 causes and stops at a cycle. Reads the `code` property of any
 * object (no `instanceof Error`, which fails for errors made in another realm, e.g. under a
 * test runner's vm context, where connect-node then reports even a refused connection as
 * `Internal`).
 */
export function connectionErrorCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  let e: unknown = err;
  for (let depth = 0; depth < 8 && typeof e === "object" && e !== null && !seen.has(e); depth += 1) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && CONNECTION_ERROR_CODES.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * `err` as a ConnectError, with a connection-level failure ({@link connectionErrorCode}) as
 * `Unavailable` "keyward unreachable (CODE)" (the original error as its cause). Errors the
 * caller caused (`Canceled`, `DeadlineExceeded`), errors keyward answered and every other
 * error keep their code.
 */
export function connectionErrorAsUnavailable(err: unknown): ConnectError {
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unavailable || ce.code === Code.Canceled || ce.code === Code.DeadlineExceeded) return ce;
  const code = connectionErrorCode(err);
  if (code === undefined) return ce;
  return new ConnectError(`keyward unreachable (${code})`, Code.Unavailable, undefined, undefined, err);
}

/**
 * Interceptor that reports connection-level failures as `Unavailable`. connect-node 2.2 reports
 * a reset connection (ECONNRESET, e.g. keyward stopped while a kept-alive connection was open)
 * as `Aborted`, and a broken pipe, an unreachable host or a failed HTTP/2 session as
 * `Internal`; only refused connections, timeouts and unresolved names come as `Unavailable`.
 * Every one means "keyward could not be reached", so this makes them `Unavailable` — what
 * {@link retryIdempotentReads} retries and what the guards turn into 503. Applies to unary
 * calls and to a stream's messages.
 *
 * A write (CreateKey, RevokeKey, …) that fails this way is never retried, and `Unavailable`
 * does not say it was not applied: the connection can fail after keyward committed it. Read
 * the state back before repeating a write.
 */
export function connectionErrorsAsUnavailable(): Interceptor {
  return (next) => async (req) => {
    let res;
    try {
      res = await next(req);
    } catch (err) {
      throw connectionErrorAsUnavailable(err);
    }
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (err) {
          throw connectionErrorAsUnavailable(err);
        }
      })(),
    };
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

/** Waits `ms` milliseconds; false when `signal` fired first. Removes its abort listener either way (internal: not exported by index.ts). */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
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
      // Outermost first: the retry sees what the connection-error mapping made of each attempt.
      interceptors: [retryIdempotentReads(retry), connectionErrorsAsUnavailable(), ...auth, ...(opts.interceptors ?? [])],
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
