// Which caller-chosen request ids are kept: short, plain ids yes; anything shaped like a
// credential (API key, JWT, long or mixed-case high-entropy token) no.
import { describe, expect, test } from "@jest/globals";
import { KeyKindName, mintKey } from "../../src/keys/key-format.ts";
import { isAcceptableRequestId, requestIdFrom } from "../../src/server/request-id.ts";

describe("isAcceptableRequestId", () => {
  test.each([
    ["a UUID", "3f2b8c1e-9d4a-4f6b-8e2a-1c5d7e9f0a1b"],
    ["an upper-case UUID", "3F2B8C1E-9D4A-4F6B-8E2A-1C5D7E9F0A1B"],
    ["req-123", "req-123"],
    ["abc.def:42", "abc.def:42"],
    ["a name and a millisecond timestamp", "test-1764480000000"],
    ["host:pid:counter", "web-3:1234:99"],
    ["a short word", "abc"],
    ["a dotted id with short parts", "req.2026.7"],
  ])("when it is %s, then it is kept", (_what, value) => {
    expect(isAcceptableRequestId(value)).toBe(true);
    expect(requestIdFrom(value)).toBe(value);
  });

  test.each([
    ["an API key of each kind", ...Object.values(KeyKindName).map((k) => mintKey("kw", k).raw)],
    ["a key's secret part", mintKey("kw", KeyKindName.ADMIN).raw.split("_")[2] ?? ""],
    ["a JWT", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"],
    ["a JWT-like triple without eyJ", "abcd1234.efgh5678.ij"],
    ["33 characters without a separator", "a".repeat(33)],
    ["a 20-character mixed-case run", "aB3dE6gH9jK2mN5pQ8sT"],
    ["65 characters", `${"a1-".repeat(21)}ab`],
    ["empty", ""],
    ["a base62 key split into chunks", "Oze3qSwSuzwstYEs:WcrHEKYorqz9Dvdz:zQIeSzZH4nrznB0s:R29iY9V"],
    ["a key's secret in short mixed-case chunks", "Oze3qSwS-uzwstYEsW"],
    ["a 32-character lower-case run", "abcdefghijklmnopqrstuvwxyzabcdef"],
    ["a lower-case run split by separators", "qwertyuiop.asdfghjkl.zxcvbnm"],
    ["an AWS access key id", "AKIAIOSFODNN7EXAMPLE"],
    ["an AWS access key id in parts", "AKIA-IOSF-ODNN-7EXA-MPLE"],
    ["a ULID (26 upper-case letters and digits)", "01ARZ3NDEKTSV4RRFFQ69G5FAV"],
    ["a 32-hex token (a W3C trace id has the same shape)", "4bf92f3577b34da6a3ce929d0e0e4736"],
    ["a GitHub token", `ghp_${"aB3dE6gH9j".repeat(3)}123456`],
    ["a real JWT", "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"],
    ["base64 characters", "abc+def/ghi="],
    ["an underscore", "req_123"],
    ["a space or control character", "a b"],
    ["a newline", "a\nb"],
  ])("when it is %s, then it is replaced", (_what, ...values) => {
    for (const value of values) {
      expect({ value, ok: isAcceptableRequestId(value) }).toEqual({ value, ok: false });
      const replaced = requestIdFrom(value);
      expect(replaced).not.toBe(value);
      expect(replaced).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  test("when no header is given, then each request gets a fresh random id", () => {
    expect(requestIdFrom(undefined)).not.toBe(requestIdFrom(null));
  });
});
