// Loopback URLs: the one exception to "https only" for OIDC issuers (KEYWARD_OIDC_ISSUERS)
// and their `jwks_uri`, so tests can run an issuer on 127.0.0.1 (DESIGN.md §4).

/** True when `url`'s host is `127.0.0.1`, `localhost` or `[::1]`. */
export function isLoopbackUrl(url: URL): boolean {
  return url.hostname === "127.0.0.1" || url.hostname === "localhost" || url.hostname === "[::1]";
}
