// The server's weak-policy warnings (`CODE: advice`, src/policies/policy-warnings.ts), shown
// as a badge that opens into the list (a native <details>: keyboard-usable as is).
import { splitWarning } from "./oidc-model.ts";

/** `warnings` as a "N warnings" badge; `open` shows the list from the start. Nothing for none. */
export function Warnings(props: { warnings: readonly string[]; open?: boolean; heading?: string }) {
  if (props.warnings.length === 0) return null;
  const n = props.warnings.length;
  return (
    <details class="oidc-warnings" open={props.open ?? false} data-testid="policy-warnings">
      <summary>
        <span class="badge warning">⚠ {n} {n === 1 ? "warning" : "warnings"}</span>
        {props.heading !== undefined && <span> {props.heading}</span>}
      </summary>
      <ul>
        {props.warnings.map((w) => {
          const { code, advice } = splitWarning(w);
          return (
            <li key={w}>
              {code !== "" && <code>{code}</code>} {advice}
            </li>
          );
        })}
      </ul>
    </details>
  );
}
