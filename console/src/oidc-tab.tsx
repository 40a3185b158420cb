// The OIDC federation tab (DESIGN.md §7b). Placeholder from the shell: the oidc helper replaces it.
import type { Session } from "./session.ts";
import { Empty } from "./ui.tsx";

/** The OIDC federation tab of the signed-in session. */
export function OidcTab(props: { session: Session }) {
  return <Empty>The OIDC federation tab is not built yet (tenant {props.session.tenant}).</Empty>;
}
