// keyward's signing keys at start: created once (even by replicas starting together), the
// private part sealed under the key-encryption key (from the environment, or generated into
// the data folder), and a KEK that does not open them is a clear startup error. Each test
// uses a PostgreSQL of its own: the run's shared database is sealed under the tests' KEK.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { createKeyEncryption } from "../../src/tokens/key-encryption.ts";
import { StartupError } from "../../src/startup-error.ts";
import { runCli } from "../cli.ts";
import { createTestTenant, startTestServer, type TestServer } from "../harness.ts";
import { testKeyEncryptionKey } from "../kek.ts";
import { startStoppablePostgres, type StoppablePostgres } from "../server/stoppable-postgres.ts";
import { createUser, sql, userToken } from "./helpers.ts";

type SigningKeyRow = { kid: string; alg: string; public_jwk: Record<string, string>; private_key_sealed: string; kek_id: string; retired_at: Date | null };

const otherKek = Buffer.alloc(32, "another-kek").toString("base64");

describe("signing keys with a generated key-encryption key", () => {
  let own: StoppablePostgres;
  let dataDir: string;
  beforeAll(async () => {
    own = await startStoppablePostgres();
    dataDir = mkdtempSync(join(tmpdir(), "keyward-kek-"));
  });
  afterAll(async () => {
    await own?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const env = () => ({ DATABASE_URL: own.url, KEYWARD_KEY_ENCRYPTION_KEY: "", KEYWARD_DATA_DIR: join(dataDir, "data") });

  test("when keyward first starts with no KEK configured, then it generates one into the data folder (mode 600), seals the first signing key under it, logs the source but never the value, and a restart opens the same key", async () => {
    let server: TestServer | undefined = await startTestServer({ env: env() });
    let token: string;
    let kid: string;
    const file = join(dataDir, "data", "key-encryption-key");
    try {
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const kekText = readFileSync(file, "utf8").trim();
      const kek = Buffer.from(kekText, "base64");
      expect(kek).toHaveLength(32);

      const rows = await sql<SigningKeyRow>(server, "select * from signing_key");
      expect(rows).toHaveLength(1);
      const row = rows[0]!;
      kid = row.kid;
      expect(row).toMatchObject({ alg: "ES256", retired_at: null, kek_id: createKeyEncryption(kek).kekId });
      // Only public members in clear; the private part is sealed (no PEM, no JWK `d` anywhere in the row).
      expect(Object.keys(row.public_jwk).sort()).toEqual(["alg", "crv", "kid", "kty", "use", "x", "y"]);
      expect(JSON.stringify(row)).not.toMatch(/PRIVATE KEY|"d":/);
      expect(Buffer.from(row.private_key_sealed, "base64url").toString("latin1")).not.toContain("PRIVATE KEY");
      // ...and the KEK in the file is what opens it, bound to its kid.
      expect(createKeyEncryption(kek).unseal(row.private_key_sealed, kid).toString("utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      expect(() => createKeyEncryption(kek).unseal(row.private_key_sealed, "another-kid")).toThrow();

      const sources = server.logs.map((l) => JSON.parse(l) as { level: number; msg: string; source?: string });
      expect(sources.some((l) => l.source === "file" && l.msg.includes(file))).toBe(true);
      // With DATABASE_URL and a file KEK, replicas are warned to share one.
      expect(sources.some((l) => l.level === 40 && l.msg.includes("KEYWARD_KEY_ENCRYPTION_KEY") && l.msg.includes("replica"))).toBe(true);
      expect(server.logs.filter((l) => l.includes(kekText) || l.includes(kek.toString("base64url")))).toEqual([]);

      const t = await createTestTenant(server);
      token = (await userToken(server, t, await createUser(server, t, ["keys:read"]))).accessToken;
      await server.stop();

      // The restart reads the file back: same KEK, same key, old tokens still verify.
      server = await startTestServer({ env: env() });
      expect(readFileSync(file, "utf8").trim()).toBe(kekText);
      expect((await sql<SigningKeyRow>(server, "select * from signing_key")).map((r) => r.kid)).toEqual([kid]);
      expect((await server.client(TokenExchangeService).getJwks({})).keys.map((k) => k.kid)).toEqual([kid]);
      expect((await server.client(KeyService).verifyKey({ key: token })).result).toBe(VerifyResult.VALID);
    } finally {
      await server?.stop();
    }
  });

  test("when keyward starts with a KEK that did not seal the signing key, then it refuses to start with a StartupError naming the key and the KEK it was sealed under (in process and from the command line)", async () => {
    const [row] = await (async () => {
      const probe = await startTestServer({ env: env() });
      try {
        return await sql<SigningKeyRow>(probe, "select * from signing_key");
      } finally {
        await probe.stop();
      }
    })();
    const failure = await startTestServer({ env: { ...env(), KEYWARD_KEY_ENCRYPTION_KEY: otherKek } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(StartupError);
    const message = (failure as StartupError).message;
    expect(message).toContain(`the key-encryption key from KEYWARD_KEY_ENCRYPTION_KEY does not open signing key ${row!.kid} (sealed under KEK ${row!.kek_id}`);
    expect(message).not.toContain(otherKek);

    const cli = await runCli(["serve"], { ...env(), KEYWARD_KEY_ENCRYPTION_KEY: otherKek, PORT: "0", LOG_LEVEL: "error" }, 60_000);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain(`keyward: the key-encryption key from KEYWARD_KEY_ENCRYPTION_KEY does not open signing key ${row!.kid}`);
    expect(cli.stdout + cli.stderr).not.toContain(otherKek);
  });

  test("when the KEK file is lost while signing keys sealed under it exist, then start fails naming the missing file and the KEK to restore, and no new KEK file is written", async () => {
    const file = join(dataDir, "data", "key-encryption-key");
    const probe = await startTestServer({ env: env() });
    const kekIds = (await sql<{ kek_id: string }>(probe, "select distinct kek_id from signing_key")).map((r) => r.kek_id);
    await probe.stop();
    const kept = readFileSync(file, "utf8");
    rmSync(file);
    try {
      const failure = await startTestServer({ env: env() }).then(() => undefined, (e: unknown) => e);
      expect(failure).toBeInstanceOf(StartupError);
      expect((failure as Error).message).toContain(`the key-encryption key file ${file} is missing, but the database holds signing keys sealed under KEK ${kekIds.join(", ")}`);
      expect(() => statSync(file)).toThrow();
      // A file from elsewhere (the wrong KEK) names its path, not the variable.
      const wrongDir = join(dataDir, "wrong");
      mkdirSync(wrongDir, { recursive: true });
      writeFileSync(join(wrongDir, "key-encryption-key"), `${otherKek}\n`, { mode: 0o600 });
      const wrong = await startTestServer({ env: { ...env(), KEYWARD_DATA_DIR: wrongDir } }).then(() => undefined, (e: unknown) => e);
      expect((wrong as Error).message).toContain(`the key-encryption key from ${join(wrongDir, "key-encryption-key")} does not open signing key`);
    } finally {
      writeFileSync(file, kept, { mode: 0o600 });
    }
  });

  test("when the KEK file is corrupt, then start fails with a StartupError naming the file and not echoing its content", async () => {
    const corruptDir = join(dataDir, "corrupt");
    const file = join(corruptDir, "key-encryption-key");
    mkdirSync(corruptDir, { recursive: true });
    writeFileSync(file, "c2VjcmV0LWJ1dC10b28tc2hvcnQ=\n", { mode: 0o600 });
    const failure = await startTestServer({ env: { ...env(), KEYWARD_DATA_DIR: corruptDir } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(StartupError);
    expect((failure as Error).message).toContain(`the key-encryption key file ${file} is corrupt`);
    expect((failure as Error).message).not.toContain("c2VjcmV0");
  });
});

describe("signing keys on a fresh database", () => {
  test("when two replicas start at once on an empty database, then exactly one active signing key exists and both publish and use it", async () => {
    const own = await startStoppablePostgres();
    const servers: TestServer[] = [];
    try {
      const started = await Promise.allSettled([0, 1].map(() => startTestServer({ env: { DATABASE_URL: own.url, KEYWARD_KEY_ENCRYPTION_KEY: testKeyEncryptionKey } })));
      for (const s of started) if (s.status === "fulfilled") servers.push(s.value);
      expect(started.map((s) => s.status)).toEqual(["fulfilled", "fulfilled"]);
      const rows = await sql<SigningKeyRow>(servers[0]!, "select * from signing_key");
      expect(rows).toHaveLength(1);
      for (const server of servers) expect((await server.client(TokenExchangeService).getJwks({})).keys.map((k) => k.kid)).toEqual([rows[0]!.kid]);
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
      await own.close();
    }
  });
});
