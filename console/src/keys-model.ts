// Pure helpers of the API keys tab: what the signed-in credential may grant, expiry
// arithmetic and display, and the words for kinds, slots and states. No business rule is
// decided here: the permission algebra is the server's (src/directory/permissions.ts,
// DESIGN.md §1), and the server checks everything again.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { KeyKind, KeySlot, KeyState } from "../../gen/keyward/v1/key_pb.ts";
import { toPermissionSet, type Catalogue } from "../../src/directory/permissions.ts";

/** One category's grantable levels: read and/or write, as the credential holds them. */
export type GrantableCategory = { category: string; read: boolean; write: boolean };

/**
 * What the signed-in credential may grant (a new key's permissions must be implied by the
 * caller's; `write` implies `read`; `*:read` / `*:write` cover every category): per category
 * of `categories` (the deployment's catalogue, from the server: catalogue.ts), in its order,
 * and whether the "Read all" / "Read & write all" shortcuts are within reach.
 */
export function grantable(held: readonly string[], catalogueCategories: readonly string[]): { categories: GrantableCategory[]; readAll: boolean; writeAll: boolean } {
  const catalogue: Catalogue = { categories: catalogueCategories };
  const set = toPermissionSet(catalogue, held);
  const categories = catalogue.categories
    .map((category) => ({ category, read: (set.get(category) ?? 0) >= 1, write: (set.get(category) ?? 0) >= 2 }))
    .filter((c) => c.read);
  // VerifyKey spells a set the shortest way, so "all" is held exactly when the wildcard is named.
  return { categories, readAll: held.includes("*:read") || held.includes("*:write"), writeAll: held.includes("*:write") };
}

/** The expiry presets of CreateKey (days), DESIGN.md §2. */
export const expiryPresets: readonly { days: number; label: string }[] = [
  { days: 7, label: "7 days" },
  { days: 30, label: "30 days" },
  { days: 90, label: "90 days" },
  { days: 365, label: "1 year" },
];

/** The longest lifetime a key may have, in days (CreateKeyRequest.expire_days). */
export const maxExpireDays = 365;

/** Parses a custom lifetime: a whole number of days from 1 to 365, else an error text. */
export function parseDays(text: string): { days: number } | { error: string } {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) return { error: "Enter a whole number of days, from 1 to 365." };
  const days = Number(trimmed);
  if (days < 1 || days > maxExpireDays) return { error: "A key lives from 1 to 365 days." };
  return { days };
}

const dayMs = 86_400_000;

/** When a key made now with a lifetime of `days` expires. */
export function expiresAt(days: number, now: number = Date.now()): Date {
  return new Date(now + days * dayMs);
}

/** A time as `YYYY-MM-DD HH:MM UTC` (the console shows UTC everywhere). */
export function formatTime(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** A Timestamp as a Date, or undefined when unset. */
export function dateOf(ts: Timestamp | undefined): Date | undefined {
  return ts === undefined ? undefined : timestampDate(ts);
}

/** Words for a key kind. */
export function kindLabel(kind: KeyKind): string {
  switch (kind) {
    case KeyKind.ADMIN: return "admin";
    case KeyKind.READ_ONLY: return "read-only";
    case KeyKind.REGISTRY: return "registry";
    case KeyKind.FINE_GRAINED: return "fine-grained";
    default: return "unknown";
  }
}

/** Words for a slot. */
export function slotLabel(slot: KeySlot): string {
  return slot === KeySlot.PRIMARY ? "primary" : slot === KeySlot.SECONDARY ? "secondary" : "";
}

/** Words for a key state. */
export function stateLabel(state: KeyState): string {
  switch (state) {
    case KeyState.ACTIVE: return "active";
    case KeyState.EXPIRED: return "expired";
    case KeyState.REVOKED: return "revoked";
    default: return "unknown";
  }
}

/** The principal id of a principal resource name (`tenants/t/principals/p` → `p`). */
export function principalId(name: string): string {
  const at = name.lastIndexOf("/principals/");
  return at < 0 ? name : name.slice(at + "/principals/".length);
}

/** A ListKeys owner/creator filter from what the user typed: a principal id or a full resource name ("" = none). */
export function principalFilter(tenant: string, text: string): string {
  const value = text.trim();
  if (value === "") return "";
  return value.startsWith("tenants/") ? value : `tenants/${tenant}/principals/${value}`;
}
