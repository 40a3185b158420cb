// The verification cache's configuration: defaults, overrides, 0 disabling the cache or the
// grace, and a bad value stopping start-up naming the variable (never echoing a URL's password).
import { describe, expect, test } from "@jest/globals";
import { loadConfig } from "../../src/config.ts";
import { StartupError } from "../../src/startup-error.ts";

describe("verification cache settings", () => {
  test("when nothing is set, then 100000 entries, 128 MiB, 300 s TTL, 30 s grace, LISTEN on the database URL", () => {
    expect(loadConfig({}, "/srv").verifyCache).toEqual({
      maxEntries: 100_000, maxBytes: 128 * 1024 * 1024, ttlMs: 300_000, staleMs: 30_000, listenDatabaseUrl: undefined,
    });
  });

  test("when set, then used; 0 disables the cache (TTL) or the grace", () => {
    const config = loadConfig(
      {
        KEYWARD_VERIFY_CACHE_ENTRIES: "5000", KEYWARD_VERIFY_CACHE_MAX_BYTES: "2097152", KEYWARD_VERIFY_CACHE_TTL_SECONDS: "0",
        KEYWARD_VERIFY_STALE_SECONDS: "0", KEYWARD_LISTEN_DATABASE_URL: "postgres://u:p@db.internal:5432/keyward",
      },
      "/srv",
    );
    expect(config.verifyCache).toEqual({ maxEntries: 5000, maxBytes: 2_097_152, ttlMs: 0, staleMs: 0, listenDatabaseUrl: "postgres://u:p@db.internal:5432/keyward" });
  });

  test.each([
    ["KEYWARD_VERIFY_CACHE_ENTRIES", "0"],
    ["KEYWARD_VERIFY_CACHE_MAX_BYTES", "1000"],
    ["KEYWARD_VERIFY_CACHE_TTL_SECONDS", "5m"],
    ["KEYWARD_VERIFY_STALE_SECONDS", "-1"],
    ["KEYWARD_VERIFY_STALE_SECONDS", "3601"],
    ["KEYWARD_LISTEN_DATABASE_URL", "mysql://u:secret-password@db/keyward"],
  ])("when %s=%s, then start-up stops naming it", (name, value) => {
    expect(() => loadConfig({ [name]: value }, "/srv")).toThrow(StartupError);
    expect(() => loadConfig({ [name]: value }, "/srv")).toThrow(name);
    expect(() => loadConfig({ [name]: value }, "/srv")).not.toThrow("secret-password");
  });
});
