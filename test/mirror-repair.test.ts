/**
 * The mirror's declarative repair (src/kube/repair.ts) against a real etcd, without Kubernetes: it
 * runs the CLI's own repair; a request run again after a crash recognises its own effect by the
 * stamp in `by` (and only its own: another request's is refused as the CLI refuses it); an etcd
 * failure is thrown for a retry, never recorded as a refusal.
 */
import { describe, expect, it } from 'vitest';
import { runRepair } from '../src/kube/repair.js';
import { useEtcd, waitFor } from './helpers/harness.js';
import { Store } from '../src/store/index.js';
import { Etcd3 } from 'etcd3';

const env = useEtcd();

describe('declarative repair (the mirror running the CLI repair)', () => {
  it('an abort run again by the same request is that request done; by another request it is refused as decided', async () => {
    const { h, store } = env.fresh('mirror-repair');
    const orders = h.service({ app: 'orders' });
    const bank = h.service({ app: 'bank' });
    bank.resource('hold', { try: () => 'held', confirm: () => undefined, cancel: () => undefined });
    await orders.start();
    await bank.start();
    const t = await orders.begin({ name: 'held', timeoutMs: 600_000 });
    await bank.tryBranch(t.context, 'hold', {});
    const by = 'kubernetes:kubectl-patch#3f2a91c0.2';
    const first = await runRepair(store, t.xid, { action: 'abort', reason: 'customer cancelled' }, by);
    expect(first).toMatchObject({ repaired: true });
    expect(first.message).toMatch(/aborted: ROLLING_BACK, cancel ordered for 1\/1/);
    expect((await orders.get(t.xid)).decision).toMatchObject({ outcome: 'rollback', by, reason: 'customer cancelled' });
    // The mirror died before writing the outcome: its successor runs the same request again.
    const again = await runRepair(store, t.xid, { action: 'abort', reason: 'customer cancelled' }, by);
    expect(again).toEqual({ repaired: true, message: `abort already done by this request (${by})` });
    // Another request (a later generation) is refused, in the CLI's words.
    const other = await runRepair(store, t.xid, { action: 'abort', reason: 'again' }, 'kubernetes:kubectl-patch#3f2a91c0.4');
    expect(other.repaired).toBe(false);
    expect(other.message).toMatch(/cannot abort .* already decided: rollback/);
    await orders.waitForCompletion(t.xid, { timeoutMs: 15_000 });
  });

  it('a retry run again after its branch was re-queued finds its own Retried event; a retry of nothing parked is refused', async () => {
    const { h, store } = env.fresh('mirror-retry');
    let down = true;
    const orders = h.service({ app: 'orders' });
    const bank = h.service({ app: 'bank', maxAttempts: 1 });
    bank.resource('ledger', {
      try: () => 'ok',
      confirm: () => {
        if (down) throw new Error('ledger locked');
      },
      cancel: () => undefined,
    });
    await orders.start();
    await bank.start();
    const t = await orders.begin({ name: 'parks', timeoutMs: 600_000 });
    const b = await bank.tryBranch(t.context, 'ledger', {});
    await t.commit();
    await waitFor(async () => (await orders.get(t.xid)).branches.some((x) => x.state === 'PARKED'), 'the branch parked');
    const by = 'kubernetes:kubectl-annotate#0c1d2e3f.3';
    down = false;
    expect(await runRepair(store, t.xid, { action: 'retry', branch: b.branchId, reason: 'unlocked' }, by)).toMatchObject({ repaired: true });
    await orders.waitForCompletion(t.xid, { timeoutMs: 15_000 });
    expect(await runRepair(store, t.xid, { action: 'retry', branch: b.branchId, reason: 'unlocked' }, by)).toEqual({ repaired: true, message: `retry already done by this request (${by})` });
    const other = await runRepair(store, t.xid, { action: 'retry', branch: b.branchId, reason: 'unlocked' }, 'kubernetes:kubectl-annotate#0c1d2e3f.5');
    expect(other.repaired).toBe(false);
    expect(other.message).toMatch(/not parked \(it is CONFIRMED\)/);
  });

  it('an etcd that does not answer is thrown (retried with backoff), not recorded as a refusal', async () => {
    const dead = new Etcd3({ hosts: ['http://127.0.0.1:1'], dialTimeout: 500 });
    try {
      const store = new Store(dead, 'mirror-dead/');
      await expect(runRepair(store, 'orders.0000dead0000dead1', { action: 'abort', reason: 'x' }, 'kubernetes:k#0.1')).rejects.toThrow();
    } finally {
      dead.close();
    }
  });
});
