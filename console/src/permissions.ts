// The permission algebra as the console needs it (the server's is src/directory/permissions.ts,
// which needs the catalogue): `category:read|write`, write implies read, `*:level` covers
// every category. Shared by the session (`can`) and the OIDC allowlist editor.

/** 0 none, 1 read, 2 write. */
export type Level = 0 | 1 | 2;

function rank(level: string | undefined): Level {
  return level === "write" ? 2 : level === "read" ? 1 : 0;
}

/** The level `permissions` give `category` (`*:` counts for every category; write implies read). */
export function levelIn(permissions: readonly string[], category: string): Level {
  let best: Level = 0;
  for (const p of permissions) {
    const [c, l] = p.split(":");
    if (c === "*" || c === category) best = Math.max(best, rank(l)) as Level;
  }
  return best;
}

/** True when `held` (`category:level`, `*:level`) implies `wanted`: write implies read. */
export function implies(held: readonly string[], wanted: string): boolean {
  const [category, level] = wanted.split(":");
  const need = rank(level);
  if (need === 0 || category === undefined) return false;
  return levelIn(held, category) >= need;
}
