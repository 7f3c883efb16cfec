import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Workqueue } from '../src/runtime/index.js';
import { exponentialBackoffMs } from '../src/backoff.js';
import { settled, sleep, waitFor as waitUntil, within } from './helpers/wait.js';

/** Fast polling: these tests watch in-process state, no I/O. */
const waitFor = (cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> =>
  waitUntil(cond, { what, timeoutMs, intervalMs: 2 }).then(() => undefined);

/** `q.get()` with a deadline, so a broken queue fails fast instead of hanging the test. */
function get(q: Workqueue, timeoutMs = 5_000): Promise<string | undefined> {
  return within(q.get(), 'get()', timeoutMs);
}

const queues: Workqueue[] = [];
function newQueue(opts: Partial<ConstructorParameters<typeof Workqueue>[0]> = {}): Workqueue {
  const q = new Workqueue({ name: 'test', ...opts });
  queues.push(q);
  return q;
}

afterEach(() => {
  vi.useRealTimers();
  for (const q of queues.splice(0)) q.shutdown();
});

describe('workqueue', () => {
  it('workqueue: repeated adds of a key are deduplicated (a key is at most once in the queue)', async () => {
    const q = newQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(q.stats().adds).toBe(2);
    expect(await get(q)).toBe('a');
    expect(await get(q)).toBe('b');
    expect(q.len()).toBe(0);
    expect(q.stats().processing).toBe(2);
    // nothing else is handed out
    expect(await settled(q.get())).toBe(false);
  });

  it('workqueue: keys are handed out in FIFO order', async () => {
    const q = newQueue();
    for (const k of ['x', 'y', 'z']) q.add(k);
    expect([await get(q), await get(q), await get(q)]).toEqual(['x', 'y', 'z']);
  });

  it('workqueue: adds during processing are coalesced and the key is processed exactly once more after done()', async () => {
    const q = newQueue();
    q.add('a');
    expect(await get(q)).toBe('a');
    q.add('a');
    q.add('a');
    q.add('a');
    // not queued while processing: no second worker can get it
    expect(q.len()).toBe(0);
    const second = q.get();
    expect(await settled(second)).toBe(false);
    q.done('a');
    expect(await within(second, 'second get()')).toBe('a');
    q.done('a');
    // exactly once more: nothing left
    expect(q.len()).toBe(0);
    expect(q.stats().processing).toBe(0);
    expect(await settled(q.get())).toBe(false);
  });

  it('workqueue: a waiting get() is woken by add()', async () => {
    const q = newQueue();
    const p = q.get();
    expect(await settled(p)).toBe(false);
    q.add('k');
    expect(await within(p, 'get()')).toBe('k');
    expect(q.stats().processing).toBe(1);
  });

  it('workqueue: an item is never handed to two workers at once, and every add is followed by a processing (8 workers, many adds)', async () => {
    const q = newQueue();
    const keys = Array.from({ length: 6 }, (_, i) => `k${i}`);
    const inFlight = new Set<string>();
    const violations: string[] = [];
    let seq = 0;
    const lastAdd = new Map<string, number>();
    const lastStart = new Map<string, number>();
    let processed = 0;

    const worker = async () => {
      for (;;) {
        const key = await q.get();
        if (key === undefined) return;
        if (inFlight.has(key)) violations.push(key);
        inFlight.add(key);
        lastStart.set(key, ++seq);
        await sleep(Math.random() * 3);
        inFlight.delete(key);
        processed++;
        q.done(key);
      }
    };
    const workers = Array.from({ length: 8 }, () => worker());

    for (let i = 0; i < 1_500; i++) {
      const key = keys[i % keys.length]!;
      lastAdd.set(key, ++seq);
      q.add(key);
      if (i % 25 === 0) await sleep(1);
      else await Promise.resolve();
    }
    // every key's last add must be followed by a processing that started after it
    await waitFor(
      () => keys.every((k) => (lastStart.get(k) ?? 0) > (lastAdd.get(k) ?? 0)) && inFlight.size === 0,
      'every add processed',
    );
    await within(q.shutDownWithDrain(), 'drain');
    await within(Promise.all(workers), 'workers exit');
    expect(violations).toEqual([]);
    expect(processed).toBeGreaterThan(0);
    expect(q.stats().processing).toBe(0);
  });

  it('workqueue: per-item backoff is min(base * 2^failures, max)', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => exponentialBackoffMs(n, 5, 100))).toEqual([5, 10, 20, 40, 80, 100]);
    expect(exponentialBackoffMs(2_000, 5, 30_000)).toBe(30_000); // 2^2000 overflows to Infinity, still capped
    const q = newQueue({ baseDelayMs: 10, maxDelayMs: 80 });
    const seen: Array<[number, number]> = [];
    for (let i = 0; i < 6; i++) {
      seen.push([q.numRequeues('k'), q.nextBackoffMs('k')]);
      q.addRateLimited('k');
    }
    expect(seen).toEqual([
      [0, 10],
      [1, 20],
      [2, 40],
      [3, 80],
      [4, 80],
      [5, 80],
    ]);
    expect(q.numRequeues('k')).toBe(6);
    expect(q.numRequeues('other')).toBe(0); // per item
  });

  it('workqueue: addRateLimited delays each retry by base*2^n up to the cap (fake clock)', async () => {
    vi.useFakeTimers();
    const q = newQueue({ baseDelayMs: 10, maxDelayMs: 80 });
    const expected = [10, 20, 40, 80, 80];
    for (const delay of expected) {
      q.addRateLimited('k');
      expect(q.stats().waiting).toBe(1);
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(q.len()).toBe(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(q.len()).toBe(1);
      expect(q.stats().waiting).toBe(0);
      expect(await q.get()).toBe('k');
      q.done('k');
    }
    expect(q.numRequeues('k')).toBe(expected.length);
  });

  it('workqueue: backoff is observed in order: a key with more failures comes back later, and the cap bounds it', async () => {
    const q = newQueue({ baseDelayMs: 5, maxDelayMs: 20 });
    // Give 'slow' 2 recorded failures (it waits at the earliest, 5 ms).
    q.addRateLimited('slow');
    q.addRateLimited('slow');
    expect(await get(q)).toBe('slow');
    q.done('slow');
    expect(q.numRequeues('slow')).toBe(2);
    q.addRateLimited('slow'); // 5 * 2^2 = 20 ms
    q.addRateLimited('fast'); // 5 ms
    expect(await get(q)).toBe('fast');
    expect(await get(q)).toBe('slow');
    q.done('fast');
    q.done('slow');

    // Cap: after 12 failures the uncapped delay would be 5 * 2^12 = 20 s; the cap keeps it at 20 ms,
    // so it comes back before a key added after 300 ms.
    for (let i = 0; i < 12; i++) q.addRateLimited('capped');
    expect(await get(q)).toBe('capped');
    q.done('capped');
    q.addRateLimited('capped');
    q.addAfter('later', 300);
    const first = await get(q);
    expect(first).toBe('capped');
    expect(await get(q)).toBe('later');
  });

  it('workqueue: forget resets the backoff to the base delay', async () => {
    vi.useFakeTimers();
    const q = newQueue({ baseDelayMs: 10, maxDelayMs: 1_000 });
    for (let i = 0; i < 4; i++) q.addRateLimited('k');
    expect(q.numRequeues('k')).toBe(4);
    await vi.advanceTimersByTimeAsync(10);
    expect(await q.get()).toBe('k');
    q.forget('k');
    q.done('k');
    expect(q.numRequeues('k')).toBe(0);
    expect(q.nextBackoffMs('k')).toBe(10);
    q.addRateLimited('k');
    await vi.advanceTimersByTimeAsync(10);
    expect(q.len()).toBe(1);
  });

  it('workqueue: forget does not touch the queued state', () => {
    const q = newQueue();
    q.add('k');
    q.forget('k');
    expect(q.len()).toBe(1);
  });

  it('workqueue: addAfter keeps the earliest time for a waiting key', async () => {
    vi.useFakeTimers();
    const q = newQueue();
    q.addAfter('a', 100);
    q.addAfter('a', 10); // earlier wins
    q.addAfter('b', 10);
    q.addAfter('b', 100); // later is ignored
    expect(q.stats().waiting).toBe(2);
    await vi.advanceTimersByTimeAsync(10);
    expect(q.len()).toBe(2);
    expect(q.stats().waiting).toBe(0);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    q.done('a');
    q.done('b');
    // the superseded deadlines do not fire a second time
    await vi.advanceTimersByTimeAsync(200);
    expect(q.len()).toBe(0);
    expect(q.stats().waiting).toBe(0);
  });

  it('workqueue: addAfter with delay <= 0 adds at once', () => {
    const q = newQueue();
    q.addAfter('a', 0);
    q.addAfter('b', -5);
    expect(q.len()).toBe(2);
    expect(q.stats().waiting).toBe(0);
  });

  it('workqueue: a delayed add of a processing key is coalesced and runs after done()', async () => {
    const q = newQueue({ baseDelayMs: 1 });
    q.add('k');
    expect(await get(q)).toBe('k');
    q.addRateLimited('k'); // fires while still processing
    await waitFor(() => q.stats().waiting === 0, 'delayed add fired');
    expect(q.len()).toBe(0);
    q.done('k');
    expect(await get(q)).toBe('k');
  });

  it('workqueue: shutdown drops delayed items, refuses adds, and makes get() resolve undefined', async () => {
    const q = newQueue();
    const blocked = q.get();
    q.addAfter('delayed', 30);
    expect(q.stats().waiting).toBe(1);
    q.shutdown();
    expect(q.shuttingDown).toBe(true);
    expect(await within(blocked, 'blocked get()')).toBeUndefined();
    expect(q.stats().waiting).toBe(0);
    const before = q.stats();
    q.add('late');
    q.addAfter('late2', 1);
    q.addRateLimited('late3');
    // Refused outright, not scheduled: no add or retry counted, no timer waiting to fire later (a
    // sleep to see whether one fires proves nothing on a slow machine).
    expect(q.stats()).toMatchObject({ adds: before.adds, retries: before.retries, waiting: 0, depth: 0 });
    expect(q.numRequeues('late3')).toBe(0);
    expect(q.len()).toBe(0);
    expect(q.stats().waiting).toBe(0);
    expect(await get(q)).toBeUndefined();
  });

  it('workqueue: keys queued before shutdown are still handed out, then get() resolves undefined', async () => {
    const q = newQueue();
    q.add('a');
    q.shutdown();
    expect(await get(q)).toBe('a');
    expect(await get(q)).toBeUndefined();
  });

  it('workqueue: one timer serves every delayed key (100k keys waiting for deadlines are not 100k timers), and shutdown clears it', async () => {
    vi.useFakeTimers();
    const q = newQueue();
    const before = vi.getTimerCount();
    for (let i = 0; i < 50; i++) q.addAfter(`k${i}`, 60_000 + i);
    q.addAfter('k0', 10); // moves k0 (and the timer) earlier; its old time does not fire it again
    expect(vi.getTimerCount()).toBe(before + 1);
    expect(q.stats().waiting).toBe(50);
    await vi.advanceTimersByTimeAsync(10);
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('k0');
    q.done('k0');
    await vi.advanceTimersByTimeAsync(60_000 - 10);
    expect(q.len()).toBe(0); // k1 (60 001) not yet; k0's superseded 60 000 added nothing
    await vi.advanceTimersByTimeAsync(1);
    expect(q.len()).toBe(1);
    expect(vi.getTimerCount()).toBe(before + 1);
    q.shutdown();
    expect(vi.getTimerCount()).toBe(before);
  });

  it('workqueue: delayed keys come back in time order whatever order they were added in', async () => {
    vi.useFakeTimers();
    const q = newQueue();
    const delays = Array.from({ length: 200 }, (_, i) => 1 + ((i * 7919) % 200));
    delays.forEach((d, i) => q.addAfter(`k${i}`, d));
    const order: number[] = [];
    for (let t = 1; t <= 200; t++) {
      await vi.advanceTimersByTimeAsync(1);
      while (q.len() > 0) {
        const key = (await q.get())!;
        order.push(delays[Number(key.slice(1))]!);
        q.done(key);
      }
      expect(order.every((d) => d <= t)).toBe(true);
    }
    expect(order).toEqual([...delays].sort((a, b) => a - b));
    expect(q.stats().waiting).toBe(0);
  });

  it('workqueue: delayed items do not keep the Node process alive', () => {
    const modUrl = new URL('../src/runtime/workqueue.ts', import.meta.url).href;
    const script = `
      const { Workqueue } = await import(${JSON.stringify(modUrl)});
      const q = new Workqueue({ name: 'unref', baseDelayMs: 60000, maxDelayMs: 60000 });
      q.addAfter('a', 60000);
      q.addRateLimited('b');
      console.log('waiting', q.stats().waiting);
    `;
    const res = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(res.error).toBeUndefined();
    expect(res.stderr).not.toMatch(/Error/);
    expect(res.stdout.trim()).toBe('waiting 2');
    expect(res.status).toBe(0);
  });

  it('workqueue: shutDownWithDrain waits until every processing key is done', async () => {
    const q = newQueue();
    q.add('a');
    q.add('b');
    q.add('c');
    expect(await get(q)).toBe('a');
    expect(await get(q)).toBe('b');
    const drained = q.shutDownWithDrain();
    expect(q.shuttingDown).toBe(true);
    q.done('a');
    expect(await settled(drained)).toBe(false);
    // a key still queued is handed out during drain, and must be done too
    expect(await get(q)).toBe('c');
    q.done('b');
    expect(await settled(drained)).toBe(false);
    q.done('c');
    await within(drained, 'drain');
    expect(q.stats().processing).toBe(0);
    expect(await get(q)).toBeUndefined();
  });

  it('workqueue: shutDownWithDrain with nothing processing resolves at once; shutdown() forces a pending drain', async () => {
    const q1 = newQueue();
    await within(q1.shutDownWithDrain(), 'drain');

    const q2 = newQueue();
    q2.add('a');
    expect(await get(q2)).toBe('a');
    const drained = q2.shutDownWithDrain();
    expect(await settled(drained)).toBe(false);
    q2.shutdown();
    await within(drained, 'drain');
  });

  it('workqueue: done() for a key that is not processing is a no-op', () => {
    const q = newQueue();
    q.add('a');
    q.done('a');
    q.done('zzz');
    expect(q.len()).toBe(1);
    expect(q.stats().processing).toBe(0);
  });

  it('workqueue: stats count adds, retries, depth, processing and waiting', async () => {
    const q = newQueue({ baseDelayMs: 1_000 });
    q.add('a');
    q.add('a');
    q.add('b');
    expect(await get(q)).toBe('a');
    q.addRateLimited('c');
    q.addAfter('d', 1_000);
    expect(q.stats()).toMatchObject({ depth: 1, processing: 1, waiting: 2, adds: 2, retries: 2 });
    expect(q.stats().longestRunningProcessorMs).toBeGreaterThanOrEqual(0);
  });

  it('workqueue: invalid options are refused with clear errors', () => {
    expect(() => new Workqueue({ name: '' })).toThrow(/name/);
    expect(() => new Workqueue({ name: 'x', baseDelayMs: -1 })).toThrow(/baseDelayMs/);
    expect(() => new Workqueue({ name: 'x', maxDelayMs: Number.NaN })).toThrow(/maxDelayMs/);
    expect(() => new Workqueue({ name: 'x', baseDelayMs: 10, maxDelayMs: 5 })).toThrow(/maxDelayMs/);
  });
});
