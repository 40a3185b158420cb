// Opaque page tokens for every listing (AIP-158): a position plus a fingerprint of the
// query that minted it (which listing, under which parent, with which filters), so a token
// cannot be replayed against another listing, another tenant or other filters. Tokens are
// opaque, not secret: a decoded position is checked part by part before it can reach SQL.
import { createHash } from "node:crypto";
import { invalidArgument, type KeywardError } from "../errors.ts";

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

/**
 * What a page token is bound to: the listing (e.g. `ListKeys`), its parent (the tenant's
 * id) and the request's filters. A token is valid only for the same three.
 */
export type PageQuery = Readonly<{ listing: string; parent: string; filters?: Readonly<Record<string, unknown>> }>;

/**
 * A 16-character fingerprint of what an opaque token is bound to (a listing and its query,
 * a tenant's stream): a token minted for one thing fails the check of any other.
 */
export function tokenFingerprint(scope: readonly unknown[]): string {
  return createHash("sha256").update(JSON.stringify(scope)).digest("base64url").slice(0, 16);
}

function fingerprint(query: PageQuery): string {
  return tokenFingerprint([query.listing, query.parent, query.filters ?? {}]);
}

/** An opaque token: base64url of a JSON object (page tokens, WatchInvalidations resume tokens). */
export function encodeOpaqueToken(value: Readonly<Record<string, unknown>>): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** The JSON object an opaque token holds; undefined when it is longer than `maxChars` or holds no object. */
export function decodeOpaqueToken(token: string, maxChars: number): Record<string, unknown> | undefined {
  if (token.length > maxChars) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function encodePageToken(position: readonly string[], query: PageQuery): string {
  return encodeOpaqueToken({ p: position, f: fingerprint(query) });
}

/** The refusal of a page token that is not valid for the request. */
export function invalidPageToken(): KeywardError {
  return invalidArgument("INVALID_PAGE_TOKEN", "page_token is not valid for this request (a token only works for the listing, parent and filters that returned it)", { field: "page_token" });
}

/**
 * Decodes a page token minted by the same query (listing, parent, filters) into its
 * position (one string per part, each passing its check); undefined for the first page.
 * Anything else is INVALID_ARGUMENT `INVALID_PAGE_TOKEN`.
 */
export function decodePageToken(token: string, query: PageQuery, parts: readonly PositionPart[]): string[] | undefined {
  if (token === "") return undefined;
  const bad = invalidPageToken;
  const parsed = decodeOpaqueToken(token, 1024);
  if (parsed === undefined) throw bad();
  const { p, f } = parsed;
  if (f !== fingerprint(query) || !Array.isArray(p) || p.length !== parts.length) throw bad();
  if (!p.every((value, i) => typeof value === "string" && parts[i]!(value))) throw bad();
  return p as string[];
}

/**
 * Cuts one page from `rows` (fetched with limit + 1) and makes the token of the next page
 * from the position of its last item; "" when there is no next page.
 */
export function pageOf<T>(rows: readonly T[], limit: number, positionOf: (item: T) => string[], query: PageQuery): { items: T[]; nextPageToken: string } {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextPageToken: rows.length > limit && last !== undefined ? encodePageToken(positionOf(last), query) : "" };
}
