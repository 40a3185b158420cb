// The OIDC federation tab (issue 15 item 3, DESIGN.md §4, §7b): the tenant's token audience,
// the trust policies (listed, created, edited, deleted) with the server's weak-policy
// warnings, each policy's ready-to-paste workflow snippet (the server's text), and the dry
// run. Every change goes through PolicyService with the signed-in credential: the console
// adds no rule. A credential without `policies:write` sees no write button.
import { useEffect, useState } from "preact/hooks";
import type { TrustPolicy } from "../../gen/keyward/v1/policy_pb.ts";
import { DryRunPanel } from "./oidc-dry-run.tsx";
import { claimsSummary, durationText } from "./oidc-model.ts";
import { PolicyForm } from "./oidc-policy-form.tsx";
import { Warnings } from "./oidc-warnings.tsx";
import { ErrorMessage } from "./errors.tsx";
import type { Session } from "./session.ts";
import { Confirm, CopyButton, Dialog, Empty, Loading } from "./ui.tsx";
import "./oidc.css";

/** Policies per ListPolicies page. */
const pageSize = 100;

/** What the dialogs of the tab show. */
type Open =
  | { kind: "none" }
  | { kind: "create" }
  | { kind: "edit"; policy: TrustPolicy }
  | { kind: "snippet"; policy: TrustPolicy }
  | { kind: "delete"; policy: TrustPolicy };

/** The OIDC federation tab. */
export function OidcTab(props: { session: Session }) {
  const { session } = props;
  const canWrite = session.can("policies:write");
  const [policies, setPolicies] = useState<TrustPolicy[] | undefined>(undefined);
  const [nextPage, setNextPage] = useState("");
  const [listError, setListError] = useState<unknown>(undefined);
  const [open, setOpen] = useState<Open>({ kind: "none" });
  const [deleteError, setDeleteError] = useState<unknown>(undefined);
  const [deleting, setDeleting] = useState(false);
  const [notice, setNotice] = useState<string | undefined>(undefined);

  async function load(pageToken = "") {
    setListError(undefined);
    try {
      const res = await session.api.policies.listPolicies({ parent: `tenants/${session.tenant}`, pageSize, pageToken });
      setPolicies((prev) => (pageToken === "" ? res.policies : [...(prev ?? []), ...res.policies]));
      setNextPage(res.nextPageToken);
    } catch (err) {
      setListError(err);
      if (pageToken === "") setPolicies((prev) => prev ?? []);
    }
  }

  useEffect(() => {
    void load();
  }, [session]);

  async function confirmDelete(policy: TrustPolicy) {
    setDeleting(true);
    setDeleteError(undefined);
    try {
      await session.api.policies.deletePolicy({ name: policy.name, etag: policy.etag });
      setOpen({ kind: "none" });
      setNotice(`Trust policy "${policy.displayName}" deleted. Tokens minted under it no longer verify.`);
      await load();
    } catch (err) {
      // Shown above the list (the confirmation closes); the list is read again, so a policy
      // changed meanwhile (ETAG_MISMATCH) shows its current version.
      setOpen({ kind: "none" });
      setDeleteError(err);
      await load();
    } finally {
      setDeleting(false);
    }
  }

  const close = () => setOpen({ kind: "none" });

  return (
    <div class="oidc-tab" data-testid="oidc-tab">
      <Audience session={session} policies={policies} />

      <section class="oidc-policies" aria-labelledby="policies-heading">
        <div class="section-header">
          <h3 id="policies-heading">Trust policies</h3>
          {canWrite && policies !== undefined && policies.length > 0 && (
            <button type="button" class="kw-primary" onClick={() => { setNotice(undefined); setOpen({ kind: "create" }); }}>New policy</button>
          )}
        </div>
        <p class="hint">
          A trust policy says which GitHub Actions OIDC tokens may be exchanged for a short-lived keyward token, and what that
          token may do.
        </p>
        {notice !== undefined && <p role="status" class="kw-notice" data-testid="oidc-notice">{notice}</p>}
        {deleteError !== undefined && <ErrorMessage error={deleteError} />}
        {listError !== undefined && <ErrorMessage error={listError} />}
        {policies === undefined ? (
          <Loading />
        ) : policies.length === 0 ? (
          listError === undefined && (
            <Empty>
              <p>No trust policies yet. Workflows cannot exchange OIDC tokens until one exists.</p>
              {canWrite && <button type="button" class="kw-primary" onClick={() => setOpen({ kind: "create" })}>Create your first policy</button>}
            </Empty>
          )
        ) : (
          <table class="oidc-table" data-testid="policy-list">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Required claims</th>
                <th scope="col">Permissions</th>
                <th scope="col">Max session</th>
                <th scope="col">Warnings</th>
                <th scope="col"><span class="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {policies.map((p) => (
                <tr key={p.name} data-testid="policy-row" data-policy={p.displayName}>
                  <th scope="row">
                    <div class="policy-name">{p.displayName}</div>
                    {p.description !== "" && <div class="policy-description">{p.description}</div>}
                    {p.org !== "" && <div class="policy-scope">organization <code>{p.org}</code></div>}
                  </th>
                  <td><code class="claims-summary">{claimsSummary(p.claims) || "—"}</code></td>
                  <td>{p.permissions.map((perm) => <code class="permission" key={perm}>{perm}</code>)}</td>
                  <td>{durationText(p.maxSessionDurationSeconds)}</td>
                  <td>{p.warnings.length === 0 ? <span class="badge ok">none</span> : <Warnings warnings={p.warnings} />}</td>
                  <td class="row-actions">
                    <button type="button" onClick={() => setOpen({ kind: "snippet", policy: p })} aria-label={`Show ready-to-paste workflow snippet for ${p.displayName}`}>
                      Workflow snippet
                    </button>
                    {canWrite && (
                      <>
                        <button type="button" onClick={() => { setNotice(undefined); setOpen({ kind: "edit", policy: p }); }} aria-label={`Edit ${p.displayName}`}>Edit</button>
                        <button type="button" class="kw-danger" onClick={() => { setNotice(undefined); setDeleteError(undefined); setOpen({ kind: "delete", policy: p }); }} aria-label={`Delete ${p.displayName}`}>Delete</button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {nextPage !== "" && <button type="button" onClick={() => void load(nextPage)}>Load more</button>}
      </section>

      <DryRunPanel session={session} />

      <Dialog open={open.kind === "create" || open.kind === "edit"} title={open.kind === "edit" ? `Edit trust policy "${open.policy.displayName}"` : "New trust policy"} onClose={close} testId="policy-dialog">
        {(open.kind === "create" || open.kind === "edit") && (
          <PolicyForm
            key={open.kind === "edit" ? open.policy.name : "new"}
            session={session}
            policy={open.kind === "edit" ? open.policy : undefined}
            onSaved={() => void load()}
            onShowSnippet={(policy) => setOpen({ kind: "snippet", policy })}
            onClose={close}
          />
        )}
      </Dialog>

      <Dialog open={open.kind === "snippet"} title={open.kind === "snippet" ? `Workflow snippet: ${open.policy.displayName}` : "Workflow snippet"} onClose={close} testId="snippet-dialog">
        {open.kind === "snippet" && <Snippet policy={open.policy} onClose={close} />}
      </Dialog>

      <Confirm
        open={open.kind === "delete"}
        title="Delete trust policy?"
        message={open.kind === "delete"
          ? `Delete "${open.policy.displayName}"? Workflows using it can no longer exchange their OIDC tokens, and tokens already minted under it stop verifying. This cannot be undone.`
          : ""}
        confirmLabel={deleting ? "Deleting…" : "Delete policy"}
        busy={deleting}
        danger
        onConfirm={() => { if (open.kind === "delete" && !deleting) void confirmDelete(open.policy); }}
        onCancel={close}
      />
    </div>
  );
}

/**
 * The tenant's audience: what a workflow requests its ID token for. From GetTenant (needs
 * `directory:read`), else from any policy answer (every one carries it). Shown, not editable:
 * it is `<tenant>.<audience domain>`, the domain being keyward's configuration, and
 * UpdateTenant has no field for it.
 */
function Audience(props: { session: Session; policies: TrustPolicy[] | undefined }) {
  const { session } = props;
  const [audience, setAudience] = useState<string | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);

  useEffect(() => {
    let live = true;
    session.api.directory
      .getTenant({ name: `tenants/${session.tenant}` })
      .then((res) => { if (live) setAudience(res.tenant?.audience); })
      .catch((err: unknown) => { if (live) setError(err); });
    return () => { live = false; };
  }, [session]);

  const shown = audience ?? props.policies?.[0]?.audience;
  return (
    <section class="oidc-audience" aria-labelledby="audience-heading" data-testid="audience">
      <h3 id="audience-heading">Token audience</h3>
      {shown !== undefined && shown !== "" ? (
        <>
          <p>
            Workflows request their OIDC ID token for <code data-testid="audience-value">{shown}</code>{" "}
            <CopyButton text={shown} label="Copy audience" />
          </p>
          <p class="hint">
            Every trust policy of tenant <code>{session.tenant}</code> requires this audience; a token requested for another one is
            refused (AUDIENCE_MISMATCH). It is the tenant's slug and keyward's configured audience domain, so it cannot be changed
            here.
          </p>
        </>
      ) : error !== undefined ? (
        <ErrorMessage error={error} />
      ) : audience === undefined && props.policies === undefined ? (
        <Loading />
      ) : (
        <p class="hint">The audience is shown once there is a policy (this credential cannot read the tenant).</p>
      )}
    </section>
  );
}

/** A policy's workflow snippet, exactly as the server sent it, with a copy button. */
function Snippet(props: { policy: TrustPolicy; onClose: () => void }) {
  const { policy } = props;
  return (
    <div class="oidc-snippet" data-testid="workflow-snippet">
      <p>
        Paste this into the GitHub Actions job that needs a keyward token. It requests the job's OIDC ID token for{" "}
        <code>{policy.audience}</code>, exchanges it under this policy, masks the minted token and exports it as{" "}
        <code>KEYWARD_TOKEN</code>.
      </p>
      <pre tabIndex={0} aria-label="Workflow snippet"><code data-testid="workflow-snippet-text">{policy.workflowSnippet}</code></pre>
      <div class="kw-actions">
        <CopyButton text={policy.workflowSnippet} label="Copy snippet" />
        <button type="button" onClick={props.onClose}>Close</button>
      </div>
    </div>
  );
}
