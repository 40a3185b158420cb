// The console's small shared widgets: a modal dialog, a confirmation, a copy button, loading
// and empty states. Keyboard-usable by construction (native <dialog>, <button>).
import type { ComponentChildren } from "preact";
import { useEffect, useId, useLayoutEffect, useRef, useState } from "preact/hooks";

/**
 * A modal dialog on the native <dialog> element opened with showModal(): the page behind is
 * inert (focus stays inside), Esc asks `onClose` (the parent decides; the dialog closes when
 * `open` turns false), and focus returns to the element that had it when the dialog opened.
 * The children are rendered only while `open`: closing unmounts them, so nothing shown in a
 * dialog (a new key's secret) stays in the DOM. `testId` sets data-testid on the <dialog>.
 * Focus goes back to the opener; when that is gone (a dialog opened from inside another one
 * that closed meanwhile: new key → its secret), to the outer dialog's opener; when a list
 * re-rendered after the action takes the opener away (a revoked key's Revoke button), to the
 * heading of the opener's section, so a keyboard user is never left on <body>.
 */
export function Dialog(props: { open: boolean; title: string; onClose: () => void; children?: ComponentChildren; testId?: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  const opener = useRef<readonly HTMLElement[]>([]);
  const onClose = useRef(props.onClose);
  onClose.current = props.onClose;
  const open = useRef(props.open);
  open.current = props.open;
  const titleId = useId();

  useLayoutEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    if (props.open && !dialog.open) {
      const active = document.activeElement instanceof HTMLElement && document.activeElement !== document.body ? document.activeElement : null;
      const outer = active?.closest("dialog");
      opener.current = [...(active === null ? [] : [active]), ...((outer && openers.get(outer)) || [])];
      openers.set(dialog, opener.current);
      dialog.showModal();
    } else if (!props.open && dialog.open) {
      dialog.close(); // the "close" listener gives focus back
    }
  }, [props.open]);

  useEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    // Esc fires "cancel": keep the dialog open until the parent says so.
    const cancel = (e: Event) => {
      e.preventDefault();
      onClose.current();
    };
    // Closed by the browser itself (a second Esc, which Chromium does not let a page cancel):
    // the parent learns it, and focus goes back either way.
    // The event comes a task after the close: when the dialog has been opened again meanwhile
    // (the opener clicked at once), it is stale and changes nothing — before, it told the parent
    // to close the dialog just reopened (the flaky "Esc twice" test).
    const closed = () => {
      if (dialog.open) return;
      restoreFocus(opener);
      if (open.current) onClose.current();
    };
    dialog.addEventListener("cancel", cancel);
    dialog.addEventListener("close", closed);
    return () => {
      dialog.removeEventListener("cancel", cancel);
      dialog.removeEventListener("close", closed);
      // Unmounted while open (the parent went away): the opener gets focus back.
      if (dialog.open) restoreFocus(opener);
    };
  }, []);

  return (
    <dialog ref={ref} class="kw-dialog" aria-labelledby={titleId} data-testid={props.testId}>
      {props.open ? (
        <>
          <header class="kw-dialog-header">
            <h2 id={titleId}>{props.title}</h2>
            <button type="button" class="kw-icon-button" aria-label="Close" onClick={() => onClose.current()}>
              ×
            </button>
          </header>
          <div class="kw-dialog-body">{props.children}</div>
        </>
      ) : null}
    </dialog>
  );
}

/** What each open Dialog will give focus back to, first choice first (see restoreFocus). */
const openers = new WeakMap<HTMLDialogElement, readonly HTMLElement[]>();

/** How long after a dialog closed focus is kept from falling to <body> when its opener goes. */
const focusWatchMs = 15_000;

/**
 * Focuses the first of `opener`'s elements still on the page and outside a closed dialog, then
 * watches it for a while: if a re-render removes it while nothing else took focus, focus goes to
 * the first heading of its section (made focusable with tabindex=-1).
 */
function restoreFocus(opener: { current: readonly HTMLElement[] }): void {
  const target = opener.current.find((el) => el.isConnected && el.closest("dialog:not([open])") === null);
  opener.current = [];
  if (target === undefined) return;
  target.focus();
  const home = target.closest("section, [role=tabpanel]");
  if (home === null) return;
  const fallback = home.querySelector<HTMLElement>("h1, h2, h3, h4") ?? (home as HTMLElement);
  const stop = () => {
    observer.disconnect();
    clearTimeout(timer);
    document.removeEventListener("focusin", moved, true);
  };
  const moved = (e: Event) => {
    if (e.target !== target) stop();
  };
  const observer = new MutationObserver(() => {
    if (target.isConnected) return;
    stop();
    const now = document.activeElement;
    if ((now === null || now === document.body) && fallback.isConnected) {
      if (!fallback.hasAttribute("tabindex")) fallback.setAttribute("tabindex", "-1");
      fallback.focus();
    }
  });
  const timer = setTimeout(stop, focusWatchMs);
  observer.observe(home, { childList: true, subtree: true });
  document.addEventListener("focusin", moved, true);
}

/**
 * Asks before something that cannot be undone: `message`, then Cancel (focused first, the
 * safe choice) and `confirmLabel`. Esc or Cancel call `onCancel`. `busy` disables both buttons
 * while the action runs; `error` shows its failure inside the dialog.
 */
export function Confirm(props: {
  open: boolean;
  title: string;
  message: ComponentChildren;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
  busy?: boolean;
  danger?: boolean;
  children?: ComponentChildren;
}) {
  return (
    <Dialog open={props.open} title={props.title} onClose={props.onCancel} testId="confirm-dialog">
      <div class="kw-confirm-message">{props.message}</div>
      {props.children}
      <div class="kw-actions">
        <button type="button" autofocus onClick={props.onCancel} disabled={props.busy === true}>
          Cancel
        </button>
        <button type="button" class={props.danger === true ? "kw-danger" : "kw-primary"} onClick={props.onConfirm} disabled={props.busy === true}>
          {props.confirmLabel}
        </button>
      </div>
    </Dialog>
  );
}

/**
 * Copies `text` to the clipboard (navigator.clipboard.writeText) and says so next to the
 * button ("Copied", or how to copy by hand when the browser refuses). `label` is the button's
 * text, e.g. "Copy key".
 */
export function CopyButton(props: { text: string; label: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  useEffect(() => {
    if (state !== "copied") return;
    const timer = setTimeout(() => setState("idle"), 4000);
    return () => clearTimeout(timer);
  }, [state]);
  const copy = () => {
    navigator.clipboard.writeText(props.text).then(
      () => setState("copied"),
      () => setState("failed"),
    );
  };
  return (
    <span class="kw-copy">
      <button type="button" onClick={copy}>
        {props.label}
      </button>
      <span class="kw-copy-status" role="status" aria-live="polite">
        {state === "copied" ? "Copied" : state === "failed" ? "The browser refused: select the text and copy it by hand" : ""}
      </span>
    </span>
  );
}

/** A loading state, announced to screen readers. */
export function Loading(props: { label?: string }) {
  return (
    <p class="kw-loading" role="status" aria-live="polite">
      {props.label ?? "Loading…"}
    </p>
  );
}

/** An empty state: what is not there yet and, in the children, what to do about it. */
export function Empty(props: { children?: ComponentChildren }) {
  return <div class="kw-empty">{props.children}</div>;
}
