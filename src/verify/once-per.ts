// Values derived from a cached record (or identity), built once per object: a cache hit
// returns the same object, so the hot path reuses what it derived from it last time.

/** Wraps `build` so it runs once per argument object (held weakly: it goes with the object). */
export function oncePer<K extends object, V>(build: (key: K) => V): (key: K) => V {
  const built = new WeakMap<K, V>();
  return (key) => {
    let value = built.get(key);
    if (value === undefined) built.set(key, (value = build(key)));
    return value;
  };
}
