// A page of the console's shared widgets (ui.tsx, errors.tsx) for test/console/ui.test.ts:
// bundled by the test with esbuild and served under the console's CSP.
import "../src/console.css";
import { Code, ConnectError } from "@connectrpc/connect";
import { render } from "preact";
import { useState } from "preact/hooks";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { ErrorMessage } from "../src/errors.tsx";
import { Confirm, CopyButton, Dialog, Empty, Loading } from "../src/ui.tsx";

const secret = "kwfg_FIXTURE_SECRET_0123456789";
const denied = new ConnectError("Insufficient scope for this action: needs keys:write", Code.PermissionDenied, undefined, [
  { desc: ErrorInfoSchema, value: { reason: "INSUFFICIENT_SCOPE", domain: "keyward", metadata: { permission: "keys:write" } } },
]);

function Fixture() {
  const [dialog, setDialog] = useState(false);
  const [confirm, setConfirm] = useState(false);
  const [outcome, setOutcome] = useState("none");
  return (
    <main class="kw-panel">
      <button type="button" onClick={() => setDialog(true)}>
        Show secret
      </button>
      <button type="button" onClick={() => setConfirm(true)}>
        Delete thing
      </button>
      <p data-testid="outcome">{outcome}</p>
      <Dialog open={dialog} title="New key" onClose={() => setDialog(false)} testId="secret-dialog">
        <p>It will not be shown again.</p>
        <code data-testid="secret">{secret}</code> <CopyButton text={secret} label="Copy key" />
        <p>
          <input aria-label="Note" />
        </p>
      </Dialog>
      <Confirm
        open={confirm}
        title="Delete the thing?"
        message="The thing goes for good."
        confirmLabel="Delete"
        danger
        onConfirm={() => {
          setOutcome("confirmed");
          setConfirm(false);
        }}
        onCancel={() => {
          setOutcome("canceled");
          setConfirm(false);
        }}
      />
      <Loading />
      <Empty>Nothing here yet.</Empty>
      <ErrorMessage error={denied} />
    </main>
  );
}

const root = document.getElementById("app");
if (root !== null) render(<Fixture />, root);
