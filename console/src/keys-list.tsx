// The fine-grained keys: a filtered, paginated list (ListKeys: state, owner, creator, org;
// "Load more" follows next_page_token), with New key / Create your first key, Clone and
// Revoke for credentials holding keys:write.
import { useEffect, useState } from "preact/hooks";
import { KeyKind, KeyState, type Key } from "../../gen/keyward/v1/key_pb.ts";
import type { Session } from "./session.ts";
import { Empty, Loading } from "./ui.tsx";
import { ErrorMessage } from "./errors.tsx";
import { dateOf, formatTime, principalFilter, principalId, stateLabel } from "./keys-model.ts";
import { CloneKeyDialog, NewKeyDialog, RevokeKeyDialog } from "./keys-dialogs.tsx";
import type { ShownSecret } from "./keys-secret.tsx";

/** The list's filters as the user typed them. */
type Filters = { state: KeyState; owner: string; creator: string; org: string };
const noFilters: Filters = { state: KeyState.UNSPECIFIED, owner: "", creator: "", org: "" };
const pageSize = 50;

/** A time cell: `<time>` with the ISO value, or a muted word when unset. */
function TimeCell(props: { date: Date | undefined; unset: string }) {
  return <td>{props.date === undefined ? <span class="muted">{props.unset}</span> : <time dateTime={props.date.toISOString()}>{formatTime(props.date)}</time>}</td>;
}

/** The fine-grained keys section. `onMinted` shows a new key's secret once. */
export function FineGrainedKeys(props: { session: Session; onMinted: (shown: ShownSecret) => void }) {
  const { session } = props;
  const canWrite = session.can("keys:write");
  const [draft, setDraft] = useState<Filters>(noFilters);
  const [filters, setFilters] = useState<Filters>(noFilters);
  const [keys, setKeys] = useState<Key[] | undefined>(undefined);
  const [next, setNext] = useState("");
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [reload, setReload] = useState(0);
  const [creating, setCreating] = useState(false);
  const [cloning, setCloning] = useState<Key | undefined>(undefined);
  const [revoking, setRevoking] = useState<Key | undefined>(undefined);

  const request = (f: Filters, pageToken: string) => ({
    parent: `tenants/${session.tenant}`, kind: KeyKind.FINE_GRAINED, state: f.state, pageSize, pageToken,
    owner: principalFilter(session.tenant, f.owner), creator: principalFilter(session.tenant, f.creator), org: session.org !== "" ? session.org : f.org.trim(),
  });

  useEffect(() => {
    const abort = new AbortController();
    setKeys(undefined);
    setError(undefined);
    session.api.keys.listKeys(request(filters, ""), { signal: abort.signal }).then((res) => {
      setKeys(res.keys);
      setNext(res.nextPageToken);
    }, (e: unknown) => {
      if (!abort.signal.aborted) setError(e);
    });
    return () => abort.abort();
  }, [session, filters, reload]);

  const loadMore = () => {
    setLoadingMore(true);
    setError(undefined);
    session.api.keys.listKeys(request(filters, next)).then((res) => {
      setKeys((had) => [...(had ?? []), ...res.keys]);
      setNext(res.nextPageToken);
    }, setError).finally(() => setLoadingMore(false));
  };

  const refresh = () => setReload((n) => n + 1);
  const minted = (_key: Key, shown: ShownSecret) => props.onMinted({ ...shown, afterClose: refresh });
  const filtered = filters.state !== KeyState.UNSPECIFIED || filters.owner !== "" || filters.creator !== "" || filters.org !== "";
  const setField = (field: keyof Filters) => (e: Event) => {
    const value = (e.currentTarget as HTMLInputElement | HTMLSelectElement).value;
    setDraft({ ...draft, [field]: field === "state" ? (Number(value) as KeyState) : value });
  };

  return (
    <section aria-labelledby="fine-grained-heading">
      <div class="section-head">
        <h2 id="fine-grained-heading">Fine-grained keys</h2>
        {canWrite && keys !== undefined && (keys.length > 0 || filtered) && <button type="button" onClick={() => setCreating(true)}>New key</button>}
      </div>
      <form class="filters" role="search" aria-label="Filter keys" onSubmit={(e) => { e.preventDefault(); setFilters({ ...draft }); }}>
        <label>State{" "}
          <select value={String(draft.state)} onChange={setField("state")}>
            <option value={String(KeyState.UNSPECIFIED)}>any</option>
            <option value={String(KeyState.ACTIVE)}>active</option>
            <option value={String(KeyState.EXPIRED)}>expired</option>
            <option value={String(KeyState.REVOKED)}>revoked</option>
          </select>
        </label>
        <label>Owner{" "}<input value={draft.owner} placeholder="principal id" onInput={setField("owner")} /></label>
        <label>Created by{" "}<input value={draft.creator} placeholder="principal id" onInput={setField("creator")} /></label>
        {session.org === "" && <label>Organization{" "}<input value={draft.org} placeholder="org slug" onInput={setField("org")} /></label>}
        <button type="submit">Apply filters</button>
        {filtered && <button type="button" onClick={() => { setDraft(noFilters); setFilters(noFilters); }}>Clear filters</button>}
      </form>
      {error !== undefined && <ErrorMessage error={error} />}
      {keys === undefined ? (error === undefined && <Loading />) : keys.length === 0 ? (
        filtered ? <Empty>No key matches these filters.</Empty> : (
          <Empty>
            <p>No fine-grained keys yet. A fine-grained key has exactly the permissions you grant it and expires after at most a year.</p>
            {canWrite && <button type="button" onClick={() => setCreating(true)}>Create your first key</button>}
          </Empty>
        )
      ) : (
        <>
          <table class="keys">
            <thead>
              <tr>
                <th scope="col">Name</th><th scope="col">Permissions</th><th scope="col">Created</th><th scope="col">Expires</th>
                <th scope="col">Last used</th><th scope="col">State</th><th scope="col">Owner</th><th scope="col">Creator</th>
                {canWrite && <th scope="col"><span class="visually-hidden">Actions</span></th>}
              </tr>
            </thead>
            <tbody>
              {keys.map((key) => (
                <tr key={key.name} data-testid={`key-${key.keyId}`}>
                  <th scope="row"><span class="key-name">{key.displayName}</span><br /><small><code>{key.keyId}</code> …{key.hint}{key.org !== "" && ` · org ${key.org}`}</small></th>
                  <td>{key.permissions.join(", ")}</td>
                  <TimeCell date={dateOf(key.createTime)} unset="—" />
                  <TimeCell date={dateOf(key.expireTime)} unset="never" />
                  <TimeCell date={dateOf(key.lastUsedTime)} unset="never" />
                  <td data-testid="key-state">{stateLabel(key.state)}</td>
                  <td>{principalId(key.owner)}</td>
                  <td>{principalId(key.creator)}</td>
                  {canWrite && (
                    <td class="row-actions">
                      {key.state === KeyState.ACTIVE && <button type="button" aria-label={`Clone ${key.displayName}`} onClick={() => setCloning(key)}>Clone</button>}
                      {key.state !== KeyState.REVOKED && <button type="button" class="kw-danger" aria-label={`Revoke ${key.displayName}`} onClick={() => setRevoking(key)}>Revoke</button>}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          {next !== "" && <button type="button" disabled={loadingMore} onClick={loadMore}>{loadingMore ? "Loading…" : "Load more"}</button>}
        </>
      )}
      {canWrite && (
        <>
          <NewKeyDialog session={session} open={creating} onClose={() => setCreating(false)} onMinted={minted} />
          <CloneKeyDialog session={session} source={cloning} onClose={() => setCloning(undefined)} onMinted={minted} />
          <RevokeKeyDialog session={session} target={revoking} onClose={() => setRevoking(undefined)} onRevoked={refresh} />
        </>
      )}
    </section>
  );
}
