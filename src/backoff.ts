/**
 * The delays txloop waits before trying again, all from one place: the per-item exponential backoff
 * of the workqueues and of phase-2 retries (persisted in the branch record), and the jittered backoff
 * of the loops that reconnect to etcd (election, informer), and a retry helper for short
 * read-and-write loops that lose races.
 */
import { ExponentialBackoff, type IBackoff } from 'cockatiel';

/**
 * Per-item exponential backoff: `min(baseMs * 2^failures, maxMs)`.
 * `failures` is the number of failures recorded before this one (0 for the first retry).
 */
export function exponentialBackoffMs(failures: number, baseMs: number, maxMs: number): number {
  const raw = baseMs * 2 ** failures; // overflows to Infinity for huge counts, which min() caps
  return Math.min(raw, maxMs);
}

/** Exponential backoff with decorrelated jitter (cockatiel's), restarted by {@link reset}. */
export class RetryBackoff {
  private current: IBackoff<unknown> | undefined;
  private readonly factory: ExponentialBackoff<unknown>;

  constructor(options: { initialMs: number; maxMs: number }) {
    this.factory = new ExponentialBackoff({ initialDelay: options.initialMs, maxDelay: options.maxMs });
  }

  /** How long to wait before the next try. */
  nextMs(): number {
    this.current = this.current ? this.current.next(undefined) : this.factory.next();
    return this.current.duration;
  }

  reset(): void {
    this.current = undefined;
  }
}

export interface RetryOptions {
  /** Tries in all, the first included. */
  attempts: number;
  /** Delay before retry n (0-based); none by default. */
  delayMs?: (retry: number) => number;
  /** Whether `err` is worth another try. @default every error */
  retryOn?: (err: unknown) => boolean;
}

/** `fn`, tried up to `attempts` times; the last error is thrown. */
export async function retrying<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  let last: unknown;
  for (let attempt = 0; attempt < options.attempts; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      last = err;
      if (options.retryOn && !options.retryOn(err)) throw err;
      const delay = options.delayMs?.(attempt) ?? 0;
      if (delay > 0 && attempt + 1 < options.attempts) await new Promise((r) => setTimeout(r, delay));
    }
  }
  throw last;
}
