// Small helpers of the minted-token tests: user principals, user tokens, raw SQL.
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { withKey, type TestServer, type TestTenant } from "../harness.ts";
import { uniq } from "../rpc.ts";

/** Creates a principal (a user unless `type` says otherwise) in `t`; returns its resource name. */
export async function createUser(
  server: TestServer,
  t: TestTenant,
  permissions: string[],
  opts: { type?: PrincipalType; org?: string } = {},
): Promise<string> {
  const { principal } = await server.client(DirectoryService).createPrincipal(
    { parent: `tenants/${t.slug}`, principalId: uniq("user"), type: opts.type ?? PrincipalType.USER, permissions, org: opts.org ?? "" },
    withKey(t.adminKey),
  );
  return principal!.name;
}

/** CreateUserToken for `principal` with the tenant's admin key (or `as`). */
export async function userToken(
  server: TestServer,
  t: TestTenant,
  principal: string,
  opts: { permissions?: string[]; durationSeconds?: number; as?: string } = {},
) {
  return server.client(TokenExchangeService).createUserToken(
    { principal, permissions: opts.permissions ?? [], durationSeconds: opts.durationSeconds ?? 0 },
    withKey(opts.as ?? t.adminKey),
  );
}

/**
 * Runs raw SQL on the server's database, then lets the server's verification cache catch up
 * with what it changed (as it would on hearing another replica's write), so the next call sees it.
 */
export async function sql<T>(server: TestServer, query: string, params: unknown[] = []): Promise<T[]> {
  const rows = await server.store.db.orm.driver.getConnection().execute<T[]>(query, params, "all");
  await server.verification.listener?.catchUp();
  return rows;
}

/** The decoded JSON of a base64url JWT segment. */
export function segment(token: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[index] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
}

/** A JWT segment made from JSON. */
export function encodeSegment(value: unknown): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}
