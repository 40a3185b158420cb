// The workflow snippet works (issue 11, item 6): the `run:` script of the snippet a policy
// answer carries is run, as the server sent it, with `bash` against a local stand-in for
// GitHub's Actions ID-token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL / _TOKEN, answering
// {"value": <token>} from the local issuer) and the live keyward; the token it exports must
// verify. Needs bash, curl and jq (.ci/run installs curl and jq when missing).
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { createTestTenant, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { uniq } from "../rpc.ts";
import type { LocalIssuer } from "../oidc/local-issuer.ts";
import { startExchangeWorld, type ExchangeWorld } from "./exchange-support.ts";

let w: ExchangeWorld;
let issuer: LocalIssuer;
let server: TestServer;
let t: TestTenant;
let dir: string;

beforeAll(async () => {
  w = await startExchangeWorld(["ci"]);
  server = w.server;
  issuer = w.issuers["ci"]!;
  t = await createTestTenant(server, "snip");
  dir = mkdtempSync(join(tmpdir(), "keyward-snippet-"));
});
afterAll(async () => {
  await w?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** The `run: |` block of a snippet, de-indented: exactly what the runner would execute. */
function runBlockOf(snippet: string): string {
  const lines = snippet.split("\n");
  const start = lines.findIndex((l) => l.trim() === "run: |");
  expect(start).toBeGreaterThan(0);
  const body = lines.slice(start + 1);
  const indent = /^ */.exec(body[0]!)![0].length;
  return `${body.map((l) => l.slice(indent)).join("\n")}\n`;
}

/** Runs `script` with bash as a GitHub runner would (`bash --noprofile --norc -eo pipefail`), bounded in time. */
function runStep(script: string, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(dir, `${uniq("step")}.sh`);
  writeFileSync(file, script);
  return new Promise((resolve) => {
    execFile("bash", ["--noprofile", "--norc", "-eo", "pipefail", file], { env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr });
    });
  });
}

async function policyWith(claims: Record<string, string>) {
  const res = await server.client(PolicyService).createPolicy(
    { parent: `tenants/${t.slug}`, policy: { displayName: uniq("ci"), claims, permissions: ["harden_runner:read"] } },
    withKey(t.adminKey),
  );
  return res.policy!;
}

/** Runs the snippet's `run:` block as a job whose ID token comes from `actions`, with an empty GITHUB_ENV file; returns the run and that file. */
async function runSnippetJob(policy: { workflowSnippet: string }, actions: { url: string; requestToken: string }) {
  const githubEnv = join(dir, uniq("github-env"));
  writeFileSync(githubEnv, "");
  const run = await runStep(runBlockOf(policy.workflowSnippet), {
    ACTIONS_ID_TOKEN_REQUEST_URL: actions.url,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: actions.requestToken,
    KEYWARD_URL: server.url,
    GITHUB_ENV: githubEnv,
  });
  return { run, githubEnv };
}

describe("the workflow snippet, run with bash", () => {
  test("when the snippet's script runs in a job whose token matches, then it masks the token first and exports KEYWARD_TOKEN, which verifies", async () => {
    const policy = await policyWith({ repositoryOwner: "acme", repository: "acme/deploy", repositoryId: "123456789" });
    expect(policy.workflowSnippet).toContain("id-token: write");
    expect(policy.workflowSnippet).toContain(policy.audience);
    const { run, githubEnv } = await runSnippetJob(policy, issuer.actionsTokenEndpoint());
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);

    const exported = readFileSync(githubEnv, "utf8");
    const match = /^KEYWARD_TOKEN=(\S+)$/m.exec(exported);
    expect(match).not.toBeNull();
    const token = match![1]!;
    // The runner hides a value only after `::add-mask::` names it: the mask comes first and
    // the token appears in the output nowhere else.
    expect(run.stdout.split(token)).toHaveLength(2);
    expect(run.stdout).toContain(`::add-mask::${token}`);

    const verified = await server.client(KeyService).verifyKey({ key: token, requiredPermissions: ["harden_runner:read"] });
    expect(verified.result).toBe(VerifyResult.VALID);
    expect(verified.policy).toBe(policy.name);
  });

  test("when the job's token does not satisfy the policy, then the script fails with keyward's reason and exports nothing", async () => {
    const policy = await policyWith({ repositoryOwner: "acme", repository: "acme/infra" });
    const { run, githubEnv } = await runSnippetJob(policy, issuer.actionsTokenEndpoint({ repository: "acme/infra-evil" }));
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain("keyward refused the exchange");
    expect(run.stderr).toContain("CLAIM_MISMATCH");
    expect(run.stderr).not.toContain("acme/infra\"");
    expect(readFileSync(githubEnv, "utf8")).toBe("");
  });

  test("when the job lacks id-token: write (no request URL), then the script stops with a clear message before any request", async () => {
    const policy = await policyWith({ repositoryOwner: "acme", repository: "acme/deploy" });
    const before = issuer.requests.actions;
    const run = await runStep(runBlockOf(policy.workflowSnippet), { KEYWARD_URL: server.url, GITHUB_ENV: join(dir, "unused") });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain("id-token: write");
    expect(issuer.requests.actions).toBe(before);
  });
});
