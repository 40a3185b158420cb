// Call keyward from TypeScript: create a client, check who your key is, list your tenant's
// keys, verify a key, and read the stable reason of a refused call.
//
//   KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_KEY=kwfg_... node client.ts [key-to-verify]
//
// KEYWARD_KEY needs keys:read. The key verified is the first argument, or KEYWARD_KEY itself.
// It runs a few calls and exits (Ctrl-C / SIGTERM cancel the call in flight and exit 0).
import { createKeywardClient, errorReason, verifyResultName, Code, ConnectError } from "@keyward/sdk";

const kw = createKeywardClient({
  baseUrl: process.env["KEYWARD_URL"] ?? "http://127.0.0.1:8080",
  apiKey: process.env["KEYWARD_KEY"], // sent as `Authorization: Bearer …`, never logged
});
const stop = new AbortController();
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => stop.abort());
const call = { signal: stop.signal };

try {
  // VerifyKey needs no caller key: it says what a presented key may do, and whose it is.
  const me = await kw.keys.verifyKey({ key: process.env["KEYWARD_KEY"] ?? "" }, call);
  console.log("tenant:", me.tenant);

  const { keys } = await kw.keys.listKeys({ parent: `tenants/${me.tenant}`, pageSize: 10 }, call);
  console.log("keys:", keys.map((k) => `${k.name} (${k.displayName})`).join("; "));

  const presented = process.argv[2] ?? process.env["KEYWARD_KEY"] ?? "";
  const verdict = await kw.keys.verifyKey({ key: presented, requiredPermissions: ["keys:read"] }, call);
  console.log("verify:", verifyResultName(verdict.result), verdict.missingPermissions); // e.g. VALID []

  try {
    await kw.keys.getKey({ name: `tenants/${me.tenant}/keys/doesnotexist0000` }, call);
  } catch (err) {
    // Branch on the stable reason, never on the message.
    console.log("refused:", errorReason(err), err instanceof ConnectError ? Code[err.code] : ""); // refused: KEY_NOT_FOUND NotFound
  }
} catch (err) {
  if (!stop.signal.aborted) throw err; // stopped by a signal: a clean exit
}
