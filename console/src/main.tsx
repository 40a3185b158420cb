// The keyward admin console (DESIGN.md §7b): sign-in with an API key or a per-user token kept
// in memory only (session.ts), then three tabs — API keys, OIDC federation, API reference.
// Served by keyward at /console (src/server/console-routes.ts); built by console/build.mjs.
import "./console.css";
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiReferenceTab } from "./docs-tab.tsx";
import { ErrorMessage } from "./errors.tsx";
import { KeysTab } from "./keys-tab.tsx";
import { OidcTab } from "./oidc-tab.tsx";
import { recheck, setUnauthenticatedListener, signIn, signOut, type Session } from "./session.ts";

function App() {
  const [session, setSession] = useState<Session | undefined>(undefined);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  useEffect(() => {
    setUnauthenticatedListener((message) => {
      setSession(undefined);
      setNotice(message);
    });
    return () => setUnauthenticatedListener(undefined);
  }, []);
  const end = (message: string | undefined) => {
    signOut();
    setSession(undefined);
    setNotice(message);
  };
  if (session === undefined) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(s) => {
          setNotice(undefined);
          setSession(s);
        }}
      />
    );
  }
  return <Shell session={session} onEnd={end} />;
}

/**
 * The sign-in screen: a password-type field for the key or token and "Authorize". The field is
 * emptied as soon as the form is submitted, whatever the answer; the credential then lives only
 * in session.ts.
 */
function SignIn(props: { notice: string | undefined; onSignedIn: (session: Session) => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => input.current?.focus(), []);
  const submit = (e: Event) => {
    e.preventDefault();
    const field = input.current;
    if (field === null || busy) return;
    const key = field.value;
    field.value = "";
    setBusy(true);
    setError(undefined);
    signIn(key).then(
      (session) => props.onSignedIn(session),
      (err: unknown) => {
        setBusy(false);
        setError(err);
        input.current?.focus();
      },
    );
  };
  return (
    <main class="kw-signin">
      <h1>keyward console</h1>
      <p>Paste an API key or a per-user token of your tenant. It stays in this page's memory only: reloading the page or signing out forgets it.</p>
      {props.notice !== undefined ? (
        <p class="kw-notice" role="alert" data-testid="signin-notice">
          {props.notice}
        </p>
      ) : null}
      <form onSubmit={submit} data-testid="signin-form">
        <label for="kw-credential">API key or token</label>
        <input
          id="kw-credential"
          ref={input}
          type="password"
          autocomplete="off"
          autocapitalize="off"
          spellcheck={false}
          required
          disabled={busy}
        />
        <button type="submit" class="kw-primary" disabled={busy}>
          {busy ? "Checking…" : "Authorize"}
        </button>
      </form>
      {error !== undefined ? <ErrorMessage error={error} /> : null}
    </main>
  );
}

const tabs = [
  { id: "keys", label: "API keys" },
  { id: "oidc", label: "OIDC federation" },
  { id: "docs", label: "API reference" },
] as const;
type TabId = (typeof tabs)[number]["id"];

/**
 * The signed-in page: who is signed in, Sign out, and the tablist (WAI-ARIA tabs pattern: one
 * tab in the focus order, arrow keys, Home and End move between tabs). A tab's panel is mounted
 * on its first visit and kept (hidden) afterwards, so switching back keeps its state. Each
 * switch re-checks the credential with VerifyKey: a credential revoked or expired meanwhile
 * ends the session there.
 */
function Shell(props: { session: Session; onEnd: (message: string | undefined) => void }) {
  const { session } = props;
  const [active, setActive] = useState<TabId>("keys");
  const [visited, setVisited] = useState<ReadonlySet<TabId>>(new Set(["keys"]));
  const tabRefs = useRef<Partial<Record<TabId, HTMLButtonElement | null>>>({});

  const select = (id: TabId, focus: boolean) => {
    setActive(id);
    setVisited((v) => (v.has(id) ? v : new Set([...v, id])));
    if (focus) tabRefs.current[id]?.focus();
    recheck().then(
      (refusal) => {
        if (refusal !== undefined) props.onEnd(refusal);
      },
      () => undefined, // keyward unreachable: the tab's own calls will say so.
    );
  };
  const onKeyDown = (e: KeyboardEvent) => {
    const index = tabs.findIndex((t) => t.id === active);
    const to = e.key === "ArrowRight" ? (index + 1) % tabs.length : e.key === "ArrowLeft" ? (index + tabs.length - 1) % tabs.length : e.key === "Home" ? 0 : e.key === "End" ? tabs.length - 1 : -1;
    if (to < 0) return;
    e.preventDefault();
    select(tabs[to]!.id, true);
  };

  return (
    <div class="kw-shell">
      <header class="kw-header">
        <span class="kw-title">keyward console</span>
        <span class="kw-who" data-testid="signed-in-as">
          Tenant <strong>{session.tenant}</strong>
          {session.org !== "" ? (
            <>
              {" "}
              · org <strong>{session.org}</strong>
            </>
          ) : null}{" "}
          · <code>{session.keyName}</code> · {session.permissions.length > 0 ? session.permissions.join(", ") : "no permissions"}
        </span>
        <button type="button" onClick={() => props.onEnd("You signed out.")}>
          Sign out
        </button>
      </header>
      <div role="tablist" aria-label="Console sections" class="kw-tablist" onKeyDown={onKeyDown}>
        {tabs.map((t) => (
          <button
            key={t.id}
            type="button"
            role="tab"
            id={`tab-${t.id}`}
            ref={(el) => {
              tabRefs.current[t.id] = el;
            }}
            aria-selected={active === t.id}
            aria-controls={`panel-${t.id}`}
            tabIndex={active === t.id ? 0 : -1}
            onClick={() => {
              if (active !== t.id) select(t.id, false);
            }}
          >
            {t.label}
          </button>
        ))}
      </div>
      {tabs.map((t) =>
        visited.has(t.id) ? (
          <section key={t.id} role="tabpanel" id={`panel-${t.id}`} aria-labelledby={`tab-${t.id}`} hidden={active !== t.id} class={`kw-panel kw-panel-${t.id}`}>
            {t.id === "keys" ? <KeysTab session={session} /> : t.id === "oidc" ? <OidcTab session={session} /> : <ApiReferenceTab />}
          </section>
        ) : null,
      )}
    </div>
  );
}

const root = document.getElementById("app");
if (root !== null) render(<App />, root);
