// The trust-policy form (DESIGN.md §4, §7b): create, or edit with UpdatePolicy (update mask
// and etag). The form checks only what a user can fix before a call — a name, a duration from
// 0 to 3600 — and shows the server's answer for everything else (name taken, neither owner
// nor repository, permissions not held, a concurrent edit). After saving it shows the
// server's weak-policy warnings and offers the workflow snippet.
import { useState } from "preact/hooks";
import type { TrustPolicy } from "../../gen/keyward/v1/policy_pb.ts";
import { describeError, ErrorMessage } from "./errors.tsx";
import type { Session } from "./session.ts";
import {
  categoriesFor, claimFields, draftOf, draftProblems, lacksOwnerAndRepository, levelIn, maxSessionSeconds,
  policyFieldsOf, updateMaskOf, withLevel, type FieldProblem, type Level, type PolicyDraft,
} from "./oidc-model.ts";
import { Warnings } from "./oidc-warnings.tsx";
import { usePermissionCatalogue } from "./catalogue.ts";
import { Loading } from "./ui.tsx";

/** What a save produced: the stored policy and the server's warnings. */
export type Saved = Readonly<{ policy: TrustPolicy; warnings: readonly string[]; created: boolean }>;

/**
 * The form's body, inside a Dialog. `policy` undefined: create. `onSaved` gets the server's
 * answer (the form then shows it); `onShowSnippet` opens the snippet of the saved policy.
 */
export function PolicyForm(props: {
  session: Session;
  policy: TrustPolicy | undefined;
  onSaved: (saved: Saved) => void;
  onShowSnippet: (policy: TrustPolicy) => void;
  onClose: () => void;
}) {
  const { session } = props;
  const [base, setBase] = useState<TrustPolicy | undefined>(props.policy);
  const [draft, setDraft] = useState<PolicyDraft>(() => draftOf(props.policy, session.org));
  const [problems, setProblems] = useState<FieldProblem[]>([]);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const [unchanged, setUnchanged] = useState(false);
  const [saved, setSaved] = useState<Saved | undefined>(undefined);
  const catalogue = usePermissionCatalogue(session);
  const editing = base !== undefined;
  const conflict = error !== undefined && describeError(error).reason === "ETAG_MISMATCH";

  const set = <K extends keyof PolicyDraft>(key: K, value: PolicyDraft[K]) => setDraft((d) => ({ ...d, [key]: value }));
  const problemOf = (field: FieldProblem["field"]) => problems.find((p) => p.field === field)?.message;

  async function submit(e: Event) {
    e.preventDefault();
    if (busy) return;
    const found = draftProblems(draft);
    setProblems(found);
    setError(undefined);
    setUnchanged(false);
    if (found.length > 0) return;
    setBusy(true);
    try {
      const fields = policyFieldsOf(draft);
      let result: Saved;
      if (base === undefined) {
        const res = await session.api.policies.createPolicy({ parent: `tenants/${session.tenant}`, policy: { ...fields, org: draft.org.trim() } });
        result = { policy: res.policy!, warnings: res.warnings, created: true };
      } else {
        const paths = updateMaskOf(base, draft);
        if (paths.length === 0) {
          setUnchanged(true);
          return;
        }
        const res = await session.api.policies.updatePolicy({ policy: { ...fields, name: base.name, etag: base.etag }, updateMask: { paths } });
        result = { policy: res.policy!, warnings: res.warnings, created: false };
      }
      setSaved(result);
      props.onSaved(result);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  /** After ETAG_MISMATCH: reads the policy as stored now and restarts the form from it. */
  async function reload() {
    if (base === undefined) return;
    setBusy(true);
    try {
      const res = await session.api.policies.getPolicy({ name: base.name });
      setBase(res.policy);
      setDraft(draftOf(res.policy));
      setError(undefined);
      setProblems([]);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  if (saved !== undefined) {
    return (
      <div class="oidc-saved" data-testid="policy-saved">
        <p role="status">
          Trust policy <strong>{saved.policy.displayName}</strong> {saved.created ? "created" : "saved"}.
          {saved.warnings.length === 0 ? " The server gave no warnings." : ""}
        </p>
        {saved.warnings.length > 0 && <Warnings warnings={saved.warnings} open heading="The server accepted it with these warnings:" />}
        <div class="kw-actions">
          <button type="button" onClick={() => props.onShowSnippet(saved.policy)}>Show ready-to-paste workflow snippet</button>
          <button type="button" onClick={props.onClose}>Done</button>
        </div>
      </div>
    );
  }

  const held = session.permissions;
  const categories = catalogue !== undefined && "categories" in catalogue ? categoriesFor(catalogue.categories, held, draft.permissions) : [];
  const durationProblem = problemOf("maxSessionDuration");
  const nameProblem = problemOf("displayName");

  return (
    <form class="oidc-form" onSubmit={submit} noValidate aria-busy={busy} data-testid="policy-form">
      <div class="field">
        <label for="policy-name">Name</label>
        <input id="policy-name" name="displayName" required maxLength={200} autoComplete="off" autoFocus value={draft.displayName}
          aria-invalid={nameProblem !== undefined} aria-describedby="policy-name-hint"
          onInput={(e) => set("displayName", e.currentTarget.value)} />
        <small id="policy-name-hint">{nameProblem ?? "Unique within its scope (the tenant, or the organization); keyward refuses a name already taken."}</small>
      </div>
      <div class="field">
        <label for="policy-description">Description <span class="optional">(optional)</span></label>
        <textarea id="policy-description" name="description" rows={2} value={draft.description}
          onInput={(e) => set("description", e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for="policy-org">Organization <span class="optional">(optional)</span></label>
        <input id="policy-org" name="org" autoComplete="off" value={draft.org} readOnly={editing || session.org !== ""}
          aria-describedby="policy-org-hint" onInput={(e) => set("org", e.currentTarget.value)} />
        <small id="policy-org-hint">
          {editing
            ? "The scope of a policy cannot change."
            : "An organization slug pins the policy to that organization's GitHub owner; empty for a tenant-wide policy."}
        </small>
      </div>

      <fieldset class="oidc-claims">
        <legend>Required claims</legend>
        <p class="hint" id="claims-hint">
          Each filled-in claim must equal the claim in the workflow's OIDC ID token, exactly (no patterns).
          <strong> An empty field is a wildcard: it matches any value.</strong> At least one of repository owner or
          repository is required; pin the immutable ids and add a strong claim (repository, workflow or environment)
          for production.
        </p>
        {lacksOwnerAndRepository(draft) && (
          <p class="guidance" data-testid="owner-or-repository">Fill in the repository owner or the repository (or both): keyward requires at least one.</p>
        )}
        <div class="claims-grid">
          {claimFields.map((f) => (
            <div class="field" key={f.key}>
              <label for={`claim-${f.claim}`}>{f.label} <code>{f.claim}</code></label>
              <input id={`claim-${f.claim}`} name={f.claim} autoComplete="off" spellcheck={false} placeholder={`any (e.g. ${f.example})`}
                value={draft.claims[f.key]} aria-describedby={`claim-${f.claim}-hint`}
                onInput={(e) => {
                  const value = e.currentTarget.value;
                  setDraft((d) => ({ ...d, claims: { ...d.claims, [f.key]: value } }));
                }} />
              <small id={`claim-${f.claim}-hint`}>{f.hint} Empty: any.</small>
            </div>
          ))}
        </div>
      </fieldset>

      <div class="field">
        <label for="policy-duration">Max session duration (seconds)</label>
        <input id="policy-duration" name="maxSessionDuration" type="number" inputMode="numeric" min={0} max={maxSessionSeconds} step={1}
          value={draft.maxSessionDuration} aria-invalid={durationProblem !== undefined} aria-describedby="policy-duration-hint"
          onInput={(e) => set("maxSessionDuration", e.currentTarget.value)} />
        <small id="policy-duration-hint" data-testid="duration-hint">
          {durationProblem ?? `How long a minted token may live: 1 to ${maxSessionSeconds} seconds, or 0 for the server default (15 minutes).`}
        </small>
      </div>

      <fieldset class="oidc-permissions">
        <legend>Permissions a minted token may carry</legend>
        <p class="hint">Only permissions your credential holds can be allowed. Write includes read.</p>
        <div class="kw-actions">
          {session.can("*:read") && <button type="button" onClick={() => set("permissions", ["*:read"])}>Read all</button>}
          {held.includes("*:write") && <button type="button" onClick={() => set("permissions", ["*:write"])}>Read &amp; write all</button>}
          <button type="button" onClick={() => set("permissions", [])}>None</button>
        </div>
        {catalogue === undefined && <Loading label="Loading the permission catalogue…" />}
        {catalogue !== undefined && "error" in catalogue && <ErrorMessage error={catalogue.error} />}
        <div class="permissions-grid">
          {categories.map((category) => {
            const mine = levelIn(held, category);
            const current = levelIn(draft.permissions, category);
            return (
              <div class="field" key={category}>
                <label for={`perm-${category}`}>{category}</label>
                <select id={`perm-${category}`} name={`perm-${category}`} value={String(current)}
                  onChange={(e) => set("permissions", withLevel(draft.permissions, categories, category, Number(e.currentTarget.value) as Level))}>
                  <option value="0">none</option>
                  {(mine >= 1 || current === 1) && <option value="1" disabled={mine < 1}>read</option>}
                  {(mine >= 2 || current === 2) && <option value="2" disabled={mine < 2}>read &amp; write</option>}
                </select>
                {current > mine && <small class="guidance">Your credential does not hold this; keyward will refuse the change.</small>}
              </div>
            );
          })}
        </div>
        <p class="hint" data-testid="permissions-summary">Allowlist: {draft.permissions.length === 0 ? "none yet" : draft.permissions.join(", ")}</p>
      </fieldset>

      {error !== undefined && conflict && (
        <div class="conflict" role="alert" data-testid="edit-conflict">
          <p>
            <strong>Someone else changed this policy after you opened it</strong> (ETAG_MISMATCH), so your changes were not saved.
            Load the current version to see what changed, then make your edits again.
          </p>
          <button type="button" onClick={reload} disabled={busy}>Load the current version</button>
        </div>
      )}
      {error !== undefined && !conflict && <ErrorMessage error={error} />}
      {unchanged && <p class="guidance" role="alert">Nothing changed: edit a field, or cancel.</p>}

      <div class="kw-actions">
        <button type="submit" class="kw-primary" disabled={busy}>{editing ? "Save changes" : "Create policy"}</button>
        <button type="button" onClick={props.onClose}>Cancel</button>
      </div>
    </form>
  );
}
