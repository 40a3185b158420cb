// Bounded waits for tests: every wait has an owner and a bound, and says what it waited for.

/** Resolves when `p` does, rejects after `ms` (so no wait in a test is unbounded). */
export function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Waits until `cond()` holds, checking every `everyMs` (default 10 ms), for at most `ms`. */
export async function until(cond: () => boolean, ms: number, what: string, everyMs = 10): Promise<void> {
  for (let waited = 0; !cond(); waited += everyMs) {
    if (waited >= ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
