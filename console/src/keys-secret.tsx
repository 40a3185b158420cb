// The show-once dialog for a raw key just minted (CreateKey, CloneKey, RotateKey). The
// secret lives only in the caller's state: closing the dialog drops it, and <Dialog>
// unmounts its children, so nothing secret stays in the DOM.
import { CopyButton, Dialog } from "./ui.tsx";

/** A raw key to show once, with what it is. */
export type ShownSecret = {
  secret: string;
  what: string;
  /**
   * Runs once the dialog is closed: refreshing lists waits for it, so a rotation of the very
   * key the console is signed in with (whose refresh answers 401 and signs out) cannot take
   * the new value off the screen before it was copied.
   */
  afterClose?: () => void;
};

/** Shows `shown.secret` once with a copy button and the warning; `onClose` must forget it. */
export function SecretDialog(props: { shown: ShownSecret | undefined; onClose: () => void }) {
  const { shown } = props;
  return (
    <Dialog open={shown !== undefined} title="Copy your new key" onClose={props.onClose} testId="secret-dialog">
      {shown !== undefined && (
        <div class="key-secret">
          <p>{shown.what}</p>
          <p role="note" class="warning"><strong>This key will not be shown again.</strong> Copy it now and store it somewhere safe; keyward keeps only a hash of it.</p>
          <code data-testid="key-secret" class="secret">{shown.secret}</code>
          <div class="kw-actions">
            <CopyButton text={shown.secret} label="Copy key" />
            <button type="button" class="kw-primary" onClick={props.onClose}>Done, I have stored it</button>
          </div>
        </div>
      )}
    </Dialog>
  );
}
