// The slot keys: admin, read-only and registry, each with a primary and a secondary slot,
// the "last rotated" time of the value in each slot (Key.last_rotate_time of the slot's
// active key) and a Rotate button per slot (RotateKey) behind a confirmation naming the slot.
import { useEffect, useState } from "preact/hooks";
import { KeyKind, KeySlot, KeyState, type Key } from "../../gen/keyward/v1/key_pb.ts";
import type { Session } from "./session.ts";
import { Confirm, Loading } from "./ui.tsx";
import { ErrorMessage } from "./errors.tsx";
import { dateOf, formatTime, kindLabel, slotLabel } from "./keys-model.ts";
import type { ShownSecret } from "./keys-secret.tsx";

const slotKinds = [KeyKind.ADMIN, KeyKind.READ_ONLY, KeyKind.REGISTRY] as const;
const slots = [KeySlot.PRIMARY, KeySlot.SECONDARY] as const;
/** Bound on the pages read per kind (1000 keys a page). */
const maxPages = 10;

type SlotKind = (typeof slotKinds)[number];
type SlotRef = { kind: SlotKind; slot: KeySlot };

/** The active slot keys of the caller's scope (its org, or the tenant's own slots), by kind and slot. */
async function loadSlots(session: Session, signal: AbortSignal): Promise<Map<string, Key>> {
  const found = new Map<string, Key>();
  await Promise.all(slotKinds.map(async (kind) => {
    let pageToken = "";
    for (let page = 0; page < maxPages; page++) {
      const res = await session.api.keys.listKeys(
        { parent: `tenants/${session.tenant}`, kind, state: KeyState.ACTIVE, org: session.org, pageSize: 1000, pageToken }, { signal });
      for (const key of res.keys) if (key.org === session.org) found.set(`${key.kind}/${key.slot}`, key);
      pageToken = res.nextPageToken;
      if (pageToken === "") break;
    }
  }));
  return found;
}

/** The three slot kinds' two slots each, with rotation. */
export function SlotKeys(props: { session: Session; onMinted: (shown: ShownSecret) => void }) {
  const { session } = props;
  const [keys, setKeys] = useState<Map<string, Key> | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [reload, setReload] = useState(0);
  const [confirming, setConfirming] = useState<SlotRef | undefined>(undefined);
  const [rotating, setRotating] = useState(false);
  const canWrite = session.can("keys:write");

  useEffect(() => {
    const abort = new AbortController();
    setError(undefined);
    loadSlots(session, abort.signal).then(setKeys, (e: unknown) => {
      if (!abort.signal.aborted) setError(e);
    });
    return () => abort.abort();
  }, [session, reload]);

  const rotate = (ref: SlotRef) => {
    setConfirming(undefined);
    setRotating(true);
    setError(undefined);
    session.api.keys.rotateKey({ parent: `tenants/${session.tenant}`, kind: ref.kind, slot: ref.slot, org: session.org })
      .then((res) => {
        props.onMinted({
          secret: res.secret,
          what: `The new value of the ${slotLabel(ref.slot)} ${kindLabel(ref.kind)} key (${res.key?.keyId ?? ""}).`,
          afterClose: () => setReload((n) => n + 1),
        });
      }, setError)
      .finally(() => setRotating(false));
  };

  const confirmingKey = confirming === undefined ? undefined : keys?.get(`${confirming.kind}/${confirming.slot}`);
  const otherSlot = (slot: KeySlot) => slotLabel(slot === KeySlot.PRIMARY ? KeySlot.SECONDARY : KeySlot.PRIMARY);

  return (
    <section aria-labelledby="slot-keys-heading">
      <h2 id="slot-keys-heading">Admin, read-only and registry keys</h2>
      <p class="muted">Each lives in two slots. Rotating a slot mints a new value for it and stops its old value at once; the other slot keeps working, so move your callers to the other slot first.</p>
      {error !== undefined && <ErrorMessage error={error} />}
      {keys === undefined && error === undefined ? <Loading /> : keys !== undefined && (
        <table class="slot-keys">
          <thead><tr><th scope="col">Key</th><th scope="col">Slot</th><th scope="col">Key id</th><th scope="col">Last rotated</th>{canWrite && <th scope="col"><span class="visually-hidden">Actions</span></th>}</tr></thead>
          <tbody>
            {slotKinds.flatMap((kind) => slots.map((slot) => {
              const key = keys.get(`${kind}/${slot}`);
              const rotated = dateOf(key?.lastRotateTime);
              const label = `${slotLabel(slot)} ${kindLabel(kind)} key`;
              return (
                <tr key={`${kind}/${slot}`} data-testid={`slot-${kindLabel(kind)}-${slotLabel(slot)}`}>
                  <th scope="row">{kindLabel(kind)}</th>
                  <td>{slotLabel(slot)}</td>
                  <td>{key === undefined ? <span class="muted">empty</span> : <code>{key.keyId}</code>}{key !== undefined && key.name === session.keyName && " (you are signed in with it)"}</td>
                  <td data-testid="last-rotated">{rotated === undefined ? <span class="muted">never</span> : <time dateTime={rotated.toISOString()}>{formatTime(rotated)}</time>}</td>
                  {canWrite && (
                    <td><button type="button" disabled={rotating} aria-label={`Rotate the ${label}`} onClick={() => setConfirming({ kind, slot })}>Rotate</button></td>
                  )}
                </tr>
              );
            }))}
          </tbody>
        </table>
      )}
      {confirming !== undefined && (
        <Confirm
          open
          title={`Rotate the ${slotLabel(confirming.slot)} ${kindLabel(confirming.kind)} key?`}
          message={`Rotate the ${slotLabel(confirming.slot)} ${kindLabel(confirming.kind)} key? The current ${slotLabel(confirming.slot)} value stops working at once; the ${otherSlot(confirming.slot)} value keeps working. The new value is shown once.` +
            (confirmingKey !== undefined && confirmingKey.name === session.keyName ? " You are signed in with this key: you will be signed out." : "")}
          confirmLabel={`Rotate ${slotLabel(confirming.slot)}`}
          onConfirm={() => rotate(confirming)}
          onCancel={() => setConfirming(undefined)}
        />
      )}
    </section>
  );
}
