// Update masks (AIP-134): which fields an Update call changes, checked against what may be.
import { invalidArgument } from "../errors.ts";
import { quotedForError } from "./text-fields.ts";

/** Validates the paths of an update mask; returns them as a set. */
export function checkUpdateMask(paths: readonly string[], allowed: readonly string[]): ReadonlySet<string> {
  if (paths.length === 0) throw invalidArgument("REQUIRED_FIELD", `update_mask is required: any of ${allowed.join(", ")}`, { field: "update_mask" });
  const unknown = paths.filter((p) => !allowed.includes(p));
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 5).map(quotedForError).join(", ");
    throw invalidArgument("INVALID_UPDATE_MASK", `update_mask: cannot update ${shown}; allowed: ${allowed.join(", ")}`, { field: "update_mask" });
  }
  return new Set(paths);
}
