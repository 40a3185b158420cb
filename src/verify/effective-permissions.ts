// A credential's effective authority (DESIGN.md §1): what it grants, never more than the
// current permissions of its principal and of every principal that bounds it.
import { intersect, toPermissionSet, type Catalogue, type PermissionSet } from "../directory/permissions.ts";

/** `granted ∩ each of bounds` (each a list of permission strings as stored), as a set. */
export function effectivePermissions(catalogue: Catalogue, granted: readonly string[], bounds: readonly (readonly string[])[]): PermissionSet {
  let effective = toPermissionSet(catalogue, granted);
  for (const bound of bounds) effective = intersect(effective, toPermissionSet(catalogue, bound));
  return effective;
}
