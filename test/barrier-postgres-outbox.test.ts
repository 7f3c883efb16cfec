/**
 * The PostgreSQL barrier as a 2-phase message's outbox, against a real PostgreSQL: the submit
 * marker commits in the producer's own local transaction with its own row, and the check-back
 * answers from the table definitively — committed only if the marker committed; otherwise it
 * blocks the marker, so a local transaction still running can no longer commit it.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../src/index.js';
import { BarrierRefused, MESSAGE_MARKER, PgBarrier } from '../src/barrier/postgres/index.js';
import { settled, waitFor } from './helpers/wait.js';
import { usePostgres } from './helpers/barrier.js';

const env = usePostgres();
let barrier: PgBarrier<pg.Pool>;

beforeAll(async () => {
  await env.pool.query('CREATE TABLE paid_order (xid text PRIMARY KEY, item text NOT NULL)');
  barrier = new PgBarrier(env.pool);
});

const newXid = (): string => `shop.${randomBytes(8).toString('hex')}`;
const orderRow = async (xid: string): Promise<unknown> => (await env.pool.query('SELECT item FROM paid_order WHERE xid = $1', [xid])).rows[0];
const insertOrder = (sql: pg.PoolClient, xid: string) => sql.query('INSERT INTO paid_order (xid, item) VALUES ($1, $2)', [xid, 'book']);

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
}

/** A local transaction opened by hand on a client of its own (the producer's, say an ORM's). */
async function openLocal(): Promise<pg.PoolClient> {
  const client = await env.pool.connect();
  await client.query('BEGIN');
  return client;
}

describe('PostgreSQL outbox: the submit marker is part of the producer\'s local transaction', () => {
  it('the marker commits with the producer\'s own row in one local transaction, or neither lands', async () => {
    const committed = newXid();
    expect(await barrier.messageTransaction(committed, (sql) => insertOrder(sql, committed).then(() => 'done'))).toBe('done');
    expect(await orderRow(committed)).toEqual({ item: 'book' });
    expect((await barrier.get(committed, MESSAGE_MARKER))?.phase1State).toBe('applied');

    const failed = newXid();
    const err = await failure(
      barrier.messageTransaction(failed, async (sql) => {
        await insertOrder(sql, failed);
        throw new Error('out of stock');
      }),
    );
    expect((err as Error).message).toBe('out of stock');
    expect(await orderRow(failed)).toBeUndefined();
    expect(await barrier.get(failed, MESSAGE_MARKER)).toBeUndefined();
  });

  it('the check-back answers committed for a committed local transaction', async () => {
    const xid = newXid();
    const local = await openLocal();
    try {
      await insertOrder(local, xid);
      await barrier.markSubmitted(local, xid);
      await local.query('COMMIT');
    } finally {
      local.release();
    }
    expect(await barrier.checkBack(xid)).toBe('committed');
    // Asked again (a check-back retried after a lost decision), the answer stays.
    expect(await barrier.checkBack(xid)).toBe('committed');
  });

  it('the check-back answers rolled-back for a rolled-back local transaction and for one that never ran, and keeps answering so', async () => {
    const rolledBack = newXid();
    const local = await openLocal();
    try {
      await insertOrder(local, rolledBack);
      await barrier.markSubmitted(local, rolledBack);
      await local.query('ROLLBACK');
    } finally {
      local.release();
    }
    expect(await barrier.checkBack(rolledBack)).toBe('rolled-back');
    const neverRan = newXid();
    expect(await barrier.checkBack(neverRan)).toBe('rolled-back');
    expect(await barrier.checkBack(neverRan)).toBe('rolled-back');
    expect((await barrier.get(neverRan, MESSAGE_MARKER))?.phase1State).toBe('blocked');
  });

  it('a local transaction that commits its marker after the check-back said rolled-back fails: its insert conflicts with the blocking marker', async () => {
    const xid = newXid();
    const local = await openLocal();
    try {
      await insertOrder(local, xid);
      // The producer is slow: its check-back time passed and the check-back was asked first.
      expect(await barrier.checkBack(xid)).toBe('rolled-back');
      const err = await failure(barrier.markSubmitted(local, xid));
      expect(err).toBeInstanceOf(BarrierRefused);
      expect((err as BarrierRefused).reason).toBe('hanging');
      expect((err as Error).message).toMatch(/check-back already answered rolled-back/);
      await local.query('ROLLBACK');
    } finally {
      local.release();
    }
    expect(await orderRow(xid)).toBeUndefined();
    // The same through messageTransaction: refused before its statements run.
    let ran = false;
    const again = await failure(barrier.messageTransaction(xid, () => (ran = true)));
    expect(again).toBeInstanceOf(BarrierRefused);
    expect(ran).toBe(false);
    expect(await barrier.checkBack(xid)).toBe('rolled-back');
  });

  it('a check-back asked while a local transaction holds its uncommitted marker waits for that transaction: committed after its COMMIT, rolled-back after its ROLLBACK', async () => {
    for (const end of ['COMMIT', 'ROLLBACK'] as const) {
      const xid = newXid();
      const local = await openLocal();
      try {
        await barrier.markSubmitted(local, xid);
        await insertOrder(local, xid);
        const answer = barrier.checkBack(xid);
        // Waiting on the marker's unique key (a lock), not answering from a snapshot that cannot see it.
        await waitFor(async () => (await env.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%''blocked''%'`)).rows[0]!.n === 1, 'the check-back to wait on the local transaction\'s marker');
        expect(await settled(answer)).toBe(false);
        await local.query(end);
        expect(await answer).toBe(end === 'COMMIT' ? 'committed' : 'rolled-back');
      } finally {
        local.release();
      }
      expect(await orderRow(xid)).toEqual(end === 'COMMIT' ? { item: 'book' } : undefined);
    }
  });

  it('a check-back waits for an open local transaction only up to its lock timeout, then answers unknown (asked again later) and blocks nothing: that transaction can still commit', async () => {
    const xid = newXid();
    const local = await openLocal();
    try {
      await barrier.markSubmitted(local, xid);
      await insertOrder(local, xid);
      expect(await barrier.checkBack(xid, { lockTimeoutMs: 200 })).toBe('unknown');
      await local.query('COMMIT');
    } finally {
      local.release();
    }
    expect(await barrier.checkBack(xid)).toBe('committed');
    await expect(barrier.checkBack(xid, { lockTimeoutMs: 0 })).rejects.toThrow(/options.lockTimeoutMs/);
  });

  it('a local transaction run twice for one message is refused: its marker already committed', async () => {
    const xid = newXid();
    await barrier.messageTransaction(xid, (sql) => insertOrder(sql, xid));
    const err = await failure(barrier.messageTransaction(xid, (sql) => sql.query('SELECT 1')));
    expect(err).toBeInstanceOf(BarrierRefused);
    expect((err as BarrierRefused).reason).toBe('conflict');
    expect(await barrier.checkBack(xid)).toBe('committed');
  });

  it('the marker and the check-back validate the xid', async () => {
    await expect(barrier.checkBack('not an xid')).rejects.toThrow(ValidationError);
    await expect(barrier.messageTransaction('shop', () => undefined)).rejects.toThrow(/xid: "shop" is not a txloop transaction id/);
  });
});
