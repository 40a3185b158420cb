// Reads and writes of keyward's signing keys (minted-token rows: minted-token-repository.ts).
// Runs inside the unit of work its caller opened; returns plain objects and checks no
// authorization.
import { entityManagerOf, type UnitOfWork } from "../db/unit-of-work.ts";

/** A signing key as stored: the public JWK in clear, the private part sealed. */
export type SigningKeyRecord = Readonly<{
  kid: string;
  alg: string;
  /** The public JWK as published (`kty`, `crv`, `x`, `y`, `kid`, `alg`, `use`). */
  publicJwk: Readonly<Record<string, string>>;
  /** AES-256-GCM sealed PKCS#8 PEM, see key-encryption.ts. */
  privateKeySealed: string;
  kekId: string;
  createdAt: Date;
  retiredAt: Date | null;
  publishUntil: Date | null;
}>;

type Row = {
  kid: string; alg: string; public_jwk: Record<string, string>; private_key_sealed: string; kek_id: string;
  created_at: Date | string; retired_at: Date | string | null; publish_until: Date | string | null;
};

const dateOrNull = (v: Date | string | null): Date | null => (v === null ? null : new Date(v));
const recordOf = (r: Row): SigningKeyRecord => ({
  kid: r.kid, alg: r.alg, publicJwk: r.public_jwk, privateKeySealed: r.private_key_sealed, kekId: r.kek_id,
  createdAt: new Date(r.created_at), retiredAt: dateOrNull(r.retired_at), publishUntil: dateOrNull(r.publish_until),
});

/** Signing key persistence. */
export const signingKeyRepository = {
  /** The fingerprints of the KEKs that sealed the signing keys still in use (active or published). */
  async sealedUnder(uow: UnitOfWork): Promise<string[]> {
    const rows = await entityManagerOf(uow).execute<{ kek_id: string }[]>(
      "select distinct kek_id from signing_key where retired_at is null or publish_until > now() order by kek_id",
    );
    return rows.map((r) => r.kek_id);
  },

  /**
   * The keys whose public part is published at `now`: the active one and every retired one
   * whose `publish_until` is later than `now`. The active key (if any) comes first.
   */
  async listPublished(uow: UnitOfWork, now: Date): Promise<SigningKeyRecord[]> {
    const rows = await entityManagerOf(uow).execute<Row[]>(
      `select kid, alg, public_jwk, private_key_sealed, kek_id, created_at, retired_at, publish_until
         from signing_key
        where retired_at is null or publish_until > ?
        order by retired_at is not null, created_at desc`,
      [now],
    );
    return rows.map(recordOf);
  },

  /**
   * Inserts `key` as the active key unless one is active already (another replica may have
   * made it a moment ago: the partial unique index signing_key_one_active decides). True when inserted.
   */
  async insertActiveIfNone(uow: UnitOfWork, key: Omit<SigningKeyRecord, "retiredAt" | "publishUntil">): Promise<boolean> {
    const result = await entityManagerOf(uow).execute<{ affectedRows: number }>(
      `insert into signing_key (kid, alg, public_jwk, private_key_sealed, kek_id, created_at, retired_at, publish_until)
       values (?, ?, ?::jsonb, ?, ?, ?, null, null)
       on conflict do nothing`,
      [key.kid, key.alg, JSON.stringify(key.publicJwk), key.privateKeySealed, key.kekId, key.createdAt],
      "run",
    );
    return result.affectedRows === 1;
  },

  /**
   * Retires the active key (published until `publishUntil`); returns its kid, or undefined
   * when no key is active (a concurrent rotation retired it first).
   */
  async retireActive(uow: UnitOfWork, now: Date, publishUntil: Date): Promise<string | undefined> {
    const rows = await entityManagerOf(uow).execute<{ kid: string }[]>(
      `update signing_key set retired_at = ?, publish_until = ? where retired_at is null returning kid`,
      [now, publishUntil],
    );
    return rows[0]?.kid;
  },
};
