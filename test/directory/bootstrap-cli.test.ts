// `keyward bootstrap` against DATABASE_URL (the run's PostgreSQL) while a server uses it,
// and the `keyward` bin under an older system Node.
import { describe, expect, test } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { KeyKind } from "../../gen/keyward/v1/key_pb.ts";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { repoRoot, runCli } from "../cli.ts";
import { testDatabaseUrl, withKey } from "../harness.ts";
import { audit, keys, useServer } from "../rpc.ts";

useServer();

describe("keyward bootstrap with DATABASE_URL", () => {
  test("when run twice for a new tenant, then it creates the tenant once, prints two admin keys (primary, secondary) that both work, and audits it", async () => {
    const slug = `cli-${process.pid}-${Date.now().toString(36)}`;
    const env = { DATABASE_URL: testDatabaseUrl() };
    const first = await runCli(["bootstrap", "--tenant", slug, "--json"], env);
    expect(first.code).toBe(0);
    const one = JSON.parse(first.stdout) as { tenantCreated: boolean; slot: string; secret: string; keyName: string };
    expect(one).toMatchObject({ tenantCreated: true, slot: "primary" });
    const second = await runCli(["bootstrap", "--tenant", slug, "--json"], env);
    const two = JSON.parse(second.stdout) as { tenantCreated: boolean; slot: string; secret: string };
    expect(two).toMatchObject({ tenantCreated: false, slot: "secondary" });
    expect(first.stderr + second.stderr).not.toContain(one.secret);

    for (const secret of [one.secret, two.secret]) {
      const res = await keys.verifyKey({ key: secret, requiredPermissions: ["keys:write", "audit:read"] });
      expect(res.result).toBe(VerifyResult.VALID);
      expect(res.kind).toBe(KeyKind.ADMIN);
      expect(res.tenant).toBe(slug);
    }
    const { events } = await audit.listAuditEvents({ parent: `tenants/${slug}`, actor: "keyward:bootstrap" }, withKey(two.secret));
    expect(events.map((e) => e.action).sort()).toEqual(["key.rotate", "key.rotate", "principal.create", "tenant.create"]);
  });
});

describe("the keyward bin", () => {
  const systemNode = ["/usr/bin/node", "/usr/local/bin/node"].find((p) => existsSync(p));
  (systemNode === undefined ? test.skip : test)("when started by an older system Node, then it re-runs itself on the pinned Node 24", () => {
    const out = spawnSync(systemNode!, [join(repoRoot, "bin", "keyward.js"), "--help"], { encoding: "utf8", timeout: 30_000 });
    expect(out.status).toBe(0);
    expect(out.stdout).toContain("usage: keyward");
  });
});
