// RPC failures shown to the person at the console; the words come from describe-error.ts.
import { describeError } from "./describe-error.ts";

export { describeError, type DescribedError } from "./describe-error.ts";

/** An error as an alert: the sentence, then the code and reason in small print. */
export function ErrorMessage(props: { error: unknown }) {
  const d = describeError(props.error);
  return (
    <div class="kw-error" role="alert">
      <p class="kw-error-message">{d.message}</p>
      <p class="kw-error-code">
        {d.code}
        {d.reason !== undefined ? ` · ${d.reason}` : ""}
      </p>
    </div>
  );
}
