// Configuration without a server: defaults, every bad value stops start-up with a
// StartupError naming the variable (never echoing a secret), and the result is frozen.
import { describe, expect, test } from "@jest/globals";
import { join } from "node:path";
import { defaultPermissionCategories, loadConfig } from "../../src/config.ts";
import { StartupError } from "../../src/startup-error.ts";

const cwd = "/srv/keyward";

function startupErrorOf(env: Record<string, string>): StartupError {
  try {
    loadConfig(env, cwd);
  } catch (e) {
    if (e instanceof StartupError) return e;
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(env).slice(0, 100)} to be refused`);
}

describe("defaults", () => {
  test("when nothing is set, then PORT 8080, HOST 127.0.0.1, embedded PostgreSQL under ./.keyward, the default catalogue", () => {
    const config = loadConfig({}, cwd);
    expect(config).toMatchObject({
      port: 8080,
      host: "127.0.0.1",
      databaseUrl: undefined,
      dataDir: join(cwd, ".keyward"),
      logLevel: "info",
      keyPrefix: "kw",
      keyPepper: undefined,
    });
    expect(config.oidcIssuers).toEqual(["https://token.actions.githubusercontent.com"]);
    expect([...config.permissionCategories].sort()).toEqual([...defaultPermissionCategories].sort());
  });

  test("when variables are set but empty or blank, then the defaults apply", () => {
    const config = loadConfig({ PORT: "", HOST: "  ", LOG_LEVEL: "", KEYWARD_DATA_DIR: "" }, cwd);
    expect([config.port, config.host, config.logLevel, config.dataDir]).toEqual([8080, "127.0.0.1", "info", join(cwd, ".keyward")]);
  });

  test("when KEYWARD_DATA_DIR is relative, then it is resolved against the working directory; absolute stays", () => {
    expect(loadConfig({ KEYWARD_DATA_DIR: "data/kw" }, cwd).dataDir).toBe(join(cwd, "data/kw"));
    expect(loadConfig({ KEYWARD_DATA_DIR: "/var/lib/keyward" }, cwd).dataDir).toBe("/var/lib/keyward");
  });

  test("when good values are set, then they are used", () => {
    const config = loadConfig(
      {
        PORT: "9090",
        HOST: "0.0.0.0",
        DATABASE_URL: "postgresql://kw:pw@db:5432/keyward",
        LOG_LEVEL: "DEBUG",
        KEYWARD_OIDC_ISSUERS: "https://a.example.com, http://127.0.0.1:9999",
        KEYWARD_KEY_PEPPER: "x".repeat(32),
        KEYWARD_PERMISSION_CATEGORIES: "deploy,billing",
      },
      cwd,
    );
    expect(config).toMatchObject({ port: 9090, host: "0.0.0.0", databaseUrl: "postgresql://kw:pw@db:5432/keyward", logLevel: "debug", keyPepper: "x".repeat(32) });
    expect(config.oidcIssuers).toEqual(["https://a.example.com", "http://127.0.0.1:9999"]);
    expect([...config.permissionCategories].sort()).toEqual(["audit", "billing", "deploy", "directory", "keys", "policies"]);
  });

  test("when http issuers are on loopback (localhost, 127.0.0.1, [::1]), then they are accepted", () => {
    const issuers = "http://localhost:8000,http://127.0.0.1:9000,http://[::1]:7000";
    expect(loadConfig({ KEYWARD_OIDC_ISSUERS: issuers }, cwd).oidcIssuers).toHaveLength(3);
  });
});

describe("bad values", () => {
  test.each([
    ["PORT", "abc"],
    ["PORT", "99999"],
    ["PORT", "65536"],
    ["PORT", "-1"],
    ["PORT", "80.5"],
    ["PORT", "0x50"],
    ["HOST", "not a host!"],
    ["DATABASE_URL", "garbage"],
    ["DATABASE_URL", "mysql://user@db/keyward"],
    ["DATABASE_URL", "http://db:5432/keyward"],
    ["DATABASE_URL", "postgres://"],
    ["LOG_LEVEL", "loud"],
    ["KEYWARD_OIDC_ISSUERS", "http://evil.example.com"],
    ["KEYWARD_OIDC_ISSUERS", "http://localhost.evil.example.com"],
    ["KEYWARD_OIDC_ISSUERS", "http://127.0.0.1.nip.io"],
    ["KEYWARD_OIDC_ISSUERS", "https://ok.example.com,http://evil.example.com"],
    ["KEYWARD_OIDC_ISSUERS", "not a url"],
    ["KEYWARD_OIDC_ISSUERS", "ftp://issuer.example.com"],
    ["KEYWARD_OIDC_ISSUERS", ",,"],
    ["KEYWARD_KEY_PEPPER", "tooshort"],
    ["KEYWARD_KEY_PEPPER", "y".repeat(31)],
    ["KEYWARD_PERMISSION_CATEGORIES", "Deploy"],
    ["KEYWARD_PERMISSION_CATEGORIES", "deploy,bad category"],
    ["KEYWARD_PERMISSION_CATEGORIES", "keys:read"],
    ["KEYWARD_PERMISSION_CATEGORIES", "*"],
    ["KEYWARD_KEY_PREFIX", "Bad_Prefix"],
    ["KEYWARD_AUDIENCE_DOMAIN", "Not A Domain"],
    ["KEYWARD_MAX_REQUEST_BYTES", "10"],
    ["KEYWARD_HEADERS_TIMEOUT_MS", "abc"],
    ["KEYWARD_HEADERS_TIMEOUT_MS", "0"],
    ["KEYWARD_HEADERS_TIMEOUT_MS", "-5"],
    ["KEYWARD_HEADERS_TIMEOUT_MS", "1.5"],
    ["KEYWARD_REQUEST_TIMEOUT_MS", "99"],
    ["KEYWARD_REQUEST_TIMEOUT_MS", "3600001"],
    ["KEYWARD_IDLE_TIMEOUT_MS", "0"],
    ["KEYWARD_IDLE_TIMEOUT_MS", "10s"],
    ["KEYWARD_MAX_CONNECTIONS", "0"],
    ["KEYWARD_MAX_CONNECTIONS", "1000001"],
    ["KEYWARD_MAX_CONNECTIONS", "many"],
    ["KEYWARD_VERIFY_FAST_PATH", "2"],
    ["KEYWARD_VERIFY_FAST_PATH", "off"],
  ])("when %s=%j, then a one-line StartupError names the variable", (name, value) => {
    const e = startupErrorOf({ [name]: value });
    expect(e.message).toContain(name);
    expect(e.message).not.toContain("\n");
  });

  test("when KEYWARD_KEY_PEPPER is too short, then the message does not contain the value", () => {
    const value = "hunter2-Secret!";
    const e = startupErrorOf({ KEYWARD_KEY_PEPPER: value });
    expect(e.message).toContain("KEYWARD_KEY_PEPPER");
    expect(e.message).not.toContain(value);
    expect(e.message).not.toContain("hunter2");
  });

  test("when DATABASE_URL has a password but a wrong scheme or no host, then the message does not contain the password", () => {
    for (const url of ["mysql://kw:hunter2secret@db/keyward", "postgres://kw:hunter2secret@/keyward", "kw:hunter2secret@db"]) {
      const e = startupErrorOf({ DATABASE_URL: url });
      expect(e.message).toContain("DATABASE_URL");
      expect(e.message).not.toContain("hunter2secret");
    }
  });

  test("when a bad value is very long, then the message stays short", () => {
    expect(startupErrorOf({ HOST: "!".repeat(5_000) }).message.length).toBeLessThan(300);
  });
});

describe("the VerifyKey fast path", () => {
  test("when KEYWARD_VERIFY_FAST_PATH is unset or 1, then it is on; when 0, then it is off", () => {
    expect(loadConfig({}, cwd).verifyFastPath).toBe(true);
    expect(loadConfig({ KEYWARD_VERIFY_FAST_PATH: "1" }, cwd).verifyFastPath).toBe(true);
    expect(loadConfig({ KEYWARD_VERIFY_FAST_PATH: "0" }, cwd).verifyFastPath).toBe(false);
  });
});

describe("listener limits", () => {
  test("when nothing is set, then headers 10 s, request 30 s, idle 65 s, at most 4096 connections", () => {
    expect(loadConfig({}, cwd).limits).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, idleTimeoutMs: 65_000, maxConnections: 4_096 });
  });

  test("when the variables are set, then they are used", () => {
    const config = loadConfig(
      { KEYWARD_HEADERS_TIMEOUT_MS: "2000", KEYWARD_REQUEST_TIMEOUT_MS: "5000", KEYWARD_IDLE_TIMEOUT_MS: "120000", KEYWARD_MAX_CONNECTIONS: "100" },
      cwd,
    );
    expect(config.limits).toEqual({ headersTimeoutMs: 2_000, requestTimeoutMs: 5_000, idleTimeoutMs: 120_000, maxConnections: 100 });
  });

  test("when the headers timeout is longer than the request timeout, then a one-line StartupError names both", () => {
    const e = startupErrorOf({ KEYWARD_HEADERS_TIMEOUT_MS: "20000", KEYWARD_REQUEST_TIMEOUT_MS: "10000" });
    expect(e.message).toContain("KEYWARD_HEADERS_TIMEOUT_MS");
    expect(e.message).toContain("KEYWARD_REQUEST_TIMEOUT_MS");
    expect(e.message).not.toContain("\n");
  });

  test("when the headers timeout alone exceeds the default request timeout, then it is refused too", () => {
    expect(startupErrorOf({ KEYWARD_HEADERS_TIMEOUT_MS: "40000" }).message).toContain("KEYWARD_REQUEST_TIMEOUT_MS");
  });
});

describe("immutability", () => {
  test("when the configuration is loaded, then it and its lists are frozen", () => {
    const config = loadConfig({ KEYWARD_PERMISSION_CATEGORIES: "deploy" }, cwd);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.oidcIssuers)).toBe(true);
    expect(Object.isFrozen(config.permissionCategories)).toBe(true);
    expect(Object.isFrozen(config.limits)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.permissionCategories as string[]).push("extra");
    }).toThrow(TypeError);
    expect(config.port).toBe(8080);
  });
});
