import { describe, expect, it } from 'vitest';
import {
  BranchRegistrationRefused,
  BranchesNotPrepared,
  DeadlineExceeded,
  TransactionAlreadyDecided,
  TransactionNotFound,
  TryFailed,
  type TxloopService,
} from '../src/index.js';
import { builtInModes, decide } from '../src/modes/index.js';
import { newBranchId, newWriteId, readFromCache, type Store, type TransactionRead } from '../src/store/index.js';
import { useEtcd, waitFor, type Harness } from './helpers/harness.js';

const env = useEtcd();
let h: Harness;
let ns: string;

function setup(label: string): void {
  ({ h, ns } = env.fresh(label));
}

function participant(app: string, calls: string[] = [], options: { graceMs?: number } = {}): TxloopService {
  return h.service({ app, ...options }).resource('r', {
    try: () => {
      calls.push('try');
    },
    confirm: () => {
      calls.push('confirm');
    },
    cancel: ({ tryCompleted }) => {
      calls.push(`cancel:${tryCompleted}`);
    },
  });
}

describe('invariant 1: one decision', () => {
  it('commit and rollback racing from two separate clients: exactly one wins, the loser gets TransactionAlreadyDecided naming the winner', async () => {
    setup('race');
    const p = participant('acct');
    const initA = h.service({ app: 'shop' });
    const initB = h.service({ app: 'shop' }); // a second replica with its own etcd connection
    for (let i = 0; i < 15; i++) {
      const tx = await initA.begin({ name: `race ${i}`, timeoutMs: 30_000 });
      await p.tryBranch(tx.context, 'r', { i });
      const results = await Promise.allSettled([initA.commit(tx.xid), initB.rollback(tx.xid), initB.commit(tx.xid), initA.rollback(tx.xid)]);
      const winners = results.filter((r) => r.status === 'fulfilled');
      expect(winners).toHaveLength(1);
      const view = await initA.get(tx.xid);
      const outcome = view.decision?.outcome;
      expect(['commit', 'rollback']).toContain(outcome);
      for (const r of results) {
        if (r.status === 'rejected') {
          expect(r.reason).toBeInstanceOf(TransactionAlreadyDecided);
          expect((r.reason as TransactionAlreadyDecided).outcome).toBe(outcome);
          expect((r.reason as TransactionAlreadyDecided).xid).toBe(tx.xid);
        }
      }
    }
  });

  it('deadline expiry races commit safely: a commit after the leader expired the deadline is refused with outcome rollback', async () => {
    setup('deadline');
    const p = participant('acct');
    const init = h.service({ app: 'shop' });
    await init.start();
    // Short, but long enough for the Try to register before the leader expires it on a loaded machine.
    const tx = await init.begin({ name: 'slow', timeoutMs: 2_000 });
    await p.tryBranch(tx.context, 'r', {});
    await waitFor(async () => (await init.get(tx.xid)).status !== 'TRYING', { what: 'deadline expiry' });
    const err = await init.commit(tx.xid).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionAlreadyDecided);
    expect((err as TransactionAlreadyDecided).outcome).toBe('rollback');
    expect((err as TransactionAlreadyDecided).decidedBy).toBe('deadline');
  });

  it('a commit that arrives after the deadline is refused with DeadlineExceeded and writes nothing; rollback past the deadline is still allowed', async () => {
    setup('commit-late');
    const calls: string[] = [];
    // Nor does the participant roll it back at deadline + grace while the test looks (a loaded machine
    // can take longer than a short grace between the reads before and after the commit).
    const p = participant('acct', calls, { graceMs: 600_000 });
    await p.start();
    const init = h.service({ app: 'shop' }); // not started: no leader expires the deadline meanwhile
    // Short, but long enough for begin and the Try to happen before it on a loaded machine.
    const tx = await init.begin({ name: 'slow caller', timeoutMs: 2_000 });
    await p.tryBranch(tx.context, 'r', {});
    await waitFor(() => Date.now() > tx.deadline + 50, { what: 'the deadline to pass' });
    const before = await env.client.get(`${ns}shop/gtx/${tx.xid}`).exec();
    const err = await init.commit(tx.xid).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceeded);
    expect((err as DeadlineExceeded).xid).toBe(tx.xid);
    const after = await env.client.get(`${ns}shop/gtx/${tx.xid}`).exec();
    expect(after.kvs[0]?.mod_revision).toBe(before.kvs[0]?.mod_revision);
    expect(await env.client.getAll().prefix(`${ns}acct/order/${tx.xid}/`).keys()).toHaveLength(0);
    await init.rollback(tx.xid);
    expect((await init.get(tx.xid)).decision?.outcome).toBe('rollback');
    await waitFor(() => calls.includes('cancel:true'), { what: 'the cancel' });
    expect(calls).not.toContain('confirm');
  });

  it('commit of an unknown transaction fails with TransactionNotFound', async () => {
    setup('unknown');
    const init = h.service({ app: 'shop' });
    await expect(init.commit('shop.00000000000000000')).rejects.toBeInstanceOf(TransactionNotFound);
  });

  it('commit refuses while a Try has not succeeded (BranchesNotPrepared) and leaves the global TRYING', async () => {
    setup('unprepared');
    const p = h.service({ app: 'acct' }).resource('r', {
      try: () => {
        throw new Error('insufficient funds');
      },
      confirm: () => undefined,
      cancel: () => undefined,
    });
    const init = h.service({ app: 'shop' });
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    await expect(p.tryBranch(tx.context, 'r', {})).rejects.toBeInstanceOf(TryFailed);
    const err = await init.commit(tx.xid).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BranchesNotPrepared);
    expect((err as BranchesNotPrepared).branchIds).toHaveLength(1);
    expect((await init.get(tx.xid)).status).toBe('TRYING');
  });
  it('transaction(): when its commit is refused (a swallowed Try failure), it rolls back at once instead of waiting for the deadline', async () => {
    setup('tx-helper');
    const cancels: string[] = [];
    const p = h.service({ app: 'acct' }).resource('r', {
      try: () => {
        throw new Error('no funds');
      },
      confirm: () => undefined,
      cancel: ({ tryState }) => void cancels.push(tryState),
    });
    await p.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    let xid = '';
    const err = await init
      .transaction({ name: 'sloppy caller', timeoutMs: 60_000 }, async (tx) => {
        xid = tx.xid;
        await p.tryBranch(tx.context, 'r', {}).catch(() => undefined); // the caller ignores the failure
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BranchesNotPrepared);
    const done = await init.waitForCompletion(xid, { timeoutMs: 10_000 }); // far sooner than the 60 s deadline
    expect(done.status).toBe('ROLLED_BACK');
    expect(done.decision?.by).toBe('rollback');
    expect(cancels).toEqual(['FAILED']);
  });
});

describe('decisions and collection planned from the informer cache (invariants 1, 4 and 8 hold when it is behind)', () => {
  /** The transaction as a cache would have held it at this moment: a snapshot of its keys. */
  async function snapshot(store: Store, xid: string): Promise<TransactionRead> {
    const kvs = await env.client.getAll().prefix(ns).exec();
    const cache = new Map(kvs.kvs.map((kv) => [kv.key.toString(), { value: kv.value, modRevision: kv.mod_revision }]));
    const members = [...cache.keys()].filter((k) => store.keys.parse(k)?.kind === 'member' && k.includes(xid));
    return readFromCache(store.keys, cache, members, xid)!;
  }

  it('a cache that has not seen a Try succeed yet does not refuse the commit: etcd is read and the commit lands', async () => {
    const fresh = env.fresh('cache-behind-try');
    ({ h, ns } = fresh);
    let whileTrying: TransactionRead | undefined;
    const init = h.service({ app: 'shop' });
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    // Taken while the Try runs: the member is registered, its Try still PENDING.
    const p = h.service({ app: 'acct' }).resource('r', { try: async () => void (whileTrying = await snapshot(fresh.store, tx.xid)), confirm: () => undefined, cancel: () => undefined });
    await p.tryBranch(tx.context, 'r', {});
    expect(whileTrying!.members.map((m) => m.record.tryState)).toEqual(['PENDING']);
    const result = await decide(fresh.store, builtInModes(), tx.xid, { outcome: 'commit', by: 'test' }, whileTrying);
    expect(result.global.status).toBe('COMMITTING');
    expect(result.total).toBe(1);
  });

  it('a cache that missed a branch still PENDING cannot commit past it: the pinned member prefix fails and etcd says BranchesNotPrepared', async () => {
    const fresh = env.fresh('cache-missed-branch');
    ({ h, ns } = fresh);
    const init = h.service({ app: 'shop' });
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const stale = await snapshot(fresh.store, tx.xid);
    const now = Date.now();
    await fresh.store.branches.register({ v: 1, mode: 'tcc', xid: tx.xid, app: 'shop', branchId: newBranchId(), owner: 'acct', resource: 'r', payload: null, createdAt: now, deadline: tx.context.deadline, tryState: 'PENDING', updatedAt: now, writeId: newWriteId(), keyLayout: 2, events: [] });
    await expect(decide(fresh.store, builtInModes(), tx.xid, { outcome: 'commit', by: 'test' }, stale)).rejects.toBeInstanceOf(BranchesNotPrepared);
    expect((await fresh.store.globals.get(tx.xid))?.record.status).toBe('TRYING');
  });

  it('a rollback planned from a cache that missed a registration still orders its cancel: the member prefix pin fails and etcd is read', async () => {
    const fresh = env.fresh('cache-rollback-missed');
    ({ h, ns } = fresh);
    const init = h.service({ app: 'shop' });
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const stale = await snapshot(fresh.store, tx.xid);
    const p = participant('acct');
    const { branchId } = await p.tryBranch(tx.context, 'r', {});
    const result = await decide(fresh.store, builtInModes(), tx.xid, { outcome: 'rollback', by: 'test' }, stale);
    expect(result.total).toBe(1);
    expect(await env.client.get(`${ns}acct/order/${tx.xid}/${branchId}`).string()).toContain('cancel');
  });

  it('collection from a cache that still shows a re-opened branch as done deletes nothing it should keep', async () => {
    const fresh = env.fresh('cache-collect');
    ({ h, ns } = fresh);
    const p = participant('acct');
    const init = h.service({ app: 'shop' });
    await Promise.all([p.start(), init.start()]);
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const { branchId } = await p.tryBranch(tx.context, 'r', {});
    await tx.rollback();
    await init.waitForCompletion(tx.xid, { timeoutMs: 15_000 });
    await p.close();
    await init.close();
    const done = await snapshot(fresh.store, tx.xid);
    // The branch changes after the snapshot (as a late Try re-opening its cancel would).
    const b = (await fresh.store.branches.get('acct', tx.xid, branchId))!;
    await fresh.store.branches.update(b, (r) => ({ ...r, phase2: { ...r.phase2!, state: 'ACTIVE' } }));
    expect(await fresh.store.collection.collect(tx.xid, undefined, done)).toBe(false);
    expect(await fresh.store.branches.get('acct', tx.xid, branchId)).toBeDefined();
    expect(await fresh.store.globals.get(tx.xid)).toBeDefined();
  });
});

describe('invariant 2: no branch after the decision (anti-hanging)', () => {
  for (const decision of ['commit', 'rollback'] as const) {
    it(`a Try arriving after ${decision} is refused before its handler runs and writes nothing`, async () => {
      setup(`late-${decision}`);
      const calls: string[] = [];
      const p = participant('acct', calls);
      const init = h.service({ app: 'shop' });
      const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
      await p.tryBranch(tx.context, 'r', {});
      await init[decision](tx.xid);
      const err = await p.tryBranch(tx.context, 'r', {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BranchRegistrationRefused);
      expect(calls.filter((c) => c === 'try')).toHaveLength(1);
      const view = await init.get(tx.xid);
      expect(view.branches).toHaveLength(1);
      const branchKeys = await env.client.getAll().prefix(`${ns}acct/branch/${tx.xid}/`).keys();
      expect(branchKeys).toHaveLength(1);
    });
  }

  it('a Try for a transaction that does not exist is refused with TransactionNotFound', async () => {
    setup('late-missing');
    const calls: string[] = [];
    const p = participant('acct', calls);
    const err = await p.tryBranch({ xid: 'shop.00000000000000000', deadline: Date.now() + 10_000 }, 'r', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionNotFound);
    expect(calls).toHaveLength(0);
  });

  it('registration racing the decision: every branch either joined before it (and gets phase 2) or was refused', async () => {
    setup('race-register');
    const calls: string[] = [];
    const p = participant('acct', calls);
    await p.start();
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const tries = Array.from({ length: 20 }, (_, i) => p.tryBranch(tx.context, 'r', { i }).then(() => 'joined', (e: unknown) => e));
    await new Promise((r) => setTimeout(r, 5));
    const decided = await init.rollback(tx.xid).then(() => 'ok');
    expect(decided).toBe('ok');
    const outcomes = await Promise.all(tries);
    for (const o of outcomes) if (o !== 'joined') expect(o).toBeInstanceOf(BranchRegistrationRefused);
    const joined = outcomes.filter((o) => o === 'joined').length;
    const done = await init.waitForCompletion(tx.xid, { timeoutMs: 15_000 });
    expect(done.status).toBe('ROLLED_BACK');
    // Every branch that got in (including Trys still running at the decision) was cancelled.
    expect(done.branches.length).toBeGreaterThanOrEqual(joined);
    expect(done.branches.every((b) => b.state === 'DONE' && b.action === 'cancel')).toBe(true);
  });
});
