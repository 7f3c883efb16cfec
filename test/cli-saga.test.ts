/**
 * The `txloop` binary on sagas: `get gtx`/`get branches` show saga steps in their own words,
 * `describe` lists the steps not started yet, `-w` follows a saga's steps as they change, and the
 * repairs refuse what a saga forbids (resolving a step as confirmed, aborting a finished saga)
 * while `resolve --as compensated` moves a parked saga on.
 */
import { describe, expect, it } from 'vitest';
import { NonRetryableError, type TxloopService } from '../src/index.js';
import { gate, useEtcd, waitFor as waitUntil } from './helpers/harness.js';
import { assertBuilt, row, runCli, spawnCli } from './helpers/cli.js';

const env = useEtcd();

describe('txloop CLI on sagas', () => {
  it('get, describe and -w show saga steps; resolve --as compensated moves a parked saga on, other repairs are refused', async () => {
    assertBuilt();
    const { h, ns } = env.fresh('cli-saga');
    const cli = (...args: string[]) => runCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, ...args]);
    const held = gate();
    let orderCompensations = 0;
    const order = h.service({ app: 'order', maxAttempts: 2 }).sagaStep('create', { action: () => undefined, compensate: () => { orderCompensations++; throw new Error('order service refuses to cancel'); } });
    const stock = h.service({ app: 'stock' }).sagaStep('reserve', { action: () => held.wait, compensate: () => undefined });
    const pay = h.service({ app: 'pay' }).sagaStep('charge', { action: () => { throw new NonRetryableError('card declined'); }, compensate: () => undefined });
    const shop = h.service({ app: 'shop' });
    await Promise.all([order, stock, pay, shop].map((s: TxloopService) => s.start()));
    const w = spawnCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, 'get', 'branches', '-w']);
    try {
      await w.waitForLine((l) => l.startsWith('BRANCH'), 'the header');
      const { xid } = await shop.saga({ name: 'checkout', steps: [{ service: 'order', resource: 'create' }, { service: 'stock', resource: 'reserve' }, { service: 'pay', resource: 'charge' }] });
      await w.waitForLine((l) => l.startsWith(`${xid}/step2`) && /\sRUNNING\s/.test(l), 'step2 RUNNING');

      // While step 2 runs: the saga RUNNING, step 1 SUCCEEDED, step 3 not started.
      const g = await cli('get', 'gtx', xid);
      expect(g.code, g.stderr).toBe(0);
      expect(row(g.stdout, xid)).toMatchObject({ MODE: 'SAGA', STATUS: 'RUNNING' });
      const d = await cli('describe', 'gtx', xid);
      expect(d.stdout).toMatch(/Mode:\s+SAGA/);
      expect(d.stdout).toMatch(/Not Started:\s+1 step\(s\), waiting for the groups before them/);
      expect(d.stdout).toMatch(/step3:\n\s+Owner:\s+pay\n\s+Resource:\s+charge\n\s+Group:\s+2\n\s+Status:\s+WAITING/);
      expect(row((await cli('get', 'branches', xid)).stdout, `${xid}/step1`)).toMatchObject({ STATUS: 'SUCCEEDED', ACTION: 'action' });

      held.open();
      await w.waitForLine((l) => l.startsWith(`${xid}/step3`) && /\sCOMPENSATED\s/.test(l), 'step3 compensated');
      await w.waitForLine((l) => l.startsWith(`${xid}/step1`) && /\sPARKED\s/.test(l), "step1's compensation parked");
      const parked = await cli('get', 'branches', '--status', 'parked', '-o', 'name');
      expect(parked.stdout.trim()).toBe(`branch/${xid}/step1`);
      expect((await cli('get', 'gtx', xid)).stdout).toMatch(/COMPENSATING/);

      // retry puts the parked compensation back with a fresh budget: it runs (and parks) again.
      const before = orderCompensations;
      const retried = await cli('retry', `${xid}/step1`);
      expect(retried.code, retried.stderr).toBe(0);
      expect(retried.stdout).toMatch(/re-queued for compensate/);
      await waitUntil(async () => orderCompensations >= before + 2 && (await shop.get(xid)).branches.find((b) => b.owner === 'order')?.state === 'PARKED', 'parked again after the retry');
      const wrong = await cli('resolve', `${xid}/step1`, '--as', 'confirmed', '--reason', 'no');
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/can be resolved as compensated, not confirmed/);
      const resolved = await cli('resolve', `${xid}/step1`, '--as', 'compensated', '--reason', 'order voided by hand, OPS-9');
      expect(resolved.code, resolved.stderr).toBe(0);
      await waitUntil(async () => (await shop.get(xid)).status === 'COMPENSATED', 'the saga compensated after the resolution');
      expect(row((await cli('get', 'branches', xid)).stdout, `${xid}/step1`)).toMatchObject({ STATUS: 'RESOLVED_COMPENSATED' });
      const abort = await cli('abort', xid);
      expect(abort.code).toBe(1);
      expect(abort.stderr).toMatch(/already decided.*only an undecided transaction/);
      const done = await cli('describe', 'gtx', xid);
      expect(done.stdout).toMatch(/Status:\s+COMPENSATED\n/);
      expect(done.stdout).toMatch(/Completed .*\(1 by hand\)/);
      expect(done.stdout).toMatch(/ActionFailed .*card declined/);
    } finally {
      await w.interrupt();
    }
  });

  it('abort of a running saga compensates it: the steps that ran are compensated, the rest never start', async () => {
    assertBuilt();
    const { h, ns } = env.fresh('cli-saga-abort');
    const cli = (...args: string[]) => runCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, ...args]);
    const held = gate();
    const calls: string[] = [];
    const a = h.service({ app: 'a' }).sagaStep('s', { action: () => void calls.push('a:action'), compensate: () => void calls.push('a:compensate') });
    const b = h.service({ app: 'b' }).sagaStep('s', { action: async () => (calls.push('b:action'), held.wait), compensate: () => void calls.push('b:compensate') });
    const c = h.service({ app: 'c' }).sagaStep('s', { action: () => void calls.push('c:action'), compensate: () => void calls.push('c:compensate') });
    const shop = h.service({ app: 'shop' });
    await Promise.all([a, b, c, shop].map((s: TxloopService) => s.start()));
    const { xid } = await shop.saga({ name: 'abort me', steps: [{ service: 'a', resource: 's' }, { service: 'b', resource: 's' }, { service: 'c', resource: 's' }] });
    await waitUntil(() => calls.includes('b:action'), "b's action started");
    const dry = await cli('abort', xid, '--dry-run');
    expect(dry.stdout).toMatch(/would be rolled back \(saga\)/);
    const r = await cli('abort', xid, '--reason', 'customer cancelled');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/aborted: COMPENSATING, compensation ordered for 1\/2 branch/);
    held.open();
    await waitUntil(async () => (await shop.get(xid)).status === 'COMPENSATED', 'compensated');
    expect(calls).toEqual(['a:action', 'b:action', 'b:compensate', 'a:compensate']);
    const d = await cli('describe', 'gtx', xid);
    expect(d.stdout).toMatch(/Decision:\s+rollback by operator:/);
    expect(d.stdout).toMatch(/step3:\n\s+Owner:\s+c\n\s+Resource:\s+s\n\s+Group:\s+2\n\s+Status:\s+NOT_RUN/);
  });
});
