// The API keys tab (issue 15, item 2): the slot keys with rotation, and the fine-grained
// keys with create, clone and revoke. Everything goes through KeyService with the signed-in
// credential; write controls are hidden from credentials without keys:write (the server
// refuses them anyway). A minted secret is held here only while its dialog is open.
import "./keys.css";
import { useState } from "preact/hooks";
import type { Session } from "./session.ts";
import { FineGrainedKeys } from "./keys-list.tsx";
import { SecretDialog, type ShownSecret } from "./keys-secret.tsx";
import { SlotKeys } from "./keys-slots.tsx";

/** The API keys tab for the signed-in `session`. */
export function KeysTab(props: { session: Session }) {
  const [shown, setShown] = useState<ShownSecret | undefined>(undefined);
  const close = () => {
    const after = shown?.afterClose;
    setShown(undefined);
    after?.();
  };
  return (
    <div class="keys-tab">
      <SlotKeys session={props.session} onMinted={setShown} />
      <FineGrainedKeys session={props.session} onMinted={setShown} />
      <SecretDialog shown={shown} onClose={close} />
    </div>
  );
}
