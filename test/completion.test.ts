import { describe, expect, it } from 'vitest';
import { TransactionAlreadyDecided, TransactionNotFound } from '../src/index.js';
import { gate, useEtcd, waitFor, type Harness } from './helpers/harness.js';

// A small --max-txn-ops makes "more branches than one Txn can carry" cheap to test.
const MAX_TXN_OPS = 8;

const env = useEtcd({ maxTxnOps: MAX_TXN_OPS });
let h: Harness;
let ns: string;

function setup(label: string): void {
  ({ h, ns } = env.fresh(label));
}

const noop = { try: () => undefined, confirm: () => undefined, cancel: () => undefined };

describe('invariant 8: completion only when every branch is done; retention, then collection', () => {
  it('the global stays COMMITTING while one branch is still confirming and becomes COMMITTED only after it', async () => {
    setup('complete');
    const g = gate();
    const fast = h.service({ app: 'fast', maxTxnOps: MAX_TXN_OPS }).resource('r', noop);
    const slow = h.service({ app: 'slow', maxTxnOps: MAX_TXN_OPS }).resource('r', { ...noop, confirm: () => g.wait });
    const init = h.service({ app: 'shop', maxTxnOps: MAX_TXN_OPS });
    await Promise.all([fast.start(), slow.start(), init.start()]);
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    await fast.tryBranch(tx.context, 'r', {});
    await slow.tryBranch(tx.context, 'r', {});
    await tx.commit();
    await waitFor(async () => (await init.get(tx.xid)).branches.find((b) => b.owner === 'fast')?.state === 'DONE', { what: 'fast branch confirmed' });
    // Not a sleep (which a loaded machine makes too short to prove anything) but a later transaction
    // of the same initiator, completed after fast's DONE link was written: the initiator takes link
    // changes in revision order through one FIFO queue, so it has reconciled this global with fast
    // done and slow not. Had it completed it then, the status would say so now.
    const later = await init.begin({ name: 'later', timeoutMs: 30_000 });
    await fast.tryBranch(later.context, 'r', {});
    await later.commit();
    expect((await init.waitForCompletion(later.xid)).status).toBe('COMMITTED');
    expect((await init.get(tx.xid)).status).toBe('COMMITTING');
    g.open();
    const done = await init.waitForCompletion(tx.xid);
    expect(done.status).toBe('COMMITTED');
    expect(done.branches.every((b) => b.state === 'DONE')).toBe(true);
  });

  it('a finished transaction is kept for retentionMs, then every key of it is deleted', async () => {
    setup('retention');
    const p = h.service({ app: 'acct', maxTxnOps: MAX_TXN_OPS }).resource('r', noop);
    const init = h.service({ app: 'shop', retentionMs: 1_500, maxTxnOps: MAX_TXN_OPS });
    await Promise.all([p.start(), init.start()]);
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    await p.tryBranch(tx.context, 'r', {});
    await tx.commit();
    const done = await init.waitForCompletion(tx.xid);
    const completedAt = done.completedAt!.getTime();
    // Still inspectable right after completion.
    expect((await init.get(tx.xid)).status).toBe('COMMITTED');
    await waitFor(async () => (await init.get(tx.xid).catch((e: unknown) => e)) instanceof TransactionNotFound, { what: 'collection', timeoutMs: 10_000 });
    expect(Date.now() - completedAt).toBeGreaterThanOrEqual(1_500);
    const left = await env.client.getAll().prefix(ns).keys();
    expect(left.filter((k) => k.includes(tx.xid))).toEqual([]);
  });

  it('a decision with more branches than one etcd Txn can carry is still one CAS; reconciliation finishes the fan-out', async () => {
    setup('fanout');
    const confirmed = new Set<string>();
    const p = h.service({ app: 'acct', maxTxnOps: MAX_TXN_OPS }).resource('r', {
      ...noop,
      confirm: ({ branchId }) => {
        confirmed.add(branchId);
      },
    });
    const init = h.service({ app: 'shop', maxTxnOps: MAX_TXN_OPS });
    await Promise.all([p.start(), init.start()]);
    const tx = await init.begin({ name: 'wide', timeoutMs: 30_000 });
    const n = MAX_TXN_OPS * 3 + 1;
    for (let i = 0; i < n; i++) await p.tryBranch(tx.context, 'r', { i });
    await tx.commit();
    const done = await init.waitForCompletion(tx.xid, { timeoutMs: 20_000 });
    expect(done.status).toBe('COMMITTED');
    expect(done.branches).toHaveLength(n);
    expect(confirmed.size).toBe(n);
    const decided = (await env.client.get(`${ns}shop/gtx/${tx.xid}`).json()) as { events: { type: string }[] };
    expect(decided.events.map((e) => e.type)).toContain('FannedOut');
  });
  it('a finished transaction whose cancel a late Try re-opened is not collected while that branch is not done', async () => {
    setup('reopened');
    const late = gate();
    const p = h.service({ app: 'acct', graceMs: 100, deadThreshold: 2, maxTxnOps: MAX_TXN_OPS }).resource('r', {
      try: () => late.wait, // ignores its signal: finishes long after the deadline
      confirm: () => undefined,
      cancel: ({ tryCompleted }) => {
        if (tryCompleted) throw new Error('cannot release the late reservation');
      },
    });
    const init = h.service({ app: 'shop', retentionMs: 300, maxTxnOps: MAX_TXN_OPS });
    await Promise.all([p.start(), init.start()]);
    // Short, but long enough for the Try to register before the leader expires it on a loaded machine.
    const tx = await init.begin({ name: 'late try', timeoutMs: 2_000 });
    const trying = p.tryBranch(tx.context, 'r', {});
    const rolledBack = await init.waitForCompletion(tx.xid, { timeoutMs: 10_000 });
    expect(rolledBack.status).toBe('ROLLED_BACK');
    late.open();
    const { branchId } = await trying;
    await waitFor(async () => (await init.get(tx.xid)).branches.find((b) => b.branchId === branchId)?.state === 'PARKED', { what: 're-opened cancel parked' });
    // Well past the retention, shown rather than slept: a transaction finished later, with the same
    // retention and nothing holding it, has been collected. This one's retention passed first and it
    // was queued for collection first (its parked link was written before the other one began).
    const later = await init.begin({ name: 'later', timeoutMs: 30_000 });
    await later.rollback();
    await waitFor(async () => (await init.get(later.xid).catch((e: unknown) => e)) instanceof TransactionNotFound, { what: 'the later transaction to be collected' });
    const view = await init.get(tx.xid); // still there: not collected
    expect(view.branches[0]?.state).toBe('PARKED');
    expect(await env.client.get(`${ns}acct/branch/${tx.xid}/${branchId}`).string()).not.toBeNull();
  });

  it('collection never deletes a branch whose Try may still be running: a PENDING branch is kept until its deadline + handlerTimeoutMs, so a Try resuming after the retention still records and its cancel runs again', async () => {
    setup('pending-kept');
    const late = gate();
    const cancels: string[] = [];
    const p = h.service({ app: 'acct', graceMs: 100, maxTxnOps: MAX_TXN_OPS }).resource('r', {
      try: () => late.wait, // frozen mid-handler, ignoring its signal
      confirm: () => undefined,
      cancel: ({ tryState }) => void cancels.push(tryState),
    });
    const init = h.service({ app: 'shop', retentionMs: 300, handlerTimeoutMs: 30_000, maxTxnOps: MAX_TXN_OPS });
    await Promise.all([p.start(), init.start()]);
    // Short, but long enough for the Try to register before the leader expires it on a loaded machine.
    const tx = await init.begin({ name: 'frozen try', timeoutMs: 2_000 });
    const trying = p.tryBranch(tx.context, 'r', {});
    const rolledBack = await init.waitForCompletion(tx.xid, { timeoutMs: 10_000 });
    expect(cancels).toEqual(['PENDING']);
    // Well past the retention: a transaction without a PENDING branch would be gone by now — and one,
    // finished after this one, is (collected by the same initiator, its retention passing later).
    await waitFor(() => Date.now() > rolledBack.completedAt!.getTime() + 300 + 1_500, { what: 'the retention to pass', timeoutMs: 10_000 });
    const later = await init.begin({ name: 'later', timeoutMs: 30_000 });
    await later.rollback();
    await waitFor(async () => (await init.get(later.xid).catch((e: unknown) => e)) instanceof TransactionNotFound, { what: 'the later transaction to be collected' });
    expect(await env.client.get(`${ns}shop/gtx/${tx.xid}`).string()).not.toBeNull();
    late.open();
    const { replayed } = await trying; // recorded: the branch was still there
    expect(replayed).toBe(false);
    await waitFor(() => cancels.length === 2, { what: 'the compensating cancel' });
    expect(cancels).toEqual(['PENDING', 'SUCCEEDED']);
  });

  it('a Try that finds its branch already collected compensates: the branch comes back with a cancel order, its owner cancels it (tryState SUCCEEDED) and later collects it; the Try fails with TransactionAlreadyDecided, not BranchNotFound', async () => {
    setup('collected-try');
    const late = gate();
    const cancels: string[] = [];
    const p = h.service({ app: 'acct', graceMs: 100, retentionMs: 300, maxTxnOps: MAX_TXN_OPS }).resource('r', {
      try: () => late.wait,
      confirm: () => undefined,
      cancel: ({ tryState }) => void cancels.push(tryState),
    });
    // A handler timeout this short lets collection go ahead as soon as the retention passed.
    const init = h.service({ app: 'shop', retentionMs: 300, handlerTimeoutMs: 1, maxTxnOps: MAX_TXN_OPS });
    await Promise.all([p.start(), init.start()]);
    // Short, but long enough for the Try to register before the leader expires it on a loaded machine.
    const tx = await init.begin({ name: 'collected try', timeoutMs: 2_000 });
    const trying = p.tryBranch(tx.context, 'r', {});
    await waitFor(async () => (await env.client.getAll().prefix(`${ns}shop/gtx/${tx.xid}`).keys()).length === 0, { what: 'collection of the rolled-back transaction' });
    expect(await env.client.getAll().prefix(`${ns}acct/branch/${tx.xid}/`).keys()).toHaveLength(0);
    late.open();
    const err = await trying.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionAlreadyDecided);
    expect((err as TransactionAlreadyDecided).outcome).toBe('rollback');
    await waitFor(() => cancels.length === 2, { what: 'the compensating cancel' });
    expect(cancels).toEqual(['PENDING', 'SUCCEEDED']);
    // Its progress writes update the initiator's link only where one exists: none grows back.
    await waitFor(async () => {
      const branches = Object.values(await env.client.getAll().prefix(`${ns}acct/branch/${tx.xid}/`).strings());
      // Recorded DONE, or already collected by its owner after that.
      return branches.length === 0 || branches.some((v) => (JSON.parse(v) as { phase2?: { state: string } }).phase2?.state === 'DONE');
    }, { what: 'the compensating cancel recorded' });
    expect(await env.client.getAll().prefix(`${ns}shop/member/${tx.xid}/`).keys()).toEqual([]);
    expect(await env.client.getAll().prefix(`${ns}shop/link/${tx.xid}/`).keys()).toEqual([]);
    await waitFor(async () => (await env.client.getAll().prefix(`${ns}acct/`).keys()).every((k) => !k.includes(tx.xid)), { what: 'the owner collects the compensated branch' });
  });
});

describe('invariant 10: no single service blocks recovery', () => {
  it("a global left TRYING by an initiator with no running leader is rolled back by a participant's leader after deadline + grace", async () => {
    setup('orphan');
    const cancels: boolean[] = [];
    const p = h.service({ app: 'acct', graceMs: 200, maxTxnOps: MAX_TXN_OPS }).resource('r', { ...noop, cancel: ({ tryCompleted }) => void cancels.push(tryCompleted) });
    await p.start();
    const init = h.service({ app: 'shop', maxTxnOps: MAX_TXN_OPS }); // never started: no leader for "shop"
    // Short, but long enough for begin and the Try to happen before it on a loaded machine.
    const tx = await init.begin({ name: 'orphan', timeoutMs: 2_000 });
    await p.tryBranch(tx.context, 'r', {});
    await waitFor(() => cancels.length === 1, { what: 'participant-driven cancel' });
    expect(cancels).toEqual([true]);
    // A handler returns before its outcome is written: wait for the record, not only the call.
    const view = await waitFor(async () => {
      const v = await init.get(tx.xid);
      return v.branches[0]?.state === 'DONE' ? v : undefined;
    }, { what: 'the cancel recorded done' });
    expect(view.status).toBe('ROLLING_BACK'); // completion is the initiator's job; the work is done
    expect(view.decision?.by).toBe('participant:acct');
    expect(view.branches[0]?.state).toBe('DONE');
  });

  it('a decision whose fan-out was cut short (initiator gone) still reaches every branch: participants write their own orders', async () => {
    setup('partial-fanout');
    const confirmed = new Set<string>();
    const p = h.service({ app: 'acct', graceMs: 200, maxTxnOps: MAX_TXN_OPS }).resource('r', { ...noop, confirm: ({ branchId }) => void confirmed.add(branchId) });
    await p.start();
    const init = h.service({ app: 'shop', maxTxnOps: MAX_TXN_OPS }); // no leader: nobody finishes the fan-out
    // Every Try and the commit must land before the deadline: the Trys run side by side, and the
    // deadline leaves a loaded machine room for them.
    const tx = await init.begin({ name: 'x', timeoutMs: 3_000 });
    const n = MAX_TXN_OPS * 2;
    await Promise.all(Array.from({ length: n }, (_, i) => p.tryBranch(tx.context, 'r', { i })));
    await tx.commit();
    await waitFor(() => confirmed.size === n, { what: 'all branches confirmed', timeoutMs: 15_000 });
    // A handler returns before its outcome is written: wait for the records, not only the calls.
    const view = await waitFor(async () => {
      const v = await init.get(tx.xid);
      return v.branches.length === n && v.branches.every((b) => b.state === 'DONE') ? v : undefined;
    }, { what: 'every branch recorded done', timeoutMs: 15_000 });
    expect(view.status).toBe('COMMITTING');
    expect(view.branches.every((b) => b.state === 'DONE' && b.action === 'confirm')).toBe(true);
  });

  it("a participant never rolls back before the global's own deadline, even if the Try carried an earlier one", async () => {
    setup('early-deadline');
    const cancels: string[] = [];
    const p = h.service({ app: 'acct', graceMs: 100, maxTxnOps: MAX_TXN_OPS }).resource('r', { ...noop, cancel: ({ branchId }) => void cancels.push(branchId) });
    await p.start();
    const init = h.service({ app: 'shop', maxTxnOps: MAX_TXN_OPS }); // no leader: only the participant could act
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    // A control transaction whose own deadline is the one the Try below carries: the participant must
    // roll it back, and cancel its branch, once that deadline + grace passed.
    const control = await init.begin({ name: 'control', timeoutMs: 2_000 });
    const { branchId: controlBranch } = await p.tryBranch(control.context, 'r', {});
    await p.tryBranch({ xid: tx.xid, deadline: control.deadline }, 'r', {});
    // Not a sleep past the carried deadline + grace, which a loaded machine makes too short: the
    // control's branch, due at the same moment, has been rolled back and cancelled, so the participant
    // looked at this branch then too.
    await waitFor(() => cancels.includes(controlBranch), { what: "the control transaction's cancel" });
    await waitFor(async () => (await init.get(control.xid)).branches[0]?.state === 'DONE', { what: "the control's cancel recorded" });
    expect((await init.get(control.xid)).decision?.by).toBe('participant:acct');
    expect((await init.get(tx.xid)).status).toBe('TRYING');
    expect(cancels).toEqual([controlBranch]);
    await tx.commit();
  });

  it('a branch whose global vanished (deleted by hand) is cancelled by its owner and then collected by it after the retention', async () => {
    setup('orphan-gc');
    const cancels: string[] = [];
    const p = h.service({ app: 'acct', graceMs: 100, retentionMs: 300, maxTxnOps: MAX_TXN_OPS }).resource('r', { ...noop, cancel: ({ branchId }) => void cancels.push(branchId) });
    await p.start();
    const init = h.service({ app: 'shop', maxTxnOps: MAX_TXN_OPS });
    // Short, but long enough for begin and the Try to happen before it on a loaded machine.
    const tx = await init.begin({ name: 'x', timeoutMs: 2_000 });
    const { branchId } = await p.tryBranch(tx.context, 'r', {});
    await env.client.delete().prefix(`${ns}shop/`);
    await waitFor(() => cancels.includes(branchId), { what: 'orphan cancelled' });
    await waitFor(async () => (await env.client.getAll().prefix(`${ns}acct/`).keys()).every((k) => !k.includes(tx.xid)), { what: 'orphan collected' });
  });
});
