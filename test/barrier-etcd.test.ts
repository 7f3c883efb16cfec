/**
 * The etcd branch barrier against a real etcd: each seed-003 rule (idempotence, empty rollback,
 * anti-hanging) and fencing, with the participant's own data in etcd written in the barrier's Txn —
 * so the data and the barrier record land together or not at all.
 *
 * The participant here keeps one account `{ balance, frozen }` under its own key: Try freezes,
 * confirm moves the frozen amount out, cancel unfreezes. A handler that ran twice, or ran after its
 * cancel, shows in the account.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { AbortError, BarrierConditionFailed, BarrierRefused, EtcdBarrier, MalformedRecord, ValidationError, type BarrierTxn } from '../src/index.js';
import { freshNamespace, gate, useEtcd, waitFor } from './helpers/harness.js';
import { newBranch, phase2Ctx, tryCtx, type Branch } from './helpers/barrier.js';

const env = useEtcd();

interface Account {
  balance: number;
  frozen: number;
}

let ns: string;
let barrier: EtcdBarrier;
let accountKey: string;
/** How often each handler's write code ran (not counting runs the barrier skipped). */
let ran: { try: number; confirm: number; cancel: number };

beforeEach(async () => {
  ns = freshNamespace('barrier');
  barrier = new EtcdBarrier(env.client, { prefix: `${ns}barrier/` });
  accountKey = `${ns}acct/a`;
  ran = { try: 0, confirm: 0, cancel: 0 };
  await env.client.put(accountKey).value(JSON.stringify({ balance: 100, frozen: 0 }));
});

async function account(): Promise<Account & { rev: string }> {
  const res = await env.client.kv.range({ key: Buffer.from(accountKey) });
  const kv = res.kvs[0]!;
  return { ...(JSON.parse(kv.value.toString()) as Account), rev: kv.mod_revision };
}

/** The participant's write: read the account, change it, guarded on the revision read. */
async function change(txn: BarrierTxn, fn: (a: Account) => Account): Promise<void> {
  const { rev, ...a } = await account();
  txn.compare(accountKey, 'Mod', '==', rev).put(accountKey, JSON.stringify(fn(a)));
}

const tryFreeze = (b: Branch, amount = 30) =>
  barrier.run(tryCtx(b), 'try', async (txn) => {
    ran.try++;
    await change(txn, (a) => ({ ...a, frozen: a.frozen + amount }));
    return 'frozen';
  });
const confirm = (b: Branch, token = '100', attempt = 1, amount = 30) =>
  barrier.run(phase2Ctx(b, 'confirm', token, attempt), 'confirm', async (txn) => {
    ran.confirm++;
    await change(txn, (a) => ({ balance: a.balance - amount, frozen: a.frozen - amount }));
  });
const cancel = (b: Branch, token = '100', attempt = 1, amount = 30) =>
  barrier.run(phase2Ctx(b, 'cancel', token, attempt), 'cancel', async (txn) => {
    ran.cancel++;
    await change(txn, (a) => ({ ...a, frozen: a.frozen - amount }));
  });

async function refusal(p: Promise<unknown>): Promise<BarrierRefused> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BarrierRefused);
  return err as BarrierRefused;
}

describe('idempotence: a duplicate confirm or cancel does nothing', () => {
  it('a second confirm (the next attempt, after the first one landed) leaves the account as the first left it', async () => {
    const b = newBranch();
    expect(await tryFreeze(b)).toEqual({ outcome: 'applied', applied: true, value: 'frozen' });
    expect(await confirm(b, '100', 1)).toMatchObject({ outcome: 'applied' });
    expect(await confirm(b, '100', 2)).toEqual({ outcome: 'duplicate', applied: false });
    expect(await account()).toMatchObject({ balance: 70, frozen: 0 });
    expect(ran).toEqual({ try: 1, confirm: 1, cancel: 0 });
  });

  it('a second cancel leaves the account as the first left it', async () => {
    const b = newBranch();
    await tryFreeze(b);
    await cancel(b, '100', 1);
    expect(await cancel(b, '101', 2)).toEqual({ outcome: 'duplicate', applied: false });
    expect(await account()).toMatchObject({ balance: 100, frozen: 0 });
    expect(ran).toEqual({ try: 1, confirm: 0, cancel: 1 });
  });

  it('the same confirm twice at the same time (a redelivery): one applies, the other finds it applied', async () => {
    const b = newBranch();
    await tryFreeze(b);
    // Both read the record and run their write code before either commits; the Txn that loses on the
    // record is decided again from what the winner wrote: a duplicate.
    const bothIn = gate();
    let entered = 0;
    const racing = () =>
      barrier.run(phase2Ctx(b, 'confirm', '100', 1), 'confirm', async (txn) => {
        await change(txn, (a) => ({ balance: a.balance - 30, frozen: a.frozen - 30 }));
        if (++entered === 2) bothIn.open();
        await bothIn.wait;
      });
    const outcomes = await Promise.all([racing(), racing()]);
    expect(entered).toBe(2);
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(['applied', 'duplicate']);
    expect(await account()).toMatchObject({ balance: 70, frozen: 0 });
  });
});

describe('empty rollback: a cancel whose Try never ran succeeds without effect, and records it', () => {
  it('the cancel handler does not run, the result says empty-rollback, and the record blocks the Try', async () => {
    const b = newBranch();
    expect(await cancel(b, '100', 1)).toEqual({ outcome: 'empty-rollback', applied: false });
    expect(ran.cancel).toBe(0);
    expect(await account()).toMatchObject({ balance: 100, frozen: 0 });
    expect(await barrier.get(b.xid, b.branchId)).toMatchObject({ phase1: 'try', phase1State: 'blocked', phase2: 'cancel', emptyRollback: true, fencingToken: '100', attempt: 1 });
  });
});

describe('anti-hanging: a Try arriving after its cancel is refused', () => {
  it('after the empty rollback, the Try is refused (reason hanging) and freezes nothing', async () => {
    const b = newBranch();
    await cancel(b);
    const err = await refusal(tryFreeze(b));
    expect(err).toMatchObject({ name: 'BarrierRefused', reason: 'hanging', op: 'try', xid: b.xid, branchId: b.branchId });
    expect(ran.try).toBe(0);
    expect(await account()).toMatchObject({ balance: 100, frozen: 0 });
  });

  it('a Try whose cancel lands while it runs: its Txn loses, it is decided again, refused, and its freeze never lands', async () => {
    const b = newBranch();
    const inTry = gate();
    const cancelled = gate();
    const late = barrier.run(tryCtx(b), 'try', async (txn) => {
      ran.try++;
      await change(txn, (a) => ({ ...a, frozen: a.frozen + 30 }));
      inTry.open();
      await cancelled.wait; // the Try's packet is stuck in the network while the cancel arrives
    });
    await inTry.wait;
    expect(await cancel(b)).toMatchObject({ outcome: 'empty-rollback' });
    cancelled.open();
    expect((await refusal(late)).reason).toBe('hanging');
    expect(await account()).toMatchObject({ balance: 100, frozen: 0 });
  });
});

describe('atomicity: the participant write and the barrier record land together or not at all', () => {
  it("a failing compare of the handler's own writes neither its data nor the barrier record", async () => {
    const b = newBranch();
    const err = await barrier
      .run(tryCtx(b), 'try', (txn) => {
        ran.try++;
        txn.put(`${ns}hold/${b.branchId}`, '30').compare(accountKey, 'Value', '==', JSON.stringify({ balance: 5, frozen: 0 })); // funds are not what it thinks
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BarrierConditionFailed);
    expect(err).toMatchObject({ xid: b.xid, branchId: b.branchId, op: 'try' });
    expect((await env.client.get(`${ns}hold/${b.branchId}`).string()) ?? undefined).toBeUndefined();
    expect(await barrier.get(b.xid, b.branchId)).toBeUndefined();
    // Nothing recorded, so the next attempt runs.
    expect(await tryFreeze(b)).toMatchObject({ outcome: 'applied' });
    expect(await account()).toMatchObject({ frozen: 30 });
  });

  it('a confirm whose own write cannot apply is not recorded either: a later attempt runs it', async () => {
    const b = newBranch();
    await tryFreeze(b);
    const err = await barrier.run(phase2Ctx(b, 'confirm', '100', 1), 'confirm', (txn) => void txn.compare(accountKey, 'Version', '==', 999).put(accountKey, 'x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BarrierConditionFailed);
    expect(await barrier.get(b.xid, b.branchId)).toMatchObject({ phase1State: 'applied' });
    expect((await barrier.get(b.xid, b.branchId))?.phase2).toBeUndefined();
    expect(await confirm(b, '100', 2)).toMatchObject({ outcome: 'applied' });
    expect(await account()).toMatchObject({ balance: 70, frozen: 0 });
  });

  it('a handler whose signal fired writes nothing', async () => {
    const b = newBranch();
    const controller = new AbortController();
    const err = await barrier
      .run({ ...tryCtx(b), signal: controller.signal }, 'try', async (txn) => {
        await change(txn, (a) => ({ ...a, frozen: a.frozen + 30 }));
        controller.abort(new Error('handler timed out'));
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(await account()).toMatchObject({ frozen: 0 });
    expect(await barrier.get(b.xid, b.branchId)).toBeUndefined();
  });
});

describe('fencing: a stale handler is refused once a newer term wrote', () => {
  it('a confirm with a lower fencing token, after a newer term confirmed, is refused (stale-term) and changes nothing', async () => {
    const b = newBranch();
    await tryFreeze(b);
    await confirm(b, '200', 2);
    const err = await refusal(confirm(b, '100', 1));
    expect(err.reason).toBe('stale-term');
    expect(err.message).toMatch(/fencing token 100 attempt 1 is older than token 200 attempt 2/);
    expect(ran.confirm).toBe(1);
    expect(await account()).toMatchObject({ balance: 70, frozen: 0 });
  });

  it('with leaderKey, a handler of a term that is over writes nothing, even before a newer term wrote', async () => {
    const leaderKey = `${ns}bank/leader`;
    const fenced = new EtcdBarrier(env.client, { prefix: `${ns}barrier/`, leaderKey });
    const b = newBranch();
    await tryFreeze(b);
    await env.client.put(leaderKey).value('old');
    const oldTerm = (await env.client.kv.range({ key: Buffer.from(leaderKey) })).kvs[0]!.create_revision;
    await env.client.delete().key(leaderKey);
    await env.client.put(leaderKey).value('new'); // a new term: the key is created again
    const err = await refusal(
      fenced.run(phase2Ctx(b, 'confirm', oldTerm, 1), 'confirm', async (txn) => {
        ran.confirm++;
        await change(txn, (a) => ({ balance: a.balance - 30, frozen: a.frozen - 30 }));
      }),
    );
    expect(err.reason).toBe('stale-term');
    expect(await account()).toMatchObject({ balance: 100, frozen: 30 });
    expect((await barrier.get(b.xid, b.branchId))?.phase2).toBeUndefined();
    // The current term's token passes.
    const newTerm = (await env.client.kv.range({ key: Buffer.from(leaderKey) })).kvs[0]!.create_revision;
    await expect(fenced.run(phase2Ctx(b, 'confirm', newTerm, 2), 'confirm', (txn) => change(txn, (a) => ({ balance: a.balance - 30, frozen: a.frozen - 30 })))).resolves.toMatchObject({ outcome: 'applied' });
  });
});

describe('tcc(): handlers wrapped in the barrier', () => {
  it('gives each handler the Txn, skips an empty rollback, refuses the late Try, and returns undefined for a replayed Try', async () => {
    const resource = barrier.tcc<{ amount: number }, string>({
      try: async (ctx, txn) => {
        ran.try++;
        await change(txn, (a) => ({ ...a, frozen: a.frozen + ctx.payload.amount }));
        return 'frozen';
      },
      confirm: async (ctx, txn) => {
        ran.confirm++;
        await change(txn, (a) => ({ balance: a.balance - ctx.payload.amount, frozen: a.frozen - ctx.payload.amount }));
      },
      cancel: () => void ran.cancel++,
    });
    const signal = new AbortController().signal;
    const common = { resource: 'debit', payload: { amount: 30 }, signal, tryCompleted: false, tryState: 'PENDING' as const };
    const b1 = newBranch();
    expect(await resource.try({ ...b1, ...common, deadline: Date.now() + 10_000 })).toBe('frozen');
    expect(await resource.try({ ...b1, ...common, deadline: Date.now() + 10_000 })).toBeUndefined();
    await resource.confirm({ ...phase2Ctx(b1, 'confirm'), ...common });
    const b2 = newBranch();
    await resource.cancel({ ...phase2Ctx(b2, 'cancel'), ...common });
    await expect(resource.try({ ...b2, ...common, deadline: Date.now() + 10_000 })).rejects.toMatchObject({ name: 'BarrierRefused', reason: 'hanging' });
    expect(ran).toEqual({ try: 1, confirm: 1, cancel: 0 });
    expect(await account()).toMatchObject({ balance: 70, frozen: 0 });
  });
});

describe('the barrier keeps to its own keys', () => {
  it("refuses a handler's write under the barrier's prefix", async () => {
    const b = newBranch();
    await expect(barrier.run(tryCtx(b), 'try', (txn) => void txn.put(barrier.keyOf(b.xid, 'other'), 'x'))).rejects.toBeInstanceOf(ValidationError);
    await expect(barrier.run(tryCtx(b), 'try', (txn) => void txn.deletePrefix(ns))).rejects.toBeInstanceOf(ValidationError);
  });

  it('a record it cannot read is a MalformedRecord naming the key, and nothing runs', async () => {
    const b = newBranch();
    await env.client.put(barrier.keyOf(b.xid, b.branchId)).value('{"not":"a record"}');
    await expect(tryFreeze(b)).rejects.toSatisfy((e: unknown) => e instanceof MalformedRecord && e.key === barrier.keyOf(b.xid, b.branchId));
    expect(ran.try).toBe(0);
  });

  it('prune() deletes the records last written before the cutoff, and only those', async () => {
    const old = newBranch();
    await cancel(old);
    const cutoffAt = Date.now();
    await waitFor(() => Date.now() > cutoffAt, { what: 'the clock to pass the first record' });
    const fresh = newBranch();
    await cancel(fresh);
    expect(await barrier.prune({ olderThanMs: Date.now() - cutoffAt })).toBe(1);
    expect(await barrier.get(old.xid, old.branchId)).toBeUndefined();
    expect(await barrier.get(fresh.xid, fresh.branchId)).toBeDefined();
  });
});
