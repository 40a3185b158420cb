// The permission algebra as the console needs it (the server's is src/directory/permissions.ts):
// `category:read|write`, write implies read, `*:level` covers every category.

/** True when `held` (`category:level`, `*:level`) implies `wanted`: write implies read. */
export function implies(held: readonly string[], wanted: string): boolean {
  const [category, level] = wanted.split(":");
  const rank = (l: string | undefined) => (l === "write" ? 2 : l === "read" ? 1 : 0);
  const need = rank(level);
  if (need === 0 || category === undefined) return false;
  return held.some((h) => {
    const [c, l] = h.split(":");
    return (c === "*" || c === category) && rank(l) >= need;
  });
}
