// The key-encryption key (KEK) that seals the private parts of keyward's signing keys at
// rest (DESIGN.md §4: "stored with the private part encrypted"): from
// KEYWARD_KEY_ENCRYPTION_KEY, or generated once into the data folder for the embedded default.
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import { StartupError } from "../startup-error.ts";

/** The file, in the data folder, that holds a generated KEK (base64, mode 600). */
const kekFileName = "key-encryption-key";

const kekBytes = 32;
const ivBytes = 12;
const tagBytes = 16;
/** What the KEK fingerprint is computed over: changing it changes every kek_id. */
const fingerprintLabel = "keyward key-encryption-key id v1";

/** Seals and opens signing keys' private parts under one KEK. */
export type KeyEncryption = {
  /** Fingerprint of the KEK (16 hex chars): stored next to each sealed key, safe to log. */
  readonly kekId: string;
  /** Where the KEK came from, for messages: `KEYWARD_KEY_ENCRYPTION_KEY` or the file's path. */
  readonly source: string;
  /** AES-256-GCM with a random 12-byte IV and `kid` as associated data: base64url(iv ‖ ciphertext ‖ tag). */
  seal(plaintext: Uint8Array, kid: string): string;
  /** Opens what `seal` made for the same `kid`; throws when the KEK (or the kid) is not the one it was sealed with, or the data was altered. */
  unseal(sealed: string, kid: string): Buffer;
};

/** Builds seal/unseal over a 32-byte KEK; `source` says where it came from (for messages). */
export function createKeyEncryption(kek: Buffer, source = "KEYWARD_KEY_ENCRYPTION_KEY"): KeyEncryption {
  if (kek.length !== kekBytes) throw new Error(`a key-encryption key has ${kekBytes} bytes, not ${kek.length}`);
  const key = Buffer.from(kek);
  return {
    kekId: createHmac("sha256", key).update(fingerprintLabel).digest("hex").slice(0, 16),
    source,
    seal(plaintext, kid) {
      const iv = randomBytes(ivBytes);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      cipher.setAAD(Buffer.from(kid, "utf8"));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64url");
    },
    unseal(sealed, kid) {
      const bytes = Buffer.from(sealed, "base64url");
      if (bytes.length < ivBytes + tagBytes + 1) throw new Error("sealed key too short");
      const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, ivBytes));
      decipher.setAAD(Buffer.from(kid, "utf8"));
      decipher.setAuthTag(bytes.subarray(bytes.length - tagBytes));
      return Buffer.concat([decipher.update(bytes.subarray(ivBytes, bytes.length - tagBytes)), decipher.final()]);
    },
  };
}

/**
 * The KEK this instance uses: `config.keyEncryptionKey` when set; otherwise the one in
 * `<dataDir>/key-encryption-key`, generated (32 random bytes, base64, mode 600) if the file
 * does not exist. Logs which source it is (never the value); warns when a shared database
 * (DATABASE_URL) is used with a file KEK, since every replica must open the same keys.
 * A missing file is generated only while the database holds no sealed signing key
 * (`sealedUnder()` lists the KEK fingerprints it holds): a new KEK could not open them, so a
 * lost file is reported, never silently replaced. StartupError when the file is missing
 * while keys are sealed, unreadable, corrupt, or cannot be written.
 *
 * @returns the KEK and its source (`KEYWARD_KEY_ENCRYPTION_KEY` or the file's path).
 */
export async function loadKeyEncryptionKey(
  config: Pick<Config, "keyEncryptionKey" | "dataDir" | "databaseUrl">,
  logger: Logger,
  sealedUnder: () => Promise<readonly string[]> = async () => [],
): Promise<{ kek: Buffer; source: string }> {
  if (config.keyEncryptionKey !== undefined) {
    logger.info({ source: "KEYWARD_KEY_ENCRYPTION_KEY" }, "signing keys are sealed under the key-encryption key from KEYWARD_KEY_ENCRYPTION_KEY");
    return { kek: config.keyEncryptionKey, source: "KEYWARD_KEY_ENCRYPTION_KEY" };
  }
  const file = join(config.dataDir, kekFileName);
  let kek = await readKekFile(file, logger);
  if (kek === undefined) {
    const sealed = await sealedUnder();
    if (sealed.length > 0) {
      throw new StartupError(
        `the key-encryption key file ${file} is missing, but the database holds signing keys sealed under KEK ${sealed.join(", ")}: ` +
          "restore the file from your backup (or set KEYWARD_KEY_ENCRYPTION_KEY to that key); a new key-encryption key could not open them",
      );
    }
    kek = randomBytes(kekBytes);
    try {
      await mkdir(config.dataDir, { recursive: true });
      // `wx`: another keyward starting on the same folder at the same moment wins, and we read its key.
      await writeFile(file, `${kek.toString("base64")}\n`, { mode: 0o600, flag: "wx" });
      logger.info({ source: "file", file }, `generated a key-encryption key into ${file}: back it up with the database, or signing keys cannot be opened`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new StartupError(`cannot write the key-encryption key file ${file}: ${(e as Error).message} (set KEYWARD_KEY_ENCRYPTION_KEY, or make KEYWARD_DATA_DIR writable)`, e);
      }
      kek = await readKekFile(file, logger);
      if (kek === undefined) throw new StartupError(`the key-encryption key file ${file} vanished while keyward started: start again`);
    }
  } else {
    logger.info({ source: "file", file }, `signing keys are sealed under the key-encryption key in ${file}`);
  }
  if (config.databaseUrl !== undefined) {
    logger.warn(
      { file },
      "KEYWARD_KEY_ENCRYPTION_KEY is unset while DATABASE_URL is set: every replica on this database must share one key-encryption key; set KEYWARD_KEY_ENCRYPTION_KEY on all of them",
    );
  }
  return { kek, source: file };
}

/** Reads a KEK file; undefined when it does not exist. */
async function readKekFile(file: string, logger: Logger): Promise<Buffer | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new StartupError(`cannot read the key-encryption key file ${file}: ${(e as Error).message}`, e);
  }
  const raw = text.trim();
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(raw) ? Buffer.from(raw, "base64") : Buffer.alloc(0);
  // Never echo the content: it is (or was meant to be) a secret.
  if (bytes.length !== kekBytes) {
    throw new StartupError(`the key-encryption key file ${file} is corrupt: expected ${kekBytes} bytes in base64 (restore it from a backup; a new one cannot open the existing signing keys)`);
  }
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) !== 0) logger.warn({ file, mode: mode.toString(8) }, `the key-encryption key file ${file} is readable by others: chmod 600 it`);
  return bytes;
}
