import { afterEach, describe, expect, it } from 'vitest';
import { TerminalError } from '../src/errors.js';
import { Controller, type ControllerOptions, type ReconcileResult } from '../src/runtime/index.js';
import { Workqueue } from '../src/runtime/index.js';
import { settled, sleep, waitFor as waitUntil, within } from './helpers/wait.js';

/** Fast polling: these tests watch in-process state, no I/O. The deadline only bounds a broken run. */
const waitFor = (cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> =>
  waitUntil(cond, { what, timeoutMs, intervalMs: 2 }).then(() => undefined);

/**
 * Nothing queued, handed out, waiting out a delay or running: no reconcile can start again without a
 * new add. What "it was not retried" is checked against, instead of a sleep a slow machine outlasts.
 */
function expectIdle(q: Workqueue, c: Controller): void {
  expect(q.stats()).toMatchObject({ depth: 0, processing: 0, waiting: 0 });
  expect(c.running).toBe(0);
}

const controllers: Controller[] = [];

function setup(
  reconcile: ControllerOptions['reconcile'],
  opts: Partial<ControllerOptions> & { baseDelayMs?: number; maxDelayMs?: number } = {},
): { q: Workqueue; c: Controller; errors: Array<{ key: string; err: unknown; willRetry: boolean }> } {
  const q = new Workqueue({ name: 'ctl-test', baseDelayMs: opts.baseDelayMs ?? 1, maxDelayMs: opts.maxDelayMs ?? 50 });
  const errors: Array<{ key: string; err: unknown; willRetry: boolean }> = [];
  const c = new Controller({
    name: 'ctl-test',
    queue: q,
    reconcile,
    onError: (key, err, willRetry) => errors.push({ key, err, willRetry }),
    ...opts,
  });
  controllers.push(c);
  return { q, c, errors };
}

afterEach(async () => {
  await within(Promise.all(controllers.splice(0).map((c) => c.stop())), 'stop() in afterEach');
});

describe('controller', () => {
  it('controller: a successful reconcile forgets the key (its backoff is reset)', async () => {
    const calls: string[] = [];
    const { q, c } = setup(async (key) => {
      calls.push(key);
    });
    // the key carries failures from earlier attempts
    q.addRateLimited('k');
    q.addRateLimited('k');
    expect(q.numRequeues('k')).toBe(2);
    c.start();
    await waitFor(() => calls.length === 1 && q.stats().processing === 0, 'reconciled once');
    expect(q.numRequeues('k')).toBe(0);
    expectIdle(q, c);
    expect(calls).toEqual(['k']); // not requeued
  });

  it('controller: a throwing reconcile is retried with per-item backoff until it succeeds, then forgotten', async () => {
    const requeuesSeen: number[] = [];
    const attemptTimes: number[] = [];
    let q!: Workqueue;
    const ctx = setup(
      async (key) => {
        requeuesSeen.push(q.numRequeues(key));
        attemptTimes.push(performance.now());
        if (requeuesSeen.length <= 3) throw new Error(`boom ${requeuesSeen.length}`);
      },
      { baseDelayMs: 4, maxDelayMs: 1_000 },
    );
    q = ctx.q;
    ctx.c.start();
    q.add('k');
    await waitFor(() => requeuesSeen.length === 4 && q.stats().processing === 0, 'four attempts');
    // each failure recorded one more requeue: delays base*2^0, base*2^1, base*2^2
    expect(requeuesSeen).toEqual([0, 1, 2, 3]);
    expect(q.numRequeues('k')).toBe(0); // success forgot it
    expect(ctx.errors.map((e) => [e.key, e.willRetry])).toEqual([
      ['k', true],
      ['k', true],
      ['k', true],
    ]);
    // generous ordering check: the gaps are not shorter than the backoff (4, 8, 16 ms), minus timer slack
    const gaps = attemptTimes.slice(1).map((t, i) => t - attemptTimes[i]!);
    expect(gaps[0]!).toBeGreaterThanOrEqual(3);
    expect(gaps[1]!).toBeGreaterThanOrEqual(7);
    expect(gaps[2]!).toBeGreaterThanOrEqual(15);
    expectIdle(q, ctx.c);
    expect(requeuesSeen.length).toBe(4);
  });

  it('controller: a TerminalError is not retried and the key is forgotten', async () => {
    let calls = 0;
    const { q, c, errors } = setup(async () => {
      calls++;
      throw new TerminalError('bad record');
    });
    q.addRateLimited('k'); // one earlier failure, fires after 1 ms
    c.start();
    await waitFor(() => calls === 1 && errors.length === 1 && q.stats().processing === 0, 'one terminal attempt');
    expectIdle(q, c);
    expect(calls).toBe(1);
    expect(errors[0]!.willRetry).toBe(false);
    expect(errors[0]!.err).toBeInstanceOf(TerminalError);
    expect(q.numRequeues('k')).toBe(0);
    expect(q.stats()).toMatchObject({ depth: 0, processing: 0, waiting: 0 });
  });

  it('controller: {requeueAfterMs} forgets the key and requeues it after the delay', async () => {
    const calls: number[] = [];
    const { q, c } = setup(async (): Promise<ReconcileResult> => {
      calls.push(performance.now());
      if (calls.length === 1) throw new Error('first attempt fails'); // leaves a failure count
      if (calls.length <= 3) return { requeueAfterMs: 20 };
    });
    c.start();
    q.add('k');
    await waitFor(() => calls.length === 2, 'second attempt');
    await waitFor(() => q.stats().processing === 0, 'second attempt done');
    expect(q.numRequeues('k')).toBe(0); // requeueAfter forgets the failure
    expect(q.stats().waiting).toBe(1);
    await waitFor(() => calls.length === 4 && q.stats().processing === 0, 'four attempts');
    expect(calls[2]! - calls[1]!).toBeGreaterThanOrEqual(15);
    expectIdle(q, c);
    expect(calls.length).toBe(4);
  });

  it('controller: {requeueAfterMs: 0} requeues at once, after the current run is done', async () => {
    let calls = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    const { q, c } = setup(async (): Promise<ReconcileResult> => {
      calls++;
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      await sleep(2);
      concurrent--;
      return calls < 3 ? { requeueAfterMs: 0 } : undefined;
    });
    c.start();
    q.add('k');
    await waitFor(() => calls === 3 && q.stats().processing === 0, 'three runs');
    expect(maxConcurrent).toBe(1);
  });

  it('controller: stop() aborts the signal passed to running reconciles and waits for them to settle', async () => {
    let started = 0;
    let finished = 0;
    const signals: AbortSignal[] = [];
    const { q, c } = setup(
      async (_key, signal) => {
        started++;
        signals.push(signal);
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        await sleep(30); // cleanup after abort takes a while
        finished++;
      },
      { concurrency: 3 },
    );
    c.start();
    for (const k of ['a', 'b', 'c', 'd', 'e']) q.add(k);
    await waitFor(() => started === 3, 'three running');
    expect(signals.every((s) => !s.aborted)).toBe(true);
    const stopping = c.stop();
    expect(signals.every((s) => s.aborted)).toBe(true);
    expect(await settled(stopping)).toBe(false);
    await within(stopping, 'stop()');
    expect(finished).toBe(3);
    expect(q.shuttingDown).toBe(true);
    expect(q.stats().processing).toBe(0);
    // keys still queued at stop are not reconciled, and adds after stop are refused; stop() resolved
    // after the pull loop ended, so nothing can start any more
    q.add('late');
    expect(q.stats()).toMatchObject({ adds: 5, depth: 2, processing: 0, waiting: 0 });
    expect(c.running).toBe(0);
    expect(started).toBe(3);
  });

  it('controller: stop() twice is safe and returns the same settled promise; start() after stop throws', async () => {
    const { q, c } = setup(async () => {
      await sleep(10);
    });
    c.start();
    q.add('k');
    const p1 = c.stop();
    const p2 = c.stop();
    expect(p2).toBe(p1);
    await within(Promise.all([p1, p2]), 'stop()');
    await within(c.stop(), 'third stop()');
    expect(() => c.start()).toThrow(/after stop/);
  });

  it('controller: stop() before start() resolves and shuts the queue down', async () => {
    const { q, c } = setup(async () => {});
    await c.stop();
    expect(q.shuttingDown).toBe(true);
  });

  it('controller: the concurrency limit is respected', async () => {
    let running = 0;
    let maxRunning = 0;
    let done = 0;
    const { q, c } = setup(
      async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(5);
        running--;
        done++;
      },
      { concurrency: 3 },
    );
    c.start();
    for (let i = 0; i < 30; i++) q.add(`k${i}`);
    await waitFor(() => done === 30, 'all reconciled');
    expect(maxRunning).toBe(3);
    // keys are not pulled from the workqueue faster than workers free up
    expect(q.stats().processing).toBe(0);
  });

  it('controller: keys are only taken from the queue when a worker is free', async () => {
    const release: Array<() => void> = [];
    const { q, c } = setup(
      (_key) => new Promise<ReconcileResult>((resolve) => release.push(() => resolve())),
      { concurrency: 2 },
    );
    c.start();
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    await waitFor(() => release.length === 2, 'two running');
    await sleep(10);
    expect(q.stats().processing).toBe(2);
    expect(q.len()).toBe(2);
    release.shift()!();
    await waitFor(() => release.length === 2 && q.len() === 1, 'third started');
    for (const r of release.splice(0)) r();
    await waitFor(() => release.length === 1, 'fourth started');
    release.shift()!();
    await waitFor(() => q.stats().processing === 0 && q.len() === 0, 'all done');
  });

  it('controller: no key is reconciled by two workers at once (concurrency 8, many adds) and every add is followed by a reconcile', async () => {
    const keys = Array.from({ length: 5 }, (_, i) => `k${i}`);
    const inFlight = new Set<string>();
    const violations: string[] = [];
    let seq = 0;
    const lastAdd = new Map<string, number>();
    const lastStart = new Map<string, number>();
    let running = 0;
    let maxRunning = 0;
    let fail = 0;
    const { q, c } = setup(
      async (key) => {
        if (inFlight.has(key)) violations.push(key);
        inFlight.add(key);
        lastStart.set(key, ++seq);
        running++;
        maxRunning = Math.max(maxRunning, running);
        try {
          await sleep(Math.random() * 3);
          if (++fail % 7 === 0) throw new Error('transient');
        } finally {
          running--;
          inFlight.delete(key);
        }
      },
      { concurrency: 8, baseDelayMs: 1, maxDelayMs: 5 },
    );
    c.start();
    for (let i = 0; i < 1_500; i++) {
      const key = keys[i % keys.length]!;
      lastAdd.set(key, ++seq);
      q.add(key);
      if (i % 20 === 0) await sleep(1);
      else await Promise.resolve();
    }
    await waitFor(
      () =>
        keys.every((k) => (lastStart.get(k) ?? 0) > (lastAdd.get(k) ?? 0)) &&
        q.stats().processing === 0 &&
        q.stats().waiting === 0 &&
        q.len() === 0,
      'every add reconciled',
    );
    expect(violations).toEqual([]);
    expect(maxRunning).toBeLessThanOrEqual(keys.length);
    expect(maxRunning).toBeGreaterThan(1);
  });

  it('controller: a reconcile that throws synchronously or an onError hook that throws does not kill the loop', async () => {
    let calls = 0;
    const q = new Workqueue({ name: 'sync-throw', baseDelayMs: 1, maxDelayMs: 5 });
    const c = new Controller({
      name: 'sync-throw',
      queue: q,
      reconcile: ((key: string) => {
        calls++;
        if (key === 'bad' && calls < 3) throw new Error('sync throw');
        return Promise.resolve();
      }) as ControllerOptions['reconcile'],
      onError: () => {
        throw new Error('hook broke');
      },
    });
    controllers.push(c);
    c.start();
    q.add('bad');
    await waitFor(() => calls >= 3 && q.stats().processing === 0, 'bad retried to success');
    q.add('good');
    await waitFor(() => calls >= 4 && q.stats().processing === 0, 'loop still alive');
    expect(q.numRequeues('bad')).toBe(0);
  });

  it('controller: an invalid requeueAfterMs is treated as an error and retried', async () => {
    let calls = 0;
    const { q, c, errors } = setup(async () => {
      calls++;
      if (calls === 1) return { requeueAfterMs: Number.NaN };
    });
    c.start();
    q.add('k');
    await waitFor(() => calls === 2 && q.stats().processing === 0, 'retried');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.willRetry).toBe(true);
    expect(errors[0]!.err).toBeInstanceOf(TypeError);
  });

  it('controller: invalid options are refused with clear errors', () => {
    const q = new Workqueue({ name: 'x' });
    const reconcile = async () => {};
    expect(() => new Controller({ name: '', queue: q, reconcile })).toThrow(/name/);
    expect(() => new Controller({ name: 'x', queue: q, reconcile, concurrency: 0 })).toThrow(/concurrency/);
    expect(() => new Controller({ name: 'x', queue: q, reconcile, concurrency: 1.5 })).toThrow(/concurrency/);
  });
});
