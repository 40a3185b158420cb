// The SDK as a consumer sees it (issue 13 item 1): build it, `npm pack` it, install the
// tarball into a fresh project, type-check a small program against it with
// `skipLibCheck: false`, and run that program against a live keyward over each transport.
// The README snippets and the programs of sdk/examples/ are copied into that project,
// type-checked and run there the same way (issue 13 item 5): the documentation runs as written.
//
// Installing without the network: the tarball is extracted into the project's
// node_modules/@keyward/sdk (what `npm install <tarball>` does for the package itself), and
// its declared dependencies are symlinked from this repository's node_modules (the exact
// versions installed here). `npm install --offline` would depend on what the npm cache
// happens to hold; symlinks are deterministic, and the test checks that the tarball
// declares exactly the dependencies linked, so a missing declaration cannot hide.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { keyIdOf, uniq } from "../rpc.ts";
import { within } from "../wait.ts";

const run = promisify(execFile);
const repo = resolve(".");
const modules = join(repo, "node_modules");
/** Packages the SDK declares as dependencies, linked into the consumer project. */
const DEPENDENCIES = ["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-node", "jose"];

let dir: string;
let app: string;
let tarballEntries: string[];
let server: TestServer;
let tenant: TestTenant;
let snippets: { file: string; code: string }[] = [];
/** The programs of sdk/examples/, as copied into the consumer project's examples/. */
let examples: string[] = [];

/** The ```ts blocks of a README that import the SDK: the documentation must run as written. */
async function readmeSnippets(file: string): Promise<{ file: string; code: string }[]> {
  const text = await readFile(join(repo, file), "utf8");
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? "").filter((code) => code.includes('from "@keyward/sdk"')).map((code) => ({ file, code }));
}

/** Runs a command without blocking this process's event loop (the live server runs in it). */
async function sh(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { cwd, env: { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false", ...env }, timeout: 45_000, maxBuffer: 16 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${err.stdout ?? ""}\n${err.stderr ?? ""}`);
  }
}

const consumer = `
import { createKeywardClient, errorReason, errorInfo, verifyResultName, VerifyResult, KeyState, Code, ConnectError, type KeywardClient, type VerifyKeyResponse } from "@keyward/sdk";
import pkg from "@keyward/sdk/package.json" with { type: "json" };

const baseUrl = process.env["KEYWARD_URL"] ?? "";
const apiKey = process.env["KEYWARD_KEY"] ?? "";
const tenant = process.env["KEYWARD_TENANT"] ?? "";
const transport = (process.env["KEYWARD_TRANSPORT"] ?? "connect") as "connect" | "grpc" | "grpc-web";

const kw: KeywardClient = createKeywardClient({ baseUrl, apiKey, transport, timeoutMs: 5000 });
const { keys } = await kw.keys.listKeys({ parent: "tenants/" + tenant });
const verified: VerifyKeyResponse = await kw.keys.verifyKey({ key: apiKey, requiredPermissions: [] });
const bogus = await kw.keys.verifyKey({ key: "kw_not_a_real_key" });
let refused: string | undefined;
let refusedCode: string | undefined;
try {
  await kw.keys.getKey({ name: "tenants/" + tenant + "/keys/doesnotexist0000" });
} catch (err) {
  refused = errorReason(err);
  refusedCode = err instanceof ConnectError ? Code[err.code] : undefined;
  if (errorInfo(err)?.domain === undefined) throw new Error("no ErrorInfo");
}
const anonymous = createKeywardClient({ baseUrl, transport });
let anonymousReason: string | undefined;
try {
  await anonymous.keys.listKeys({ parent: "tenants/" + tenant });
} catch (err) {
  anonymousReason = errorReason(err);
}
console.log(JSON.stringify({
  name: pkg.name,
  keys: keys.length,
  active: keys.every((k) => k.state === KeyState.ACTIVE),
  verdict: verifyResultName(verified.result),
  valid: verified.result === VerifyResult.VALID,
  bogus: verifyResultName(bogus.result),
  refused, refusedCode, anonymousReason,
}));
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyward-sdk-pack-"));
  app = join(dir, "app");
  // npm pack runs prepack (the build): the tarball holds what was just compiled.
  await sh("npm", ["pack", "--pack-destination", dir], join(repo, "sdk"));
  const tarball = (await readdir(dir)).find((f) => f.endsWith(".tgz"));
  if (tarball === undefined) throw new Error(`npm pack wrote no tarball into ${dir}`);
  tarballEntries = (await sh("tar", ["-tzf", join(dir, tarball)], dir)).split("\n").filter((l) => l !== "");
  await mkdir(join(app, "node_modules", "@keyward"), { recursive: true });
  await mkdir(join(app, "node_modules", "@connectrpc"), { recursive: true });
  await mkdir(join(app, "node_modules", "@bufbuild"), { recursive: true });
  await mkdir(join(app, "node_modules", "@types"), { recursive: true });
  await sh("tar", ["-xzf", join(dir, tarball)], dir);
  await rename(join(dir, "package"), join(app, "node_modules", "@keyward", "sdk"));
  for (const dep of [...DEPENDENCIES, "@types/node"]) await symlink(join(modules, dep), join(app, "node_modules", dep), "dir");
  await writeFile(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module", dependencies: { "@keyward/sdk": "file:../" + tarball } }));
  await writeFile(join(app, "tsconfig.json"), JSON.stringify({
    compilerOptions: {
      target: "es2024", module: "nodenext", moduleResolution: "nodenext", lib: ["es2024", "dom"], types: ["node"], // "dom": @connectrpc/connect's declarations name HeadersInit
      strict: true, exactOptionalPropertyTypes: true, skipLibCheck: false, noEmit: true,
      allowImportingTsExtensions: true, verbatimModuleSyntax: true, erasableSyntaxOnly: true, resolveJsonModule: true,
    },
    include: ["*.ts", "examples/*.ts"],
  }));
  await writeFile(join(app, "consumer.ts"), consumer);
  snippets = [...await readmeSnippets("README.md"), ...await readmeSnippets("sdk/README.md")];
  for (const [i, snippet] of snippets.entries()) await writeFile(join(app, `snippet-${String(i)}.ts`), snippet.code);
  examples = (await readdir(join(repo, "sdk", "examples"))).filter((f) => f.endsWith(".ts")).sort();
  await mkdir(join(app, "examples"));
  for (const f of examples) await copyFile(join(repo, "sdk", "examples", f), join(app, "examples", f));
  server = await startTestServer();
  tenant = await createTestTenant(server, "sdk");
}, 90_000);

afterAll(async () => {
  await server?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("the packed SDK in a fresh project", () => {
  it("when packed, then the tarball ships compiled .js and .d.ts (its own, the generated keyward.v1 types, google.rpc.ErrorInfo) and no TypeScript sources", () => {
    for (const f of ["package/package.json", "package/README.md", "package/dist/sdk/src/index.js", "package/dist/sdk/src/index.d.ts", "package/dist/sdk/src/client.js",
      "package/dist/gen/keyward/v1/key_service_pb.js", "package/dist/gen/keyward/v1/key_service_pb.d.ts", "package/dist/gen/google/rpc/error_details_pb.js", "package/dist/gen/google/rpc/error_details_pb.d.ts"]) {
      expect(tarballEntries).toContain(f);
    }
    expect(tarballEntries.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
    expect(tarballEntries.filter((f) => !f.startsWith("package/dist/") && f !== "package/package.json" && f !== "package/README.md")).toEqual([]);
  });

  it("when installed, then its manifest declares exactly the runtime dependencies linked here, ESM, Node >= 22, and exports with types", async () => {
    const manifest = JSON.parse(await readFile(join(app, "node_modules", "@keyward", "sdk", "package.json"), "utf8")) as Record<string, unknown>;
    expect(manifest["name"]).toBe("@keyward/sdk");
    expect(manifest["type"]).toBe("module");
    expect(manifest["engines"]).toEqual({ node: ">=22" });
    expect(Object.keys(manifest["dependencies"] as object).sort()).toEqual([...DEPENDENCIES].sort());
    expect(manifest["peerDependencies"]).toBeUndefined();
    expect((manifest["exports"] as Record<string, Record<string, string>>)["."]).toEqual({ types: "./dist/sdk/src/index.d.ts", default: "./dist/sdk/src/index.js" });
  });

  it("when a consumer program is type-checked against it with skipLibCheck false, then it compiles cleanly", async () => {
    await sh(join(modules, ".bin", "tsc"), ["-p", join(app, "tsconfig.json")], app);
  });

  it.each(["connect", "grpc", "grpc-web"])("when the consumer runs against a live keyward over %s, then it lists keys, prints the verdict by name and the reason of a refused call", async (transport) => {
    const out = await sh(process.execPath, ["consumer.ts"], app, { KEYWARD_URL: server.url, KEYWARD_KEY: tenant.adminKey, KEYWARD_TENANT: tenant.slug, KEYWARD_TRANSPORT: transport });
    const lines = out.trim().split("\n");
    expect(JSON.parse(lines[lines.length - 1] ?? "")).toEqual({
      name: "@keyward/sdk", keys: 1, active: true, verdict: "VALID", valid: true, bogus: "MALFORMED",
      refused: "KEY_NOT_FOUND", refusedCode: "NotFound", anonymousReason: "UNAUTHENTICATED",
    });
    expect(out).not.toContain(tenant.adminKey);
    expect(server.logs.join("\n")).not.toContain(tenant.adminKey);
  });

  it("when the README snippets (main README and sdk/README.md) are type-checked and run as written against a live keyward, then each prints what its comments say", async () => {
    expect(snippets.map((x) => x.file)).toEqual(["README.md", "sdk/README.md", "sdk/README.md", "sdk/README.md", "sdk/README.md", "sdk/README.md"]);
    /** What a snippet prints, recognized by what it calls: every snippet must match at least one, so none runs unchecked. */
    const prints: [string, RegExp][] = [
      ["verifyResultName(result), result === VerifyResult.VALID", /^VALID true( \[\])?$/m],
      ["errorReason(err)", /^[A-Z_]+$/m],
      ["verifier.verify(", /^verifier: VALID true \[\]$/m],
      // The five-line guard (sdk/README.md step 3): a 200 from its own guarded server, with the key's id from req.keyward.
      ["keywardMiddleware(", new RegExp(`^guarded: 200 hello ${keyIdOf(tenant.adminKey)}$`, "m")],
      // "Verify a minted token offline" (step 4): a real user token VALID, a tampered one refused.
      ["createMintedTokenVerifier(", /^offline: VALID true \[\]\noffline: MALFORMED INVALID_SIGNATURE$/m],
    ];
    const verifyKeyCalls = () => server.logs.filter((l) => l.includes("KeyService/VerifyKey")).length;
    for (const [i, snippet] of snippets.entries()) {
      const expected = prints.filter(([calls]) => snippet.code.includes(calls));
      expect({ snippet: i, checks: expected.length > 0 }).toEqual({ snippet: i, checks: true });
      const callsBefore = verifyKeyCalls();
      const out = await sh(process.execPath, [`snippet-${String(i)}.ts`], app, { KEYWARD_URL: server.url, KEYWARD_KEY: tenant.adminKey, KEYWARD_TENANT: tenant.slug });
      for (const [, line] of expected) expect(out).toMatch(line);
      // Offline verification makes no VerifyKey call.
      if (snippet.code.includes("createMintedTokenVerifier(")) expect(verifyKeyCalls()).toBe(callsBefore);
      expect(out).not.toContain(tenant.adminKey);
    }
  });
});

/** Example servers started by the tests (stopped in afterAll if a test failed before stopping one). */
const running = new Set<ChildProcess>();

afterAll(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/**
 * Starts `examples/<file>` in the consumer project as a child process (as a user would: `node
 * examples/guard-http.ts`) and resolves with the URL it prints once listening (within 10 s).
 */
async function startExample(file: string, env: Record<string, string>): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, [join("examples", file)], { cwd: app, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let output = "";
  const listening = new Promise<string>((resolve, reject) => {
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      const m = /^listening on (http:\/\/\S+)$/m.exec(output);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.once("exit", (code, signal) => reject(new Error(`${file} exited (${String(code ?? signal)}) before listening:\n${output}`)));
  });
  return { child, url: await within(10_000, listening, `${file} printing its URL`), output: () => output };
}

/** Sends SIGTERM and resolves with the exit code and signal (within 5 s). */
async function terminate(child: ChildProcess): Promise<[number | null, NodeJS.Signals | null]> {
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  child.kill("SIGTERM");
  return within(5000, exited, "the example exiting after SIGTERM");
}

type Answer = { status: number; body: string; wwwAuthenticate: string | null };

async function request(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.text(), wwwAuthenticate: res.headers.get("www-authenticate") };
}

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

describe("the examples of sdk/examples, run from the consumer project against a live keyward", () => {
  let ex: TestTenant;
  /** The example service's own key: keys:read (the verifier's invalidation stream). Lacks harden_runner:read: the 403 case. */
  let serviceKey: string;
  /** A caller's key holding harden_runner:read, what the guarded examples require. */
  let callerKey: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    ex = await createTestTenant(server, "sdkex");
    const keys = server.client(KeyService);
    const create = async (permissions: string[]): Promise<string> =>
      (await keys.createKey({ parent: `tenants/${ex.slug}`, displayName: uniq("example"), permissions, expireDays: 1 }, withKey(ex.adminKey))).secret;
    serviceKey = await create(["keys:read"]);
    callerKey = await create(["harden_runner:read"]);
    env = { KEYWARD_URL: server.url, KEYWARD_KEY: serviceKey };
  });

  it("(precondition) the examples copied are exactly client.ts, guard-connect.ts and guard-http.ts", () => {
    expect(examples).toEqual(["client.ts", "guard-connect.ts", "guard-http.ts"]);
  });

  it("when client.ts runs, then it prints its tenant, the tenant's keys, the verdict of the key given and the reason of a refused call", async () => {
    const own = (await sh(process.execPath, ["examples/client.ts"], app, env)).split("\n");
    expect(own).toContain(`tenant: ${ex.slug}`);
    const listed = own.find((l) => l.startsWith("keys: ")) ?? "";
    expect(listed).toContain(`tenants/${ex.slug}/keys/${keyIdOf(serviceKey)} (example-`);
    expect(listed).toContain(`tenants/${ex.slug}/keys/${keyIdOf(ex.adminKey)} (admin (primary))`);
    expect(own).toContain("verify: VALID []");
    expect(own).toContain("refused: KEY_NOT_FOUND NotFound");
    // A key given as argument is verified for keys:read, which the caller's key lacks.
    const other = (await sh(process.execPath, ["examples/client.ts", callerKey], app, env)).split("\n");
    expect(other).toContain("verify: INSUFFICIENT_PERMISSIONS [ 'keys:read' ]");
    expect([...own, ...other].join("\n")).not.toContain(serviceKey);
  });

  it("when guard-http.ts serves, then /hello answers 401 without a key, 200 with the caller's identity, 403 without harden_runner:read, and SIGTERM exits 0", async () => {
    const { child, url, output } = await startExample("guard-http.ts", env);
    try {
      expect(await request(`${url}/healthz`)).toEqual({ status: 200, body: "ok\n", wwwAuthenticate: null });
      expect(await request(`${url}/hello`)).toEqual({ status: 401, body: '{"error":{"code":"unauthorized","message":"Missing or invalid API key"}}', wwwAuthenticate: "Bearer" });
      expect(await request(`${url}/hello`, { headers: { authorization: "Bearer" } })).toMatchObject({ status: 401 });
      for (const authorization of [`Bearer ${callerKey}`, `bearer ${callerKey}`]) {
        const ok = await request(`${url}/hello`, { headers: { authorization } });
        expect({ status: ok.status, body: JSON.parse(ok.body) as unknown }).toEqual({ status: 200, body: { hello: keyIdOf(callerKey), tenant: ex.slug } });
      }
      expect(await request(`${url}/hello`, { headers: bearer(serviceKey) })).toEqual({ status: 403, body: '{"error":{"code":"forbidden","message":"Insufficient scope for this action"}}', wwwAuthenticate: null });
    } finally {
      expect(await terminate(child)).toEqual([0, null]);
    }
    expect(output()).toMatch(/^closed$/m);
    expect(output()).not.toContain(callerKey);
  });

  it("when guard-connect.ts serves, then GetKey answers Unauthenticated (401) without a key, the caller's identity from the context with one, PermissionDenied (403) without harden_runner:read, and SIGTERM exits 0", async () => {
    const { child, url, output } = await startExample("guard-connect.ts", env);
    const getKey = `${url}/keyward.v1.KeyService/GetKey`;
    const post = (headers: Record<string, string> = {}): Promise<Answer> =>
      request(getKey, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ name: "me" }) });
    try {
      expect(await post()).toEqual({ status: 401, body: '{"code":"unauthenticated","message":"Missing or invalid API key"}', wwwAuthenticate: null });
      const ok = await post(bearer(callerKey));
      expect({ status: ok.status, body: JSON.parse(ok.body) as unknown }).toEqual({
        status: 200,
        body: { key: { name: `tenants/${ex.slug}/keys/${keyIdOf(callerKey)}`, keyId: keyIdOf(callerKey), tenant: ex.slug, owner: `tenants/${ex.slug}/principals/admin`, permissions: ["harden_runner:read"] } },
      });
      expect(await post(bearer(serviceKey))).toEqual({ status: 403, body: '{"code":"permission_denied","message":"Insufficient scope for this action"}', wwwAuthenticate: null });
    } finally {
      expect(await terminate(child)).toEqual([0, null]);
    }
    expect(output()).toMatch(/^closed$/m);
    expect(output()).not.toContain(callerKey);
  });
});
