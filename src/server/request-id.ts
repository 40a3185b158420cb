// Request ids: a caller's `x-request-id` is kept only when it cannot be a credential;
// otherwise the request gets a random id. The id is echoed in the response, written to
// every log line and stored in audit events, so a credential pasted into the header (or
// sent there on purpose, split into chunks) must never be kept.
//
// The rule judges the whole value, not its parts. A value is kept when it is
// - a UUID (8-4-4-4-12 hex digits, any version, any case), or
// - at most 32 characters of `[A-Za-z0-9.:-]`, starting with a letter or digit, not shaped
//   like a JWT, whose letters and digits *taken together* (separators ignored) could not
//   hold 100 bits of randomness: n of them drawn from an alphabet of k symbols (10 if
//   there are digits, plus 26 for each letter case present) hold n·log2(k) bits.
// So `req-123`, `abc.def:42` and `web-3:1234:99` are kept; a base62 key in chunks
// (≥ 17 mixed-case letters and digits), an AWS-style `AKIA…` id (20 upper-case letters and
// digits), a ULID, a 32-hex trace id and a run of 22 lower-case letters are replaced.
import { randomUUID } from "node:crypto";

/** Longest caller-chosen id kept, other than a UUID. */
const maxLength = 32;
/** Letters, digits and `. : -` only: no `_` (API keys have it), `/`, `+` or `=` (base64). */
const plain = /^[A-Za-z0-9][A-Za-z0-9.:-]*$/;
/** A UUID of any version, in either case. */
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Three dot-separated base64url parts: a JWT (or a JWS), even a short one. */
const jwtLike = /^[A-Za-z0-9-]{4,}\.[A-Za-z0-9-]{4,}\.[A-Za-z0-9-]{2,}$/;
/** The most randomness, in bits, that the letters and digits of a kept id could hold (a secret has ≥ 128). */
const maxBits = 100;

/**
 * True when `value` may be kept as the request id: a UUID, or a short plain id whose
 * letters and digits together could not hold 100 bits of randomness (see the file header).
 */
export function isAcceptableRequestId(value: string): boolean {
  if (uuid.test(value)) return true;
  if (value.length === 0 || value.length > maxLength || !plain.test(value)) return false;
  if (value.startsWith("eyJ") || jwtLike.test(value)) return false;
  return randomnessBits(value.replace(/[^A-Za-z0-9]/g, "")) < maxBits;
}

/** The most randomness n letters and digits could hold, given which classes (digits, lower, upper) they use. */
function randomnessBits(alnum: string): number {
  const alphabet = (/[0-9]/.test(alnum) ? 10 : 0) + (/[a-z]/.test(alnum) ? 26 : 0) + (/[A-Z]/.test(alnum) ? 26 : 0);
  return alphabet === 0 ? 0 : alnum.length * Math.log2(alphabet);
}

/** The request id for a call: the caller's `x-request-id` when acceptable, else a random UUID. */
export function requestIdFrom(header: string | null | undefined): string {
  return header != null && isAcceptableRequestId(header) ? header : randomUUID();
}
