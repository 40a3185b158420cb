// The shape of a JWS in compact serialization (RFC 7515 §7.1): three base64url segments
// separated by dots, the last possibly empty. Both kinds of JWT keyward reads have it: the
// OIDC ID tokens of token exchange and the access tokens keyward mints.

const compactJws = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** True when `value` is shaped like a compact JWS (a cheap test: nothing is decoded or verified). */
export function isCompactJws(value: string): boolean {
  return compactJws.test(value);
}
