// Stops the PostgreSQL that global-setup started (if it started one) and removes its data.
import { rmSync } from "node:fs";

/** Jest global teardown. */
export default async function globalTeardown(): Promise<void> {
  const state = globalThis as { __keywardPostgres?: { stop(): Promise<void> }; __keywardDataDir?: string };
  await state.__keywardPostgres?.stop();
  if (state.__keywardDataDir !== undefined) rmSync(state.__keywardDataDir, { recursive: true, force: true });
}
