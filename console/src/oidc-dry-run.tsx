// The dry run (PolicyService.TestPolicy, DESIGN.md §4): an engineer pastes a workflow's
// claims (JSON) or its OIDC ID token and reads which policy matches and, for each that does
// not, which claim failed, in words. Bad JSON is refused here before any call. A pasted
// token lives only in this component's state and its textarea: "Clear", switching to
// claims, or leaving the tab (the shell keeps a visited tab's panel mounted, hidden) removes
// it from the DOM.
import { useEffect, useRef, useState } from "preact/hooks";
import type { TestPolicyResponse } from "../../gen/keyward/v1/policy_service_pb.ts";
import { ErrorMessage } from "./errors.tsx";
import { looksLikeToken, matchInWords, parseClaims, splitWarning } from "./oidc-model.ts";
import type { Session } from "./session.ts";

type Mode = "claims" | "token";

const exampleClaims = `{
  "repository_owner": "acme",
  "repository": "acme/deploy",
  "ref": "refs/heads/main",
  "environment": "production"
}`;

/** The dry-run panel of the OIDC federation tab. */
export function DryRunPanel(props: { session: Session }) {
  const { session } = props;
  const [mode, setMode] = useState<Mode>("claims");
  const [claimsText, setClaimsText] = useState("");
  const [token, setToken] = useState("");
  const [inputError, setInputError] = useState<string | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [result, setResult] = useState<TestPolicyResponse | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const sectionRef = useRef<HTMLElement>(null);

  // The shell hides a tab's panel when another tab is selected: forget the input then.
  useEffect(() => {
    const panel = sectionRef.current?.closest<HTMLElement>('[role="tabpanel"]');
    if (panel === null || panel === undefined) return;
    const observer = new MutationObserver(() => {
      if (panel.hidden) clear();
    });
    observer.observe(panel, { attributes: true, attributeFilter: ["hidden"] });
    return () => observer.disconnect();
  }, []);

  function clear() {
    setClaimsText("");
    setToken("");
    setInputError(undefined);
    setError(undefined);
    setResult(undefined);
  }

  function switchTo(next: Mode) {
    // Never keep a pasted token around once it is not the input in use.
    clear();
    setMode(next);
  }

  async function run(e: Event) {
    e.preventDefault();
    if (busy) return;
    setError(undefined);
    setResult(undefined);
    let request: { claims: Record<string, string> } | { subjectToken: string };
    if (mode === "claims") {
      if (looksLikeToken(claimsText)) {
        setInputError("This looks like an ID token, not JSON claims: choose \"ID token\" above and paste it there.");
        return;
      }
      const parsed = parseClaims(claimsText);
      if (!parsed.ok) {
        setInputError(parsed.error);
        return;
      }
      request = { claims: parsed.claims };
    } else {
      const t = token.trim();
      if (t === "") {
        setInputError("Paste the workflow's OIDC ID token (three dot-separated parts).");
        return;
      }
      if (!looksLikeToken(t)) {
        setInputError("This is not an ID token (a compact JWT: three base64url parts separated by dots). To test claims, choose \"Claims (JSON)\".");
        return;
      }
      request = { subjectToken: t };
    }
    setInputError(undefined);
    setBusy(true);
    try {
      setResult(await session.api.policies.testPolicy({ parent: `tenants/${session.tenant}`, ...request }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const matched = result?.results.filter((r) => r.matched) ?? [];

  return (
    <section ref={sectionRef} class="oidc-dry-run" aria-labelledby="dry-run-heading" data-testid="dry-run">
      <h3 id="dry-run-heading">Dry run</h3>
      <p class="hint">
        Paste a workflow's claims or its OIDC ID token to see which trust policy would accept it and, for each that would
        not, which claim failed. Nothing is exchanged or stored.
      </p>
      <form onSubmit={run} noValidate aria-busy={busy}>
        <fieldset class="oidc-mode">
          <legend>Test with</legend>
          <label><input type="radio" name="dry-run-mode" value="claims" checked={mode === "claims"} onChange={() => switchTo("claims")} /> Claims (JSON)</label>
          <label><input type="radio" name="dry-run-mode" value="token" checked={mode === "token"} onChange={() => switchTo("token")} /> ID token</label>
        </fieldset>
        {mode === "claims" ? (
          <div class="field">
            <label for="dry-run-claims">Claims (JSON object; names as in GitHub's ID token)</label>
            <textarea id="dry-run-claims" rows={7} spellcheck={false} autoComplete="off" placeholder={exampleClaims}
              value={claimsText} aria-invalid={inputError !== undefined} aria-describedby="dry-run-input-error"
              onInput={(e) => setClaimsText(e.currentTarget.value)} />
          </div>
        ) : (
          <div class="field">
            <label for="dry-run-token">OIDC ID token</label>
            <textarea id="dry-run-token" rows={4} spellcheck={false} autoComplete="off" placeholder="eyJhbGciOiJSUzI1NiIs…"
              value={token} aria-invalid={inputError !== undefined} aria-describedby="dry-run-input-error"
              onInput={(e) => setToken(e.currentTarget.value)} />
            <small>keyward verifies the token (issuer, signature, audience) like an exchange but does not consume it; an expired one is still compared, with a note. Clear removes it from the page.</small>
          </div>
        )}
        {inputError !== undefined && <p id="dry-run-input-error" class="error" role="alert" data-testid="dry-run-input-error">{inputError}</p>}
        <div class="kw-actions">
          <button type="submit" class="kw-primary" disabled={busy}>Run dry run</button>
          <button type="button" onClick={clear}>Clear</button>
        </div>
      </form>
      {error !== undefined && <ErrorMessage error={error} />}
      {result !== undefined && (
        <div class="dry-run-result" data-testid="dry-run-result" aria-live="polite">
          <p role="status" data-testid="dry-run-verdict">
            {result.results.length === 0
              ? "There are no trust policies in scope to compare with."
              : matched.length === 0
                ? "No policy matches: an exchange with these claims would be refused (NO_MATCHING_POLICY)."
                : matched.length === 1
                  ? `The policy "${matched[0]!.displayName}" matches: an exchange would use it.`
                  : `${matched.length} policies match (${matched.map((m) => m.displayName).join(", ")}): an exchange must name one of them.`}
          </p>
          {result.notes.map((n) => {
            const { code, advice } = splitWarning(n);
            return <p class="note" key={n}>{code !== "" && <code>{code}</code>} {advice}</p>;
          })}
          {result.results.length > 0 && (
            <table class="oidc-table">
              <thead><tr><th scope="col">Policy</th><th scope="col">Result</th></tr></thead>
              <tbody>
                {result.results.map((r) => (
                  <tr key={r.policy} class={r.matched ? "match" : "no-match"} data-testid="dry-run-row" data-policy={r.displayName}>
                    <th scope="row">{r.displayName}</th>
                    <td>
                      <span class={`badge ${r.matched ? "ok" : "fail"}`}>{r.matched ? "✓ matches" : `✗ fails on ${r.failedClaim}`}</span>{" "}
                      {matchInWords(r)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <details>
            <summary>Claims compared ({Object.keys(result.claims).length}) · audience <code>{result.audience}</code></summary>
            <dl class="claims-compared">
              {Object.entries(result.claims).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => (
                <div key={k}><dt><code>{k}</code></dt><dd>{v}</dd></div>
              ))}
            </dl>
          </details>
        </div>
      )}
    </section>
  );
}
