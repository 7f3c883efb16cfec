/**
 * Long passes over many keys (a relist's diff, a new term's replay, a backlog of reconciles) run in
 * slices, giving the event loop a turn between them: a synchronous pass over 100k keys would hold
 * off timers and I/O for seconds, the lease's keep-alives among them, and a leader whose keep-alives
 * go unanswered for its TTL loses its term.
 */

/** Keys handled between two turns of the event loop in a pass over the cache. */
export const SLICE_KEYS = 1000;

/** Milliseconds of back-to-back work before the event loop gets a turn (the controllers' loop). */
export const SLICE_MS = 10;

/** Resolves on a later turn of the event loop (setImmediate), once pending I/O and timers could run. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Counts the keys of a pass: `full()` is true once every SLICE_KEYS keys, when the pass should `await nextTurn()`. */
export class Slices {
  private count = 0;

  constructor(private readonly size = SLICE_KEYS) {}

  full(): boolean {
    if (++this.count < this.size) return false;
    this.count = 0;
    return true;
  }
}
