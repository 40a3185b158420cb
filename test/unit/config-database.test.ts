// The database bounds in the configuration: defaults, overrides, and a bad value stops
// start-up naming the variable.
import { describe, expect, test } from "@jest/globals";
import { loadConfig } from "../../src/config.ts";
import { StartupError } from "../../src/startup-error.ts";

describe("database timeouts", () => {
  test("when nothing is set, then connect 3 s, query 5 s, health probe every 1 s bounded by 2 s", () => {
    expect(loadConfig({}, "/srv")).toMatchObject({ dbConnectTimeoutMs: 3000, dbQueryTimeoutMs: 5000, dbHealthIntervalMs: 1000, dbHealthTimeoutMs: 2000 });
  });

  test("when set, then used", () => {
    const config = loadConfig(
      { KEYWARD_DB_CONNECT_TIMEOUT_MS: "1500", KEYWARD_DB_QUERY_TIMEOUT_MS: "20000", KEYWARD_DB_HEALTH_INTERVAL_MS: "500", KEYWARD_DB_HEALTH_TIMEOUT_MS: "750" },
      "/srv",
    );
    expect(config).toMatchObject({ dbConnectTimeoutMs: 1500, dbQueryTimeoutMs: 20000, dbHealthIntervalMs: 500, dbHealthTimeoutMs: 750 });
  });

  test.each([
    ["KEYWARD_DB_CONNECT_TIMEOUT_MS", "0"],
    ["KEYWARD_DB_QUERY_TIMEOUT_MS", "5s"],
    ["KEYWARD_DB_HEALTH_INTERVAL_MS", "-1"],
    ["KEYWARD_DB_HEALTH_TIMEOUT_MS", "99999999"],
  ])("when %s=%s, then start-up stops naming it", (name, value) => {
    expect(() => loadConfig({ [name]: value }, "/srv")).toThrow(StartupError);
    expect(() => loadConfig({ [name]: value }, "/srv")).toThrow(name);
  });
});
