// The API reference tab: keyward's own /docs page (swagger-ui, src/server/docs/) in an iframe
// of the same origin, authorized with the session's credential through swagger-ui's
// `preauthorizeApiKey` on the instance docs.js exposes as `window.ui`, once the page has
// loaded /openapi.json (docs.js sets `keywardDocsReady` and fires "keyward:docs-ready").
// The key stays in that frame's memory: it goes when the tab does (sign-out unmounts it).
import { useRef, useState } from "preact/hooks";
import { currentCredential } from "./session.ts";

/** The security scheme of keyward's OpenAPI document (components.securitySchemes). */
const securityScheme = "bearerAuth";

/** What /docs exposes to its own origin (src/server/docs/docs.js). */
type DocsWindow = Window & {
  ui?: { preauthorizeApiKey(scheme: string, value: string): unknown };
  keywardDocsReady?: boolean;
};

/** The /docs page, authorized with the signed-in credential. */
export function ApiReferenceTab() {
  const frame = useRef<HTMLIFrameElement>(null);
  const [state, setState] = useState<"loading" | "authorized" | "failed">("loading");

  const onLoad = () => {
    const win = frame.current?.contentWindow as DocsWindow | null | undefined;
    if (win === null || win === undefined) return setState("failed");
    const authorize = () => {
      const key = currentCredential();
      if (key === undefined || win.ui === undefined) return setState("failed");
      win.ui.preauthorizeApiKey(securityScheme, key);
      setState("authorized");
    };
    if (win.keywardDocsReady === true) authorize();
    else win.addEventListener("keyward:docs-ready", authorize, { once: true });
  };

  return (
    <div class="kw-docs">
      <p class="kw-docs-status" role="status" data-testid="docs-status">
        {state === "loading"
          ? "Loading the API reference…"
          : state === "authorized"
            ? "The API reference below is authorized with your credential: “Try it out” calls keyward as you."
            : "The API reference could not be authorized: use its Authorize button."}
      </p>
      <iframe ref={frame} src="/docs" title="API reference" class="kw-docs-frame" onLoad={onLoad} />
    </div>
  );
}
