// Opaque page tokens for every listing: a position plus a fingerprint of the filters, so
// a token cannot be replayed against a different query. Tokens are opaque, not secret: a
// decoded position is checked part by part before it can reach SQL.
import { createHash } from "node:crypto";
import { invalidArgument } from "../errors.ts";

const maxPageSize = 1000;

/** Validates a requested page size: 0 → 50, over the max → the max (AIP-158). */
export function pageSizeOf(requested: number): number {
  if (!Number.isInteger(requested) || requested < 0) {
    throw invalidArgument("INVALID_PAGE_SIZE", "page_size must be 0 (default 50) or a positive number", { field: "page_size" });
  }
  return requested === 0 ? 50 : Math.min(requested, maxPageSize);
}

/** True for dates PostgreSQL and the API can both represent (1970 to 9999). */
export function isStorableDate(date: Date): boolean {
  return date.getTime() >= 0 && date.getFullYear() <= 9999;
}

/** A check of one part of a decoded position. */
export type PositionPart = (value: string) => boolean;

/** A position part that is a storable ISO-8601 timestamp. */
export const timestampPart: PositionPart = (value) => isStorableDate(new Date(value));

/** A position part that matches `pattern`. */
export function patternPart(pattern: RegExp): PositionPart {
  return (value) => pattern.test(value);
}

function fingerprint(filters: unknown): string {
  return createHash("sha256").update(JSON.stringify(filters)).digest("base64url").slice(0, 12);
}

function encodePageToken(position: readonly string[], filters: unknown): string {
  return Buffer.from(JSON.stringify({ p: position, f: fingerprint(filters) })).toString("base64url");
}

/**
 * Decodes a page token made for the same filters into its position (one string per part,
 * each passing its check); undefined for the first page.
 */
export function decodePageToken(token: string, filters: unknown, parts: readonly PositionPart[]): string[] | undefined {
  if (token === "") return undefined;
  const bad = () => invalidArgument("INVALID_PAGE_TOKEN", "page_token is not valid for this request (tokens only work with the same filters)", { field: "page_token" });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  const { p, f } = parsed as { p?: unknown; f?: unknown };
  if (f !== fingerprint(filters) || !Array.isArray(p) || p.length !== parts.length) throw bad();
  if (!p.every((value, i) => typeof value === "string" && parts[i]!(value))) throw bad();
  return p as string[];
}

/**
 * Cuts one page from `rows` (fetched with limit + 1) and makes the token of the next page
 * from the position of its last item; "" when there is no next page.
 */
export function pageOf<T>(rows: readonly T[], limit: number, positionOf: (item: T) => string[], filters: unknown): { items: T[]; nextPageToken: string } {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextPageToken: rows.length > limit && last !== undefined ? encodePageToken(positionOf(last), filters) : "" };
}
