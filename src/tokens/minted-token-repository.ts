// Reads and writes of the rows of tokens keyward minted (minted_token): the row VerifyKey
// reads (src/verify/token-lookup.ts) beside each signed JWT. Runs inside the unit of work
// its caller opened; returns plain objects and checks no authorization.
import { ForeignKeyConstraintViolationException } from "@mikro-orm/core";
import { entityManagerOf, type UnitOfWork } from "../db/unit-of-work.ts";
import { ErrorKind, KeywardError } from "../errors.ts";
import { MintedToken } from "./token-entities.ts";

/** A minted_token row to insert. */
export type NewMintedToken = Readonly<{
  jti: string; tenantId: string; kind: "exchanged" | "user"; policyId: string | null; principalId: string;
  boundedBy: readonly string[]; orgId: string | null; permissions: readonly string[]; subject: string; issuedAt: Date; expiresAt: Date;
}>;

/** Minted token persistence. */
export const mintedTokenRepository = {
  /** When the minted token `jti` expires; undefined when there is no such token. */
  async expiry(uow: UnitOfWork, jti: string): Promise<Date | undefined> {
    const row = await entityManagerOf(uow).findOne(MintedToken, { jti }, { fields: ["expiresAt"] });
    return row === null ? undefined : new Date(row.expiresAt);
  },

  /**
   * Inserts a minted token's row. ABORTED CONCURRENT_MODIFICATION when its policy (read
   * without a lock) or principal was deleted by a transaction that committed meanwhile: the
   * foreign key finds nothing, and a retry gets the caller a precise answer.
   */
  async insert(uow: UnitOfWork, token: NewMintedToken): Promise<void> {
    const em = entityManagerOf(uow);
    em.create(MintedToken, { ...token, boundedBy: [...token.boundedBy], permissions: [...token.permissions] });
    try {
      await em.flush();
    } catch (e) {
      if (e instanceof ForeignKeyConstraintViolationException) {
        throw new KeywardError(ErrorKind.ABORTED, "CONCURRENT_MODIFICATION", "the policy or principal of this token was deleted concurrently; retry");
      }
      throw e;
    }
  },
};
