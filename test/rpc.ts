// Small helpers shared by the test files that call the real server over RPC.
import { afterAll, beforeAll } from "@jest/globals";
import { ConnectError, type Client } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.ts";
import { AuditService } from "../gen/keyward/v1/audit_service_pb.ts";
import { DirectoryService } from "../gen/keyward/v1/directory_service_pb.ts";
import { KeyService } from "../gen/keyward/v1/key_service_pb.ts";
import { startTestServer, type TestServer } from "./harness.ts";

/** The file's server and its Connect clients, set by `useServer()` in `beforeAll` (live bindings: read them in tests and hooks only). */
export let server: TestServer;
export let keys: Client<typeof KeyService>;
export let directory: Client<typeof DirectoryService>;
export let audit: Client<typeof AuditService>;

/**
 * Starts one server for the calling test file (or describe block) before its tests (setting
 * `server`, `keys`, `directory`, `audit`) and stops it after them; `env` overrides its configuration.
 */
export function useServer(opts: { env?: Record<string, string> } = {}): void {
  beforeAll(async () => {
    server = await startTestServer(opts);
    keys = server.client(KeyService);
    directory = server.client(DirectoryService);
    audit = server.client(AuditService);
  });
  afterAll(async () => {
    await server?.stop();
  });
}

/**
 * The two paths a VerifyKey call can take, for `describe.each`: the fast path
 * (src/server/verify-fast-path.ts, the default) and connect-node alone. Suites about
 * VerifyKey run once through each, with the server's configuration in the second column.
 */
export const verifyPaths: [string, Record<string, string>][] = [
  ["the fast path", { KEYWARD_VERIFY_FAST_PATH: "1" }],
  ["connect-node", { KEYWARD_VERIFY_FAST_PATH: "0" }],
];

/** Awaits a call: undefined if it succeeds, its ConnectError if it fails (any other error is rethrown). */
export async function attempt(p: Promise<unknown>): Promise<ConnectError | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    if (e instanceof ConnectError) return e;
    throw e;
  }
}

/** The ConnectError a call fails with (throws if the call succeeds; any other error is rethrown). */
export async function rpcError(p: Promise<unknown>): Promise<ConnectError> {
  const err = await attempt(p);
  if (err === undefined) throw new Error("expected the call to fail, but it succeeded");
  return err;
}

/** The ErrorInfo reason of a ConnectError, or undefined (no ErrorInfo, or not a ConnectError). */
export function reasonOf(e: unknown): string | undefined {
  return e instanceof ConnectError ? e.findDetails(ErrorInfoSchema)[0]?.reason : undefined;
}

/** The public key id of a raw key (`<prefix><kind>_<keyId>_<secret>`), or "" if it has none. */
export function keyIdOf(raw: string): string {
  return raw.split("_")[1] ?? "";
}

let counter = 0;
/** A random tag for this test file's run, so names made by `uniq` do not clash with earlier runs. */
export const runTag = Math.random().toString(36).slice(2, 7);

/** A name no other call in this test file gets: `<prefix>-<runTag>-<n>`. */
export function uniq(prefix: string): string {
  counter += 1;
  return `${prefix}-${runTag}-${counter}`;
}
