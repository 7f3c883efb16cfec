/**
 * End to end: real TxloopService instances (an initiator `orders` and a participant `bank`) whose
 * participant wraps its TCC handlers in the branch barrier — over etcd, and over PostgreSQL. A
 * committed transaction confirms once with the leader's fencing token on the barrier record; a Try
 * held up in the network while its transaction is rolled back gets an empty rollback (its cancel
 * handler never runs), then arrives and is refused, reserving nothing.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { BarrierRefused, EtcdBarrier, TryFailed, type BarrierRecord, type BarrierTxn, type TccResource, type TryContext, type TxloopService } from '../src/index.js';
import { PgBarrier } from '../src/barrier/postgres/index.js';
import { gate, useEtcd, waitFor, type Harness } from './helpers/harness.js';
import { usePostgres } from './helpers/barrier.js';

const env = useEtcd();
const pgEnv = usePostgres();

interface Debit {
  amount: number;
}

interface Scenario {
  ns: string;
  bank: TxloopService;
  orders: TxloopService;
  ran: { try: number; confirm: number; cancel: number };
  account: () => Promise<{ balance: number; frozen: number }>;
  record: (xid: string, branchId: string) => Promise<BarrierRecord | undefined>;
}

/**
 * Starts `orders` and `bank`, bank's resource `debit` being `resource` with its Try held at a gate
 * while `hold.on` (a Try call stuck in the network: registered, its handler not reached yet).
 */
async function scenario(h: Harness, resource: TccResource<Debit, string | undefined>, extra: Omit<Scenario, 'bank' | 'orders'>) {
  const hold = { on: false, entered: gate(), release: gate(), ctx: undefined as TryContext<Debit> | undefined };
  const bank = h.service({ app: 'bank' }).resource<Debit, string | undefined>('debit', {
    ...resource,
    try: async (ctx) => {
      if (hold.on) {
        hold.ctx = ctx;
        hold.entered.open();
        await hold.release.wait;
      }
      return resource.try(ctx);
    },
  });
  const orders = h.service({ app: 'orders' });
  await bank.start();
  await orders.start();
  return { ...extra, bank, orders, hold };
}

async function playBoth(s: Awaited<ReturnType<typeof scenario>>): Promise<void> {
  // 1. Commit: the Try freezes, the confirm moves the money, once, recorded with the term's token.
  const tx = await s.orders.begin({ name: 'debit 30', timeoutMs: 30_000 });
  const { branchId } = await s.bank.tryBranch(tx.context, 'debit', { amount: 30 });
  await tx.commit();
  expect((await s.orders.waitForCompletion(tx.xid, { timeoutMs: 20_000 })).status).toBe('COMMITTED');
  expect(await s.account()).toEqual({ balance: 70, frozen: 0 });
  const term = (await env.client.kv.range({ key: Buffer.from(`${s.ns}bank/leader`) })).kvs[0]?.create_revision;
  expect(term).toMatch(/^[1-9][0-9]*$/);
  expect(await s.record(tx.xid, branchId)).toMatchObject({ phase1State: 'applied', phase2: 'confirm', emptyRollback: false, fencingToken: term, attempt: 1 });

  // 2. A Try held up (registered, its handler not reached) while its transaction is rolled back. A
  // cancel waits for a PENDING Try until the deadline + grace, then runs: an empty rollback. The
  // deadline is short so that comes soon; the held Try ignores its signal, as a stuck one would.
  s.hold.on = true;
  const late = await s.orders.begin({ name: 'debit 30, late', timeoutMs: 2_500 });
  const tried = s.bank.tryBranch(late.context, 'debit', { amount: 30 });
  tried.catch(() => undefined);
  await s.hold.entered.wait;
  const lateBranch = s.hold.ctx!.branchId;
  await late.rollback();
  // The cancel runs first (the Try's outcome is still PENDING): an empty rollback, recorded.
  const blocked = await waitFor(async () => {
    const r = await s.record(late.xid, lateBranch);
    return r?.phase1State === 'blocked' ? r : undefined;
  }, { what: 'the empty rollback to be recorded' });
  expect(blocked).toMatchObject({ phase2: 'cancel', emptyRollback: true });
  s.hold.release.open();
  const err = await tried.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TryFailed);
  expect((err as TryFailed).cause).toBeInstanceOf(BarrierRefused);
  expect((err as TryFailed).cause).toMatchObject({ reason: 'hanging', xid: late.xid, branchId: lateBranch });
  expect((await s.orders.waitForCompletion(late.xid, { timeoutMs: 20_000 })).status).toBe('ROLLED_BACK');
  expect(await s.account()).toEqual({ balance: 70, frozen: 0 });
  expect(s.ran).toEqual({ try: 1, confirm: 1, cancel: 0 });
}

describe('a participant whose handlers use the branch barrier, in real transactions', () => {
  it('data in etcd: confirmed once with the fencing token, and the late Try after an empty rollback is refused', async () => {
    const { ns, h } = env.fresh('barrier-etcd');
    const accountKey = `${ns}data/acct/a`;
    await env.client.put(accountKey).value(JSON.stringify({ balance: 100, frozen: 0 }));
    type Account = { balance: number; frozen: number };
    const ran = { try: 0, confirm: 0, cancel: 0 };
    const account = async () => JSON.parse((await env.client.get(accountKey).string())!) as Account;
    const change = async (txn: BarrierTxn, fn: (a: Account) => Account) => {
      const kv = (await env.client.kv.range({ key: Buffer.from(accountKey) })).kvs[0]!;
      txn.compare(accountKey, 'Mod', '==', kv.mod_revision).put(accountKey, JSON.stringify(fn(JSON.parse(kv.value.toString()) as Account)));
    };
    // With bank's leader key: a handler of a term that is over writes nothing.
    const barrier = new EtcdBarrier(env.client, { prefix: `${ns}data/barrier/`, leaderKey: `${ns}bank/leader` });
    const resource = barrier.tcc<Debit, string>({
      try: async ({ payload }, txn) => {
        ran.try++;
        await change(txn, (a) => ({ ...a, frozen: a.frozen + payload.amount }));
        return 'frozen';
      },
      confirm: async ({ payload }, txn) => {
        ran.confirm++;
        await change(txn, (a) => ({ balance: a.balance - payload.amount, frozen: a.frozen - payload.amount }));
      },
      cancel: async ({ payload }, txn) => {
        ran.cancel++;
        await change(txn, (a) => ({ ...a, frozen: a.frozen - payload.amount }));
      },
    });
    await playBoth(await scenario(h, resource, { ns, ran, account, record: (xid, branchId) => barrier.get(xid, branchId) }));
  });

  it('data in PostgreSQL: the same, the barrier row and the account row in one local transaction', async () => {
    const id = `acct-${randomBytes(4).toString('hex')}`;
    await pgEnv.pool.query('CREATE TABLE IF NOT EXISTS e2e_account (id text PRIMARY KEY, balance integer NOT NULL CHECK (balance >= 0), frozen integer NOT NULL CHECK (frozen >= 0))');
    await pgEnv.pool.query('INSERT INTO e2e_account VALUES ($1, 100, 0)', [id]);
    const barrier = new PgBarrier(pgEnv.pool);
    const ran = { try: 0, confirm: 0, cancel: 0 };
    const resource = barrier.tcc<Debit, string>({
      try: async ({ payload }, sql: pg.PoolClient) => {
        ran.try++;
        await sql.query('UPDATE e2e_account SET frozen = frozen + $2 WHERE id = $1', [id, payload.amount]);
        return 'frozen';
      },
      confirm: async ({ payload }, sql) => {
        ran.confirm++;
        await sql.query('UPDATE e2e_account SET balance = balance - $2, frozen = frozen - $2 WHERE id = $1', [id, payload.amount]);
      },
      cancel: async ({ payload }, sql) => {
        ran.cancel++;
        await sql.query('UPDATE e2e_account SET frozen = frozen - $2 WHERE id = $1', [id, payload.amount]);
      },
    });
    const account = async () => (await pgEnv.pool.query<{ balance: number; frozen: number }>('SELECT balance, frozen FROM e2e_account WHERE id = $1', [id])).rows[0]!;
    const { ns, h } = env.fresh('barrier-pg');
    await playBoth(await scenario(h, resource, { ns, ran, account, record: (xid, branchId) => barrier.get(xid, branchId) }));
  });
});
