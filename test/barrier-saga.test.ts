/**
 * Saga steps through the branch barrier, end to end with real services — over etcd and over
 * PostgreSQL: a step's action and its compensation apply once each; an action that outlives its
 * attempt (it ignores its signal past the handler timeout, so the saga fails and compensates) gets
 * an empty compensation, and when it finally tries to apply its effect it is refused.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { BarrierRefused, EtcdBarrier, NonRetryableError, type BarrierTxn, type SagaStep, type StepContext } from '../src/index.js';
import { PgBarrier } from '../src/barrier/postgres/index.js';
import { gate, useEtcd, waitFor, type Harness } from './helpers/harness.js';
import { usePostgres } from './helpers/barrier.js';

const env = useEtcd();
const pgEnv = usePostgres();

interface Store {
  /** Units reserved by the step's action and not compensated. */
  reserved(): Promise<number>;
  step(hooks: { beforeAction?: (ctx: StepContext) => Promise<void> }): SagaStep;
  record(xid: string, branchId: string): Promise<unknown>;
}

async function play(h: Harness, store: Store): Promise<void> {
  const held = { on: false, entered: gate(), release: gate(), lateError: undefined as unknown, settled: gate() };
  const stock = h.service({ app: 'stock', handlerTimeoutMs: 400, maxAttempts: 1 });
  stock.sagaStep(
    'reserve',
    store.step({
      beforeAction: async () => {
        if (!held.on) return;
        held.entered.open();
        // Ignores its signal: the attempt times out and the saga moves on without it.
        await held.release.wait;
      },
    }),
  );
  const pay = h.service({ app: 'pay' }).sagaStep('charge', { action: () => { throw new NonRetryableError('declined'); }, compensate: () => undefined });
  const shop = h.service({ app: 'shop' });
  await Promise.all([stock.start(), pay.start(), shop.start()]);

  // 1. Reserved by the action, released by its compensation when payment fails: once each.
  const first = await shop.saga({ name: 'reserve then fail', steps: [{ service: 'stock', resource: 'reserve', payload: { units: 3 } }, { service: 'pay', resource: 'charge' }] });
  expect((await shop.waitForCompletion(first.xid, { timeoutMs: 20_000 })).status).toBe('COMPENSATED');
  expect(await store.reserved()).toBe(0);
  expect(await store.record(first.xid, 'step1')).toMatchObject({ phase1: 'action', phase1State: 'applied', phase2: 'compensate', emptyRollback: false });

  // 2. An action stuck past its handler timeout: the step fails, its compensation is empty (recorded),
  // and the action, when it finally goes on, is refused: nothing reserved.
  held.on = true;
  const late = await shop.saga({ name: 'stuck action', steps: [{ service: 'stock', resource: 'reserve', payload: { units: 5 } }, { service: 'pay', resource: 'charge' }] });
  await held.entered.wait;
  expect((await shop.waitForCompletion(late.xid, { timeoutMs: 20_000 })).status).toBe('COMPENSATED');
  expect(await store.record(late.xid, 'step1')).toMatchObject({ phase1State: 'blocked', phase2: 'compensate', emptyRollback: true });
  held.release.open();
  await waitFor(() => lateOutcome.length > 0, { what: 'the late action to finish' });
  expect(lateOutcome[0]).toBeInstanceOf(BarrierRefused);
  // Refused as an older attempt than the compensation's (the fence is checked first), and blocked by
  // the empty compensation either way.
  expect(lateOutcome[0]).toMatchObject({ xid: late.xid });
  expect(['stale-term', 'hanging']).toContain((lateOutcome[0] as BarrierRefused).reason);
  expect(await store.reserved()).toBe(0);
}

/** What the held (late) action's barrier call ended with. */
const lateOutcome: unknown[] = [];

function stepOf<W>(barrier: { saga(h: { action(ctx: StepContext, w: W): Promise<void>; compensate(ctx: StepContext, w: W): Promise<void> }): SagaStep }, change: (w: W, delta: number) => Promise<void>) {
  return (hooks: { beforeAction?: (ctx: StepContext) => Promise<void> }): SagaStep => {
    const inner = barrier.saga({
      action: async (ctx, w) => change(w, (ctx.payload as { units: number }).units),
      compensate: async (ctx, w) => change(w, -(ctx.payload as { units: number }).units),
    });
    return {
      action: async (ctx) => {
        await hooks.beforeAction?.(ctx);
        try {
          await inner.action(ctx);
        } catch (err) {
          if (ctx.signal.aborted) lateOutcome.push(err);
          throw err;
        }
      },
      compensate: (ctx) => inner.compensate(ctx),
    };
  };
}

describe('saga steps through the branch barrier', () => {
  it('data in etcd: action and compensation once each; a late action after its empty compensation is refused', async () => {
    lateOutcome.length = 0;
    const { ns, h } = env.fresh('barrier-saga-etcd');
    const key = `${ns}data/reserved`;
    await env.client.put(key).value('0');
    const barrier = new EtcdBarrier(env.client, { prefix: `${ns}data/barrier/` });
    await play(h, {
      reserved: async () => Number(await env.client.get(key).string()),
      record: (xid, branchId) => barrier.get(xid, branchId),
      step: stepOf<BarrierTxn>(barrier, async (txn, delta) => {
        const kv = (await env.client.kv.range({ key: Buffer.from(key) })).kvs[0]!;
        txn.compare(key, 'Mod', '==', kv.mod_revision).put(key, String(Number(kv.value.toString()) + delta));
      }),
    });
  });

  it('data in PostgreSQL: the same, the barrier row and the stock row in one local transaction', async () => {
    lateOutcome.length = 0;
    const { h } = env.fresh('barrier-saga-pg');
    const id = `sku-${randomBytes(4).toString('hex')}`;
    await pgEnv.pool.query('CREATE TABLE IF NOT EXISTS saga_stock (id text PRIMARY KEY, reserved integer NOT NULL)');
    await pgEnv.pool.query('INSERT INTO saga_stock VALUES ($1, 0)', [id]);
    const barrier = new PgBarrier(pgEnv.pool);
    await play(h, {
      reserved: async () => (await pgEnv.pool.query<{ reserved: number }>('SELECT reserved FROM saga_stock WHERE id = $1', [id])).rows[0]!.reserved,
      record: (xid, branchId) => barrier.get(xid, branchId),
      step: stepOf<pg.PoolClient>(barrier, async (sql, delta) => {
        await sql.query('UPDATE saga_stock SET reserved = reserved + $2 WHERE id = $1', [id, delta]);
      }),
    });
  });
});
