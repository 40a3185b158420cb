// The permission algebra: `category:read` / `category:write`, `write` implies `read`,
// `*:read` is "read all", `*:write` "read & write all". Sets are compared by what they
// imply, never by their spelling.
import { invalidArgument } from "../errors.ts";
import { quotedForError } from "../common/text-fields.ts";

const levels = { read: 1, write: 2 } as const;
type Level = 0 | 1 | 2;

/** A set of permissions resolved against the catalogue: category → level. */
export type PermissionSet = ReadonlyMap<string, Level>;

/** The permission catalogue of this deployment. */
export type Catalogue = { readonly categories: readonly string[] };

/** Every permission string the catalogue accepts, for error messages. */
export function validPermissions(catalogue: Catalogue): string[] {
  return ["*:read", "*:write", ...catalogue.categories.flatMap((c) => [`${c}:read`, `${c}:write`])];
}

/** True when `value` is a permission the catalogue knows. */
export function isPermission(catalogue: Catalogue, value: string): boolean {
  const [category, level, extra] = value.split(":");
  if (extra !== undefined || (level !== "read" && level !== "write")) return false;
  return category === "*" || catalogue.categories.includes(category ?? "");
}

/**
 * Validates a list of permission strings; unknown ones are refused with INVALID_ARGUMENT
 * listing the valid ones. Returns them deduplicated and sorted.
 */
export function parsePermissions(catalogue: Catalogue, values: readonly string[], field = "permissions"): string[] {
  const unknown = values.filter((v) => !isPermission(catalogue, v));
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 5).map(quotedForError);
    throw invalidArgument("UNKNOWN_PERMISSION", `${field}: unknown permission ${shown.join(", ")}; valid permissions are: ${validPermissions(catalogue).join(", ")}`, {
      field,
      unknown: shown.join(","),
    });
  }
  return [...new Set(values)].sort();
}

/** Resolves permission strings (assumed valid) to a set. */
export function toPermissionSet(catalogue: Catalogue, values: readonly string[]): PermissionSet {
  const set = new Map<string, Level>();
  const raise = (category: string, level: Level) => {
    if ((set.get(category) ?? 0) < level) set.set(category, level);
  };
  for (const value of values) {
    const [category = "", name = ""] = value.split(":");
    const level = levels[name as keyof typeof levels] as Level | undefined;
    if (level === undefined) continue;
    if (category === "*") for (const c of catalogue.categories) raise(c, level);
    else if (catalogue.categories.includes(category)) raise(category, level);
  }
  return set;
}

/** The permissions both sets imply (granted ∩ owner's). */
export function intersect(a: PermissionSet, b: PermissionSet): PermissionSet {
  const out = new Map<string, Level>();
  for (const [category, level] of a) {
    const both = Math.min(level, b.get(category) ?? 0) as Level;
    if (both > 0) out.set(category, both);
  }
  return out;
}

/** The members of `wanted` that `held` does not imply. */
export function notImplied(catalogue: Catalogue, held: PermissionSet, wanted: readonly string[]): string[] {
  return wanted.filter((value) => {
    const needed = toPermissionSet(catalogue, [value]);
    if (needed.size === 0) return true;
    for (const [category, level] of needed) if ((held.get(category) ?? 0) < level) return true;
    return false;
  });
}

/** Spells a set the shortest way: `*:write`, or `*:read` plus writes, or one per category. */
export function formatPermissions(catalogue: Catalogue, set: PermissionSet): string[] {
  const all = catalogue.categories;
  if (all.length > 0 && all.every((c) => set.get(c) === 2)) return ["*:write"];
  const out: string[] = [];
  const readAll = all.length > 0 && all.every((c) => (set.get(c) ?? 0) >= 1);
  if (readAll) out.push("*:read");
  for (const c of all) {
    const level = set.get(c) ?? 0;
    if (level === 2) out.push(`${c}:write`);
    else if (level === 1 && !readAll) out.push(`${c}:read`);
  }
  return out.sort();
}
