import type { Etcd3, ITxnRequest } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { TxnBatcher, overlaps } from '../src/etcd/index.js';
import { cmp, op } from '../src/etcd/index.js';
import { builtInModes, decide } from '../src/modes/index.js';
import { Store } from '../src/store/index.js';
import { newBranchId, newWriteId, newXid } from '../src/store/index.js';
import { GlobalStatus, TryState } from '../src/states.js';
import { freshNamespace, useEtcd } from './helpers/harness.js';

const env = useEtcd();

describe('group commit (txn-batcher): concurrent Txns share RPCs but keep their own outcomes', () => {
  it('many concurrent Txns go out in far fewer RPCs, each succeeding or failing on its own compares', async () => {
    const ns = freshNamespace('batch');
    const b = new TxnBatcher(env.client, { maxBatch: 128 });
    await env.client.put(`${ns}taken`).value('x');
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        b.submit({ compare: [cmp.absent(i % 10 === 0 ? `${ns}taken` : `${ns}k${i}`)], success: [op.put(`${ns}k${i}`, { i })], failure: [] }),
      ),
    );
    expect(b.rpcs).toBeLessThan(200);
    results.forEach((r, i) => expect(r.succeeded).toBe(i % 10 !== 0));
    const keys = await env.client.getAll().prefix(`${ns}k`).keys();
    expect(keys).toHaveLength(180);
  });

  it('Txns writing the same key never share a batch (etcd would refuse it whole): both run, in order', async () => {
    const ns = freshNamespace('batch-dup');
    const b = new TxnBatcher(env.client, { maxBatch: 128 });
    const key = `${ns}same`;
    const [first, second] = await Promise.all([
      b.submit({ compare: [cmp.absent(key)], success: [op.put(key, 'first')], failure: [] }),
      b.submit({ compare: [cmp.absent(key)], success: [op.put(key, 'second')], failure: [] }),
      b.submit({ compare: [], success: [op.put(`${ns}other`, 'x')], failure: [] }),
    ]);
    expect(first?.succeeded).toBe(true);
    expect(second?.succeeded).toBe(false);
    expect(await env.client.get(key).string()).toBe('first');
  });

  it('a request etcd refuses (a put on a lease that does not exist) fails only its own caller', async () => {
    const ns = freshNamespace('batch-bad');
    const b = new TxnBatcher(env.client, { maxBatch: 128 });
    const outcomes = await Promise.allSettled([
      b.submit({ compare: [], success: [op.put(`${ns}a`, 1)], failure: [] }),
      b.submit({ compare: [], success: [op.put(`${ns}b`, 1)], failure: [] }),
      b.submit({ compare: [], success: [op.put(`${ns}bad`, 1, '123456789')], failure: [] }),
      b.submit({ compare: [], success: [op.put(`${ns}c`, 1)], failure: [] }),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(await env.client.getAll().prefix(ns).keys()).toEqual([`${ns}a`, `${ns}b`, `${ns}c`]);
  });

  it('a Txn that compares or reads what another writes never shares its batch: a decision and a registration racing in one burst never both win', async () => {
    const ns = freshNamespace('batch-race');
    const store = new Store(env.client, ns);
    let bothWon = 0;
    for (let i = 0; i < 30; i++) {
      const now = Date.now();
      const xid = newXid('shop', now);
      await store.globals.create({ v: 1, xid, app: 'shop', name: 'race', mode: 'tcc', status: GlobalStatus.TRYING, createdAt: now, timeoutMs: 60_000, deadline: now + 60_000, events: [] });
      // Keep the batcher busy so that what follows is submitted while an RPC is in flight.
      void store.txn([], [op.put(`${ns}noise/${i}`, 'x')]);
      const outcome = i % 2 === 0 ? 'commit' : 'rollback';
      const [decided, registered] = await Promise.allSettled([
        decide(store, builtInModes(), xid, { outcome, by: 'test' }),
        store.branches.register({ v: 1, mode: 'tcc', xid, app: 'shop', branchId: newBranchId(), owner: 'bank', resource: 'r', payload: null, createdAt: now, deadline: now + 60_000, tryState: TryState.PENDING, updatedAt: now, writeId: newWriteId(), events: [] }),
      ]);
      if (decided.status === 'fulfilled' && registered.status === 'fulfilled') {
        // Allowed only if the decision saw the branch (it then ordered it): a rollback that includes it.
        const { members } = await store.globals.read(xid);
        const orders = await env.client.getAll().prefix(`${ns}bank/order/${xid}/`).keys();
        if (outcome === 'commit' || orders.length !== members.length) bothWon++;
      }
    }
    expect(bothWon).toBe(0);
  });

  it('a Txn whose deadline is closer than the client timeout goes out alone: no other Txn of a batch gets less time than the client timeout', async () => {
    const ns = freshNamespace('batch-deadline');
    const sent: { keys: string[]; deadline: number | undefined; at: number }[] = [];
    const keysOf = (req: ITxnRequest): string[] =>
      (req.success ?? []).flatMap((o) => (o.request_txn ? keysOf(o.request_txn) : o.request_put?.key ? [o.request_put.key.toString()] : []));
    // The real client, its calls recorded on the way: what etcd receives is unchanged.
    const recording = { kv: { txn: (req: ITxnRequest, opts?: { deadline?: number }) => (sent.push({ keys: keysOf(req), deadline: opts?.deadline, at: Date.now() }), env.client.kv.txn(req, opts)) } } as unknown as Etcd3;
    const timeout = 5_000;
    const b = new TxnBatcher(recording, { maxBatch: 128, callTimeoutMs: timeout });
    const put = (name: string, deadline?: number): Promise<unknown> => b.submit({ compare: [], success: [op.put(`${ns}${name}`, 1)], failure: [] }, deadline !== undefined ? { deadline } : {});
    for (let i = 0; i < 10; i++) {
      const busy = put(`busy${i}`); // in flight: what follows queues up behind it
      const now = Date.now();
      await Promise.all([busy, put(`plain${i}`), put(`tight${i}`, now + 1_000), put(`loose${i}`, now + 60_000), put(`other${i}`)]);
    }
    for (const rpc of sent) {
      if (rpc.keys.some((k) => k.includes('tight'))) expect(rpc.keys).toHaveLength(1);
      else if (rpc.deadline !== undefined) expect(rpc.deadline - rpc.at).toBeGreaterThanOrEqual(timeout - 50);
    }
    expect(sent.filter((r) => r.keys.length > 1).length).toBeGreaterThan(0);
  });

  it('a Txn larger than the batch byte limit still goes out (alone) and its caller gets an answer', async () => {
    const ns = freshNamespace('batch-large');
    const b = new TxnBatcher(env.client, { maxBatch: 128, maxBytes: 100 });
    const res = await b.submit({ compare: [], success: [op.put(`${ns}big`, 'x'.repeat(500))], failure: [] });
    expect(res.succeeded).toBe(true);
    expect(b.rpcs).toBe(1);
  });

  it('with several batches in flight, no two Txns touching a common key are in flight at once, and they go out in the order they came', async () => {
    const ns = freshNamespace('batch-inflight');
    const inFlight = new Set<string>();
    const sentOrder: string[] = [];
    let overlapped = 0;
    const keysOf = (req: ITxnRequest): string[] =>
      (req.success ?? []).flatMap((o) => (o.request_txn ? keysOf(o.request_txn) : o.request_put?.key ? [o.request_put.key.toString()] : []));
    const recording = {
      kv: {
        txn: async (req: ITxnRequest, opts?: { deadline?: number }) => {
          const keys = keysOf(req).map((k) => k.slice(ns.length));
          const shared = keys.map((k) => k.split('#')[0]!);
          if (shared.some((k) => inFlight.has(k))) overlapped++;
          shared.forEach((k) => inFlight.add(k));
          sentOrder.push(...keys);
          try {
            return await env.client.kv.txn(req, opts);
          } finally {
            shared.forEach((k) => inFlight.delete(k));
          }
        },
      },
    } as unknown as Etcd3;
    const b = new TxnBatcher(recording, { maxBatch: 128, maxInFlight: 4 });
    // Ten keys, each written five times ("k3#0" … "k3#4" all write key k3): submitted at once.
    await Promise.all(Array.from({ length: 50 }, (_, i) => b.submit({ compare: [], success: [op.put(`${ns}k${i % 10}`, `k${i % 10}#${Math.floor(i / 10)}`)], failure: [] })));
    expect(overlapped).toBe(0);
    for (let k = 0; k < 10; k++) {
      const values = await env.client.get(`${ns}k${k}`).string();
      expect(values).toBe(`k${k}#4`); // the last submitted write of each key is the one that stays
    }
    expect(b.rpcs).toBeGreaterThan(1);
  });

  it('a Txn left queued is not overtaken by a later one that touches what it touches (order kept through a chain of conflicts)', async () => {
    const ns = freshNamespace('batch-chain');
    const b = new TxnBatcher(env.client, { maxBatch: 128 });
    const busy = b.submit({ compare: [], success: [op.put(`${ns}a`, 'first')], failure: [] });
    // B writes a (waits for the first) and compares b; C writes b: C must not go before B.
    const B = b.submit({ compare: [cmp.absent(`${ns}b`)], success: [op.put(`${ns}a`, 'second')], failure: [] });
    const C = b.submit({ compare: [], success: [op.put(`${ns}b`, 'c')], failure: [] });
    await Promise.all([busy, B, C]);
    expect((await B).succeeded).toBe(true);
  });

  it('overlap of keys and ranges follows etcd byte order (a key is [k, k+"\\0"), "\\0" as end means to the end)', () => {
    const k = (s: string): Buffer => Buffer.from(s);
    expect(overlaps({ start: k('a/1') }, { start: k('a/1') })).toBe(true);
    expect(overlaps({ start: k('a/1') }, { start: k('a/10') })).toBe(false);
    expect(overlaps({ start: k('a/'), end: k('a0') }, { start: k('a/x/y') })).toBe(true);
    expect(overlaps({ start: k('a/'), end: k('a0') }, { start: k('a0') })).toBe(false);
    expect(overlaps({ start: k('b'), end: Buffer.from([0]) }, { start: k('zzz') })).toBe(true);
    expect(overlaps({ start: k('b'), end: Buffer.from([0]) }, { start: k('a') })).toBe(false);
  });
});
