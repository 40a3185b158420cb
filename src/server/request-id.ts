// Request ids: a caller's `x-request-id` is kept only when it is short, plain and cannot be
// a credential; otherwise the request gets a random id. The id is echoed in the response,
// written to every log line and stored in audit events, so a credential pasted into the
// header (or sent there on purpose) must never be kept.
import { randomUUID } from "node:crypto";

/** Longest caller-chosen id kept (a UUID is 36, a W3C trace id 32). */
const maxLength = 64;
/** Letters, digits and `. : -` only: no `_` (API keys have it), `/`, `+` or `=` (base64). */
const plain = /^[A-Za-z0-9][A-Za-z0-9.:-]*$/;
/** Three dot-separated base64url parts: a JWT (or a JWS), even a short one. */
const jwtLike = /^[A-Za-z0-9-]{4,}\.[A-Za-z0-9-]{4,}\.[A-Za-z0-9-]{2,}$/;
/** Longest run without a separator that is kept: a hex trace id fits, a longer token does not. */
const maxSegment = 32;
/** A run this long that mixes upper- and lower-case letters looks like a base62/base64 secret. */
const maxMixedCaseSegment = 19;

/**
 * True when `value` may be kept as the request id: 1–64 characters of `[A-Za-z0-9.:-]`,
 * not JWT-shaped (`aaaa.bbbb.cc`, or starting with `eyJ`, base64 of `{"`), with no run
 * between separators longer than 32 characters, and no run of 20 or more that mixes
 * upper- and lower-case letters (the shape of base62/base64 secrets; UUIDs and hex trace
 * ids are one case).
 */
export function isAcceptableRequestId(value: string): boolean {
  if (value.length === 0 || value.length > maxLength || !plain.test(value)) return false;
  if (value.startsWith("eyJ") || jwtLike.test(value)) return false;
  for (const segment of value.split(/[.:-]/)) {
    if (segment.length > maxSegment) return false;
    if (segment.length > maxMixedCaseSegment && /[a-z]/.test(segment) && /[A-Z]/.test(segment)) return false;
  }
  return true;
}

/** The request id for a call: the caller's `x-request-id` when acceptable, else a random UUID. */
export function requestIdFrom(header: string | null | undefined): string {
  return header != null && isAcceptableRequestId(header) ? header : randomUUID();
}
