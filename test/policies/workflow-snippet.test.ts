// The workflow snippet every policy answer carries: its YAML embeds exactly workflowScript's
// text, and that script, run with bash as GitHub runs a `shell: bash` step, requests the ID
// token for the audience, exchanges it with a JSON body built by jq, masks the minted token
// before anything prints it and exports it to $GITHUB_ENV. Stand-ins on 127.0.0.1 play the
// Actions token endpoint and the exchange.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { fromJsonString } from "@bufbuild/protobuf";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExchangeTokenRequestSchema } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { workflowScript, workflowSnippet } from "../../src/policies/workflow-snippet.ts";
import { within } from "../wait.ts";

const target = { tenant: "acme", policyName: "tenants/acme/policies/0b0e7f4e-2d8c-4f7e-9a43-3c6f1f0e9b11", audience: "acme.keyward.example.com" };
/** An ID token with characters that would break a JSON body built by string concatenation. */
const idToken = `eyJhbGciOiJSUzI1NiJ9.e30."quoted"\\back$(whoami)'`;
const minted = "eyJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiJ4In0.minted-signature";
const requestToken = "actions-request-token";

type Seen = { method: string; url: string; headers: IncomingMessage["headers"]; body: string };
let standIn: Server;
let base: string;
let seen: Seen[] = [];
/** How the stand-in exchange answers the next request. */
let exchangeAnswer: { status: number; body: unknown } = { status: 200, body: {} };

beforeAll(async () => {
  standIn = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      const url = new URL(req.url ?? "/", "http://x");
      const send = (status: number, payload: unknown) => {
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(payload));
      };
      if (url.pathname === "/token") {
        if (req.headers.authorization !== `bearer ${requestToken}`) return send(401, { message: "bad request token" });
        return send(200, { count: 1, value: idToken });
      }
      if (url.pathname === "/keyward.v1.TokenExchangeService/ExchangeToken" && req.method === "POST") return send(exchangeAnswer.status, exchangeAnswer.body);
      return send(404, { code: "not_found" });
    });
  });
  await new Promise<void>((resolve) => standIn.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(standIn.address() as AddressInfo).port}`;
});

afterAll(async () => {
  standIn.closeAllConnections();
  await new Promise((resolve) => standIn.close(resolve));
});

/** Runs the script as GitHub runs a bash step (`bash --noprofile --norc -eo pipefail file`); bounded to 15 s. */
async function runScript(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string; githubEnv: string }> {
  const dir = mkdtempSync(join(tmpdir(), "keyward-snippet-"));
  try {
    const file = join(dir, "step.sh");
    const githubEnv = join(dir, "github_env");
    writeFileSync(file, workflowScript(target));
    writeFileSync(githubEnv, "");
    const child = spawn("bash", ["--noprofile", "--norc", "-eo", "pipefail", file], {
      env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", GITHUB_ENV: githubEnv, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const code = await within(15_000, new Promise<number | null>((resolve) => child.on("close", resolve)), "the snippet's script").finally(() => child.kill("SIGKILL"));
    return { code, stdout, stderr, githubEnv: readFileSync(githubEnv, "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const actionsEnv = () => ({
  ACTIONS_ID_TOKEN_REQUEST_URL: `${base}/token?api-version=2.0`,
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken,
  KEYWARD_URL: base,
});

describe("running the script", () => {
  test("when the exchange succeeds, then the ID token is requested for the audience, the exchange gets a JSON body built by jq, and the minted token is masked before it is exported", async () => {
    seen = [];
    exchangeAnswer = { status: 200, body: { accessToken: minted, tokenType: "Bearer", expiresIn: "900" } };
    const run = await runScript(actionsEnv());
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(run.githubEnv).toBe(`KEYWARD_TOKEN=${minted}\n`);

    const [tokenRequest, exchange] = seen;
    expect(seen).toHaveLength(2);
    expect(tokenRequest?.method).toBe("GET");
    expect(tokenRequest?.url).toBe(`/token?api-version=2.0&audience=${target.audience}`);
    expect(tokenRequest?.headers.authorization).toBe(`bearer ${requestToken}`);
    expect(exchange?.method).toBe("POST");
    expect(exchange?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(exchange?.body ?? "")).toEqual({ parent: "tenants/acme", policy: target.policyName, subjectToken: idToken });
    // keyward's Connect JSON reading of that body (field names are the proto's JSON names).
    expect(fromJsonString(ExchangeTokenRequestSchema, exchange?.body ?? "")).toMatchObject({ parent: "tenants/acme", policy: target.policyName, subjectToken: idToken });

    // Each token appears only in its ::add-mask:: command, and that command comes first.
    const lines = run.stdout.split("\n").filter((l) => l !== "");
    expect(lines).toEqual([`::add-mask::${idToken}`, `::add-mask::${minted}`]);
  });

  test("when keyward refuses the exchange, then the step fails printing keyward's error (no token) and exports nothing", async () => {
    seen = [];
    exchangeAnswer = { status: 403, body: { code: "permission_denied", message: "no policy matches: repository" } };
    const run = await runScript(actionsEnv());
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain("keyward refused the exchange");
    expect(run.stderr).toContain("no policy matches: repository");
    expect(run.stderr).not.toContain(idToken);
    expect(run.githubEnv).toBe("");
  });

  test("when the answer carries no accessToken, then the step fails and exports nothing", async () => {
    exchangeAnswer = { status: 200, body: { tokenType: "Bearer" } };
    const run = await runScript(actionsEnv());
    expect(run.code).not.toBe(0);
    expect(run.githubEnv).toBe("");
  });

  test("when the Actions token endpoint refuses, then the step fails before any exchange", async () => {
    seen = [];
    const run = await runScript({ ...actionsEnv(), ACTIONS_ID_TOKEN_REQUEST_TOKEN: "wrong" });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain("could not get the job's OIDC ID token");
    expect(seen.map((s) => s.url.split("?")[0])).toEqual(["/token"]);
    expect(run.githubEnv).toBe("");
  });

  test("when the job lacks id-token: write (no request URL) or KEYWARD_URL is unset, then the step fails saying so, with no request made", async () => {
    seen = [];
    const { ACTIONS_ID_TOKEN_REQUEST_URL: _url, ...withoutUrl } = actionsEnv();
    const noPermission = await runScript(withoutUrl);
    expect(noPermission.code).not.toBe(0);
    expect(noPermission.stderr).toContain("id-token: write");
    const { KEYWARD_URL: _k, ...withoutKeyward } = actionsEnv();
    const noKeyward = await runScript({ ...withoutKeyward, KEYWARD_URL: "" });
    expect(noKeyward.code).not.toBe(0);
    expect(noKeyward.stderr).toContain("KEYWARD_URL");
    expect(seen).toEqual([]);
  });
});

describe("the YAML", () => {
  /** The `run: |` block of a snippet, de-indented. */
  function runBlock(snippet: string): string {
    const lines = snippet.split("\n");
    const start = lines.indexOf("    run: |");
    expect(start).toBeGreaterThan(0);
    return lines.slice(start + 1).map((l) => l.replace(/^ {6}/, "")).join("\n");
  }

  test("when no public URL is configured, then the step reads vars.KEYWARD_URL and says to set it; the run block is exactly the script", () => {
    const snippet = workflowSnippet({ ...target, keywardUrl: undefined });
    expect(snippet).toContain("permissions:\n  id-token: write");
    expect(snippet).toContain("\n  contents: read\n");
    expect(snippet).toContain("    shell: bash\n");
    expect(snippet).toContain("      KEYWARD_URL: ${{ vars.KEYWARD_URL }}\n");
    expect(snippet).toMatch(/# Set the repository variable KEYWARD_URL/);
    expect(runBlock(snippet)).toBe(workflowScript(target));
  });

  test("when a public URL is configured, then the step's env carries it quoted, and no expression reaches the script", () => {
    const snippet = workflowSnippet({ ...target, keywardUrl: "https://keyward.example.com/base" });
    expect(snippet).toContain("      KEYWARD_URL: 'https://keyward.example.com/base'\n");
    expect(snippet).not.toContain("vars.KEYWARD_URL");
    expect(runBlock(snippet)).toBe(workflowScript(target));
    expect(workflowScript(target)).not.toContain("${{");
    // The indented block holds no tab and no line a YAML block scalar would end at.
    for (const line of snippet.split("\n").slice(snippet.split("\n").indexOf("    run: |") + 1)) expect(line === "" || line.startsWith("      ")).toBe(true);
  });

  test("when the script is read, then it starts with set -euo pipefail, masks before exporting, and builds the body with jq --arg", () => {
    const script = workflowScript(target);
    expect(script.startsWith("set -euo pipefail\n")).toBe(true);
    expect(script.indexOf('echo "::add-mask::${token}"')).toBeLessThan(script.indexOf('>> "$GITHUB_ENV"'));
    expect(script).toContain("jq -n --arg parent");
    expect(script).toContain("--arg subjectToken");
    expect(script).toContain("--fail-with-body");
    expect(script).toContain("${KEYWARD_URL}/keyward.v1.TokenExchangeService/ExchangeToken");
  });
});
