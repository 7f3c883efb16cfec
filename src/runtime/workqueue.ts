/**
 * A work queue with client-go semantics (invariant 7 in the README's table).
 *
 * - A key is at most once in the queue ("dirty" set): repeated adds are coalesced.
 * - A key handed out by {@link Workqueue.get} is "processing" until {@link Workqueue.done}; it is never
 *   handed out a second time meanwhile. An add that arrives while the key is processing marks it dirty
 *   and the key is queued again (once) when `done()` is called.
 * - Delayed adds ({@link Workqueue.addAfter}) keep only the earliest deadline per key.
 * - {@link Workqueue.addRateLimited} backs off per key: `min(base * 2^failures, max)`; {@link Workqueue.forget}
 *   resets the key's failure count.
 * - Shutdown stops accepting adds and drops delayed items; keys already queued are still handed out, and
 *   `get()` resolves `undefined` once nothing is left. {@link Workqueue.shutDownWithDrain} additionally waits
 *   until every processing key is done.
 *
 * Everything happens synchronously on the event loop; no method ever yields between reading and updating
 * the sets, so there is nothing to lock.
 */

import { exponentialBackoffMs } from '../backoff.js';
import type { QueueStats } from '../stats.js';

/** Largest delay `setTimeout` accepts (ms); longer delays are clamped to it. */
const MAX_TIMER_MS = 2_147_483_647;

export interface WorkqueueOptions {
  /** Name used in metrics/logs. */
  name: string;
  /** First retry delay of the per-item exponential backoff. @default 5 */
  baseDelayMs?: number;
  /** Cap of the per-item backoff. @default 30_000 */
  maxDelayMs?: number;
  /**
   * Optional observer for metrics (client-go names: adds_total, queue_duration_seconds,
   * work_duration_seconds, retries_total). Exceptions thrown by it are swallowed.
   */
  observer?: WorkqueueObserver;
}

/** Hooks a metrics layer can attach to; all optional. Durations are milliseconds. */
export interface WorkqueueObserver {
  /** A key entered the dirty set (counted add). */
  onAdd?(queue: string, key: string): void;
  /** A key was handed out; `queuedMs` is the time it spent queued. */
  onGet?(queue: string, key: string, queuedMs: number): void;
  /** A key was marked done; `workMs` is the time it spent processing. */
  onDone?(queue: string, key: string, workMs: number): void;
  /** A delayed add was accepted (client-go counts every AddAfter as a retry). */
  onRetry?(queue: string, key: string): void;
}

/** A queue's figures, as published in the leader's stats (src/stats.ts). */
export type WorkqueueStats = QueueStats;

/** FIFO of keys with amortised O(1) shift. */
class Fifo {
  private items: string[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(key: string): void {
    this.items.push(key);
  }

  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined;
    const key = this.items[this.head];
    this.head++;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return key;
  }
}

/**
 * The delayed keys, earliest first: a binary min-heap in two parallel arrays (no object per entry).
 * An entry whose key has since been given an earlier time, or was handed out, is stale; it is
 * skipped when it comes up, and the heap is rebuilt when stale entries outnumber live ones.
 */
class DelayHeap {
  private keys: string[] = [];
  private at: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  /** The earliest entry's time; the caller has checked that there is one. */
  peekAt(): number {
    return this.at[0]!;
  }

  /** The earliest entry's key; the caller has checked that there is one. */
  peekKey(): string {
    return this.keys[0]!;
  }

  push(key: string, readyAt: number): void {
    let i = this.keys.length;
    this.keys.push(key);
    this.at.push(readyAt);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.at[parent]! <= readyAt) break;
      this.keys[i] = this.keys[parent]!;
      this.at[i] = this.at[parent]!;
      i = parent;
    }
    this.keys[i] = key;
    this.at[i] = readyAt;
  }

  /** Removes the earliest entry; the caller has checked that there is one. */
  pop(): [string, number] {
    const top: [string, number] = [this.keys[0]!, this.at[0]!];
    const key = this.keys.pop()!;
    const readyAt = this.at.pop()!;
    const n = this.keys.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const c = l + 1 < n && this.at[l + 1]! < this.at[l]! ? l + 1 : l;
        if (this.at[c]! >= readyAt) break;
        this.keys[i] = this.keys[c]!;
        this.at[i] = this.at[c]!;
        i = c;
      }
      this.keys[i] = key;
      this.at[i] = readyAt;
    }
    return top;
  }

  clear(): void {
    this.keys = [];
    this.at = [];
  }
}

function checkDelay(name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`workqueue: ${name} must be a finite number >= 0, got ${String(value)}`);
  }
}

export class Workqueue {
  readonly name: string;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;

  private readonly observer: WorkqueueObserver | undefined;
  private readonly queue = new Fifo();
  /** Keys that need processing (queued, or processing and added again). */
  private readonly dirty = new Set<string>();
  /** Keys handed out and not yet done → time they were handed out. */
  private readonly processing = new Map<string, number>();
  /** Dirty keys → time they became dirty (for queue latency). */
  private readonly addedAt = new Map<string, number>();
  /** Delayed keys → the time (performance.now(), whole ms) they become ready; the earliest wins. */
  private readonly waiting = new Map<string, number>();
  /**
   * The same times in time order, and one timer for the earliest: a timer per key would cost
   * ~200 bytes and a closure for each of 100k keys waiting for their deadlines.
   */
  private readonly delays = new DelayHeap();
  private timer: NodeJS.Timeout | undefined;
  /** The time `timer` is set for. */
  private timerAt = Number.POSITIVE_INFINITY;
  private readonly failures = new Map<string, number>();
  private readonly getters: Array<(key: string | undefined) => void> = [];
  private drainWaiters: Array<() => void> = [];
  private _shuttingDown = false;
  private addCount = 0;
  private retryCount = 0;

  constructor(options: WorkqueueOptions) {
    if (typeof options?.name !== 'string' || options.name.length === 0) {
      throw new TypeError('workqueue: options.name must be a non-empty string');
    }
    const base = options.baseDelayMs ?? 5;
    const max = options.maxDelayMs ?? 30_000;
    checkDelay('baseDelayMs', base);
    checkDelay('maxDelayMs', max);
    if (max < base) {
      throw new RangeError(`workqueue: maxDelayMs (${max}) must be >= baseDelayMs (${base})`);
    }
    this.name = options.name;
    this.baseDelayMs = base;
    this.maxDelayMs = max;
    this.observer = options.observer;
  }

  get shuttingDown(): boolean {
    return this._shuttingDown;
  }

  /** Mark `key` as needing processing. No-op after shutdown or if the key is already dirty. */
  add(key: string): void {
    if (this._shuttingDown) return;
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    this.addedAt.set(key, performance.now());
    this.addCount++;
    this.notify('onAdd', key);
    // Processing keys are re-queued by done().
    if (this.processing.has(key)) return;
    this.enqueue(key);
  }

  /**
   * Add `key` once `delayMs` has passed. If the key is already waiting, the earliest time wins.
   * `delayMs <= 0` adds at once. No-op after shutdown.
   */
  addAfter(key: string, delayMs: number): void {
    if (this._shuttingDown) return;
    this.retryCount++;
    this.notify('onRetry', key);
    if (!(delayMs > 0)) {
      // <= 0 (or NaN): add now rather than lose the key.
      this.add(key);
      return;
    }
    const readyAt = Math.ceil(performance.now() + Math.min(delayMs, MAX_TIMER_MS));
    const existing = this.waiting.get(key);
    if (existing !== undefined && existing <= readyAt) return;
    this.waiting.set(key, readyAt);
    this.delays.push(key, readyAt);
    // Superseded entries are skipped when they come up; rebuild before they outnumber live ones.
    if (this.delays.size > 1024 && this.delays.size > 2 * this.waiting.size) this.rebuildDelays();
    if (readyAt < this.timerAt) this.arm(readyAt);
  }

  /** Sets the one timer for `readyAt` (the earliest waiting time). */
  private arm(readyAt: number): void {
    clearTimeout(this.timer);
    this.timerAt = readyAt;
    this.timer = setTimeout(() => this.fire(), Math.max(1, Math.min(MAX_TIMER_MS, readyAt - performance.now())));
    this.timer.unref();
  }

  /** Adds every key whose time has come, then sets the timer for the next one. */
  private fire(): void {
    this.timer = undefined;
    // The timer was set for timerAt: that much time has passed, whatever sub-millisecond rounding
    // of the timer's own clock says.
    const now = Math.max(performance.now(), this.timerAt);
    this.timerAt = Number.POSITIVE_INFINITY;
    while (this.delays.size > 0) {
      const key = this.delays.peekKey();
      const readyAt = this.delays.peekAt();
      const live = this.waiting.get(key) === readyAt;
      if (live && readyAt > now) {
        this.arm(readyAt);
        return;
      }
      this.delays.pop();
      if (!live) continue;
      this.waiting.delete(key);
      this.add(key);
    }
  }

  private rebuildDelays(): void {
    this.delays.clear();
    for (const [key, readyAt] of this.waiting) this.delays.push(key, readyAt);
  }

  /** `addAfter(key, min(base * 2^failures, max))`, then count one more failure for the key. */
  addRateLimited(key: string): void {
    if (this._shuttingDown) return;
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    this.addAfter(key, exponentialBackoffMs(failures, this.baseDelayMs, this.maxDelayMs));
  }

  /** The backoff the next `addRateLimited(key)` would use. */
  nextBackoffMs(key: string): number {
    return exponentialBackoffMs(this.failures.get(key) ?? 0, this.baseDelayMs, this.maxDelayMs);
  }

  /** Clear the key's failure count. Does not touch its queued, processing or waiting state. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** How many times `addRateLimited` was called for `key` since it was last forgotten. */
  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /**
   * The next key, moved to the processing set; the caller must call {@link done} with it.
   * Waits while the queue is empty. Resolves `undefined` once shut down and nothing is queued.
   */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.startProcessing(key);
      return Promise.resolve(key);
    }
    if (this._shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.getters.push(resolve);
    });
  }

  /**
   * Mark `key` as done processing. If it was added again meanwhile it is queued again now.
   * Calling it for a key that is not processing is a no-op.
   */
  done(key: string): void {
    const startedAt = this.processing.get(key);
    if (startedAt === undefined) return;
    this.processing.delete(key);
    this.notify('onDone', key, performance.now() - startedAt);
    if (this.dirty.has(key)) {
      this.enqueue(key);
    }
    if (this.processing.size === 0 && this.drainWaiters.length > 0) {
      this.releaseDrainWaiters();
    }
  }

  /** Keys queued and ready (not processing, not waiting). */
  len(): number {
    return this.queue.length;
  }

  stats(): WorkqueueStats {
    const now = performance.now();
    let unfinished = 0;
    let longest = 0;
    for (const startedAt of this.processing.values()) {
      const elapsed = now - startedAt;
      unfinished += elapsed;
      if (elapsed > longest) longest = elapsed;
    }
    return {
      depth: this.queue.length,
      processing: this.processing.size,
      waiting: this.waiting.size,
      adds: this.addCount,
      retries: this.retryCount,
      unfinishedWorkMs: unfinished,
      longestRunningProcessorMs: longest,
    };
  }

  /**
   * Stop accepting adds, drop delayed items and clear their timers, wake waiting getters
   * (they resolve `undefined`). Keys already queued are still handed out by `get()`.
   * Also releases a pending {@link shutDownWithDrain} at once (client-go: ShutDown forces it).
   */
  shutdown(): void {
    this.beginShutdown();
    this.releaseDrainWaiters();
  }

  /** {@link shutdown}, then resolve once no key is processing (every handed-out key is done). */
  shutDownWithDrain(): Promise<void> {
    this.beginShutdown();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve);
    });
  }

  private beginShutdown(): void {
    if (this._shuttingDown) return;
    this._shuttingDown = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    this.waiting.clear();
    this.delays.clear();
    // Getters only wait while the queue is empty, so there is nothing to hand them.
    const getters = this.getters.splice(0);
    for (const resolve of getters) resolve(undefined);
  }

  private releaseDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Put a dirty, non-processing key in line: straight to a waiting getter if there is one. */
  private enqueue(key: string): void {
    const getter = this.getters.shift();
    if (getter !== undefined) {
      this.startProcessing(key);
      getter(key);
      return;
    }
    this.queue.push(key);
  }

  private startProcessing(key: string): void {
    const now = performance.now();
    const addedAt = this.addedAt.get(key);
    this.addedAt.delete(key);
    this.dirty.delete(key);
    this.processing.set(key, now);
    this.notify('onGet', key, addedAt === undefined ? 0 : now - addedAt);
  }

  private notify(hook: 'onAdd' | 'onRetry', key: string): void;
  private notify(hook: 'onGet' | 'onDone', key: string, ms: number): void;
  private notify(hook: keyof WorkqueueObserver, key: string, ms?: number): void {
    const fn = this.observer?.[hook];
    if (fn === undefined) return;
    try {
      fn.call(this.observer, this.name, key, ms ?? 0);
    } catch {
      // Metrics must never break the queue.
    }
  }
}
