/**
 * 2-phase messages (mode 'msg') against a real etcd: prepare → the producer's local transaction →
 * submit; every consumer's deliver at least once with backoff or its stepped schedule, parked after
 * the limit; a consumer's failure never rolls the producer back; a prepared message left alone is
 * resolved by the producer's check-back, never by a guess; one decision; validation naming fields.
 * The producer killed after prepare is test/messages-failover.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { NonRetryableError, PayloadError, TransactionAlreadyDecided, TransactionNotFound, ValidationError, type CheckBackAnswer, type DeliveryContext, type ServiceOptions, type TxloopService } from '../src/index.js';
import type { BranchRecord, GlobalRecord, Store } from '../src/store/index.js';
import { capturingLogger, useEtcd, waitFor, type Harness } from './helpers/harness.js';

// A small --max-txn-ops, so "the submit is one Txn" is checked against what etcd itself accepts.
const MAX_TXN_OPS = 16;
const env = useEtcd({ maxTxnOps: MAX_TXN_OPS });
let h: Harness;
let store: Store;

function setup(label: string): void {
  ({ h, store } = env.fresh(label));
}

function service(app: string, options: Partial<ServiceOptions> = {}): TxloopService {
  return h.service({ app, maxTxnOps: MAX_TXN_OPS, ...options });
}

/** A consumer that records every delivery; `fail(ctx)` returns an error to throw, or nothing to succeed. */
function recorder(fail: (ctx: DeliveryContext) => Error | undefined = () => undefined) {
  const calls: { xid: string; branchId: string; payload: unknown; attempt: number; at: number }[] = [];
  return {
    calls,
    deliver(ctx: DeliveryContext) {
      calls.push({ xid: ctx.xid, branchId: ctx.branchId, payload: ctx.payload, attempt: ctx.attempt, at: Date.now() });
      const err = fail(ctx);
      if (err) throw err;
    },
  };
}

async function globalOf(xid: string): Promise<GlobalRecord | undefined> {
  return (await store.globals.get(xid))?.record;
}

async function statusOf(svc: TxloopService, xid: string): Promise<string> {
  return (await svc.deliveries(xid)).status;
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
}

describe('2-phase messages: every consumer gets a submitted message at least once', () => {
  it('prepare delivers nothing; submit writes every consumer\'s delivery in one Txn (within etcd\'s --max-txn-ops); DELIVERED once every consumer acknowledged', async () => {
    setup('deliver');
    const bank = recorder();
    const mail = recorder();
    const b = service('bank').consumer('credit', bank);
    const m = service('mail').consumer('notify', mail);
    const shop = service('shop');
    await Promise.all([b.start(), m.start(), shop.start()]);
    // 5 consumers: 1 + 3 × 5 = 16 writes, exactly what this etcd accepts in one Txn.
    const consumers = [
      { service: 'bank', resource: 'credit', payload: { amount: 30 }, branchId: 'credit-1' },
      ...[1, 2, 3, 4].map((n) => ({ service: 'mail', resource: 'notify', payload: { to: `user${n}` } })),
    ];
    const msg = await shop.prepareMessage({ name: 'order paid', consumers, checkAfterMs: 60_000 });
    const prepared = await shop.deliveries(msg.xid);
    expect(prepared.status).toBe('PREPARED');
    expect(prepared.checkBackAt?.getTime()).toBe(msg.checkBackAt);
    expect(prepared.deliveries.map((d) => d.status)).toEqual(Array(5).fill('PREPARED'));
    expect(bank.calls).toEqual([]);
    await msg.submit();
    await waitFor(async () => (await statusOf(shop, msg.xid)) === 'DELIVERED', 'the message delivered to all five');
    const view = await shop.deliveries(msg.xid);
    expect(view.decision).toMatchObject({ outcome: 'commit', by: 'submit' });
    expect(view.deliveries).toHaveLength(5);
    for (const d of view.deliveries) expect(d).toMatchObject({ status: 'DELIVERED', attempts: 1 });
    expect(view.deliveries.find((d) => d.branchId === 'credit-1')!.deliveredAt).toBeInstanceOf(Date);
    expect(bank.calls.map((c) => [c.branchId, c.payload])).toEqual([['credit-1', { amount: 30 }]]);
    expect(mail.calls.map((c) => c.payload).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))).toEqual([1, 2, 3, 4].map((n) => ({ to: `user${n}` })));
    // The consumers left the global at the submit: their branches hold them now.
    expect((await globalOf(msg.xid))!.consumers).toBeUndefined();
  });

  it('a consumer whose deliver fails a few times is retried with backoff and then delivered; its attempts only grow', async () => {
    setup('retry');
    const bank = recorder((ctx) => (ctx.attempt <= 3 ? new Error(`ledger busy (${ctx.attempt})`) : undefined));
    const b = service('bank', { retryBaseMs: 40, retryMaxMs: 1_000 }).consumer('credit', bank);
    const shop = service('shop');
    await Promise.all([b.start(), shop.start()]);
    const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit' }] });
    await msg.submit();
    const failing = await waitFor(async () => {
      const d = (await shop.deliveries(msg.xid)).deliveries[0]!;
      return d.attempts >= 1 && d.status === 'DELIVERING' && d.lastError !== undefined ? d : undefined;
    }, 'a failed attempt recorded');
    expect(failing.lastError).toMatch(/ledger busy/);
    await waitFor(async () => (await statusOf(shop, msg.xid)) === 'DELIVERED', 'delivered after its failures');
    expect(bank.calls.map((c) => c.attempt)).toEqual([1, 2, 3, 4]);
    const gaps = bank.calls.slice(1).map((c, i) => c.at - bank.calls[i]!.at);
    // 40, 80, 160 ms of backoff: each wait at least as long as the one before.
    expect(gaps[0]).toBeGreaterThanOrEqual(40);
    expect(gaps[1]).toBeGreaterThanOrEqual(80);
    expect(gaps[2]).toBeGreaterThanOrEqual(160);
    expect((await shop.deliveries(msg.xid)).deliveries[0]).toMatchObject({ status: 'DELIVERED', attempts: 4 });
  });

  it('a consumer that was down when the message was submitted gets it when it comes back (its branch waits, DELIVERING)', async () => {
    setup('down');
    const first = recorder();
    const b1 = service('bank').consumer('credit', first);
    const shop = service('shop');
    await Promise.all([b1.start(), shop.start()]);
    await b1.close();
    const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', payload: { amount: 5 } }] });
    await msg.submit();
    // Not a sleep: a later message to a consumer that is up went all the way through meanwhile.
    const m = service('mail').consumer('notify', recorder());
    await m.start();
    const later = await shop.prepareMessage({ name: 'later', consumers: [{ service: 'mail', resource: 'notify' }] });
    await later.submit();
    await waitFor(async () => (await statusOf(shop, later.xid)) === 'DELIVERED', 'the later message to an up consumer');
    expect((await shop.deliveries(msg.xid)).deliveries[0]).toMatchObject({ status: 'DELIVERING', attempts: 0 });
    expect(await statusOf(shop, msg.xid)).toBe('SUBMITTED');
    const back = recorder();
    const b2 = service('bank').consumer('credit', back);
    await b2.start();
    await waitFor(async () => (await statusOf(shop, msg.xid)) === 'DELIVERED', 'delivered once the consumer is back');
    expect(back.calls.map((c) => c.payload)).toEqual([{ amount: 5 }]);
    expect(first.calls).toEqual([]);
  });

  it("a consumer's failure never rolls the producer back: parked at once on NonRetryableError, the message stays SUBMITTED while the other consumer gets it; an operator retry then delivers it", async () => {
    setup('parked');
    let healed = false;
    const bank = recorder(() => (healed ? undefined : new NonRetryableError('account closed')));
    const mail = recorder();
    const b = service('bank').consumer('credit', bank);
    const m = service('mail').consumer('notify', mail);
    const shop = service('shop');
    await Promise.all([b.start(), m.start(), shop.start()]);
    const completed: string[] = [];
    shop.on('completed', (c) => completed.push(`${c.xid}:${c.status}`));
    const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', branchId: 'credit' }, { service: 'mail', resource: 'notify' }] });
    await msg.submit();
    const parked = await waitFor(async () => {
      const v = await shop.deliveries(msg.xid);
      const credit = v.deliveries.find((d) => d.branchId === 'credit')!;
      return credit.status === 'PARKED' && v.deliveries.some((d) => d.service === 'mail' && d.status === 'DELIVERED') ? v : undefined;
    }, 'bank parked and mail delivered');
    expect(parked.status).toBe('SUBMITTED');
    expect(parked.deliveries.find((d) => d.branchId === 'credit')).toMatchObject({ attempts: 1, lastError: 'account closed' });
    expect(bank.calls).toHaveLength(1); // parked at once: not retried
    // Nothing a consumer does changes the producer's global but completion: still the submit's
    // write, with no discard or other decision on its timeline.
    const g = (await globalOf(msg.xid))!;
    expect(g.status).toBe('SUBMITTED');
    expect(g.decision).toMatchObject({ outcome: 'commit', by: 'submit' });
    expect(g.events.map((e) => e.type)).toEqual(['Began', 'Decided']);
    expect(await failure(shop.discardMessage(msg.xid))).toBeInstanceOf(TransactionAlreadyDecided);
    healed = true;
    await store.repairs.retryBranch('bank', msg.xid, 'credit', 'operator:test');
    await waitFor(async () => (await statusOf(shop, msg.xid)) === 'DELIVERED', 'delivered after the retry');
    expect(bank.calls.map((c) => c.attempt)).toEqual([1, 2]);
    expect(completed).toEqual([`${msg.xid}:DELIVERED`]);
  });

  it('a parked delivery resolved by a human as delivered counts as acknowledged: the message completes DELIVERED, not heuristic', async () => {
    setup('resolve');
    const b = service('bank', { maxAttempts: 2 }).consumer('credit', recorder(() => new Error('ledger down')));
    const shop = service('shop');
    await Promise.all([b.start(), shop.start()]);
    const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', branchId: 'credit' }] });
    await msg.submit();
    await waitFor(async () => (await shop.deliveries(msg.xid)).deliveries[0]!.status === 'PARKED', 'parked after maxAttempts');
    expect((await shop.deliveries(msg.xid)).deliveries[0]!.attempts).toBe(2);
    await store.repairs.resolveBranch('bank', msg.xid, 'credit', 'delivered', 'credited by hand, OPS-7', 'operator:test');
    await waitFor(async () => (await statusOf(shop, msg.xid)) === 'DELIVERED', 'DELIVERED after the resolution');
    expect((await shop.deliveries(msg.xid)).deliveries[0]).toMatchObject({ status: 'RESOLVED_DELIVERED', resolution: 'delivered' });
    expect((await globalOf(msg.xid))!.heuristic).toBeUndefined();
  });

  it('a stepped schedule on a consumer waits each given delay after a failed delivery (persisted next-attempt times), then parks, whatever maxAttempts says', async () => {
    setup('stepped');
    const steps = [300, 600];
    const b = service('bank', { maxAttempts: 10 }).consumer('credit', recorder(() => new Error('receiver down')), { retry: ['300ms', '0.6s'] });
    const shop = service('shop');
    await Promise.all([b.start(), shop.start()]);
    const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', branchId: 'credit' }] });
    await msg.submit();
    const branch = async (): Promise<BranchRecord | undefined> => (await store.branches.get('bank', msg.xid, 'credit'))?.record;
    for (let n = 1; n <= steps.length; n++) {
      const r = await waitFor(async () => {
        const rec = await branch();
        return rec?.phase2?.attempts === n && rec.phase2.nextRetryAt !== undefined ? rec : undefined;
      }, `delivery attempt ${n} failed and its next time persisted`);
      const failedAt = r.events.filter((e) => e.type === 'AttemptFailed').at(-1)!.at;
      expect(r.phase2!.nextRetryAt! - failedAt).toBe(steps[n - 1]);
      expect((await shop.deliveries(msg.xid)).deliveries[0]!.nextRetryAt?.getTime()).toBe(r.phase2!.nextRetryAt);
    }
    const parked = await waitFor(async () => {
      const rec = await branch();
      return rec?.phase2?.state === 'PARKED' ? rec : undefined;
    }, 'parked after the schedule');
    expect(parked.phase2).toMatchObject({ action: 'deliver', attempts: steps.length + 1, lastError: 'receiver down' });
    expect(await statusOf(shop, msg.xid)).toBe('SUBMITTED');
  });
});

describe('2-phase messages: one decision, submit or discard', () => {
  it('a discarded message is DISCARDED and never delivered; a submit after it is refused, as a discard after a submit is; the same outcome asked again holds', async () => {
    setup('one-decision');
    const bank = recorder();
    const b = service('bank').consumer('credit', bank);
    const shop = service('shop');
    await Promise.all([b.start(), shop.start()]);
    const discarded = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit' }] });
    await discarded.discard({ reason: 'payment declined' });
    const late = await failure(discarded.submit());
    expect(late).toBeInstanceOf(TransactionAlreadyDecided);
    expect(late).toMatchObject({ outcome: 'rollback', status: 'DISCARDED', decidedBy: 'discard' });
    const submitted = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit' }] });
    await shop.submitMessage(submitted.xid);
    expect(await failure(shop.discardMessage(submitted.xid))).toMatchObject({ name: 'TransactionAlreadyDecided', outcome: 'commit', status: expect.stringMatching(/^(SUBMITTED|DELIVERED)$/) });
    // Asking again for what was decided (a retried call, or the check-back got there first) holds.
    await submitted.submit();
    await discarded.discard();
    await waitFor(async () => (await statusOf(shop, submitted.xid)) === 'DELIVERED', 'the submitted one delivered');
    const view = await shop.deliveries(discarded.xid);
    expect(view).toMatchObject({ status: 'DISCARDED', decision: { outcome: 'rollback', by: 'discard', reason: 'payment declined' } });
    expect(view.deliveries.map((d) => d.status)).toEqual(['DISCARDED']);
    expect(bank.calls.map((c) => c.xid)).toEqual([submitted.xid]);
    // No branch of the discarded message exists anywhere.
    expect(await env.client.getAll().prefix(store.keys.app('bank')).keys()).not.toContainEqual(expect.stringContaining(discarded.xid));
  });

  it('a submit and a discard racing: exactly one wins, and the message ends as that one says', async () => {
    setup('race');
    const b = service('bank').consumer('credit', recorder());
    const shop = service('shop');
    await Promise.all([b.start(), shop.start()]);
    for (let i = 0; i < 5; i++) {
      const msg = await shop.prepareMessage({ name: 'race', consumers: [{ service: 'bank', resource: 'credit' }] });
      const [submit, discard] = await Promise.allSettled([msg.submit(), msg.discard()]);
      expect([submit.status, discard.status].sort()).toEqual(['fulfilled', 'rejected']);
      const lost = (submit.status === 'rejected' ? submit : discard) as PromiseRejectedResult;
      expect(lost.reason).toBeInstanceOf(TransactionAlreadyDecided);
      const end = submit.status === 'fulfilled' ? 'DELIVERED' : 'DISCARDED';
      await waitFor(async () => (await statusOf(shop, msg.xid)) === end, `the message ${end}`);
    }
  });

  it('message(): submits when the local transaction returns, discards when it throws (and rethrows)', async () => {
    setup('message');
    const bank = recorder();
    const b = service('bank').consumer('credit', bank);
    const shop = service('shop');
    await Promise.all([b.start(), shop.start()]);
    const ok = await shop.message({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', payload: 1 }] }, async (m) => {
      expect(await statusOf(shop, m.xid)).toBe('PREPARED');
      return 'order 42 stored';
    });
    expect(ok.result).toBe('order 42 stored');
    let failedXid = '';
    const err = await failure(
      shop.message({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', payload: 2 }] }, async (m) => {
        failedXid = m.xid;
        throw new Error('out of stock');
      }),
    );
    expect((err as Error).message).toBe('out of stock');
    await waitFor(async () => (await statusOf(shop, ok.xid)) === 'DELIVERED', 'the committed one delivered');
    expect((await shop.deliveries(failedXid)).decision).toMatchObject({ by: 'discard', reason: 'local transaction failed: out of stock' });
    expect(bank.calls.map((c) => c.payload)).toEqual([1]);
  });

  it('submit, discard and deliveries refuse a TCC transaction, naming it; an unknown xid is TransactionNotFound', async () => {
    setup('not-a-message');
    const shop = service('shop');
    const tx = await shop.begin({ name: 'tcc', timeoutMs: 30_000 });
    for (const call of [() => shop.submitMessage(tx.xid), () => shop.discardMessage(tx.xid), () => shop.deliveries(tx.xid)]) {
      const err = await failure(call());
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toMatch(/is a tcc transaction, not a 2-phase message/);
    }
    expect((await shop.get(tx.xid)).status).toBe('TRYING');
    expect(await failure(shop.submitMessage('shop.0000000000000000z'))).toBeInstanceOf(TransactionNotFound);
  });
});

describe('2-phase messages: a prepared message left alone is resolved by its check-back', () => {
  it("past its check-back time the producer's leader asks the check-back: committed submits it (by check-back) and it is delivered; rolled-back discards it", async () => {
    setup('check-back');
    const bank = recorder();
    const b = service('bank').consumer('credit', bank);
    const answers = new Map<string, CheckBackAnswer>();
    const asked: { xid: string; name: string; at: number; preparedAt: number }[] = [];
    const shop = service('shop').checkBack('order paid', ({ xid, name, preparedAt }) => {
      asked.push({ xid, name, at: Date.now(), preparedAt });
      return answers.get(xid) ?? 'unknown';
    });
    await Promise.all([b.start(), shop.start()]);
    const committed = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', payload: 'c' }], checkAfterMs: 300 });
    const rolledBack = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', payload: 'r' }], checkAfterMs: 300 });
    answers.set(committed.xid, 'committed');
    answers.set(rolledBack.xid, 'rolled-back');
    await waitFor(async () => (await statusOf(shop, committed.xid)) === 'DELIVERED', 'the committed one delivered');
    await waitFor(async () => (await statusOf(shop, rolledBack.xid)) === 'DISCARDED', 'the rolled-back one discarded');
    expect((await shop.deliveries(committed.xid)).decision).toMatchObject({ outcome: 'commit', by: 'check-back', reason: 'the check-back answered committed' });
    expect((await shop.deliveries(rolledBack.xid)).decision).toMatchObject({ outcome: 'rollback', by: 'check-back' });
    expect(bank.calls.map((c) => c.payload)).toEqual(['c']);
    for (const m of [committed, rolledBack]) {
      const first = asked.find((a) => a.xid === m.xid)!;
      expect(first.name).toBe('order paid');
      expect(first.at).toBeGreaterThanOrEqual(m.checkBackAt);
      expect(first.at - first.preparedAt).toBeGreaterThanOrEqual(300);
    }
  });

  it("'unknown' (and a check-back that throws) asks again after the message's check-back delay; it is never decided without a definite answer", async () => {
    setup('unknown');
    const b = service('bank').consumer('credit', recorder());
    const asked: number[] = [];
    const shop = service('shop').checkBack('order paid', () => {
      asked.push(Date.now());
      if (asked.length === 2) throw new Error('orders database unreachable');
      return asked.length < 4 ? 'unknown' : 'committed';
    });
    await Promise.all([b.start(), shop.start()]);
    const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit' }], checkAfterMs: 250 });
    await waitFor(() => asked.length >= 3, 'asked three times');
    expect(await statusOf(shop, msg.xid)).toBe('PREPARED');
    await waitFor(async () => (await statusOf(shop, msg.xid)) === 'DELIVERED', 'delivered after a definite answer');
    expect(asked).toHaveLength(4);
    // Each ask waited the message's check-back delay after the one before (timers may round down a millisecond).
    for (let i = 1; i < asked.length; i++) expect(asked[i]! - asked[i - 1]!).toBeGreaterThanOrEqual(249);
  });

  it('a check-back answering something else is taken as unknown; a message with no check-back on this service is said once and asked again later', async () => {
    setup('no-check-back');
    const { logger, lines } = capturingLogger('info');
    const shop = service('shop', { logger }).checkBack('weird', () => 'maybe' as CheckBackAnswer);
    await shop.start();
    const orphan = await shop.prepareMessage({ name: 'nobody answers', consumers: [{ service: 'bank', resource: 'credit' }], checkAfterMs: 100 });
    const weird = await shop.prepareMessage({ name: 'weird', consumers: [{ service: 'bank', resource: 'credit' }], checkAfterMs: 100 });
    await waitFor(() => lines.filter((l) => String(l.msg).includes('answered "maybe"')).length >= 3, 'the odd answer asked about three times');
    const said = lines.filter((l) => String(l.msg).includes('registered no check-back for messages named "nobody answers"'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ xid: orphan.xid, level: 40 });
    // And prepare warned about it once too, before anything was asked.
    expect(lines.filter((l) => String(l.msg).startsWith('no check-back is registered on this service for messages named "nobody answers"'))).toHaveLength(1);
    expect(await statusOf(shop, orphan.xid)).toBe('PREPARED');
    expect(await statusOf(shop, weird.xid)).toBe('PREPARED');
  });

  it('a local transaction outlasting the check-back time: the check-back submits the message first, and the producer\'s own submit then holds (message() resolves)', async () => {
    setup('checkback-first');
    let committed = false;
    const asked: CheckBackAnswer[] = [];
    const shop = service('shop').checkBack('order paid', () => {
      const answer: CheckBackAnswer = committed ? 'committed' : 'unknown';
      asked.push(answer);
      return answer;
    });
    const bank = recorder();
    const b = service('bank').consumer('credit', bank);
    await Promise.all([shop.start(), b.start()]);
    const out = await shop.message({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit' }], checkAfterMs: 200 }, async (m) => {
      committed = true;
      await waitFor(async () => (await statusOf(shop, m.xid)) !== 'PREPARED', 'the check-back to submit it');
      return 'ok';
    });
    expect(out.result).toBe('ok');
    expect(asked).toContain('committed');
    expect((await shop.deliveries(out.xid)).decision?.by).toBe('check-back');
    await waitFor(async () => (await statusOf(shop, out.xid)) === 'DELIVERED', 'delivered');
  });

  it('a message submitted before its check-back time never asks the check-back', async () => {
    setup('no-ask');
    const asked: string[] = [];
    const b = service('bank').consumer('credit', recorder());
    const shop = service('shop').checkBack('order paid', ({ xid }) => (asked.push(xid), 'rolled-back'));
    await Promise.all([b.start(), shop.start()]);
    const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit' }], checkAfterMs: 200 });
    await msg.submit();
    await waitFor(async () => (await statusOf(shop, msg.xid)) === 'DELIVERED', 'delivered');
    // Past its check-back time, with a later message's check-back asked and answered meanwhile.
    const later = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit' }], checkAfterMs: 250 });
    await waitFor(async () => (await statusOf(shop, later.xid)) === 'DISCARDED', 'the later one discarded by its check-back');
    expect(asked).toEqual([later.xid]);
  });

  it('a finished message is kept for retentionMs, then every key of it is deleted (delivered and discarded alike)', async () => {
    setup('retention');
    const b = service('bank').consumer('credit', recorder());
    const shop = service('shop', { retentionMs: 300 });
    await Promise.all([b.start(), shop.start()]);
    const delivered = await shop.prepareMessage({ name: 'a', consumers: [{ service: 'bank', resource: 'credit' }] });
    await delivered.submit();
    const discarded = await shop.prepareMessage({ name: 'b', consumers: [{ service: 'bank', resource: 'credit' }] });
    await discarded.discard();
    for (const m of [delivered, discarded]) {
      await waitFor(async () => (await failure(shop.deliveries(m.xid)).catch(() => undefined)) instanceof TransactionNotFound, `${m.xid} collected`);
    }
    const left = await env.client.getAll().prefix(store.keys.ns).keys();
    expect(left.filter((k) => k.includes(delivered.xid) || k.includes(discarded.xid))).toEqual([]);
  });
});

describe('2-phase messages: arguments are validated, naming the field', () => {
  it('prepareMessage, checkBack and consumer refuse bad arguments before writing anything', async () => {
    setup('validation');
    const shop = service('shop', { maxPayloadBytes: 1_000 });
    const c = { service: 'bank', resource: 'credit' };
    const cases: [unknown, RegExp][] = [
      [undefined, /^options: must be/],
      [{ consumers: [c] }, /^name: must be 1-128 printable characters/],
      [{ name: 'x', consumers: [] }, /^consumers: must be a non-empty array/],
      [{ name: 'x', consumers: c }, /^consumers: must be a non-empty array/],
      [{ name: 'x', consumers: [null] }, /^consumers\[0\]: must be/],
      [{ name: 'x', consumers: [{ ...c, service: 'Bank!' }] }, /^consumers\[0\]\.service: "Bank!" is not a valid service name/],
      [{ name: 'x', consumers: [c, { ...c, resource: '' }] }, /^consumers\[1\]\.resource: "" is not a valid resource name/],
      [{ name: 'x', consumers: [{ ...c, branchId: 'a/b' }] }, /^consumers\[0\]\.branchId: "a\/b" is not a branch id/],
      [{ name: 'x', consumers: [{ ...c, branchId: 'same' }, { ...c, branchId: 'same' }] }, /^consumers\[1\]\.branchId: same is given twice for bank/],
      [{ name: 'x', consumers: [{ ...c, payload: 1, extra: true }] }, /^consumers\[0\]\.extra: unknown option/],
      [{ name: 'x', consumers: [{ ...c, payload: 'x'.repeat(2_000) }] }, /^consumers\[0\]\.payload: is \d+ bytes as JSON, over the 1000-byte limit/],
      [{ name: 'x', consumers: [1, 2, 3].map(() => ({ ...c, payload: 'x'.repeat(400) })) }, /^consumers: payloads are \d+ bytes as JSON together \(by consumers\[2\]\), over the 1000-byte limit/],
      [{ name: 'x', consumers: Array.from({ length: 6 }, () => c) }, /^consumers: 6 consumers need 19 writes in the submit's one etcd Txn, over maxTxnOps \(16\): at most 5 consumers per message/],
      [{ name: 'x', consumers: [c], checkAfterMs: 0 }, /^checkAfterMs: must be a whole number of milliseconds/],
      [{ name: 'x', consumers: [c], checkAfterMs: 1.5 }, /^checkAfterMs: must be a whole number/],
      [{ name: 'x', consumers: [c], chekAfterMs: 5 }, /^options\.chekAfterMs: unknown option; did you mean options\.checkAfterMs\?/],
    ];
    for (const [options, message] of cases) {
      const err = await failure(shop.prepareMessage(options as never));
      expect(err, JSON.stringify(options)?.slice(0, 100)).toBeInstanceOf(ValidationError);
      expect((err as Error).message, JSON.stringify(options)?.slice(0, 100)).toMatch(message);
    }
    expect(await failure(shop.prepareMessage({ name: 'x', consumers: [{ ...c, payload: 'x'.repeat(2_000) }] }))).toBeInstanceOf(PayloadError);
    expect(() => shop.checkBack('', () => 'unknown')).toThrow(/^name: must be 1-128/);
    expect(() => shop.checkBack('x', 'yes' as never)).toThrow(/^checkBack: must be a function/);
    shop.checkBack('x', () => 'unknown');
    expect(() => shop.checkBack('x', () => 'unknown')).toThrow(/^name: a check-back for messages named "x" is already registered/);
    expect(() => shop.consumer('credit', {} as never)).toThrow(/^handlers\.deliver: message consumer credit needs a deliver function/);
    expect(() => shop.consumer('credit', { deliver: () => undefined }, { retry: ['soon'] })).toThrow(/^options\.retry\[0\]: must be a duration/);
    shop.resource('debit', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    expect(() => shop.consumer('debit', { deliver: () => undefined })).toThrow(/^name: message consumer debit is already registered as a resource/);
    expect(await failure(shop.submitMessage('nope'))).toBeInstanceOf(ValidationError);
    expect(await failure(shop.submitMessage('shop.0000000000000000z', { reason: 5 } as never))).toMatchObject({ field: 'reason' });
    // Nothing was written by any refused call.
    expect(await env.client.getAll().prefix(store.keys.globalsOf('shop')).keys()).toEqual([]);
  });
});
