/**
 * 2-phase messages with real processes SIGKILLed: a producer dying between prepare and submit (its
 * local transaction committed, or still open), resolved by the check-back of another replica of
 * the producer once it leads, answered from the producer's own PostgreSQL table through the
 * barrier; and a consumer dying in the middle of a delivery, delivered again by the next one.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PgBarrier, MESSAGE_MARKER } from '../src/barrier/postgres/index.js';
import { applyBarrierMigration } from '../src/barrier/postgres/index.js';
import type { TxloopService } from '../src/index.js';
import { startPostgres, type PostgresServer } from '../src/testing.js';
import { useEtcd, waitFor, type Harness } from './helpers/harness.js';
import { spawnReplica, stopReplica, type Replica } from './helpers/processes.js';

const env = useEtcd();
let h: Harness;
let replicas: Replica[] = [];
let postgres: PostgresServer;
let pool: pg.Pool;
let barrier: PgBarrier<pg.Pool>;

/** A standby takes over once the dead leader's lease (4 s in the fixtures) expired; generous for a loaded machine. */
const TAKEOVER_MS = 30_000;
/** Well past the time the test needs to kill the producer once it reported its local transaction. */
const CHECK_AFTER_MS = 5_000;

beforeAll(async () => {
  postgres = await startPostgres();
  pool = new pg.Pool({ connectionString: postgres.connectionString, max: 8 });
  pool.on('error', () => undefined);
  await applyBarrierMigration(pool);
  await pool.query('CREATE TABLE shop_order (xid text PRIMARY KEY, item text NOT NULL)');
  barrier = new PgBarrier(pool);
});

afterAll(async () => {
  await pool?.end();
  await postgres?.stop();
});

afterEach(async () => {
  await Promise.all(replicas.map(stopReplica));
  replicas = [];
});

/** The consumer, in this process, recording what it got. */
function bank(): { svc: TxloopService; got: { xid: string; payload: unknown }[] } {
  const got: { xid: string; payload: unknown }[] = [];
  const svc = h.service({ app: 'bank' }).consumer('credit', { deliver: ({ xid, payload }) => void got.push({ xid, payload }) });
  return { svc, got };
}

/**
 * The producer `shop` as a child process that leads and runs its local transaction (`local`), and
 * a standby replica of `shop` in this process with the same check-back, recording whom it was asked about.
 */
async function producerAndStandby(ns: string, local: 'commit' | 'open'): Promise<{ producer: Replica; standby: TxloopService; asked: string[]; xid: string }> {
  const producer = spawnReplica('producer.ts', 'shop-1', {
    TXLOOP_ENDPOINTS: env.endpoints.join(','),
    NS: ns,
    APP: 'shop',
    PG_URL: postgres.connectionString,
    CONSUMER: 'bank',
    RESOURCE: 'credit',
    CHECK_AFTER_MS: String(CHECK_AFTER_MS),
    LOCAL: local,
  });
  replicas.push(producer);
  await producer.waitForEvent((e) => e.event === 'leader' && e.leading === true, 'the producer process leads');
  const asked: string[] = [];
  const standby = h.service({ app: 'shop' }).checkBack('order paid', ({ xid }) => (asked.push(xid), barrier.checkBack(xid)));
  await standby.start();
  const reported = await producer.waitForEvent((e) => e.event === (local === 'commit' ? 'local-committed' : 'local-open'), 'the local transaction');
  return { producer, standby, asked, xid: reported.xid as string };
}

describe("a prepared message whose producer was SIGKILLed before its submit is resolved by another replica's check-back", () => {
  it('local transaction committed, producer killed before the submit: the standby leads, its check-back answers committed from the outbox row, and the message is delivered', async () => {
    const fresh = env.fresh('cb-committed');
    h = fresh.h;
    const consumer = bank();
    await consumer.svc.start();
    const { producer, standby, asked, xid } = await producerAndStandby(fresh.ns, 'commit');
    expect(standby.isLeader()).toBe(false);
    producer.kill('SIGKILL');
    await waitFor(() => producer.exited(), { what: 'the producer process gone' });
    await waitFor(async () => (await standby.deliveries(xid)).status === 'DELIVERED', { what: 'the message delivered after the check-back', timeoutMs: TAKEOVER_MS + CHECK_AFTER_MS });
    const view = await standby.deliveries(xid);
    expect(view.decision).toMatchObject({ outcome: 'commit', by: 'check-back', reason: 'the check-back answered committed' });
    expect(view.decision!.at).toBeGreaterThanOrEqual(view.preparedAt.getTime() + CHECK_AFTER_MS);
    expect(asked).toContain(xid);
    expect(consumer.got).toEqual([{ xid, payload: { order: 42 } }]);
    expect((await pool.query('SELECT item FROM shop_order WHERE xid = $1', [xid])).rows).toEqual([{ item: 'book' }]);
  }, 60_000);

  it('local transaction still open when the producer is killed: the check-back answers rolled-back (the dead transaction can never commit its marker now) and the message is discarded, never delivered', async () => {
    const fresh = env.fresh('cb-rolled-back');
    h = fresh.h;
    const consumer = bank();
    await consumer.svc.start();
    const { producer, standby, asked, xid } = await producerAndStandby(fresh.ns, 'open');
    producer.kill('SIGKILL');
    await waitFor(() => producer.exited(), { what: 'the producer process gone' });
    await waitFor(async () => (await standby.deliveries(xid)).status === 'DISCARDED', { what: 'the message discarded after the check-back', timeoutMs: TAKEOVER_MS + CHECK_AFTER_MS });
    const view = await standby.deliveries(xid);
    expect(view.decision).toMatchObject({ outcome: 'rollback', by: 'check-back', reason: 'the check-back answered rolled-back' });
    expect(view.deliveries.map((d) => d.status)).toEqual(['DISCARDED']);
    expect(asked).toContain(xid);
    expect((await pool.query('SELECT item FROM shop_order WHERE xid = $1', [xid])).rows).toEqual([]);
    expect((await barrier.get(xid, MESSAGE_MARKER))?.phase1State).toBe('blocked');
    // Not delivered: a later message to the same consumer went through meanwhile, this one did not.
    const later = await standby.prepareMessage({ name: 'later', consumers: [{ service: 'bank', resource: 'credit', payload: 'later' }] });
    await later.submit();
    await waitFor(async () => (await standby.deliveries(later.xid)).status === 'DELIVERED', { what: 'a later message delivered' });
    expect(consumer.got.map((g) => g.payload)).toEqual(['later']);
  }, 60_000);
});

describe('at least once: a consumer killed in the middle of a delivery', () => {
  it('the consumer process SIGKILLed inside its deliver: the message stays SUBMITTED, and the next consumer process delivers it (as attempt 2)', async () => {
    const fresh = env.fresh('consumer-killed');
    h = fresh.h;
    const ns = fresh.ns;
    const consumerEnv = { TXLOOP_ENDPOINTS: env.endpoints.join(','), NS: ns, APP: 'bank' };
    const first = spawnReplica('consumer.ts', 'bank-1', { ...consumerEnv, HOLD_FIRST: '1' });
    replicas.push(first);
    await first.waitForEvent((e) => e.event === 'leader' && e.leading === true, 'the first consumer leads');
    const shop = h.service({ app: 'shop' });
    await shop.start();
    const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', payload: { order: 7 }, branchId: 'credit' }] });
    await msg.submit();
    await first.waitForEvent((e) => e.event === 'deliver-start' && e.xid === msg.xid, 'the delivery started in the first consumer');
    first.kill('SIGKILL');
    await waitFor(() => first.exited(), { what: 'the first consumer gone' });
    expect((await shop.deliveries(msg.xid)).status).toBe('SUBMITTED');
    const second = spawnReplica('consumer.ts', 'bank-2', consumerEnv);
    replicas.push(second);
    await waitFor(async () => (await shop.deliveries(msg.xid)).status === 'DELIVERED', { what: 'delivered by the next consumer', timeoutMs: TAKEOVER_MS });
    const delivered = await second.waitForEvent((e) => e.event === 'delivered' && e.xid === msg.xid, 'the second consumer delivered it');
    expect(delivered.attempt).toBe(2);
    const probes = await env.client.getAll().prefix(`${ns}probe/${msg.xid}/credit/`).strings();
    expect(Object.entries(probes)).toEqual([[`${ns}probe/${msg.xid}/credit/bank-2/2`, JSON.stringify({ order: 7 })]]);
    expect((await shop.deliveries(msg.xid)).deliveries[0]).toMatchObject({ status: 'DELIVERED', attempts: 2 });
  }, 60_000);
});
