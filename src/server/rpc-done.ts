// The one place every finished RPC is reported to, besides its log line: the metrics hook.
// Called by logRpcOutcome (logging-interceptor.ts), which both the connect path and the
// VerifyKey fast path use, and by the transport guard for requests connect refused.
import type { Code } from "@connectrpc/connect";

/** Receives every finished RPC: `procedure` is `package.Service/Method`, `code` undefined for OK. */
export type RpcDoneListener = (procedure: string, code: Code | undefined, durationMs: number, verdict: string | undefined) => void;

let listener: RpcDoneListener | undefined;

/** Sets (or, with undefined, removes) the listener of finished RPCs, e.g. the metrics counters. One per process. */
export function setRpcDoneListener(l: RpcDoneListener | undefined): void {
  listener = l;
}

/** Reports one finished RPC to the listener, if any. `verdict` is VerifyKey's result name when known. */
export function onRpcDone(procedure: string, code: Code | undefined, durationMs: number, verdict: string | undefined): void {
  listener?.(procedure, code, durationMs, verdict);
}
