// The API key format without a server: minting, parsing, the checksum that rejects typos,
// the secret's strength, and hashing with and without a pepper.
import { describe, expect, test } from "@jest/globals";
import { createHash, createHmac } from "node:crypto";
import { crc32 } from "node:zlib";
import { hashKey, isKeyId, KeyKindName, keyMatches, mintKey, parseKey } from "../../src/keys/key-format.ts";

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const kinds = Object.values(KeyKindName);

/** Appends the format's checksum (CRC-32 as 6 base62 digits) to a key body, for crafted keys. */
function withChecksum(body: string): string {
  let n = crc32(body);
  let sum = "";
  for (let i = 0; i < 6; i++) {
    sum = alphabet[n % 62] + sum;
    n = Math.floor(n / 62);
  }
  return body + sum;
}

/** The parts of a raw key: `<prefix+tag>_<key id>_<secret+checksum>`. */
function parts(raw: string): { head: string; keyId: string; tail: string } {
  const [head = "", keyId = "", tail = "", ...rest] = raw.split("_");
  expect(rest).toEqual([]);
  return { head, keyId, tail };
}

describe("mint and parse", () => {
  test.each(kinds)("when a %s key is minted, then parseKey returns its kind and key id", (kind) => {
    const minted = mintKey("kw", kind);
    expect(parseKey("kw", minted.raw)).toEqual({ kind, keyId: minted.keyId, raw: minted.raw });
    expect(isKeyId(minted.keyId)).toBe(true);
    expect(minted.hint).toBe(minted.raw.slice(-4));
  });

  test("when each kind is minted, then the kinds have distinct scanner-friendly prefixes", () => {
    const heads = kinds.map((kind) => parts(mintKey("kw", kind).raw).head);
    expect(new Set(heads).size).toBe(kinds.length);
    for (const head of heads) expect(head).toMatch(/^kw[a-z]+$/);
  });

  test.each([["acme"], ["x1"], ["kwtest99"]])("when the prefix is %s, then keys start with it and parse only with it", (prefix) => {
    for (const kind of kinds) {
      const minted = mintKey(prefix, kind);
      expect(minted.raw.startsWith(prefix)).toBe(true);
      expect(parseKey(prefix, minted.raw)?.kind).toBe(kind);
      expect(parseKey("kw", minted.raw)).toBeUndefined();
    }
  });

  test("when two keys are minted, then their ids, secrets and hints differ", () => {
    const a = mintKey("kw", "fine_grained");
    const b = mintKey("kw", "fine_grained");
    expect(a.keyId).not.toBe(b.keyId);
    expect(parts(a.raw).tail).not.toBe(parts(b.raw).tail);
    expect(a.raw).not.toBe(b.raw);
  });

  test("when many keys are minted, then all are unique and every secret position uses the whole alphabet", () => {
    const raws = Array.from({ length: 400 }, () => mintKey("kw", "admin").raw);
    expect(new Set(raws).size).toBe(raws.length);
    const secrets = raws.map((r) => parts(r).tail.slice(0, 33));
    for (let i = 0; i < 33; i++) {
      const seen = new Set(secrets.map((s) => s[i]));
      expect(seen.size).toBeGreaterThan(40); // 400 draws from 62 symbols: ~62 expected, < 40 means bias
    }
  });
});

describe("secret strength", () => {
  test("when a key is minted, then the secret is at least 33 base62 characters (≥ 192 bits) before the 6-character checksum", () => {
    const { tail, keyId } = parts(mintKey("kw", "fine_grained").raw);
    expect(keyId).toMatch(/^[0-9A-Za-z]{16}$/);
    expect(tail).toMatch(/^[0-9A-Za-z]+$/);
    const secretChars = tail.length - 6;
    expect(secretChars).toBeGreaterThanOrEqual(33);
    expect(secretChars * Math.log2(62)).toBeGreaterThanOrEqual(192);
  });

  test("when the helper recomputes a real key's checksum, then it matches (so crafted keys below are well-checksummed)", () => {
    const { raw } = mintKey("kw", "registry");
    expect(withChecksum(raw.slice(0, -6))).toBe(raw);
  });
});

describe("checksum", () => {
  test("when any single character of a key is changed to any other character, then parseKey rejects it", () => {
    const { raw } = mintKey("kw", "fine_grained");
    const replacements = `${alphabet}_-. `;
    let tried = 0;
    for (let i = 0; i < raw.length; i++) {
      for (const c of replacements) {
        if (c === raw[i]) continue;
        const changed = raw.slice(0, i) + c + raw.slice(i + 1);
        tried += 1;
        if (parseKey("kw", changed) !== undefined) throw new Error(`accepted a key changed at position ${i} to ${JSON.stringify(c)}`);
      }
    }
    expect(tried).toBeGreaterThan(raw.length * 60);
  });

  test("when two adjacent different characters are swapped, then parseKey rejects it", () => {
    const { raw } = mintKey("kw", "admin");
    for (let i = 0; i + 1 < raw.length; i++) {
      if (raw[i] === raw[i + 1]) continue;
      const swapped = raw.slice(0, i) + raw[i + 1] + raw[i] + raw.slice(i + 2);
      expect(parseKey("kw", swapped)).toBeUndefined();
    }
  });

  test("when a character is dropped or added anywhere, then parseKey rejects it", () => {
    const { raw } = mintKey("kw", "read_only");
    for (let i = 0; i < raw.length; i++) expect(parseKey("kw", raw.slice(0, i) + raw.slice(i + 1))).toBeUndefined();
    for (let i = 0; i <= raw.length; i++) expect(parseKey("kw", raw.slice(0, i) + "A" + raw.slice(i))).toBeUndefined();
  });
});

describe("shape checks (with a valid checksum)", () => {
  const good = () => mintKey("kw", "fine_grained").raw;

  test.each([
    ["an unknown kind tag", (r: string) => r.replace(/^kwfg_/, "kwxx_")],
    ["no kind tag", (r: string) => r.replace(/^kwfg_/, "kw_")],
    ["a 15-character key id and a 34-character secret", (r: string) => { const p = parts(r); return `${p.head}_${p.keyId.slice(0, 15)}_${p.keyId.slice(15)}${p.tail}`; }],
    ["a 17-character key id and a 32-character secret", (r: string) => { const p = parts(r); return `${p.head}_${p.keyId}${p.tail[0]}_${p.tail.slice(1)}`; }],
    ["a 32-character secret", (r: string) => { const p = parts(r); return `${p.head}_${p.keyId}_${p.tail.slice(1)}`; }],
    ["a 34-character secret", (r: string) => { const p = parts(r); return `${p.head}_${p.keyId}_A${p.tail}`; }],
    ["a non-base62 key id", (r: string) => { const p = parts(r); return `${p.head}_${p.keyId.slice(0, 15)}-_${p.tail}`; }],
    ["a non-base62 secret", (r: string) => { const p = parts(r); return `${p.head}_${p.keyId}_${p.tail.slice(0, 10)}+${p.tail.slice(11)}`; }],
    ["an extra underscore section", (r: string) => { const p = parts(r); return `${p.head}_${p.keyId}_${p.tail}_x`; }],
  ])("when a key has %s, then parseKey rejects it", (_what, mangle) => {
    const raw = good();
    const crafted = withChecksum(mangle(raw.slice(0, -6)));
    expect(crafted).not.toBe(raw);
    expect(parseKey("kw", crafted)).toBeUndefined();
  });

  test.each([
    ["the empty string", ""],
    ["the prefix alone", "kw"],
    ["a key with a trailing newline", `${mintKey("kw", "admin").raw}\n`],
    ["a key with leading whitespace", ` ${mintKey("kw", "admin").raw}`],
    ["a 10 kB string", `kwfg_${"A".repeat(10_000)}`],
    ["a JWT-looking string", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"],
  ])("when parseKey gets %s, then it returns undefined", (_what, raw) => {
    expect(parseKey("kw", raw)).toBeUndefined();
  });

  test("when the prefix differs from the deployment's, then parseKey rejects an otherwise valid key", () => {
    const { raw } = mintKey("kw", "admin");
    expect(parseKey("kx", raw)).toBeUndefined();
    expect(parseKey("k", raw)).toBeUndefined();
    expect(parseKey("kwa", raw)).toBeUndefined();
  });
});

describe("hashing", () => {
  const pepper = "p".repeat(32);

  test("when a key is hashed without a pepper, then it is its SHA-256; with one, its HMAC-SHA-256; the two differ", () => {
    const { raw } = mintKey("kw", "admin");
    const plain = hashKey(raw, undefined);
    const peppered = hashKey(raw, pepper);
    expect(plain.equals(createHash("sha256").update(raw).digest())).toBe(true);
    expect(peppered.equals(createHmac("sha256", pepper).update(raw).digest())).toBe(true);
    expect(plain.equals(peppered)).toBe(false);
    expect(hashKey(raw, "q".repeat(32)).equals(peppered)).toBe(false);
    expect(plain.toString("utf8")).not.toContain(raw);
  });

  test("when a presented key is compared, then keyMatches is true only for the same raw key and the same pepper", () => {
    const a = mintKey("kw", "fine_grained").raw;
    const b = mintKey("kw", "fine_grained").raw;
    for (const p of [undefined, pepper]) {
      const stored = hashKey(a, p);
      expect(keyMatches(a, stored, p)).toBe(true);
      expect(keyMatches(b, stored, p)).toBe(false);
      expect(keyMatches(a.slice(0, -1), stored, p)).toBe(false);
      expect(keyMatches("", stored, p)).toBe(false);
    }
    expect(keyMatches(a, hashKey(a, undefined), pepper)).toBe(false);
    expect(keyMatches(a, hashKey(a, pepper), undefined)).toBe(false);
  });

  test("when the stored hash has another length, then keyMatches is false (no exception)", () => {
    const { raw } = mintKey("kw", "admin");
    const stored = hashKey(raw, undefined);
    expect(keyMatches(raw, stored.subarray(0, 16), undefined)).toBe(false);
    expect(keyMatches(raw, new Uint8Array(0), undefined)).toBe(false);
  });
});
