// Opaque page tokens for every listing: a position plus a fingerprint of the filters, so
// a token cannot be replayed against a different query.
import { createHash } from "node:crypto";
import { invalidArgument } from "../errors.ts";

/** Default and largest page sizes (AIP-158). */
export const defaultPageSize = 50;
const maxPageSize = 1000;

/** Validates a requested page size: 0 → default, over the max → the max. */
export function pageSizeOf(requested: number): number {
  if (!Number.isInteger(requested) || requested < 0) {
    throw invalidArgument("INVALID_PAGE_SIZE", "page_size must be 0 (default 50) or a positive number", { field: "page_size" });
  }
  return requested === 0 ? defaultPageSize : Math.min(requested, maxPageSize);
}

function fingerprint(filters: unknown): string {
  return createHash("sha256").update(JSON.stringify(filters)).digest("base64url").slice(0, 12);
}

/** Encodes the position after the last item of a page. */
export function encodePageToken(position: readonly (string | number)[], filters: unknown): string {
  return Buffer.from(JSON.stringify({ p: position, f: fingerprint(filters) })).toString("base64url");
}

/** Decodes a page token made for the same filters; undefined for the first page. */
export function decodePageToken(token: string, filters: unknown): (string | number)[] | undefined {
  if (token === "") return undefined;
  const bad = () => invalidArgument("INVALID_PAGE_TOKEN", "page_token is not valid for this request (tokens only work with the same filters)", { field: "page_token" });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  const value = parsed as { p?: unknown; f?: unknown };
  if (!Array.isArray(value.p) || value.f !== fingerprint(filters) || !value.p.every((x) => typeof x === "string" || typeof x === "number")) throw bad();
  return value.p as (string | number)[];
}
