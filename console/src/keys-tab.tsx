// The API keys tab (DESIGN.md §7b). Placeholder from the shell: the keys helper replaces it.
import type { Session } from "./session.ts";
import { Empty } from "./ui.tsx";

/** The API keys tab of the signed-in session. */
export function KeysTab(props: { session: Session }) {
  return <Empty>The API keys tab is not built yet (tenant {props.session.tenant}).</Empty>;
}
