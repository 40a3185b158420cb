// The dialogs of the fine-grained keys list: new key (CreateKey), clone (CloneKey) and
// revoke (RevokeKey). Each is a <form> (Enter submits, Esc closes through <Dialog>); the
// minted secret goes to `onMinted`, never into this dialog's own DOM.
import { useState } from "preact/hooks";
import type { Key } from "../../gen/keyward/v1/key_pb.ts";
import type { Session } from "./session.ts";
import { Dialog, Loading } from "./ui.tsx";
import { usePermissionCatalogue } from "./catalogue.ts";
import { ErrorMessage } from "./errors.tsx";
import { ExpiryChooser, chosenDays, type ExpiryChoice } from "./keys-expiry.tsx";
import { PermissionPicker, chosenPermissions, noPermissions, type PermissionChoice } from "./keys-permissions.tsx";
import type { ShownSecret } from "./keys-secret.tsx";

/** A text field's value from an input event. */
const valueOf = (e: Event) => (e.currentTarget as HTMLInputElement).value;

/** Runs an RPC for a form: tracks busy and the error, calls `done` on success. */
function useSubmit(): { busy: boolean; error: unknown; run: (call: () => Promise<void>) => void; reset: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const run = (call: () => Promise<void>) => {
    if (busy) return;
    setBusy(true);
    setError(undefined);
    call().catch(setError).finally(() => setBusy(false));
  };
  return { busy, error, run, reset: () => setError(undefined) };
}

/**
 * A dialog form's end: the RPC's error (in words, with its reason), the submit button
 * (`label`, `busyLabel` while the call runs) and Cancel (focused first in a `danger` form).
 */
function FormFooter(props: { submit: { busy: boolean; error: unknown }; label: string; busyLabel: string; onCancel: () => void; danger?: boolean; disabled?: boolean }) {
  const { submit, danger = false } = props;
  return (
    <>
      {submit.error !== undefined && <ErrorMessage error={submit.error} />}
      <div class="kw-actions">
        <button type="submit" class={danger ? "kw-danger" : "kw-primary"} disabled={submit.busy || props.disabled === true}>{submit.busy ? props.busyLabel : props.label}</button>
        <button type="button" autoFocus={danger} onClick={props.onCancel}>Cancel</button>
      </div>
    </>
  );
}

/** The new-key dialog: name (required, immutable), expiration and permissions. */
export function NewKeyDialog(props: { session: Session; open: boolean; onClose: () => void; onMinted: (key: Key, shown: ShownSecret) => void }) {
  const { session } = props;
  const [name, setName] = useState("");
  const [expiry, setExpiry] = useState<ExpiryChoice>({ preset: 30, custom: "" });
  const [permissions, setPermissions] = useState<PermissionChoice>(noPermissions);
  const [touched, setTouched] = useState(false);
  const submit = useSubmit();
  const catalogue = usePermissionCatalogue(session);
  const close = () => {
    setName(""); setExpiry({ preset: 30, custom: "" }); setPermissions(noPermissions); setTouched(false); submit.reset();
    props.onClose();
  };
  const days = chosenDays(expiry);
  const chosen = chosenPermissions(permissions);
  const nameError = name.trim() === "" ? "A key needs a name." : name.length > 100 ? "A name has at most 100 characters." : undefined;
  const permissionError = chosen.length === 0 ? "Choose at least one permission." : undefined;
  const onSubmit = (e: Event) => {
    e.preventDefault();
    setTouched(true);
    if (nameError !== undefined || permissionError !== undefined || "error" in days) return;
    submit.run(async () => {
      const res = await session.api.keys.createKey({
        parent: `tenants/${session.tenant}`, displayName: name.trim(), permissions: chosen, expireDays: days.days, org: session.org,
      });
      if (res.key === undefined) throw new Error("the server returned no key");
      props.onMinted(res.key, { secret: res.secret, what: `The key "${res.key.displayName}" (${res.key.keyId}) with ${res.key.permissions.join(", ")}.` });
      close();
    });
  };
  return (
    <Dialog open={props.open} title="New key" onClose={close} testId="new-key-dialog">
      <form class="key-form" onSubmit={onSubmit} noValidate>
        <p>
          <label for="new-key-name">Name</label>
          <input id="new-key-name" name="name" required maxLength={100} autoFocus value={name} onInput={(e) => setName(valueOf(e))}
            aria-invalid={touched && nameError !== undefined} aria-describedby="new-key-name-help" />
          <small id="new-key-name-help">{touched && nameError !== undefined ? nameError : "Required; it cannot be changed later."}</small>
        </p>
        <ExpiryChooser idPrefix="new-key" value={expiry} onChange={setExpiry} />
        {catalogue === undefined ? <Loading label="Loading the permission catalogue…" />
          : "error" in catalogue ? <ErrorMessage error={catalogue.error} />
          : <PermissionPicker held={session.permissions} catalogue={catalogue.categories} value={permissions} onChange={setPermissions} />}
        {touched && permissionError !== undefined && <p class="field-error" role="alert">{permissionError}</p>}
        <FormFooter submit={submit} label="Create key" busyLabel="Creating…" onCancel={close} />
      </form>
    </Dialog>
  );
}

/** The clone dialog: a new name and expiration for a key with `source`'s permissions and scope. */
export function CloneKeyDialog(props: { session: Session; source: Key | undefined; onClose: () => void; onMinted: (key: Key, shown: ShownSecret) => void }) {
  const { session, source } = props;
  const [name, setName] = useState("");
  const [expiry, setExpiry] = useState<ExpiryChoice>({ preset: "source", custom: "" });
  const [touched, setTouched] = useState(false);
  const submit = useSubmit();
  const close = () => {
    setName(""); setExpiry({ preset: "source", custom: "" }); setTouched(false); submit.reset();
    props.onClose();
  };
  const days = chosenDays(expiry);
  const nameError = name.trim() === "" ? "The clone needs a name." : undefined;
  const onSubmit = (e: Event) => {
    e.preventDefault();
    setTouched(true);
    if (source === undefined || nameError !== undefined || "error" in days) return;
    submit.run(async () => {
      const res = await session.api.keys.cloneKey({ name: source.name, displayName: name.trim(), expireDays: days.days });
      if (res.key === undefined) throw new Error("the server returned no key");
      props.onMinted(res.key, { secret: res.secret, what: `The key "${res.key.displayName}" (${res.key.keyId}), a clone of "${source.displayName}".` });
      close();
    });
  };
  return (
    <Dialog open={source !== undefined} title={source === undefined ? "Clone key" : `Clone "${source.displayName}"`} onClose={close} testId="clone-key-dialog">
      {source !== undefined && (
        <form class="key-form" onSubmit={onSubmit} noValidate>
          <p>The clone gets a new secret and the same permissions ({source.permissions.join(", ")}) and scope. Switch your callers to it, then revoke the old key.</p>
          <p>
            <label for="clone-key-name">Name of the clone</label>
            <input id="clone-key-name" required maxLength={100} autoFocus value={name} onInput={(e) => setName(valueOf(e))}
              aria-invalid={touched && nameError !== undefined} />
            {touched && nameError !== undefined && <small role="alert">{nameError}</small>}
          </p>
          <ExpiryChooser idPrefix="clone-key" value={expiry} onChange={setExpiry} allowSource />
          <FormFooter submit={submit} label="Clone key" busyLabel="Cloning…" onCancel={close} />
        </form>
      )}
    </Dialog>
  );
}

/** The revoke confirmation, with the reason recorded on the key and in the audit log. */
export function RevokeKeyDialog(props: { session: Session; target: Key | undefined; onClose: () => void; onRevoked: (key: Key) => void }) {
  const { session, target } = props;
  const [reason, setReason] = useState("revoked in the admin console");
  const submit = useSubmit();
  const close = () => {
    setReason("revoked in the admin console"); submit.reset();
    props.onClose();
  };
  const onSubmit = (e: Event) => {
    e.preventDefault();
    if (target === undefined || reason.trim() === "") return;
    submit.run(async () => {
      const res = await session.api.keys.revokeKey({ name: target.name, reason: reason.trim() });
      if (res.key !== undefined) props.onRevoked(res.key);
      close();
    });
  };
  return (
    <Dialog open={target !== undefined} title={target === undefined ? "Revoke key" : `Revoke "${target.displayName}"?`} onClose={close} testId="revoke-key-dialog">
      {target !== undefined && (
        <form class="key-form" onSubmit={onSubmit} noValidate>
          <p>The key {target.keyId} stops working at once, everywhere, and cannot be restored.</p>
          <p>
            <label for="revoke-reason">Reason</label>
            <input id="revoke-reason" required maxLength={500} value={reason} onInput={(e) => setReason(valueOf(e))} />
          </p>
          <FormFooter submit={submit} label="Revoke key" busyLabel="Revoking…" onCancel={close} danger disabled={reason.trim() === ""} />
        </form>
      )}
    </Dialog>
  );
}
