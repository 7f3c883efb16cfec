import { describe, expect, it } from 'vitest';
import { TryFailed, type PhaseTwoContext } from '../src/index.js';
import { orderFor, Store, type BranchRecord } from '../src/store/index.js';
import { fastTimings, gate, useEtcd, waitFor, type Harness } from './helpers/harness.js';
import { settled, sleep } from './helpers/wait.js';

const env = useEtcd();
let h: Harness;

function setup(label: string): Store {
  const fresh = env.fresh(label);
  h = fresh.h;
  return fresh.store;
}

describe('invariant 3: every branch gets the decided action at least once, with backoff, until done or parked', () => {
  it('a confirm that fails three times is retried with growing delays, then succeeds and the global completes', async () => {
    setup('retry');
    const attempts: { attempt: number; at: number }[] = [];
    const p = h.service({ app: 'acct', retryBaseMs: 40, retryMaxMs: 1000 }).resource('r', {
      try: () => undefined,
      confirm: ({ attempt }) => {
        attempts.push({ attempt, at: Date.now() });
        if (attempt <= 3) throw new Error(`downstream unavailable (${attempt})`);
      },
      cancel: () => undefined,
    });
    await p.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'retry', timeoutMs: 30_000 });
    await p.tryBranch(tx.context, 'r', {});
    await tx.commit();
    const done = await init.waitForCompletion(tx.xid, { timeoutMs: 20_000 });
    expect(done.status).toBe('COMMITTED');
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4]);
    expect(done.branches[0]?.attempts).toBe(4);
    // Backoff doubles from retryBaseMs: gaps are at least 40, 80, 160 ms.
    const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(35);
    expect(gaps[1]).toBeGreaterThanOrEqual(75);
    expect(gaps[2]).toBeGreaterThanOrEqual(155);
  });

  it('a confirm that always fails is parked (PARKED) after maxAttempts attempts, with its last error, and the global stays visible as COMMITTING', async () => {
    const store = setup('park');
    let calls = 0;
    const p = h.service({ app: 'acct', deadThreshold: 3 })
      .resource('r', {
        try: () => undefined,
        confirm: () => {
          calls++;
          throw new Error('ledger rejects posting');
        },
        cancel: () => undefined,
      })
      .resource('ok', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    await p.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'park', timeoutMs: 30_000 });
    const { branchId } = await p.tryBranch(tx.context, 'r', {});
    await tx.commit();
    const parked = await waitFor(async () => {
      const b = await store.branches.get('acct', tx.xid, branchId);
      return b?.record.phase2?.state === 'PARKED' ? b.record : undefined;
    }, { what: 'branch parked' });
    expect(parked.phase2?.attempts).toBe(3);
    expect(parked.phase2?.lastError).toContain('ledger rejects posting');
    expect(calls).toBe(3);
    expect((await init.get(tx.xid)).status).toBe('COMMITTING');

    // Parked means no more attempts until a human acts. Shown rather than slept (a slow loop outlasts
    // a sleep): past the longest retry delay, a later transaction's branch on the same leader is
    // confirmed, so the parked branch's own change and any retry due by then were handled before it.
    const seenParkedAt = Date.now();
    await waitFor(() => Date.now() > seenParkedAt + fastTimings.retryMaxMs, { what: 'the longest retry delay to pass' });
    const later = await init.begin({ name: 'later', timeoutMs: 30_000 });
    await p.tryBranch(later.context, 'ok', {});
    await later.commit();
    expect((await init.waitForCompletion(later.xid)).status).toBe('COMMITTED');
    expect(calls).toBe(3);
    // Nor was a fourth attempt even recorded (attempts are recorded before their handler runs).
    expect((await store.branches.get('acct', tx.xid, branchId))?.record.phase2).toMatchObject({ state: 'PARKED', attempts: 3 });

    // `txloop retry` (store.retryBranch) gives it a fresh budget; it is attempted again.
    await store.repairs.retryBranch('acct', tx.xid, branchId, 'test');
    await waitFor(() => calls > 3, { what: 'retried attempt' });
  });

  it('attempt numbers only grow, across an operator retry too, so (fencingToken, attempt) orders every attempt; the retry still gives a full budget', async () => {
    const store = setup('monotonic');
    const attempts: number[] = [];
    const p = h.service({ app: 'acct', deadThreshold: 2 }).resource('r', {
      try: () => undefined,
      confirm: ({ attempt }) => {
        attempts.push(attempt);
        throw new Error('still down');
      },
      cancel: () => undefined,
    });
    await p.start();
    const init = h.service({ app: 'shop' });
    const tx = await init.begin({ name: 'monotonic', timeoutMs: 30_000 });
    const { branchId } = await p.tryBranch(tx.context, 'r', {});
    await tx.commit();
    const parked = async (n: number): Promise<void> => {
      await waitFor(async () => (await store.branches.get('acct', tx.xid, branchId))?.record.phase2?.state === 'PARKED' && attempts.length === n, { what: `parked after ${n} attempts` });
    };
    await parked(2);
    await store.repairs.retryBranch('acct', tx.xid, branchId, 'test');
    await parked(4);
    expect(attempts).toEqual([1, 2, 3, 4]);
    expect((await store.branches.get('acct', tx.xid, branchId))?.record.phase2).toMatchObject({ attempts: 4, budgetFrom: 2 });
  });

  it('retrying every parked branch of a transaction is one Txn while its compares and puts each fit --max-txn-ops (one compare, two puts per branch)', async () => {
    const fresh = env.fresh('retry-all-fits');
    const store = new Store(env.client, fresh.ns, 8);
    const p = fresh.h.service({ app: 'acct', maxAttempts: 1, maxTxnOps: 8 }).resource('r', {
      try: () => undefined,
      confirm: () => {
        throw new Error('down');
      },
      cancel: () => undefined,
    });
    const init = fresh.h.service({ app: 'shop', maxTxnOps: 8 });
    await Promise.all([p.start(), init.start()]);
    const parkedTx = async (branches: number): Promise<string> => {
      const tx = await init.begin({ name: `${branches} parked`, timeoutMs: 30_000 });
      for (let i = 0; i < branches; i++) await p.tryBranch(tx.context, 'r', { i });
      await tx.commit();
      await waitFor(async () => (await init.get(tx.xid)).branches.filter((b) => b.state === 'PARKED').length === branches, { what: `${branches} branches parked` });
      return tx.xid;
    };
    // 4 branches: 4 compares and 8 puts, each within 8.
    expect(await store.repairs.retryParkedBranches(await parkedTx(4), 'test')).toHaveLength(4);
    // 5 branches: 10 puts do not fit; refused, naming the way out.
    await expect(store.repairs.retryParkedBranches(await parkedTx(5), 'test')).rejects.toThrow(/retry them one by one/);
  });

  it('on the common path a branch is written three times (registered, Try result, done): a first attempt of new work is not written before it runs', async () => {
    const store = setup('three-writes');
    const p = h.service({ app: 'acct' }).resource('r', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    const init = h.service({ app: 'shop' });
    await Promise.all([p.start(), init.start()]);
    await waitFor(() => p.isLeader(), { what: 'the participant leads' });
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const { branchId } = await p.tryBranch(tx.context, 'r', {});
    await tx.commit();
    await init.waitForCompletion(tx.xid, { timeoutMs: 15_000 });
    const kv = (await env.client.get(store.keys.branch('acct', tx.xid, branchId)).exec()).kvs[0]!;
    expect(kv.version).toBe('3');
    expect(JSON.parse(kv.value.toString()).phase2).toMatchObject({ state: 'DONE', attempts: 1 });
  });

  it('a stepped retry schedule waits the given delay after each failed attempt (persisted next-attempt times), then parks, whatever maxAttempts says', async () => {
    const store = setup('stepped');
    const steps = [300, 600];
    const p = h.service({ app: 'acct', maxAttempts: 10 }).resource(
      'r',
      {
        try: () => undefined,
        confirm: () => {
          throw new Error('receiver down');
        },
        cancel: () => undefined,
      },
      { retry: ['300ms', '0.6s'] },
    );
    const init = h.service({ app: 'shop' });
    await Promise.all([p.start(), init.start()]);
    const tx = await init.begin({ name: 'notify', timeoutMs: 60_000 });
    const { branchId } = await p.tryBranch(tx.context, 'r', {});
    await tx.commit();
    const branch = async (): Promise<BranchRecord | undefined> => (await store.branches.get('acct', tx.xid, branchId))?.record;
    for (let n = 1; n <= steps.length; n++) {
      const b = await waitFor(async () => {
        const r = await branch();
        return r?.phase2?.attempts === n && r.phase2.nextRetryAt !== undefined ? r : undefined;
      }, { what: `attempt ${n} failed and its next time persisted` });
      const failedAt = b.events.filter((e) => e.type === 'AttemptFailed').at(-1)!.at;
      expect(b.phase2!.nextRetryAt! - failedAt).toBe(steps[n - 1]);
    }
    const parked = await waitFor(async () => {
      const r = await branch();
      return r?.phase2?.state === 'PARKED' ? r : undefined;
    }, { what: 'parked after the schedule' });
    expect(parked.phase2?.attempts).toBe(steps.length + 1);
    expect(parked.phase2?.lastError).toBe('receiver down');
  });

  it('a retry schedule is validated when the resource is registered: a bad delay is refused naming it', () => {
    const s = h.service({ app: 'acct' });
    const noop = { try: () => undefined, confirm: () => undefined, cancel: () => undefined };
    expect(() => s.resource('a', noop, { retry: ['5m', 'soon'] })).toThrow(/options\.retry\[1\]: must be a duration/);
    expect(() => s.resource('b', noop, { retry: [] })).toThrow(/options\.retry/);
    expect(() => s.resource('c', noop, { retyr: ['5m'] } as never)).toThrow(/did you mean options\.retry\?/);
    expect(() => s.resource('d', noop, { retry: ['5m', '1h', 1500] })).not.toThrow();
  });

  it('the attempt count survives a restart of the service: a new replica continues from the recorded attempts', async () => {
    const store = setup('attempts-persist');
    const seen: number[] = [];
    const handlers = {
      try: () => undefined,
      confirm: ({ attempt }: PhaseTwoContext) => {
        seen.push(attempt);
        throw new Error('still down');
      },
      cancel: () => undefined,
    };
    const first = h.service({ app: 'acct', deadThreshold: 100, retryBaseMs: 1000, retryMaxMs: 1000 }).resource('r', handlers);
    await first.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const { branchId } = await first.tryBranch(tx.context, 'r', {});
    await tx.commit();
    await waitFor(() => seen.length >= 1, { what: 'first attempt' });
    await first.close();
    const second = h.service({ app: 'acct', deadThreshold: 100, retryBaseMs: 50, retryMaxMs: 50 }).resource('r', handlers);
    await second.start();
    await waitFor(() => seen.length >= 2, { what: 'attempt on the new replica' });
    expect(seen[1]).toBe(seen[0]! + 1);
    const b = await store.branches.get('acct', tx.xid, branchId);
    expect(b?.record.phase2?.attempts).toBeGreaterThanOrEqual(2);
  });
});

describe('invariant 4: empty rollback is normal; confirm never runs without a successful Try', () => {
  it('cancel of a branch whose Try failed is told tryCompleted=false; of one whose Try succeeded, tryCompleted=true', async () => {
    setup('empty');
    const cancels: { payload: unknown; tryCompleted: boolean; tryState: string }[] = [];
    const p = h.service({ app: 'acct' }).resource<{ ok: boolean }>('r', {
      try: ({ payload }) => {
        if (!payload.ok) throw new Error('no funds');
      },
      confirm: () => {
        throw new Error('confirm must not run');
      },
      cancel: ({ payload, tryCompleted, tryState }) => {
        cancels.push({ payload, tryCompleted, tryState });
      },
    });
    await p.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    await p.tryBranch(tx.context, 'r', { ok: true });
    await expect(p.tryBranch(tx.context, 'r', { ok: false })).rejects.toBeInstanceOf(TryFailed);
    await tx.rollback();
    const done = await init.waitForCompletion(tx.xid);
    expect(done.status).toBe('ROLLED_BACK');
    expect(cancels).toHaveLength(2);
    expect(cancels.find((c) => (c.payload as { ok: boolean }).ok)?.tryCompleted).toBe(true);
    expect(cancels.find((c) => !(c.payload as { ok: boolean }).ok)?.tryCompleted).toBe(false);
    expect(cancels.map((c) => c.tryState).sort()).toEqual(['FAILED', 'SUCCEEDED']);
  });

  it('a confirm order for a branch whose Try failed is parked, never executed (guard against hand-written orders)', async () => {
    const store = setup('confirm-guard');
    let confirms = 0;
    const p = h.service({ app: 'acct' }).resource('r', {
      try: () => {
        throw new Error('no funds');
      },
      confirm: () => {
        confirms++;
      },
      cancel: () => undefined,
    });
    await p.start();
    const init = h.service({ app: 'shop' });
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const err = (await p.tryBranch(tx.context, 'r', {}).catch((e: unknown) => e)) as TryFailed;
    await store.branches.ensureOrder('acct', orderFor({ xid: tx.xid, branchId: err.branchId }, 'tcc', 'confirm', 'test', Date.now()));
    const b = await waitFor(async () => {
      const r = await store.branches.get('acct', tx.xid, err.branchId);
      return r?.record.phase2?.state === 'PARKED' ? r.record : undefined;
    }, { what: 'parked confirm' });
    expect(b.phase2?.lastError).toContain('refusing to confirm');
    expect(confirms).toBe(0);
  });

  it('a Try still running when the global is rolled back: cancel waits for it, and sees tryCompleted=true', async () => {
    setup('slow-try');
    const g = gate();
    const cancels: boolean[] = [];
    // A second branch of the same transaction whose Try is done: the barrier for the slow one.
    const controlCancels: boolean[] = [];
    const isControl = (payload: unknown): boolean => (payload as { control?: boolean }).control === true;
    const p = h.service({ app: 'acct', graceMs: 5_000 }).resource('r', {
      try: async ({ payload }) => {
        if (!isControl(payload)) await g.wait;
      },
      confirm: () => undefined,
      cancel: ({ tryCompleted, payload }) => {
        (isControl(payload) ? controlCancels : cancels).push(tryCompleted);
      },
    });
    await p.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const control = await p.tryBranch(tx.context, 'r', { control: true });
    const running = p.tryBranch(tx.context, 'r', {});
    await waitFor(async () => (await init.get(tx.xid)).branches.length === 2, { what: 'branch registered' });
    await tx.rollback();
    // Not a sleep, which a slow loop outlasts: the control branch's cancel, ordered in the same Txn
    // and seen in the same watch event, has run and been recorded; the slow one's would have run with it.
    await waitFor(async () => (await init.get(tx.xid)).branches.find((b) => b.branchId === control.branchId)?.state === 'DONE', { what: "the control branch's cancel" });
    expect(controlCancels).toEqual([true]);
    expect(cancels).toHaveLength(0);
    // Nor was a cancel attempt even recorded for it (attempts are recorded before their handler runs).
    const slow = (await init.get(tx.xid)).branches.find((b) => b.branchId !== control.branchId);
    expect(slow).toMatchObject({ tryState: 'PENDING', attempts: 0 });
    expect(slow?.state).toBeUndefined();
    g.open();
    await running;
    const done = await init.waitForCompletion(tx.xid);
    expect(done.status).toBe('ROLLED_BACK');
    expect(cancels).toEqual([true]);
    expect(controlCancels).toEqual([true]);
  });
});

describe('invariant 9: handlers that throw, hang or are missing never stop the loop', () => {
  it('a hanging cancel is cut off by handlerTimeoutMs, counted as a failed attempt, and retried', async () => {
    setup('hang');
    const attempts: number[] = [];
    const p = h.service({ app: 'acct', handlerTimeoutMs: 150 }).resource('r', {
      try: () => undefined,
      confirm: () => undefined,
      cancel: async ({ attempt, signal }) => {
        attempts.push(attempt);
        if (attempt === 1) {
          await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)));
        }
      },
    });
    await p.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    await p.tryBranch(tx.context, 'r', {});
    await tx.rollback();
    const done = await init.waitForCompletion(tx.xid);
    expect(done.status).toBe('ROLLED_BACK');
    expect(attempts).toEqual([1, 2]);
  });

  it('a branch whose resource this replica does not know is retried, then parked with an error naming the resource, while other transactions complete', async () => {
    const store = setup('unknown-resource');
    // The Try ran on a replica that has resource "old"; the leader (another replica) lacks it.
    const tryOnly = h.service({ app: 'acct' }).resource('old', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    const leader = h.service({ app: 'acct', deadThreshold: 2 }).resource('r', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    await leader.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const bad = await init.begin({ name: 'bad', timeoutMs: 30_000 });
    const { branchId } = await tryOnly.tryBranch(bad.context, 'old', {});
    await bad.commit();
    const good = await init.begin({ name: 'good', timeoutMs: 30_000 });
    await leader.tryBranch(good.context, 'r', {});
    await good.commit();
    expect((await init.waitForCompletion(good.xid)).status).toBe('COMMITTED');
    const parked = await waitFor(async () => {
      const b = await store.branches.get('acct', bad.xid, branchId);
      return b?.record.phase2?.state === 'PARKED' ? b.record : undefined;
    }, { what: 'unknown resource parked' });
    expect(parked.phase2?.lastError).toContain('"old"');
  });
});

describe('graceful shutdown', () => {
  it('closing a leader in the middle of a confirm records no failed attempt (the attempt counted before it started stays, without an error); the next replica confirms it as attempt 2', async () => {
    const store = setup('shutdown');
    const started = gate();
    const attempts: number[] = [];
    const handlers = {
      try: () => undefined,
      confirm: async ({ attempt, signal }: PhaseTwoContext) => {
        attempts.push(attempt);
        started.open();
        if (attempts.length === 1) await new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));
      },
      cancel: () => undefined,
    };
    const first = h.service({ app: 'acct' }).resource('r', handlers);
    await first.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const { branchId } = await first.tryBranch(tx.context, 'r', {});
    await tx.commit();
    await started.wait;
    await first.close();
    const b = await store.branches.get('acct', tx.xid, branchId);
    expect(b?.record.phase2).toEqual({ action: 'confirm', state: 'ACTIVE', attempts: 1, lastAttemptAt: expect.any(Number) });
    const second = h.service({ app: 'acct' }).resource('r', handlers);
    await second.start();
    expect((await init.waitForCompletion(tx.xid)).status).toBe('COMMITTED');
    const done = await store.branches.get('acct', tx.xid, branchId);
    expect(done?.record.events.some((e) => e.type === 'AttemptFailed')).toBe(false);
    expect(attempts).toEqual([1, 2]);
  });
});

describe('idempotent Try and Trys in flight at close()', () => {
  it('a Try retried with the same branchId registers one branch and runs its handler once; a different payload under that id is refused', async () => {
    setup('idem');
    let tries = 0;
    let confirms = 0;
    const p = h.service({ app: 'acct' }).resource('r', {
      try: () => ++tries,
      confirm: () => void confirms++,
      cancel: () => undefined,
    });
    await p.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'retried try', timeoutMs: 30_000 });
    const first = await p.tryBranch(tx.context, 'r', { amount: 30 }, { branchId: 'order42debit' });
    const again = await p.tryBranch(tx.context, 'r', { amount: 30 }, { branchId: 'order42debit' });
    expect(first).toEqual({ branchId: 'order42debit', result: 1, replayed: false });
    expect(again).toEqual({ branchId: 'order42debit', result: undefined, replayed: true });
    await expect(p.tryBranch(tx.context, 'r', { amount: 99 }, { branchId: 'order42debit' })).rejects.toThrow(/already exists .* with another payload/);
    await expect(p.tryBranch(tx.context, 'r', {}, { branchId: 'Bad Id' })).rejects.toThrow(/options.branchId/);
    await tx.commit();
    const done = await init.waitForCompletion(tx.xid);
    expect(done.branches).toHaveLength(1);
    expect(tries).toBe(1);
    expect(confirms).toBe(1);
  });

  it('a failed Try retried with the same branchId fails again without running the handler', async () => {
    setup('idem-fail');
    let tries = 0;
    const p = h.service({ app: 'acct' }).resource('r', {
      try: () => {
        tries++;
        throw new Error('no funds');
      },
      confirm: () => undefined,
      cancel: () => undefined,
    });
    const init = h.service({ app: 'shop' });
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    await expect(p.tryBranch(tx.context, 'r', {}, { branchId: 'b00001' })).rejects.toBeInstanceOf(TryFailed);
    await expect(p.tryBranch(tx.context, 'r', {}, { branchId: 'b00001' })).rejects.toThrow(/no funds/);
    expect(tries).toBe(1);
  });

  it('close() waits for a Try in flight so its outcome is recorded (no PENDING branch left behind)', async () => {
    const store = setup('close-try');
    const g = gate();
    const p = h.service({ app: 'acct' }).resource('r', { try: () => g.wait, confirm: () => undefined, cancel: () => undefined });
    const init = h.service({ app: 'shop' });
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const trying = p.tryBranch(tx.context, 'r', {}, { branchId: 'closing1' });
    await waitFor(async () => (await init.get(tx.xid)).branches.length === 1, { what: 'branch registered' });
    const closed = p.close();
    // close() has had the time to finish, were it not waiting for the Try, and has not.
    await sleep(100);
    expect(await settled(closed)).toBe(false);
    g.open();
    await closed;
    await trying;
    const b = await store.branches.get('acct', tx.xid, 'closing1');
    expect(b?.record.tryState).toBe('SUCCEEDED');
  });
});

describe('expectations: a leader never acts on a cache older than its own last write', () => {
  it('a new leader inheriting 20 decided branches runs each confirm exactly once', async () => {
    setup('expect');
    const runs = new Map<string, number>();
    const handlers = {
      try: () => undefined,
      confirm: async ({ branchId }: PhaseTwoContext) => {
        runs.set(branchId, (runs.get(branchId) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 5));
      },
      cancel: () => undefined,
    };
    const bank = h.service({ app: 'acct' }).resource('r', handlers).resource('ctl', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    const init = h.service({ app: 'shop' });
    await init.start();
    const xids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const tx = await init.begin({ name: `inherited ${i}`, timeoutMs: 60_000 });
      await bank.tryBranch(tx.context, 'r', {});
      await tx.commit();
      xids.push(tx.xid);
    }
    await bank.start(); // its first term inherits all 20: attempt counted first, then run
    for (const xid of xids) expect((await init.waitForCompletion(xid)).status).toBe('COMMITTED');
    // Shown rather than slept: a later transaction's branch on the same leader has been confirmed, so
    // every change of the 20 (their own DONE writes among them) was handled before it.
    const later = await init.begin({ name: 'later', timeoutMs: 30_000 });
    await bank.tryBranch(later.context, 'ctl', {});
    await later.commit();
    expect((await init.waitForCompletion(later.xid)).status).toBe('COMMITTED');
    expect(runs.size).toBe(20);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
  });
});

describe('list(): stuck and parked work, from the SDK', () => {
  it('lists a service\'s transactions by status, with parked branches visible, in creation order', async () => {
    setup('list');
    const p = h.service({ app: 'acct', deadThreshold: 1 }).resource('r', {
      try: () => undefined,
      confirm: ({ payload }) => {
        if ((payload as { fail?: boolean }).fail) throw new Error('ledger locked');
      },
      cancel: () => undefined,
    });
    await p.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const ok = await init.begin({ name: 'ok', timeoutMs: 30_000 });
    await p.tryBranch(ok.context, 'r', {});
    await ok.commit();
    const stuck = await init.begin({ name: 'stuck', timeoutMs: 30_000 });
    await p.tryBranch(stuck.context, 'r', { fail: true });
    await stuck.commit();
    const open = await init.begin({ name: 'open', timeoutMs: 30_000 });
    await init.waitForCompletion(ok.xid);
    const parked = await waitFor(async () => {
      const [v] = await init.list({ status: 'COMMITTING' });
      return v?.branches[0]?.state === 'PARKED' ? v : undefined;
    }, { what: 'parked branch listed' });
    expect(parked.xid).toBe(stuck.xid);
    expect(parked.branches[0]?.lastError).toContain('ledger locked');
    expect((await init.list()).map((v) => v.xid)).toEqual([ok.xid, stuck.xid, open.xid]);
    expect((await init.list({ status: ['TRYING', 'COMMITTED'] })).map((v) => v.name)).toEqual(['ok', 'open']);
    expect(await p.list()).toEqual([]); // acct initiated nothing
    await expect(init.list({ status: 'DONE' as never })).rejects.toThrow(/options.status/);
  });
});
