// Units of work for the services: a service asks for one (a read, or a transaction that
// commits or rolls back as a whole) and hands it to repositories, which are the only code
// that looks inside. Services never fork an EntityManager themselves (CONVENTIONS.md §7).
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Database } from "./orm.ts";

declare const unitOfWorkBrand: unique symbol;

/**
 * An open unit of work (a forked EntityManager, inside a transaction for `write`). Opaque
 * to services: they pass it to repository functions and the audit log, nothing else.
 */
export type UnitOfWork = { readonly [unitOfWorkBrand]: true };

/**
 * Whose unit of work it is: the caller's `signal` (its deadline, or its disconnect) ends
 * the wait for a connection and cancels the query in flight (`pg_cancel_backend`), so no
 * query outlives the call it serves. Omit it for work that must finish on its own (audit
 * writes of refusals, bootstrap).
 */
export type UnitOfWorkOwner = Readonly<{ signal?: AbortSignal | undefined }>;

/** Opens units of work over one database. */
export type UnitsOfWork = {
  /** Runs `fn` in one database transaction: committed when it returns, rolled back when it throws (or when `owner.signal` aborts). */
  write<T>(owner: UnitOfWorkOwner, fn: (uow: UnitOfWork) => Promise<T>): Promise<T>;
  /** Runs `fn` with a fresh unit of work outside any transaction (reads), bounded by `owner.signal`. */
  read<T>(owner: UnitOfWorkOwner, fn: (uow: UnitOfWork) => Promise<T>): Promise<T>;
};

/**
 * Creates the unit-of-work factory of a database. `afterCommit` runs after every committed
 * `write`, before it returns (the verification cache catches up with the change log there, so
 * the replica that made a change is consistent at once); it must not throw.
 */
export function createUnitsOfWork(db: Database, opts: { afterCommit?: () => Promise<void> } = {}): UnitsOfWork {
  const fork = (owner: UnitOfWorkOwner) =>
    owner.signal === undefined ? db.em.fork() : db.em.fork({ signal: owner.signal, inflightQueryAbortStrategy: "cancel query" });
  const { afterCommit = async () => {} } = opts;
  return {
    async write(owner, fn) {
      const result = await fork(owner).transactional((em) => fn(em as unknown as UnitOfWork));
      await afterCommit();
      return result;
    },
    read: (owner, fn) => fn(fork(owner) as unknown as UnitOfWork),
  };
}

/** The EntityManager inside a unit of work: for repositories (and the audit log) only. */
export function entityManagerOf(uow: UnitOfWork): EntityManager {
  return uow as unknown as EntityManager;
}
