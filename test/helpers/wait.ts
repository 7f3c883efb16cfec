/** Waiting on conditions with deadlines (never bare sleeps as assertions), shared by every test. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';

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

/**
 * Whether every thread of `pid` is in a stop (state T or t in /proc/<pid>/task/<tid>/stat).
 * `kill(pid, 'SIGSTOP')` returns once the signal is queued: the process stops only when one of its
 * threads is scheduled to handle it, and until that thread has stopped the others, they go on
 * running (a loaded machine makes that window tens of milliseconds) — etcd can still answer.
 */
export function isStopped(pid: number): boolean {
  const tasks = readdirSync(`/proc/${pid}/task`);
  return (
    tasks.length > 0 &&
    tasks.every((tid) => {
      let stat: string;
      try {
        stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      } catch {
        return true; // the thread exited meanwhile
      }
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      return state === 'T' || state === 't' || state === 'X' || state === 'Z';
    })
  );
}

/** Resolves once `pid` (just sent SIGSTOP) has really stopped; without /proc, at once. */
export async function untilStopped(pid: number, what: string, timeoutMs = 15_000): Promise<void> {
  if (!existsSync('/proc/self/task')) return;
  await waitFor(() => isStopped(pid), { what: `${what} (pid ${pid}) to be stopped`, timeoutMs, intervalMs: 5 });
}
