// keyward's own ES256 signing keys (DESIGN.md §4): created on first start, the private part
// sealed under the key-encryption key, rotatable, the public parts published as a JWKS until
// the last token each signed has expired. Kept in memory; the database is re-read
// periodically and when a token names a kid this replica does not know (another replica rotated).
import { randomBytes } from "node:crypto";
import { exportJWK, exportPKCS8, generateKeyPair, importJWK, importPKCS8, type CryptoKey, type JWK } from "jose";
import type { Clock } from "../clock.ts";
import type { UnitOfWork, UnitsOfWork } from "../db/unit-of-work.ts";
import type { Logger } from "../logger.ts";
import { StartupError } from "../startup-error.ts";
import type { KeyEncryption } from "./key-encryption.ts";
import { maxTokenLifetimeSeconds } from "./minting.ts";
import { signingKeyRepository as repo, type SigningKeyRecord } from "./signing-key-repository.ts";

/** The one signing algorithm (RFC 7518 §3.4: ECDSA P-256 with SHA-256). */
export const signingAlgorithm = "ES256";

/**
 * How long a retired key stays published after its retirement beyond the longest token
 * lifetime: covers a replica that signs with the old key until its next periodic re-read.
 */
const publishMarginSeconds = 60;

/** A public key as published in the JWKS (RFC 7517 §4): `kty`, `crv`, `x`, `y`, `kid`, `alg`, `use`. */
export type PublicJwk = Readonly<{ kty: string; crv: string; x: string; y: string; kid: string; alg: string; use: string }>;

/** The key new tokens are signed with. */
export type SignerKey = Readonly<{ kid: string; privateKey: CryptoKey }>;

/** keyward's signing keys, held in memory. */
export type SigningKeys = {
  /** The active key (a rotation on this replica takes effect at once; on another, within the refresh interval). */
  signer(): SignerKey;
  /**
   * The public key that verifies tokens naming `kid`, if it is published now. An unknown kid
   * re-reads the database once (at most once per cool-down, concurrent misses sharing one
   * read) before answering undefined. Throws when that read fails (database unavailable).
   */
  verificationKey(kid: string): Promise<CryptoKey | undefined>;
  /** The JWKS `keys` at this moment: the active key and every retired key still within its publish_until. */
  jwks(): PublicJwk[];
  /**
   * Makes a new active key and retires the current one (published until now + the longest
   * token lifetime + a margin), in `uow`'s transaction; call `reload()` after it commits.
   * Throws ConcurrentRotationError when another rotation retired the active key first, and
   * TooManySigningKeysError when maxPublishedSigningKeys are published already.
   */
  rotate(uow: UnitOfWork): Promise<{ kid: string; retired: string }>;
  /** Re-reads the keys from the database now; a failure is logged (the periodic re-read retries), never thrown. */
  reload(): Promise<void>;
  /** Stops the periodic re-read. */
  stop(): void;
};

/** Thrown by `rotate` when another rotation retired the active key first. */
export class ConcurrentRotationError extends Error {
  constructor() {
    super("the signing key was rotated concurrently");
    this.name = "ConcurrentRotationError";
  }
}

/**
 * Most signing keys published at once (the active one and the retired ones whose tokens may
 * still be alive). The keys serve every tenant, so one tenant's admin rotating in a loop
 * must not grow the JWKS every verifier downloads: with this cap, at most 3 rotations per
 * 12 hours (a retired key is published for 12 h 1 min).
 */
export const maxPublishedSigningKeys = 4;

/** Thrown by rotate() when maxPublishedSigningKeys are published; `until` is when the next retired key leaves the JWKS. */
export class TooManySigningKeysError extends Error {
  readonly until: Date;
  constructor(until: Date) {
    super(`${maxPublishedSigningKeys} signing keys are published`);
    this.name = "TooManySigningKeysError";
    this.until = until;
  }
}

type Published = { record: SigningKeyRecord; jwk: PublicJwk; key: CryptoKey };

/**
 * Loads the signing keys, creating the first one if none is active (race-safe across
 * replicas), and opens the active key's private part. StartupError when the KEK does not
 * open it. Re-reads every `refreshIntervalMs` (default 30 s, below the publish margin) and
 * on unknown kids at most once per `cooldownMs` (default 1 s).
 */
export async function startSigningKeys(deps: {
  units: UnitsOfWork;
  clock: Clock;
  logger: Logger;
  encryption: KeyEncryption;
  refreshIntervalMs?: number;
  cooldownMs?: number;
}): Promise<SigningKeys> {
  const { units, clock, logger, encryption } = deps;
  const cooldownMs = deps.cooldownMs ?? 1000;
  let published = new Map<string, Published>();
  let signer: SignerKey | undefined;
  let lastReadAt = Number.NEGATIVE_INFINITY;
  let reading: Promise<void> | undefined;

  /** Generates a key pair and seals its private part under the KEK, bound to its kid. */
  async function newKey(now: Date): Promise<Omit<SigningKeyRecord, "retiredAt" | "publishUntil">> {
    const kid = randomBytes(16).toString("base64url");
    const pair = await generateKeyPair(signingAlgorithm, { extractable: true });
    const { kty = "", crv = "", x = "", y = "" } = await exportJWK(pair.publicKey);
    const publicJwk: PublicJwk = { kty, crv, x, y, kid, alg: signingAlgorithm, use: "sig" };
    const pem = await exportPKCS8(pair.privateKey);
    return { kid, alg: signingAlgorithm, publicJwk, privateKeySealed: encryption.seal(Buffer.from(pem, "utf8"), kid), kekId: encryption.kekId, createdAt: now };
  }

  /** Opens a key's private part; the error names the kid and the KEK it was sealed under (never key material). */
  async function open(record: SigningKeyRecord): Promise<CryptoKey> {
    let pem: string;
    try {
      pem = encryption.unseal(record.privateKeySealed, record.kid).toString("utf8");
    } catch (e) {
      throw new StartupError(
        `the key-encryption key from ${encryption.source} does not open signing key ${record.kid} (sealed under KEK ${record.kekId}; this instance's KEK is ${encryption.kekId}): ` +
          "start keyward with the key-encryption key the signing keys were sealed with (every replica must share it)",
        e,
      );
    }
    return importPKCS8(pem, signingAlgorithm);
  }

  async function read(): Promise<void> {
    lastReadAt = performance.now();
    const records = await units.read({}, (uow) => repo.listPublished(uow, clock.now()));
    const next = new Map<string, Published>();
    for (const record of records) {
      const old = published.get(record.kid);
      if (old !== undefined) {
        next.set(record.kid, { ...old, record });
        continue;
      }
      const { kty = "", crv = "", x = "", y = "" } = record.publicJwk;
      const jwk: PublicJwk = { kty, crv, x, y, kid: record.kid, alg: record.alg, use: "sig" };
      next.set(record.kid, { record, jwk, key: await importJWK(jwk as JWK, record.alg) as CryptoKey });
    }
    // Verification keys first: even if this instance cannot open a new active key (another
    // replica with another KEK rotated), tokens signed with it still verify here.
    published = next;
    const active = records.find((r) => r.retiredAt === null);
    if (active !== undefined && active.kid !== signer?.kid) signer = { kid: active.kid, privateKey: await open(active) };
  }

  /** A re-read now, or after the cool-down if the last one was too recent; concurrent callers share it. */
  function readSoon(): Promise<void> {
    reading ??= (async () => {
      const wait = lastReadAt + cooldownMs - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait).unref());
      await read();
    })().finally(() => (reading = undefined));
    return reading;
  }

  // First start (or a database whose keys were all retired): make the active key. Replicas
  // starting together race on the insert; the loser reads the winner's key.
  const first = await units.read({}, (uow) => repo.listPublished(uow, clock.now()));
  if (!first.some((r) => r.retiredAt === null)) {
    const key = await newKey(clock.now());
    const created = await units.write({}, (uow) => repo.insertActiveIfNone(uow, key));
    if (created) logger.info({ kid: key.kid, alg: signingAlgorithm, kekId: encryption.kekId }, "created the first signing key");
  }
  await read();
  if (signer === undefined) throw new StartupError("no active signing key after creating one: the signing_key table is inconsistent");
  logger.info({ kid: signer.kid, kekId: encryption.kekId, published: published.size }, "signing keys loaded");

  const logFailure = (err: unknown) =>
    logger.error({ err: err instanceof StartupError ? err.message : err }, "could not re-read the signing keys; keeping the ones in memory");
  const timer = setInterval(() => void readSoon().catch(logFailure), deps.refreshIntervalMs ?? 30_000);
  timer.unref();

  const isPublished = (p: Published, now: Date) => p.record.retiredAt === null || (p.record.publishUntil !== null && p.record.publishUntil > now);

  return {
    signer() {
      return signer!;
    },
    async verificationKey(kid) {
      let found = published.get(kid);
      if (found === undefined) {
        await readSoon();
        found = published.get(kid);
      }
      return found !== undefined && isPublished(found, clock.now()) ? found.key : undefined;
    },
    jwks() {
      const now = clock.now();
      return [...published.values()].filter((p) => isPublished(p, now)).map((p) => p.jwk);
    },
    async rotate(uow) {
      const now = clock.now();
      // Read in the rotation's transaction, not the in-memory `published` (another replica may have rotated).
      const listed = await repo.listPublished(uow, now);
      if (listed.length >= maxPublishedSigningKeys) {
        const until = Math.min(...listed.flatMap((k) => (k.publishUntil === null ? [] : [k.publishUntil.getTime()])));
        throw new TooManySigningKeysError(new Date(until));
      }
      const key = await newKey(now);
      const retired = await repo.retireActive(uow, now, new Date(now.getTime() + (maxTokenLifetimeSeconds + publishMarginSeconds) * 1000));
      if (retired === undefined) throw new ConcurrentRotationError();
      if (!(await repo.insertActiveIfNone(uow, key))) throw new ConcurrentRotationError();
      logger.info({ kid: key.kid, retired }, "rotated the signing key");
      return { kid: key.kid, retired };
    },
    reload: () => read().catch(logFailure),
    stop() {
      clearInterval(timer);
    },
  };
}
