/**
 * Saga mode against a real etcd: steps forward in order (or in concurrent groups), run by their
 * owners' control loops; a step failing for good turns the saga to compensating, and every step
 * that ran is compensated in reverse order — each owner waiting, from etcd state, for the later
 * steps' compensations.
 */
import { describe, expect, it } from 'vitest';
import { BranchRegistrationRefused, NonRetryableError, OperationRefused, TransactionAlreadyDecided, ValidationError, type SagaStep, type StepContext, type TxloopService } from '../src/index.js';
import { Action, Mode } from '../src/index.js';
import { orderFor } from '../src/store/index.js';
import { sagaMoveBy } from '../src/modes/saga/index.js';
import { capturingLogger, gate, useEtcd, waitFor, type Harness } from './helpers/harness.js';
import { spawnReplica, stopReplica } from './helpers/processes.js';

const env = useEtcd();

/** Every handler call across the test's services, in the order they happened. */
type Call = { step: string; action: 'action' | 'compensate'; attempt: number; actionState: string; payload: unknown; at: number };

function recorder(): { calls: Call[]; step(name: string, behaviour?: Partial<Record<'action' | 'compensate', (ctx: StepContext) => unknown>>): SagaStep } {
  const calls: Call[] = [];
  return {
    calls,
    step(name, behaviour = {}) {
      const run = (action: 'action' | 'compensate') => async (ctx: StepContext) => {
        calls.push({ step: name, action, attempt: ctx.attempt, actionState: ctx.actionState, payload: ctx.payload, at: Date.now() });
        await behaviour[action]?.(ctx);
      };
      return { action: run('action'), compensate: run('compensate') };
    },
  };
}

const called = (calls: Call[], action: 'action' | 'compensate'): string[] => calls.filter((c) => c.action === action).map((c) => c.step);
const firstCall = (calls: Call[], step: string, action: 'action' | 'compensate'): number => calls.findIndex((c) => c.step === step && c.action === action);
const lastCall = (calls: Call[], step: string, action: 'action' | 'compensate'): number => calls.map((c) => c.step === step && c.action === action).lastIndexOf(true);

async function services(h: Harness, names: string[], register: (svc: TxloopService, name: string) => void, options = {}): Promise<Record<string, TxloopService>> {
  const out: Record<string, TxloopService> = {};
  for (const name of names) {
    out[name] = h.service({ app: name, ...options });
    register(out[name]!, name);
  }
  await Promise.all(Object.values(out).map((s) => s.start()));
  return out;
}

describe('saga: forward in order, compensation in reverse', () => {
  it('each step runs only after the step before it succeeded, and the saga SUCCEEDED after the last', async () => {
    const { h } = env.fresh('saga-forward');
    const r = recorder();
    const s = await services(h, ['order', 'inventory', 'payment', 'shop'], (svc, name) => {
      if (name !== 'shop') svc.sagaStep('step', r.step(name));
    });
    const { xid } = await s.shop!.saga({ name: 'checkout', steps: [{ service: 'order', resource: 'step', payload: { id: 1 } }, { service: 'inventory', resource: 'step' }, { service: 'payment', resource: 'step' }] });
    const done = await s.shop!.waitForCompletion(xid, { timeoutMs: 20_000 });
    expect(done.status).toBe('SUCCEEDED');
    expect(called(r.calls, 'action')).toEqual(['order', 'inventory', 'payment']);
    expect(called(r.calls, 'compensate')).toEqual([]);
    expect(done.branches.map((b) => [b.owner, b.state, b.group])).toEqual(expect.arrayContaining([['order', 'DONE', 0], ['inventory', 'DONE', 1], ['payment', 'DONE', 2]]));
    expect(done.steps).toEqual([
      { branchId: 'step1', owner: 'order', resource: 'step', group: 0 },
      { branchId: 'step2', owner: 'inventory', resource: 'step', group: 1 },
      { branchId: 'step3', owner: 'payment', resource: 'step', group: 2 },
    ]);
  });

  it('reverse-order compensation across three services: payment fails for good, inventory compensates only after payment, order only after inventory (the owner of an earlier step waits for the later one)', async () => {
    const { h, store } = env.fresh('saga-reverse');
    const r = recorder();
    const hold = gate();
    const cap = capturingLogger('info');
    let inventoryCompensations = 0;
    const s: Record<string, TxloopService> = {};
    for (const name of ['order', 'inventory', 'payment', 'shop']) s[name] = h.service({ app: name, ...(name === 'order' ? { logger: cap.logger } : {}) });
    s.order!.sagaStep('step', r.step('order'));
    s.inventory!.sagaStep(
      'step',
      r.step('inventory', {
        // Retried twice before it succeeds: slow, so an owner that did not wait would overtake it.
        compensate: async () => {
          inventoryCompensations++;
          if (inventoryCompensations === 1) await hold.wait;
          if (inventoryCompensations < 3) throw new Error('warehouse API timed out');
        },
      }),
    );
    s.payment!.sagaStep('step', r.step('payment', { action: () => { throw new NonRetryableError('card declined'); } }));
    await Promise.all(Object.values(s).map((x) => x.start()));
    const { xid } = await s.shop!.saga({ name: 'checkout', steps: [{ service: 'order', resource: 'step', payload: { orderId: 42 } }, { service: 'inventory', resource: 'step' }, { service: 'payment', resource: 'step' }] });
    await waitFor(() => r.calls.some((c) => c.step === 'inventory' && c.action === 'compensate'), { what: "inventory's compensation started" });
    // An order to compensate step 1 written by hand, while step 2's compensation is still running:
    // order's owner must look at etcd and wait, not trust the order.
    await store.client.put(store.keys.order('order', xid, 'step1')).value(JSON.stringify(orderFor({ xid, branchId: 'step1' }, Mode.SAGA, Action.COMPENSATE, 'test', Date.now())));
    await waitFor(() => cap.lines.some((l) => String(l.msg).includes('waits for a later step') && l.waitingFor === 'step2'), { what: "order's owner waiting for inventory's compensation" });
    expect(called(r.calls, 'compensate')).not.toContain('order');
    hold.open();
    const done = await s.shop!.waitForCompletion(xid, { timeoutMs: 20_000 });
    expect(done.status).toBe('COMPENSATED');
    expect(done.decision?.by).toBe('participant:payment');
    // payment's own compensation (its action may have half-run), then inventory (three attempts), then order.
    expect(called(r.calls, 'compensate')).toEqual(['payment', 'inventory', 'inventory', 'inventory', 'order']);
    expect(firstCall(r.calls, 'order', 'compensate')).toBeGreaterThan(lastCall(r.calls, 'inventory', 'compensate'));
    const pay = r.calls.find((c) => c.step === 'payment' && c.action === 'compensate')!;
    expect(pay.actionState).toBe('FAILED');
    expect(r.calls.find((c) => c.step === 'order' && c.action === 'compensate')).toMatchObject({ actionState: 'SUCCEEDED', payload: { orderId: 42 } });
    // Attempt numbers go on growing from the action's into the compensation's.
    expect(r.calls.filter((c) => c.step === 'inventory').map((c) => c.attempt)).toEqual([1, 2, 3, 4]);
  });

  it('concurrent groups: the steps of a group run at once, the next group starts after all of them; compensation takes the groups in reverse, a group without order among its steps', async () => {
    const { h } = env.fresh('saga-groups');
    const r = recorder();
    const bothRunning = { b: gate(), c: gate() };
    const s = await services(h, ['a', 'b', 'c', 'd', 'shop'], (svc, name) => {
      if (name === 'shop') return;
      svc.sagaStep(
        'step',
        r.step(name, {
          // b and c each wait until the other has started: only a concurrent group gets past this.
          action: name === 'b' ? async () => (bothRunning.b.open(), bothRunning.c.wait) : name === 'c' ? async () => (bothRunning.c.open(), bothRunning.b.wait) : name === 'd' ? () => { throw new NonRetryableError('out of stock'); } : undefined,
        }),
      );
    });
    const { xid } = await s.shop!.saga({ name: 'fan-out', steps: [{ service: 'a', resource: 'step' }, [{ service: 'b', resource: 'step' }, { service: 'c', resource: 'step' }], { service: 'd', resource: 'step' }] });
    const done = await s.shop!.waitForCompletion(xid, { timeoutMs: 20_000 });
    expect(done.status).toBe('COMPENSATED');
    const actions = called(r.calls, 'action');
    expect(actions[0]).toBe('a');
    expect(actions.slice(1, 3).sort()).toEqual(['b', 'c']);
    expect(actions[3]).toBe('d');
    const comp = called(r.calls, 'compensate');
    expect(comp[0]).toBe('d');
    expect(comp.slice(1, 3).sort()).toEqual(['b', 'c']);
    expect(comp[3]).toBe('a');
  });

  it('a step that only fails with retryable errors is retried; one past its attempt limit fails for good and the saga compensates', async () => {
    const { h } = env.fresh('saga-limit');
    const r = recorder();
    let flaky = 0;
    const s = await services(
      h,
      ['a', 'b', 'shop'],
      (svc, name) => {
        if (name === 'a') svc.sagaStep('step', r.step('a', { action: () => { if (++flaky < 3) throw new Error('flaky'); } }));
        if (name === 'b') svc.sagaStep('step', r.step('b', { action: () => { throw new Error('still down'); } }));
      },
      { maxAttempts: 3 },
    );
    const { xid } = await s.shop!.saga({ name: 'retry', steps: [{ service: 'a', resource: 'step' }, { service: 'b', resource: 'step' }] });
    const done = await s.shop!.waitForCompletion(xid, { timeoutMs: 20_000 });
    expect(done.status).toBe('COMPENSATED');
    expect(r.calls.filter((c) => c.step === 'a' && c.action === 'action').map((c) => c.attempt)).toEqual([1, 2, 3]);
    expect(r.calls.filter((c) => c.step === 'b' && c.action === 'action')).toHaveLength(3);
    expect(done.decision?.reason).toContain('still down');
    expect(called(r.calls, 'compensate')).toEqual(['b', 'a']);
  });

  it('invariant 10: a saga past its deadline with a step stuck is compensated — by a participant when its initiator is gone', async () => {
    const { h } = env.fresh('saga-deadline');
    const r = recorder();
    const s = await services(h, ['a', 'b', 'shop'], (svc, name) => {
      if (name === 'a') svc.sagaStep('step', r.step('a'));
      if (name === 'b') svc.sagaStep('step', r.step('b', { action: () => { throw new Error('not yet'); } }));
    }, { maxAttempts: 1_000 });
    const { xid } = await s.shop!.saga({ name: 'slow', timeoutMs: 1_500, steps: [{ service: 'a', resource: 'step' }, { service: 'b', resource: 'step' }] });
    await s.shop!.close();
    const reader = h.service({ app: 'reader' });
    const done = await reader.waitForCompletion(xid, { timeoutMs: 20_000 });
    expect(done.status).toBe('COMPENSATED');
    expect(done.decision?.by).toBe('participant:b');
    expect(called(r.calls, 'compensate')).toEqual(['b', 'a']);
  });

  it('the one-decision rule: a saga has no commit, a rollback compensates it once, and a second is refused', async () => {
    const { h } = env.fresh('saga-decide');
    const hold = gate();
    const r = recorder();
    const s = await services(h, ['a', 'shop'], (svc, name) => {
      if (name === 'a') svc.sagaStep('step', r.step('a', { action: () => hold.wait }));
    });
    const { xid } = await s.shop!.saga({ name: 'abort me', steps: [{ service: 'a', resource: 'step' }] });
    await waitFor(() => r.calls.length > 0, 'action started');
    await expect(s.shop!.commit(xid)).rejects.toThrow(/is a saga: it has no commit/);
    await s.shop!.rollback(xid, { reason: 'customer cancelled' });
    await expect(s.shop!.rollback(xid)).rejects.toBeInstanceOf(TransactionAlreadyDecided);
    hold.open();
    const done = await s.shop!.waitForCompletion(xid);
    expect(done.status).toBe('COMPENSATED');
    expect(called(r.calls, 'compensate')).toEqual(['a']);
  });

  it('bad saga declarations are refused with the field named, and nothing is written', async () => {
    const { h, store, ns } = env.fresh('saga-validate');
    const shop = h.service({ app: 'shop' });
    const bad = async (steps: unknown, field: RegExp): Promise<void> => {
      const err = await shop.saga({ name: 'x', steps: steps as never }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).message).toMatch(field);
    };
    await bad([], /options\.steps: must be a non-empty array/);
    await bad([{ service: 'Bad Name', resource: 'r' }], /options\.steps\[0\]\.service/);
    await bad([{ service: 'a', resource: 'r' }, []], /options\.steps\[1\]: is an empty group/);
    await bad([{ service: 'a', resource: 'r', branchId: 'x' }, [{ service: 'b', resource: 'r', branchId: 'x' }]], /options\.steps\[1\]\[0\]\.branchId.*unique/);
    await bad([{ service: 'a', resource: 'r', colour: 'red' }], /colour/);
    await bad([Array.from({ length: 50 }, () => ({ service: 'a', resource: 'r' }))], /at most 41 fit/);
    // Payloads each within maxPayloadBytes, but more than one etcd request can carry together.
    const big = 'x'.repeat(240_000);
    await bad([[1, 2, 3].map(() => ({ service: 'a', resource: 'r', payload: big }))], /submit would write about \d+ bytes in one etcd Txn/);
    await bad([{ service: 'a', resource: 'r' }, [1, 2, 3].map(() => ({ service: 'b', resource: 'r', payload: big }))], /options\.steps\[1\]: ordering this group would write/);
    expect((await store.client.getAll().prefix(ns).keys()).length).toBe(0);
  });

  it('a parked compensation is retried or resolved by an operator, and resolving it moves the saga on', async () => {
    const { h, store } = env.fresh('saga-repair');
    let bCompensations = 0;
    const r = recorder();
    const s = await services(
      h,
      ['a', 'b', 'shop'],
      (svc, name) => {
        if (name === 'a') svc.sagaStep('step', r.step('a'));
        if (name === 'b') svc.sagaStep('step', r.step('b', { action: () => { throw new NonRetryableError('no'); }, compensate: () => { bCompensations++; throw new Error('compensation broken'); } }));
      },
      { maxAttempts: 2 },
    );
    const { xid } = await s.shop!.saga({ name: 'repair', steps: [{ service: 'a', resource: 'step' }, { service: 'b', resource: 'step' }] });
    await waitFor(async () => (await s.shop!.get(xid)).branches.find((b) => b.owner === 'b')?.state === 'PARKED', { what: "b's compensation parked" });
    // a waits for b: nothing of a is compensated while b is parked.
    expect(called(r.calls, 'compensate')).not.toContain('a');
    await store.repairs.retryBranch('b', xid, 'step2', 'operator:test');
    await waitFor(() => bCompensations === 4 && s.shop!.get(xid).then((v) => v.branches.find((b) => b.owner === 'b')?.state === 'PARKED'), { what: 'parked again after a fresh budget' });
    // A saga step is resolved as compensated, nothing else.
    await expect(store.repairs.resolveBranch('b', xid, 'step2', 'confirmed', 'no', 'operator:test', { move: sagaMoveForTest })).rejects.toBeInstanceOf(OperationRefused);
    await store.repairs.resolveBranch('b', xid, 'step2', 'compensated', 'refunded by hand, OPS-7', 'operator:test', { move: sagaMoveForTest });
    const done = await s.shop!.waitForCompletion(xid);
    expect(done.status).toBe('COMPENSATED');
    // Resolved the way the saga went: not heuristic.
    expect(done.heuristic).toBe(false);
    expect(called(r.calls, 'compensate').filter((x) => x === 'a')).toEqual(['a']);
  });
});

const sagaMoveForTest = sagaMoveBy('operator:test');

describe('saga: the initiator is not needed once etcd holds the saga', () => {
  it('a saga whose initiator process was SIGKILLed right after submit runs on and finishes its compensation', async () => {
    const { h, ns } = env.fresh('saga-kill');
    const r = recorder();
    // The first action is held until the initiator is dead: everything after submit happens without it.
    const killed = gate();
    const s = await services(h, ['order', 'inventory', 'payment'], (svc, name) => {
      svc.sagaStep('step', r.step(name, name === 'payment' ? { action: () => { throw new NonRetryableError('card declined'); } } : name === 'order' ? { action: () => killed.wait } : {}));
    });
    const initiator = spawnReplica('saga-initiator.ts', 'shop-1', {
      TXLOOP_ENDPOINTS: env.endpoints.join(','),
      NS: ns,
      APP: 'shop',
      STEPS: JSON.stringify([{ service: 'order', resource: 'step' }, { service: 'inventory', resource: 'step' }, { service: 'payment', resource: 'step' }]),
    });
    const { xid } = (await initiator.waitForEvent((e) => e.event === 'submitted', 'saga submitted', 30_000)) as { xid: string };
    await stopReplica(initiator);
    expect(initiator.exited()).toBe(true);
    killed.open();
    const reader = h.service({ app: 'reader' });
    const done = await reader.waitForCompletion(xid, { timeoutMs: 30_000 });
    expect(done.status).toBe('COMPENSATED');
    expect(called(r.calls, 'action')).toEqual(['order', 'inventory', 'payment']);
    expect(called(r.calls, 'compensate')).toEqual(['payment', 'inventory', 'order']);
    expect(Object.keys(s)).toHaveLength(3);
  });
});

describe('saga: a step owner that dies mid-action', () => {
  it("SIGKILL of the owner's leader in the middle of an action: the standby runs it again as attempt 2 with a newer fencing token, and the saga goes on", async () => {
    const { h, ns } = env.fresh('saga-failover');
    const r = recorder();
    const s = await services(h, ['order', 'shop'], (svc, name) => {
      if (name === 'order') svc.sagaStep('step', r.step('order'));
    });
    const base = { TXLOOP_ENDPOINTS: env.endpoints.join(','), NS: ns, APP: 'inventory', HOLD_FIRST: '1' };
    const first = spawnReplica('saga-step.ts', 'inventory-1', { ...base, IDENTITY: 'inventory-1' });
    await first.waitForEvent((e) => e.event === 'leading', 'inventory-1 leading', 30_000);
    const second = spawnReplica('saga-step.ts', 'inventory-2', { ...base, IDENTITY: 'inventory-2' });
    await second.waitForEvent((e) => e.event === 'started', 'inventory-2 started', 30_000);
    const { xid } = await s.shop!.saga({ name: 'failover', steps: [{ service: 'order', resource: 'step' }, { service: 'inventory', resource: 'step' }] });
    const held = await first.waitForEvent((e) => e.event === 'action-start' && e.xid === xid, 'attempt 1 on inventory-1', 30_000);
    expect(held.attempt).toBe(1);
    await stopReplica(first);
    const retried = await second.waitForEvent((e) => e.event === 'action-start' && e.xid === xid, 'the action on inventory-2', 30_000);
    expect(retried.attempt).toBe(2);
    expect(BigInt(retried.fencingToken as string)).toBeGreaterThan(BigInt(held.fencingToken as string));
    expect((await s.shop!.waitForCompletion(xid, { timeoutMs: 30_000 })).status).toBe('SUCCEEDED');
    await stopReplica(second);
  });
});

describe('a saga or a message takes no Try', () => {
  it('tryBranch with the xid of a running saga or a prepared message is refused, and nothing joins them', async () => {
    const { h, store } = env.fresh('saga-no-try');
    const held = gate();
    const a = h.service({ app: 'a' }).sagaStep('s', { action: () => held.wait, compensate: () => undefined });
    const bank = h.service({ app: 'bank' }).resource('hold', { try: () => 'ok', confirm: () => undefined, cancel: () => undefined });
    const shop = h.service({ app: 'shop' });
    await Promise.all([a.start(), bank.start(), shop.start()]);
    const { xid: sagaXid, deadline } = await shop.saga({ name: 'x', steps: [{ service: 'a', resource: 's' }] });
    const msg = await shop.prepareMessage({ name: 'm', consumers: [{ service: 'bank', resource: 'inbox' }], checkAfterMs: 60_000 });
    for (const [xid, words] of [[sagaXid, /is a saga, not TCC: it takes no Try \(it is RUNNING\)/], [msg.xid, /is a 2-phase message, not TCC: it takes no Try \(it is PREPARED\)/]] as const) {
      const err = await bank.tryBranch({ xid, deadline }, 'hold', {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BranchRegistrationRefused);
      expect((err as Error).message).toMatch(words);
      expect((await store.globals.read(xid)).members.filter((m) => m.record.owner === 'bank')).toEqual([]);
    }
    // A TCC transaction still takes its Trys.
    const tx = await shop.begin({ name: 'tcc' });
    expect((await bank.tryBranch(tx.context, 'hold', {})).replayed).toBe(false);
    held.open();
  });
});

describe('saga: no single service blocks recovery', () => {
  it('invariant 10: an owner whose step already succeeded compensates a saga its initiator left RUNNING past deadline + grace (a concurrent step\'s service never ran)', async () => {
    const { h } = env.fresh('saga-inv10-done');
    const r = recorder();
    const a = h.service({ app: 'a' }).sagaStep('s', r.step('a'));
    const shop = h.service({ app: 'shop' });
    await Promise.all([a.start(), shop.start()]);
    const { xid } = await shop.saga({ name: 'x', timeoutMs: 1_000, steps: [[{ service: 'a', resource: 's' }, { service: 'b', resource: 's' }]] });
    await waitFor(async () => (await shop.get(xid)).branches.find((m) => m.owner === 'a')?.tryState === 'SUCCEEDED', 'a done');
    await shop.close();
    const reader = h.service({ app: 'reader' });
    await waitFor(async () => (await reader.get(xid)).status === 'COMPENSATING', { what: 'compensating', timeoutMs: 15_000 });
    expect((await reader.get(xid)).decision?.by).toBe('participant:a');
    // a's own compensation needs no order relative to b (one group).
    await waitFor(() => called(r.calls, 'compensate').includes('a'), "a's compensation");
  });

  it('a step whose service never runs (misnamed): after the deadline the saga waits on it; resolve --force as compensated moves it on, and the steps before it are compensated', async () => {
    const { h, store } = env.fresh('saga-misnamed');
    const r = recorder();
    const order = h.service({ app: 'order' }).sagaStep('s', r.step('order'));
    const shop = h.service({ app: 'shop' });
    await Promise.all([order.start(), shop.start()]);
    const { xid } = await shop.saga({ name: 'typo', timeoutMs: 1_000, steps: [{ service: 'order', resource: 's' }, { service: 'invnetory', resource: 's' }] });
    await waitFor(async () => (await shop.get(xid)).status === 'COMPENSATING', { what: 'compensating after the deadline', timeoutMs: 15_000 });
    // Nothing parked, so a plain resolve is refused; the earlier step waits for the later one.
    await expect(store.repairs.resolveBranch('invnetory', xid, 'step2', 'compensated', 'no such service', 'operator:test', { move: sagaMoveForTest })).rejects.toMatchObject({ reason: 'not-parked' });
    expect(called(r.calls, 'compensate')).toEqual([]);
    const resolved = await store.repairs.resolveBranch('invnetory', xid, 'step2', 'compensated', 'misnamed service, nothing ran', 'operator:test', { move: sagaMoveForTest, force: true });
    expect(resolved.phase2).toMatchObject({ action: 'compensate', state: 'DONE', resolution: { as: 'compensated' } });
    expect((await shop.waitForCompletion(xid)).status).toBe('COMPENSATED');
    expect(called(r.calls, 'compensate')).toEqual(['order']);
  });
});

describe('saga: two steps of a group finishing at once', () => {
  it('the next group is ordered exactly once, by whichever finish came last (sagas whose group steps are released together)', async () => {
    const { h, store } = env.fresh('saga-race');
    const release = gate();
    const r = recorder();
    const s = await services(h, ['b', 'c', 'd', 'shop'], (svc, name) => {
      if (name === 'b' || name === 'c') svc.sagaStep('step', r.step(name, { action: () => release.wait }));
      if (name === 'd') svc.sagaStep('step', r.step('d'));
    });
    const xids: string[] = [];
    for (let i = 0; i < 6; i++) xids.push((await s.shop!.saga({ name: `race ${i}`, steps: [[{ service: 'b', resource: 'step' }, { service: 'c', resource: 'step' }], { service: 'd', resource: 'step' }] })).xid);
    await waitFor(() => r.calls.filter((c) => c.action === 'action').length === 12, 'every b and c action waiting');
    release.open();
    for (const xid of xids) expect((await s.shop!.waitForCompletion(xid, { timeoutMs: 20_000 })).status).toBe('SUCCEEDED');
    // Each saga's d ran once: its branch was created once, and never written over after it ran.
    for (const xid of xids) expect((await store.branches.get('d', xid, 'step3'))?.record.events.filter((e) => e.type === 'Ordered')).toHaveLength(1);
    expect(r.calls.filter((c) => c.step === 'd')).toHaveLength(6);
  });
});
