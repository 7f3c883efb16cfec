/**
 * A generic worker runner over a {@link Workqueue} (controller-runtime style).
 *
 * One pull loop takes keys from the queue only while one of p-queue's `concurrency` slots is free
 * (p-queue counts them), and runs `reconcile` there. The workqueue guarantees that a key is never
 * handed to two workers at once, so there is no second dedup layer here. The loop yields to the
 * event loop every SLICE_MS of work (src/slices.ts), so a long backlog never starves timers and I/O.
 *
 * Outcomes:
 * - resolves `void`                 → `forget(key)` (success clears the key's backoff);
 * - resolves `{ requeueAfterMs }`   → `forget(key)` then `addAfter(key, requeueAfterMs)`;
 * - throws {@link TerminalError}    → `forget(key)`, no retry;
 * - throws anything else            → `addRateLimited(key)` (per-item exponential backoff);
 * - always                          → `done(key)`.
 */
import PQueue from 'p-queue';
import { TerminalError } from '../errors.js';
import { SLICE_MS, nextTurn } from '../slices.js';
import type { ReconcileResult } from './reconcile.js';
import type { Workqueue } from './workqueue.js';

/** Minimal structural logger (pino's `Logger` fits). */
export interface ControllerLogger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface ControllerOptions {
  name: string;
  queue: Workqueue;
  reconcile: (key: string, signal: AbortSignal) => Promise<ReconcileResult>;
  /** Workers running at once (p-queue concurrency). @default 4 */
  concurrency?: number;
  /** Called for errors thrown by reconcile (already requeued with backoff or dropped if TerminalError). */
  onError?: (key: string, err: unknown, willRetry: boolean) => void;
  /** Where errors are logged (with the controller name and key). Nothing is logged if omitted. */
  logger?: ControllerLogger;
}

export class Controller {
  readonly name: string;
  readonly concurrency: number;

  private readonly queue: Workqueue;
  private readonly reconcileFn: ControllerOptions['reconcile'];
  private readonly onError: ControllerOptions['onError'];
  private readonly logger: ControllerLogger | undefined;
  private readonly pq: PQueue;
  private readonly abort = new AbortController();
  private started = false;
  private stopping = false;
  private stopPromise: Promise<void> | undefined;
  private loopPromise: Promise<void> = Promise.resolve();
  private slotWaiter: (() => void) | undefined;

  constructor(options: ControllerOptions) {
    if (typeof options?.name !== 'string' || options.name.length === 0) {
      throw new TypeError('controller: options.name must be a non-empty string');
    }
    if (options.queue === undefined || options.queue === null) {
      throw new TypeError('controller: options.queue is required');
    }
    if (typeof options.reconcile !== 'function') {
      throw new TypeError('controller: options.reconcile must be a function');
    }
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`controller: concurrency must be an integer >= 1, got ${String(concurrency)}`);
    }
    this.name = options.name;
    this.concurrency = concurrency;
    this.queue = options.queue;
    this.reconcileFn = options.reconcile;
    this.onError = options.onError;
    this.logger = options.logger;
    this.pq = new PQueue({ concurrency });
  }

  /** The signal passed to every reconcile; aborted by {@link stop}. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Number of reconciles currently running (or handed to the p-queue). */
  get running(): number {
    return this.pq.pending + this.pq.size;
  }

  /** Begin pulling keys from the queue. Calling it twice is a no-op; after {@link stop} it throws. */
  start(): void {
    if (this.stopping) throw new Error(`controller ${this.name}: cannot start after stop`);
    if (this.started) return;
    this.started = true;
    this.loopPromise = this.pullLoop();
  }

  /**
   * Abort the signal passed to running reconciles, shut the queue down with drain and wait for running
   * reconciles to settle. Keys still queued are not reconciled (they stay in the shut-down queue).
   * Safe to call more than once (every call returns the same promise).
   */
  stop(): Promise<void> {
    if (this.stopPromise !== undefined) return this.stopPromise;
    this.stopping = true;
    this.abort.abort(new Error(`controller ${this.name} stopping`));
    this.wakeSlotWaiter();
    this.stopPromise = (async () => {
      await this.queue.shutDownWithDrain();
      await this.loopPromise;
      await this.pq.onIdle();
    })();
    return this.stopPromise;
  }

  private async pullLoop(): Promise<void> {
    let sliceStart = performance.now();
    for (;;) {
      // Reconciles answered from the cache settle in microtasks, so a backlog of 100k of them would
      // run without ever letting timers and I/O in (lease keep-alives among them): give the event
      // loop a turn every few milliseconds of such work.
      if (performance.now() - sliceStart >= SLICE_MS) {
        await nextTurn();
        sliceStart = performance.now();
      }
      while (this.running >= this.concurrency && !this.stopping) {
        await new Promise<void>((resolve) => {
          this.slotWaiter = resolve;
          this.pq.once('next', resolve);
        });
      }
      if (this.stopping) return;
      const key = await this.queue.get();
      if (key === undefined) return;
      if (this.stopping) {
        // Handed out after stop began: release it without reconciling.
        this.queue.done(key);
        return;
      }
      this.pq.add(() => this.process(key)).catch(() => {
        // process() never rejects; this only guards against p-queue internals.
      });
    }
  }

  private async process(key: string): Promise<void> {
    try {
      let result: ReconcileResult;
      try {
        result = await this.reconcileFn(key, this.abort.signal);
      } catch (err) {
        this.handleError(key, err);
        return;
      }
      if (result !== undefined && result !== null && typeof result === 'object') {
        const after = (result as { requeueAfterMs?: unknown }).requeueAfterMs;
        if (typeof after !== 'number' || Number.isNaN(after)) {
          this.handleError(
            key,
            new TypeError(`reconcile returned an invalid requeueAfterMs: ${String(after)}`),
          );
          return;
        }
        this.queue.forget(key);
        this.queue.addAfter(key, after);
        return;
      }
      this.queue.forget(key);
    } finally {
      this.queue.done(key);
    }
  }

  private handleError(key: string, err: unknown): void {
    let willRetry: boolean;
    if (err instanceof TerminalError) {
      this.queue.forget(key);
      willRetry = false;
    } else {
      willRetry = !this.queue.shuttingDown;
      this.queue.addRateLimited(key);
    }
    try {
      const fields = { controller: this.name, key, err, willRetry, requeues: this.queue.numRequeues(key) };
      if (willRetry) this.logger?.warn(fields, 'reconcile failed, will retry');
      else if (err instanceof TerminalError) this.logger?.error(fields, 'reconcile failed terminally, not retrying');
      else this.logger?.warn(fields, 'reconcile failed while shutting down, not retrying');
    } catch {
      // A broken logger must not kill the loop.
    }
    if (this.onError !== undefined) {
      try {
        this.onError(key, err, willRetry);
      } catch (hookErr) {
        try {
          this.logger?.error({ controller: this.name, key, err: hookErr }, 'onError hook threw');
        } catch {
          // ignore
        }
      }
    }
  }

  private wakeSlotWaiter(): void {
    const waiter = this.slotWaiter;
    this.slotWaiter = undefined;
    waiter?.();
  }
}
