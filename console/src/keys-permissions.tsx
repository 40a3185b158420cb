// The permission picker of the new-key dialog: categories with read / write, and the
// "Read all" (`*:read`) and "Read & write all" (`*:write`) shortcuts, offering only what the
// signed-in credential holds (write implies read, as the server defines: DESIGN.md §1), over
// the deployment's catalogue as the server publishes it (catalogue.ts).
import { grantable } from "./keys-model.ts";

/** The picker's state: the wildcard level and each category's level. */
export type PermissionChoice = { all: "none" | "read" | "write"; categories: Readonly<Record<string, "read" | "write">> };

/** Nothing chosen. */
export const noPermissions: PermissionChoice = { all: "none", categories: {} };

/** The permission strings to send for `choice`, without any the wildcard already implies. */
export function chosenPermissions(choice: PermissionChoice): string[] {
  if (choice.all === "write") return ["*:write"];
  const out = choice.all === "read" ? ["*:read"] : [];
  for (const [category, level] of Object.entries(choice.categories)) {
    if (level === "write" || choice.all === "none") out.push(`${category}:${level}`);
  }
  return out.sort();
}

/**
 * Checkboxes for every grantable permission; `held` is the signed-in credential's,
 * `catalogue` the deployment's categories (GetPermissionCatalogue).
 */
export function PermissionPicker(props: { held: readonly string[]; catalogue: readonly string[]; value: PermissionChoice; onChange: (v: PermissionChoice) => void }) {
  const { value, onChange } = props;
  const offer = grantable(props.held, props.catalogue);
  const setLevel = (category: string, level: "read" | "write", on: boolean) => {
    const next = { ...value.categories };
    if (on) next[category] = level === "write" || next[category] !== "write" ? level : "write";
    else if (level === "write") next[category] = "read";
    else delete next[category];
    onChange({ ...value, categories: next });
  };
  const setAll = (level: "read" | "write", on: boolean) => onChange({ ...value, all: on ? level : level === "write" ? "read" : "none" });
  return (
    <fieldset class="permissions">
      <legend>Permissions</legend>
      {offer.categories.length === 0 && <p>Your credential holds no permission it could grant.</p>}
      {(offer.readAll || offer.writeAll) && (
        <div class="shortcuts">
          {offer.readAll && (
            <label><input type="checkbox" checked={value.all !== "none"} disabled={value.all === "write"} onChange={(e) => setAll("read", (e.currentTarget as HTMLInputElement).checked)} /> Read all</label>
          )}
          {offer.writeAll && (
            <label><input type="checkbox" checked={value.all === "write"} onChange={(e) => setAll("write", (e.currentTarget as HTMLInputElement).checked)} /> Read &amp; write all</label>
          )}
        </div>
      )}
      <table>
        <thead><tr><th scope="col">Category</th><th scope="col">Read</th><th scope="col">Write (implies read)</th></tr></thead>
        <tbody>
          {offer.categories.map(({ category, write }) => {
            const level = value.categories[category];
            const readImplied = value.all !== "none" || level === "write";
            const writeImplied = value.all === "write";
            return (
              <tr key={category}>
                <th scope="row">{category}</th>
                <td>
                  <input type="checkbox" aria-label={`${category}:read`} checked={readImplied || level === "read"} disabled={readImplied}
                    onChange={(e) => setLevel(category, "read", (e.currentTarget as HTMLInputElement).checked)} />
                </td>
                <td>
                  {write ? (
                    <input type="checkbox" aria-label={`${category}:write`} checked={writeImplied || level === "write"} disabled={writeImplied}
                      onChange={(e) => setLevel(category, "write", (e.currentTarget as HTMLInputElement).checked)} />
                  ) : <span class="muted">not yours to grant</span>}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </fieldset>
  );
}
