// The logger redacts credentials whatever their spelling (proto JSON camelCase or RFC 8693
// snake_case), at the top level and one level down.
import { describe, expect, test } from "@jest/globals";
import { Writable } from "node:stream";
import { createLogger } from "../../src/logger.ts";

function capture(): { lines: string[]; destination: Writable } {
  const lines: string[] = [];
  return { lines, destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString("utf8")), cb()) }) };
}

describe("log redaction", () => {
  test("when a record carries tokens, secrets or the key-encryption key under any of their names, then each is [redacted]", () => {
    const { lines, destination } = capture();
    const logger = createLogger({ level: "info", destination });
    const fields = { subjectToken: "s1", subject_token: "s2", accessToken: "a1", access_token: "a2", secret: "k1", key: "k2", keyEncryptionKey: "kek", authorization: "Bearer b" };
    logger.info({ ...fields, req: { ...fields } }, "request");
    const record = JSON.parse(lines.join("")) as Record<string, unknown>;
    for (const name of Object.keys(fields)) {
      expect(record[name]).toBe("[redacted]");
      expect((record["req"] as Record<string, unknown>)[name]).toBe("[redacted]");
    }
    for (const value of ["s1", "s2", "a1", "a2", "k1", "k2", "kek", "Bearer b"]) expect(lines.join("")).not.toContain(`"${value}"`);
  });
});
