// Races through the real server: many identical calls at once must produce exactly one
// effect (or a clean, retryable refusal), and nothing half-written in keys or audit.
import { describe, expect, test } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { KeyKind, KeySlot, KeyState } from "../../gen/keyward/v1/key_pb.ts";
import { VerifyResult, type RotateKeyResponse } from "../../gen/keyward/v1/key_service_pb.ts";
import { createTestTenant, withKey, type TestTenant } from "../harness.ts";
import { audit, directory, keys, reasonOf, server, useServer } from "../rpc.ts";

useServer();

type Settled<T> = { ok: T[]; failed: ConnectError[] };

/** Runs `n` calls at once and splits the answers; anything but a ConnectError fails the test. */
async function race<T>(n: number, call: (i: number) => Promise<T>): Promise<Settled<T>> {
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => call(i)));
  const ok: T[] = [];
  const failed: ConnectError[] = [];
  for (const r of results) {
    if (r.status === "fulfilled") ok.push(r.value);
    else if (r.reason instanceof ConnectError) failed.push(r.reason);
    else throw r.reason;
  }
  return { ok, failed };
}

/** code/reason pairs of failures, counted, e.g. { "AlreadyExists/KEY_NAME_TAKEN": 49 }. */
function tally(failed: readonly ConnectError[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of failed) {
    const label = `${Code[e.code]}/${reasonOf(e) ?? "-"}`;
    out[label] = (out[label] ?? 0) + 1;
  }
  return out;
}

async function auditEvents(t: TestTenant, filter: { action: string; resource?: string; actor?: string; outcome?: AuditOutcome }) {
  const events = [];
  let pageToken = "";
  for (let i = 0; i < 20; i++) {
    const res = await audit.listAuditEvents({ parent: `tenants/${t.slug}`, pageSize: 100, pageToken, ...filter }, withKey(t.adminKey));
    events.push(...res.events);
    pageToken = res.nextPageToken;
    if (pageToken === "") return events;
  }
  throw new Error("too many audit pages");
}

async function listKeys(t: TestTenant, filter: { kind?: KeyKind; state?: KeyState }, caller = t.adminKey) {
  const res = await keys.listKeys({ parent: `tenants/${t.slug}`, pageSize: 1000, ...filter }, withKey(caller));
  expect(res.nextPageToken).toBe("");
  return res.keys;
}

describe("concurrency", () => {
  test("when 50 CreateKey calls race with the same name, then exactly one succeeds and 49 get AlreadyExists KEY_NAME_TAKEN", async () => {
    const t = await createTestTenant(server);
    const { ok, failed } = await race(50, () =>
      keys.createKey({ parent: `tenants/${t.slug}`, displayName: "deploy-bot", permissions: ["keys:read"], expireDays: 30 }, withKey(t.adminKey)),
    );
    expect(ok).toHaveLength(1);
    expect(tally(failed)).toEqual({ "AlreadyExists/KEY_NAME_TAKEN": 49 });

    const winner = ok[0]!;
    expect((await keys.verifyKey({ key: winner.secret })).result).toBe(VerifyResult.VALID);
    const listed = await listKeys(t, { kind: KeyKind.FINE_GRAINED });
    expect(listed.map((k) => k.name)).toEqual([winner.key!.name]);

    const created = await auditEvents(t, { action: "key.create", outcome: AuditOutcome.SUCCESS });
    expect(created.map((e) => e.resource)).toEqual([winner.key!.name]);
    const refused = await auditEvents(t, { action: "key.create", outcome: AuditOutcome.DENIED });
    expect(refused.map((e) => e.reason)).toEqual(Array(49).fill("KEY_NAME_TAKEN"));
  });

  test("when 50 RevokeKey calls race on one key, then exactly one succeeds and 49 get FailedPrecondition ALREADY_REVOKED", async () => {
    const t = await createTestTenant(server);
    const created = await keys.createKey({ parent: `tenants/${t.slug}`, displayName: "to-revoke", permissions: ["keys:read"], expireDays: 30 }, withKey(t.adminKey));
    const name = created.key!.name;
    const { ok, failed } = await race(50, (i) => keys.revokeKey({ name, reason: `reason ${i}` }, withKey(t.adminKey)));
    expect(ok).toHaveLength(1);
    expect(tally(failed)).toEqual({ "FailedPrecondition/ALREADY_REVOKED": 49 });

    const winner = ok[0]!.key!;
    const got = (await keys.getKey({ name }, withKey(t.adminKey))).key!;
    expect(got.state).toBe(KeyState.REVOKED);
    expect(got.revokeReason).toBe(winner.revokeReason);
    expect((await keys.verifyKey({ key: created.secret })).result).toBe(VerifyResult.REVOKED);

    const revoked = await auditEvents(t, { action: "key.revoke", resource: name, outcome: AuditOutcome.SUCCESS });
    expect(revoked).toHaveLength(1);
    expect(revoked[0]!.details["reason"]).toBe(winner.revokeReason);
  });

  test.each([
    ["holds a value", true],
    ["is empty", false],
  ])("when 20 RotateKey calls race on a slot that %s, then each is OK or Aborted CONCURRENT_ROTATION and one live value remains", async (_label, occupied) => {
    const t = await createTestTenant(server);
    const parent = `tenants/${t.slug}`;
    const rotate = () => keys.rotateKey({ parent, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY }, withKey(t.adminKey));
    const before: RotateKeyResponse[] = occupied ? [await rotate()] : [];

    const { ok, failed } = await race(20, rotate);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(ok.length + failed.length).toBe(20);
    if (failed.length > 0) expect(tally(failed)).toEqual({ "Aborted/CONCURRENT_ROTATION": failed.length });

    // Each success replaced a different value: no rotation was lost.
    const replaced = ok.map((r) => r.replaced).filter((r) => r !== "");
    expect(new Set(replaced).size).toBe(replaced.length);
    expect(replaced.length).toBe(occupied ? ok.length : ok.length - 1);

    const live = await listKeys(t, { kind: KeyKind.READ_ONLY, state: KeyState.ACTIVE });
    expect(live).toHaveLength(1);
    expect(live[0]!.slot).toBe(KeySlot.PRIMARY);
    const all = [...before, ...ok];
    const current = all.find((r) => r.key!.name === live[0]!.name);
    expect(current).toBeDefined();
    expect((await keys.verifyKey({ key: current!.secret, requiredPermissions: ["keys:read"] })).result).toBe(VerifyResult.VALID);
    for (const other of all.filter((r) => r !== current)) {
      expect((await keys.verifyKey({ key: other.secret })).result).toBe(VerifyResult.REVOKED);
    }
    expect(await listKeys(t, { kind: KeyKind.READ_ONLY })).toHaveLength(all.length);
    const rotations = await auditEvents(t, { action: "key.rotate", actor: `${parent}/principals/admin`, outcome: AuditOutcome.SUCCESS });
    expect(rotations.map((e) => e.resource).sort()).toEqual(all.map((r) => r.key!.name).sort());
  });

  test("when 50 CreatePrincipal calls race with the same id, then exactly one succeeds and 49 get AlreadyExists", async () => {
    const t = await createTestTenant(server);
    const { ok, failed } = await race(50, () =>
      directory.createPrincipal(
        { parent: `tenants/${t.slug}`, principalId: "ci-bot", type: PrincipalType.SERVICE_ACCOUNT, permissions: ["keys:read"] },
        withKey(t.adminKey),
      ),
    );
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(49);
    expect(failed.every((e) => e.code === Code.AlreadyExists)).toBe(true);

    const principals = await directory.listPrincipals({ parent: `tenants/${t.slug}`, pageSize: 1000 }, withKey(t.adminKey));
    expect(principals.principals.map((p) => p.principalId).sort()).toEqual(["admin", "ci-bot"]);
    const created = await auditEvents(t, { action: "principal.create", outcome: AuditOutcome.SUCCESS });
    // (bootstrap's own principal.create of `admin` is the other event)
    expect(created.map((e) => e.resource).sort()).toEqual([`tenants/${t.slug}/principals/admin`, `tenants/${t.slug}/principals/ci-bot`]);
  });
});
