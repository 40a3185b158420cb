// The health table and the database monitor without a server: services follow the
// components they need, /healthz's report names the failing one, shutdown freezes it all;
// the monitor turns a hung or failing probe into "unavailable" and back.
import { describe, expect, test } from "@jest/globals";
import { Writable } from "node:stream";
import { createDatabaseMonitor, type DatabaseState } from "../../src/db/database-monitor.ts";
import { createLogger } from "../../src/logger.ts";
import { createHealthStatus, ServingStatus } from "../../src/server/health.ts";

const quiet = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });

describe("health status table", () => {
  test("when the database becomes unavailable, then every served service is NOT_SERVING and the report names it; when it is back, SERVING", () => {
    const health = createHealthStatus();
    const services = [...health.entries().keys()];
    expect(services.sort()).toEqual(["", "keyward.v1.AuditService", "keyward.v1.DirectoryService", "keyward.v1.KeyService", "keyward.v1.PolicyService", "keyward.v1.TokenExchangeService"]);
    health.setComponent("database", { status: "unavailable", reason: "no answer within 2 s" });
    for (const s of services) expect(health.get(s)).toBe(ServingStatus.NOT_SERVING);
    expect(health.report()).toEqual({ status: "NOT_SERVING", components: { database: { status: "unavailable", reason: "no answer within 2 s" } } });
    health.setComponent("database", { status: "available" });
    for (const s of services) expect(health.get(s)).toBe(ServingStatus.SERVING);
    expect(health.report()).toEqual({ status: "SERVING", components: { database: { status: "available" } } });
  });

  test("when shut down, then NOT_SERVING, the report says shutting_down, later changes are ignored and watches end", async () => {
    const health = createHealthStatus();
    const seen: ServingStatus[] = [];
    const watching = (async () => {
      for await (const s of health.watch("keyward.v1.KeyService", new AbortController().signal)) seen.push(s);
    })();
    health.shutdown();
    health.setComponent("database", { status: "available" });
    await watching;
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect(health.get("")).toBe(ServingStatus.NOT_SERVING);
    expect(health.report()).toEqual({ status: "NOT_SERVING", components: { database: { status: "available" }, server: { status: "shutting_down" } } });
  });

  test("when an unknown service is watched, then SERVICE_UNKNOWN first", async () => {
    const health = createHealthStatus();
    const abort = new AbortController();
    for await (const s of health.watch("no.Such", abort.signal)) {
      expect(s).toBe(ServingStatus.SERVICE_UNKNOWN);
      abort.abort();
    }
    expect(health.get("no.Such")).toBeUndefined();
  });
});

/** The next state the monitor reports, within `boundMs`. */
function nextState(monitor: ReturnType<typeof createDatabaseMonitor>, boundMs: number): Promise<DatabaseState> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no state change within ${boundMs} ms`));
    }, boundMs);
    const off = monitor.onChange((state) => {
      clearTimeout(timer);
      off();
      resolve(state);
    });
  });
}

describe("database monitor", () => {
  test("when the probe hangs, then unavailable after the probe bound; when it answers again, available", async () => {
    let hang = false;
    const monitor = createDatabaseMonitor({
      probe: () => (hang ? new Promise<void>(() => undefined) : Promise.resolve()),
      intervalMs: 20,
      timeoutMs: 100,
      logger: quiet,
    });
    try {
      hang = true;
      const started = performance.now();
      expect(await nextState(monitor, 2000)).toEqual({ status: "unavailable", reason: "no answer within 0.1 s" });
      expect(performance.now() - started).toBeLessThan(1000);
      hang = false;
      expect(await nextState(monitor, 2000)).toEqual({ status: "available" });
    } finally {
      monitor.stop();
    }
  });

  test("when a request reports an unavailable error, then unavailable at once; other errors change nothing", () => {
    const monitor = createDatabaseMonitor({ probe: () => Promise.resolve(), intervalMs: 60_000, timeoutMs: 1000, logger: quiet });
    try {
      expect(monitor.report(new Error("duplicate key"))).toBe(false);
      expect(monitor.current()).toEqual({ status: "available" });
      expect(monitor.report(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED", syscall: "connect" }))).toBe(true);
      expect(monitor.current()).toEqual({ status: "unavailable", reason: "connection refused" });
    } finally {
      monitor.stop();
    }
  });
});
