// The API key format: `<prefix><kind tag>_<key id>_<secret><checksum>`.
// - the prefix (configurable per deployment, `kw` by default) plus a kind tag lets secret
//   scanners recognise a leaked key and what it grants (`kwadm_`, `kwfg_` …);
// - the key id is public and indexes the row, so a lookup needs no hash scan;
// - the secret is 33 base62 characters from the CSPRNG (196 bits);
// - the checksum (CRC-32 of everything before it, 6 base62 characters) rejects typos and
//   garbage without touching the database.
import { createHash, createHmac, randomInt, timingSafeEqual } from "node:crypto";
import { crc32 } from "node:zlib";

/** The four key kinds as stored. */
export const KeyKindName = {
  ADMIN: "admin",
  READ_ONLY: "read_only",
  REGISTRY: "registry",
  FINE_GRAINED: "fine_grained",
} as const;
/** One of the KeyKindName values. */
export type KeyKindName = (typeof KeyKindName)[keyof typeof KeyKindName];

/** The tag after the deployment prefix that names the kind. */
const kindTags: Record<KeyKindName, string> = { admin: "adm", read_only: "ro", registry: "reg", fine_grained: "fg" };
const tagKinds = new Map(Object.entries(kindTags).map(([kind, tag]) => [tag, kind as KeyKindName]));

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const keyIdLength = 16;
const secretLength = 33;
const checksumLength = 6;

/** A raw key taken apart. */
export type ParsedKey = { kind: KeyKindName; keyId: string; raw: string };

/** A freshly minted key: the raw value (shown once) and what is stored. */
export type MintedKey = { keyId: string; raw: string; hint: string };

function randomBase62(length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(62)];
  return out;
}

function checksum(body: string): string {
  let n = crc32(body);
  let out = "";
  for (let i = 0; i < checksumLength; i++) {
    out = alphabet[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** A key body with its checksum appended: the raw key (tests also craft well-formed keys with it). */
export function withChecksum(body: string): string {
  return body + checksum(body);
}

/** Mints a new raw key of the given kind. */
export function mintKey(prefix: string, kind: KeyKindName): MintedKey {
  const keyId = randomBase62(keyIdLength);
  const raw = withChecksum(`${prefix}${kindTags[kind]}_${keyId}_${randomBase62(secretLength)}`);
  return { keyId, raw, hint: raw.slice(-4) };
}

/** True when a string is shaped like a key id (so it can index a lookup). */
export function isKeyId(value: string): boolean {
  return value.length === keyIdLength && /^[0-9A-Za-z]+$/.test(value);
}

/** Parses and checksums a raw key; undefined when it is not a well-formed key of ours. */
export function parseKey(prefix: string, raw: string): ParsedKey | undefined {
  if (raw.length > 128 || !raw.startsWith(prefix)) return undefined;
  const rest = raw.slice(prefix.length);
  const underscore = rest.indexOf("_");
  const kind = tagKinds.get(rest.slice(0, underscore));
  if (kind === undefined) return undefined;
  const tail = rest.slice(underscore + 1);
  if (tail.length !== keyIdLength + 1 + secretLength + checksumLength || tail[keyIdLength] !== "_") return undefined;
  const keyId = tail.slice(0, keyIdLength);
  const secretAndSum = tail.slice(keyIdLength + 1);
  if (!isKeyId(keyId) || !/^[0-9A-Za-z]+$/.test(secretAndSum)) return undefined;
  const body = raw.slice(0, raw.length - checksumLength);
  if (checksum(body) !== raw.slice(-checksumLength)) return undefined;
  return { kind, keyId, raw };
}

/** Hashes a raw key for storage: HMAC-SHA-256 with the server pepper, or SHA-256. */
export function hashKey(raw: string, pepper: string | undefined): Buffer {
  return pepper === undefined ? createHash("sha256").update(raw).digest() : createHmac("sha256", pepper).update(raw).digest();
}

/** Constant-time comparison of a presented key against a stored hash. */
export function keyMatches(raw: string, storedHash: Uint8Array, pepper: string | undefined): boolean {
  const presented = hashKey(raw, pepper);
  return presented.length === storedHash.length && timingSafeEqual(presented, storedHash);
}
