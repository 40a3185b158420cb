// `npm run bench`: VerifyKey against a no-op RPC (grpc.health.v1.Health/Check) on the same
// server, same transport, same run, so the ratio means something on a noisy machine.
// Uses DATABASE_URL if set, otherwise a throwaway embedded PostgreSQL.
import { createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Health } from "../gen/health/v1/health_pb.ts";
import { PrincipalType } from "../gen/keyward/v1/directory_pb.ts";
import { DirectoryService } from "../gen/keyward/v1/directory_service_pb.ts";
import { KeyService } from "../gen/keyward/v1/key_service_pb.ts";
import { TokenExchangeService } from "../gen/keyward/v1/token_exchange_service_pb.ts";
import { createAuditLog } from "../src/audit/audit-log.ts";
import { systemClock } from "../src/clock.ts";
import { loadConfig } from "../src/config.ts";
import { openStore } from "../src/db/store.ts";
import { createUnitsOfWork } from "../src/db/unit-of-work.ts";
import { bootstrapTenant } from "../src/directory/bootstrap.ts";
import { createLogger } from "../src/logger.ts";
import { startKeyward } from "../src/main.ts";

const calls = Number(process.env["BENCH_CALLS"] ?? 4000);
const concurrency = Number(process.env["BENCH_CONCURRENCY"] ?? 16);

type Stats = { name: string; perSecond: number; p50: number; p99: number };

async function measure(name: string, call: () => Promise<unknown>): Promise<Stats> {
  for (let i = 0; i < 200; i++) await call(); // warm-up
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < calls) {
        next += 1;
        const t = performance.now();
        await call();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { name, perSecond: latencies.length / elapsed, p50: at(0.5), p99: at(0.99) };
}

const silent = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const dataDir = mkdtempSync(join(tmpdir(), "keyward-bench-"));
chmodSync(dataDir, 0o755);
const config = loadConfig({ ...process.env, PORT: "0", HOST: "127.0.0.1", KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "silent" });
const store = await openStore(config, silent);
try {
  const keyward = await startKeyward({ config, logger: silent, store });
  const units = createUnitsOfWork(store.db);
  const audit = createAuditLog({ units, clock: systemClock, logger: silent });
  const { secret } = await bootstrapTenant({ units, clock: systemClock, audit, minting: config }, `bench-${Date.now().toString(36)}`);
  const transport: Transport = createGrpcTransport({ baseUrl: keyward.url });
  const health = createClient(Health, transport);
  const keys = createClient(KeyService, transport);
  // A minted token (a user token of a user principal): signature check, then one SQL read.
  const asAdmin = { headers: { authorization: `Bearer ${secret}` } };
  const tenant = `tenants/${(await keys.verifyKey({ key: secret })).tenant}`;
  const { principal } = await createClient(DirectoryService, transport).createPrincipal(
    { parent: tenant, principalId: "bench-user", type: PrincipalType.USER, permissions: ["keys:read"] },
    asAdmin,
  );
  const { accessToken } = await createClient(TokenExchangeService, transport).createUserToken({ principal: principal!.name, durationSeconds: 3600 }, asAdmin);
  const results = [
    await measure("no-op (Health/Check)", () => health.check({})),
    await measure("VerifyKey valid", () => keys.verifyKey({ key: secret, requiredPermissions: ["keys:read"] })),
    await measure("VerifyKey minted token", () => keys.verifyKey({ key: accessToken, requiredPermissions: ["keys:read"] })),
    await measure("VerifyKey malformed", () => keys.verifyKey({ key: "kwfg_not-a-key" })),
  ];
  const base = results[0]!.perSecond;
  console.log(`${calls} calls per case, ${concurrency} in flight, gRPC over HTTP/2, one process\n`);
  for (const r of results) {
    console.log(`${r.name.padEnd(24)} ${r.perSecond.toFixed(0).padStart(7)} calls/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  ${(r.perSecond / base).toFixed(2)}× no-op`);
  }
  await keyward.stop();
} finally {
  await store.close();
  rmSync(dataDir, { recursive: true, force: true });
}
