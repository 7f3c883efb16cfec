/** Waiting on conditions with deadlines (never bare sleeps as assertions), shared by every test. */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  what?: string;
}

/**
 * Polls `check` until it returns something other than undefined/false (returned), or the deadline
 * passes (throws, naming `what` and the last error `check` threw).
 */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  whatOrOptions: string | WaitOptions = {},
  timeoutMs?: number,
): Promise<T> {
  const o: WaitOptions = typeof whatOrOptions === 'string' ? { what: whatOrOptions, ...(timeoutMs !== undefined ? { timeoutMs } : {}) } : whatOrOptions;
  const limit = o.timeoutMs ?? 15_000;
  const deadline = Date.now() + limit;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${limit}ms waiting for ${o.what ?? 'condition'}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await sleep(o.intervalMs ?? 25);
  }
}

/** Whether a promise has settled, checked after letting pending microtasks and timers run. */
export async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(5);
  return done;
}

/** `p`, or a rejection naming `what` once `timeoutMs` passes, so a broken component fails fast. */
export function within<T>(p: Promise<T>, what: string, timeoutMs = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for: ${what}`)), timeoutMs);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
