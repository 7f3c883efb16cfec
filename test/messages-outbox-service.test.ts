/**
 * A 2-phase message whose local transaction runs through the PostgreSQL outbox, end to end with a
 * real service: a COMMIT whose answer was lost may have committed, so `message()` leaves the
 * message to the check-back (which finds the marker and submits it) instead of discarding it.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { BarrierDatabaseError, MESSAGE_MARKER, PgBarrier } from '../src/barrier/postgres/index.js';
import { useEtcd, waitFor } from './helpers/harness.js';
import { usePostgres } from './helpers/barrier.js';

const env = useEtcd();
const pgEnv = usePostgres();

beforeAll(async () => {
  await pgEnv.pool.query('CREATE TABLE lossy_order (id text PRIMARY KEY)');
});

/** A pool whose COMMIT goes through but whose answer is lost (the connection drops right after). */
function lossyPool(pool: pg.Pool): pg.Pool {
  return {
    async connect() {
      const c = await pool.connect();
      return new Proxy(c, {
        get(target, prop, receiver) {
          if (prop !== 'query') return Reflect.get(target, prop, receiver);
          return async (text: unknown, values?: unknown) => {
            const res = await (target.query as (t: unknown, v?: unknown) => Promise<unknown>)(text, values);
            if (text === 'COMMIT') throw new Error('Connection terminated unexpectedly');
            return res;
          };
        },
      });
    },
  } as unknown as pg.Pool;
}

describe('message() with the PostgreSQL outbox', () => {
  it('a local transaction whose COMMIT answer was lost is not discarded: the check-back finds its marker and the message is delivered', async () => {
    const { h } = env.fresh('outbox-lost-commit');
    const real = new PgBarrier(pgEnv.pool);
    const lossy = new PgBarrier(lossyPool(pgEnv.pool));
    const got: string[] = [];
    const bank = h.service({ app: 'bank' }).consumer('credit', { deliver: ({ xid }) => void got.push(xid) });
    const shop = h.service({ app: 'shop' }).checkBack('order paid', ({ xid }) => real.checkBack(xid));
    await Promise.all([bank.start(), shop.start()]);
    const id = randomBytes(4).toString('hex');
    let xid = '';
    const err = await shop
      .message({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit' }], checkAfterMs: 500 }, (m) => {
        xid = m.xid;
        return lossy.messageTransaction(m.xid, (sql) => sql.query('INSERT INTO lossy_order (id) VALUES ($1)', [id]));
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BarrierDatabaseError);
    expect((err as BarrierDatabaseError).maybeCommitted).toBe(true);
    expect((await pgEnv.pool.query('SELECT id FROM lossy_order WHERE id = $1', [id])).rowCount).toBe(1);
    expect((await real.get(xid, MESSAGE_MARKER))?.phase1State).toBe('applied');
    expect((await shop.waitForCompletion(xid, { timeoutMs: 20_000 })).status).toBe('DELIVERED');
    await waitFor(() => got.includes(xid), 'the consumer got it');
  });
});
