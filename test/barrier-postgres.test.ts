/**
 * The PostgreSQL branch barrier against a real PostgreSQL (txloop/testing's startPostgres): each
 * seed-003 rule (idempotence, empty rollback, anti-hanging) and fencing, with the participant's own
 * rows written in the barrier's transaction — so they and the barrier row land together or not at
 * all.
 *
 * The participant keeps accounts `(id, balance, frozen)` with CHECKs that the money adds up: Try
 * freezes, confirm moves the frozen amount out, cancel unfreezes. A handler that ran twice, or ran
 * after its cancel, shows in the row (or violates a CHECK).
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { AbortError } from '../src/index.js';
import { BarrierDatabaseError, BarrierRefused, PgBarrier, applyBarrierMigration, barrierMigrationSql, type BarrierResult } from '../src/barrier/postgres/index.js';
import { gate, waitFor } from './helpers/harness.js';
import { newBranch, phase2Ctx, tryCtx, usePostgres, type Branch } from './helpers/barrier.js';

const env = usePostgres();
let barrier: PgBarrier<pg.Pool>;

beforeAll(async () => {
  await env.pool.query(`CREATE TABLE account (
    id text PRIMARY KEY,
    balance integer NOT NULL CHECK (balance >= 0),
    frozen integer NOT NULL CHECK (frozen >= 0 AND frozen <= balance))`);
  barrier = new PgBarrier(env.pool);
});

/** A fresh account holding 100, and the handlers' SQL on it (each counts its runs). */
async function newAccount() {
  const id = `acct-${randomBytes(4).toString('hex')}`;
  await env.pool.query('INSERT INTO account (id, balance, frozen) VALUES ($1, 100, 0)', [id]);
  const ran = { try: 0, confirm: 0, cancel: 0 };
  const freeze = (sql: pg.PoolClient, amount = 30) => (ran.try++, sql.query('UPDATE account SET frozen = frozen + $2 WHERE id = $1', [id, amount]));
  const move = (sql: pg.PoolClient, amount = 30) => (ran.confirm++, sql.query('UPDATE account SET balance = balance - $2, frozen = frozen - $2 WHERE id = $1', [id, amount]));
  const unfreeze = (sql: pg.PoolClient, amount = 30) => (ran.cancel++, sql.query('UPDATE account SET frozen = frozen - $2 WHERE id = $1', [id, amount]));
  return {
    ran,
    row: async () => (await env.pool.query<{ balance: number; frozen: number }>('SELECT balance, frozen FROM account WHERE id = $1', [id])).rows[0],
    try: (b: Branch, amount = 30) => barrier.run(tryCtx(b), 'try', (sql) => freeze(sql, amount).then(() => 'frozen')),
    confirm: (b: Branch, token = '100', attempt = 1) => barrier.run(phase2Ctx(b, 'confirm', token, attempt), 'confirm', (sql) => move(sql)),
    cancel: (b: Branch, token = '100', attempt = 1) => barrier.run(phase2Ctx(b, 'cancel', token, attempt), 'cancel', (sql) => unfreeze(sql)),
    freeze,
    move,
    unfreeze,
  };
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
}

const outcome = (r: BarrierResult<unknown>) => r.outcome;

describe('idempotence: a duplicate confirm or cancel does nothing', () => {
  it('a second confirm (the next attempt, after the first one committed) leaves the row as the first left it', async () => {
    const a = await newAccount();
    const b = newBranch();
    expect(await a.try(b)).toEqual({ outcome: 'applied', applied: true, value: 'frozen' });
    expect(outcome(await a.confirm(b, '100', 1))).toBe('applied');
    expect(await a.confirm(b, '100', 2)).toEqual({ outcome: 'duplicate', applied: false });
    expect(await a.row()).toEqual({ balance: 70, frozen: 0 });
    expect(a.ran).toEqual({ try: 1, confirm: 1, cancel: 0 });
  });

  it('a second cancel leaves the row as the first left it', async () => {
    const a = await newAccount();
    const b = newBranch();
    await a.try(b);
    await a.cancel(b, '100', 1);
    expect(await a.cancel(b, '101', 2)).toEqual({ outcome: 'duplicate', applied: false });
    expect(await a.row()).toEqual({ balance: 100, frozen: 0 });
    expect(a.ran).toEqual({ try: 1, confirm: 0, cancel: 1 });
  });

  it('the same confirm twice at once: the second waits on the branch row, then finds it applied (its SQL never runs)', async () => {
    const a = await newAccount();
    const b = newBranch();
    await a.try(b);
    const holding = gate();
    const release = gate();
    const first = barrier.run(phase2Ctx(b, 'confirm'), 'confirm', async (sql) => {
      await a.move(sql);
      holding.open();
      await release.wait; // the first attempt holds the row lock here
    });
    await holding.wait;
    const second = a.confirm(b);
    // The second is blocked on the row lock, as pg_locks shows, until the first commits.
    await waitFor(async () => (await env.pool.query("SELECT 1 FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'")).rowCount! > 0, { what: 'the second confirm to wait on the lock' });
    release.open();
    expect([outcome(await first), outcome(await second)]).toEqual(['applied', 'duplicate']);
    expect(a.ran.confirm).toBe(1);
    expect(await a.row()).toEqual({ balance: 70, frozen: 0 });
  });
});

describe('empty rollback: a cancel whose Try never ran succeeds without effect, and records it', () => {
  it('the cancel SQL does not run, the result says empty-rollback, and the row blocks the Try', async () => {
    const a = await newAccount();
    const b = newBranch();
    expect(await a.cancel(b, '100', 1)).toEqual({ outcome: 'empty-rollback', applied: false });
    expect(a.ran.cancel).toBe(0);
    expect(await a.row()).toEqual({ balance: 100, frozen: 0 });
    expect(await barrier.get(b.xid, b.branchId)).toMatchObject({ phase1: 'try', phase1State: 'blocked', phase2: 'cancel', emptyRollback: true, fencingToken: '100', attempt: 1 });
    const { rows } = await env.pool.query('SELECT phase1, phase1_state, phase2, empty_rollback, fencing_token::text AS token FROM txloop_barrier WHERE xid = $1 AND branch_id = $2', [b.xid, b.branchId]);
    expect(rows).toEqual([{ phase1: 'try', phase1_state: 'blocked', phase2: 'cancel', empty_rollback: true, token: '100' }]);
  });
});

describe('anti-hanging: a Try arriving after its cancel is refused', () => {
  it('after the empty rollback, the Try is refused (reason hanging) and freezes nothing', async () => {
    const a = await newAccount();
    const b = newBranch();
    await a.cancel(b);
    const err = await failure(a.try(b));
    expect(err).toBeInstanceOf(BarrierRefused);
    expect(err).toMatchObject({ reason: 'hanging', op: 'try', xid: b.xid, branchId: b.branchId });
    expect(a.ran.try).toBe(0);
    expect(await a.row()).toEqual({ balance: 100, frozen: 0 });
  });

  it('a cancel arriving while its Try runs waits for it, and undoes what the Try did (not an empty rollback)', async () => {
    const a = await newAccount();
    const b = newBranch();
    const inTry = gate();
    const release = gate();
    const tried = barrier.run(tryCtx(b), 'try', async (sql) => {
      await a.freeze(sql);
      inTry.open();
      await release.wait;
    });
    await inTry.wait;
    const cancelled = a.cancel(b);
    release.open();
    expect(outcome(await tried)).toBe('applied');
    expect(outcome(await cancelled)).toBe('applied');
    expect(a.ran).toEqual({ try: 1, confirm: 0, cancel: 1 });
    expect(await a.row()).toEqual({ balance: 100, frozen: 0 });
  });
});

describe('atomicity: the participant rows and the barrier row land together or not at all', () => {
  it("a Try whose own statement violates a constraint leaves neither its rows nor the barrier row, and the driver's error comes through", async () => {
    const a = await newAccount();
    const b = newBranch();
    const err = await failure(
      barrier.run(tryCtx(b), 'try', async (sql) => {
        await sql.query('INSERT INTO account (id, balance, frozen) VALUES ($1, 10, 0)', [`hold-${b.branchId}`]); // lands first in the transaction
        await a.freeze(sql, 500); // more than the balance: CHECK fails
      }),
    );
    expect(err).toMatchObject({ code: '23514' }); // check_violation, as pg threw it
    expect(await a.row()).toEqual({ balance: 100, frozen: 0 });
    expect((await env.pool.query('SELECT 1 FROM account WHERE id = $1', [`hold-${b.branchId}`])).rowCount).toBe(0);
    expect(await barrier.get(b.xid, b.branchId)).toBeUndefined();
    // Nothing recorded, so the next attempt runs.
    expect(outcome(await a.try(b))).toBe('applied');
  });

  it("when the barrier's own write fails, the handler's statements are rolled back with it", async () => {
    // A table of its own with a trigger that fails every confirm record.
    await applyBarrierMigration(env.pool, { table: 'barrier_failing' });
    await env.pool.query(`CREATE FUNCTION refuse_confirm() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.phase2 = 'confirm' THEN RAISE EXCEPTION 'disk full (simulated)'; END IF; RETURN NEW; END $$`);
    await env.pool.query('CREATE TRIGGER refuse_confirm BEFORE UPDATE ON barrier_failing FOR EACH ROW EXECUTE FUNCTION refuse_confirm()');
    const failing = new PgBarrier(env.pool, { table: 'barrier_failing' });
    const a = await newAccount();
    const b = newBranch();
    await failing.run(tryCtx(b), 'try', (sql) => a.freeze(sql));
    const err = await failure(failing.run(phase2Ctx(b, 'confirm'), 'confirm', (sql) => a.move(sql)));
    expect(err).toBeInstanceOf(BarrierDatabaseError);
    expect(err).toMatchObject({ op: 'confirm', xid: b.xid, maybeCommitted: false });
    expect(a.ran.confirm).toBe(1);
    expect(await a.row()).toEqual({ balance: 100, frozen: 30 });
    expect((await failing.get(b.xid, b.branchId))?.phase2).toBeUndefined();
  });

  it('a handler whose signal fired commits nothing', async () => {
    const a = await newAccount();
    const b = newBranch();
    const controller = new AbortController();
    const err = await failure(
      barrier.run(tryCtx(b, controller.signal), 'try', async (sql) => {
        await a.freeze(sql);
        controller.abort(new Error('handler timed out'));
      }),
    );
    expect(err).toBeInstanceOf(AbortError);
    expect(await a.row()).toEqual({ balance: 100, frozen: 0 });
    expect(await barrier.get(b.xid, b.branchId)).toBeUndefined();
  });

  it('inTransaction(): inside a transaction the caller opened, a rollback of it takes the barrier row along', async () => {
    const a = await newAccount();
    const b = newBranch();
    const client = await env.pool.connect();
    try {
      await client.query('BEGIN');
      expect(outcome(await barrier.inTransaction(client, tryCtx(b), 'try', (sql) => a.freeze(sql)))).toBe('applied');
      await client.query('ROLLBACK');
      expect(await barrier.get(b.xid, b.branchId)).toBeUndefined();
      await client.query('BEGIN');
      await barrier.inTransaction(client, tryCtx(b), 'try', (sql) => a.freeze(sql));
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await a.row()).toEqual({ balance: 100, frozen: 30 });
    expect(await barrier.get(b.xid, b.branchId)).toMatchObject({ phase1State: 'applied' });
  });
});

describe('fencing: a stale handler is refused once a newer term wrote', () => {
  it('a confirm with a lower fencing token, after a newer term confirmed, is refused (stale-term) and changes nothing', async () => {
    const a = await newAccount();
    const b = newBranch();
    await a.try(b);
    await a.confirm(b, '200', 2);
    const err = await failure(a.confirm(b, '100', 1));
    expect(err).toBeInstanceOf(BarrierRefused);
    expect(err).toMatchObject({ reason: 'stale-term' });
    expect(a.ran.confirm).toBe(1);
    expect(await a.row()).toEqual({ balance: 70, frozen: 0 });
    expect(await barrier.get(b.xid, b.branchId)).toMatchObject({ fencingToken: '200', attempt: 2 });
  });

  it('a stale handler that got the row lock first still loses: the newer one waits, then its own write is the one that counts', async () => {
    // The older attempt (its leader froze mid-handler) holds the row; the newer term's attempt waits
    // on it. The older one's signal fires (its term is over), so it commits nothing; the newer applies.
    const a = await newAccount();
    const b = newBranch();
    await a.try(b);
    const stale = new AbortController();
    const holding = gate();
    const release = gate();
    const old = barrier.run(phase2Ctx(b, 'confirm', '100', 1, stale.signal), 'confirm', async (sql) => {
      await a.move(sql);
      holding.open();
      await release.wait;
    });
    await holding.wait;
    const fresh = a.confirm(b, '300', 2);
    await waitFor(async () => (await env.pool.query("SELECT 1 FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'")).rowCount! > 0, { what: 'the newer confirm to wait on the lock' });
    stale.abort(new Error('leadership lost'));
    release.open();
    expect(await failure(old)).toBeInstanceOf(AbortError);
    expect(outcome(await fresh)).toBe('applied');
    expect(await a.row()).toEqual({ balance: 70, frozen: 0 });
    expect(await barrier.get(b.xid, b.branchId)).toMatchObject({ phase2: 'confirm', fencingToken: '300', attempt: 2 });
  });
});

describe('options', () => {
  it('lockTimeoutMs: an attempt waiting on a branch row held by another gives up with SQLSTATE 55P03, writing nothing', async () => {
    const impatient = new PgBarrier(env.pool, { lockTimeoutMs: 50, isolation: 'serializable' });
    const a = await newAccount();
    const b = newBranch();
    await a.try(b);
    const holding = gate();
    const release = gate();
    const first = barrier.run(phase2Ctx(b, 'confirm'), 'confirm', async (sql) => {
      await a.move(sql);
      holding.open();
      await release.wait;
    });
    await holding.wait;
    const err = await failure(impatient.run(phase2Ctx(b, 'confirm', '100', 2), 'confirm', (sql) => a.move(sql)));
    release.open();
    expect(err).toBeInstanceOf(BarrierDatabaseError);
    expect((err as BarrierDatabaseError).cause).toMatchObject({ code: '55P03' });
    expect(outcome(await first)).toBe('applied');
    expect(a.ran.confirm).toBe(1);
    expect(await a.row()).toEqual({ balance: 70, frozen: 0 });
  });

  it('refuses options it cannot use', () => {
    expect(() => new PgBarrier(env.pool, { isolation: 'read uncommitted' as never })).toThrow(/isolation/);
    expect(() => new PgBarrier(env.pool, { lockTimeoutMs: 0 })).toThrow(/lockTimeoutMs/);
  });
});

describe('the table and its migration', () => {
  it('the shipped migration file is the SQL applyBarrierMigration runs', () => {
    const file = readFileSync(new URL('../migrations/postgres/001_txloop_barrier.sql', import.meta.url), 'utf8');
    expect(file).toBe(barrierMigrationSql());
  });

  it('applying it again, from several clients at once, is harmless', async () => {
    await Promise.all([applyBarrierMigration(env.pool), applyBarrierMigration(env.pool), applyBarrierMigration(env.pool, { table: 'public.txloop_barrier' })]);
    const { rows } = await env.pool.query("SELECT obj_description('txloop_barrier'::regclass) AS comment");
    expect(rows[0]?.comment).toBe('txloop branch barrier, schema 1');
  });

  it('refuses a table name it could not put into SQL as it is', () => {
    expect(() => new PgBarrier(env.pool, { table: 'x; DROP TABLE account' })).toThrow(/table/);
    expect(() => barrierMigrationSql('"Quoted"')).toThrow(/table/);
  });

  it('tcc() gives each handler the client in the transaction; the empty rollback skips its handler', async () => {
    const a = await newAccount();
    const resource = barrier.tcc<{ amount: number }, string>({
      try: async (ctx, sql) => (await a.freeze(sql, ctx.payload.amount), 'frozen'),
      confirm: async (ctx, sql) => void (await a.move(sql, ctx.payload.amount)),
      cancel: async (ctx, sql) => void (await a.unfreeze(sql, ctx.payload.amount)),
    });
    const signal = new AbortController().signal;
    const common = { resource: 'debit', payload: { amount: 30 }, signal, tryCompleted: false, tryState: 'PENDING' as const };
    const b1 = newBranch();
    expect(await resource.try({ ...b1, ...common, deadline: Date.now() + 10_000 })).toBe('frozen');
    await resource.confirm({ ...phase2Ctx(b1, 'confirm'), ...common });
    const b2 = newBranch();
    await resource.cancel({ ...phase2Ctx(b2, 'cancel'), ...common });
    await expect(resource.try({ ...b2, ...common, deadline: Date.now() + 10_000 })).rejects.toMatchObject({ name: 'BarrierRefused', reason: 'hanging' });
    expect(a.ran).toEqual({ try: 1, confirm: 1, cancel: 0 });
    expect(await a.row()).toEqual({ balance: 70, frozen: 0 });
  });

  it('prune() deletes the rows last written before the cutoff, and only those', async () => {
    const a = await newAccount();
    const old = newBranch();
    await a.cancel(old);
    await env.pool.query("UPDATE txloop_barrier SET updated_at = now() - interval '2 days' WHERE xid = $1", [old.xid]);
    const fresh = newBranch();
    await a.cancel(fresh);
    expect(await barrier.prune({ olderThanMs: 24 * 3600_000 })).toBe(1);
    expect(await barrier.get(old.xid, old.branchId)).toBeUndefined();
    expect(await barrier.get(fresh.xid, fresh.branchId)).toBeDefined();
  });
});
