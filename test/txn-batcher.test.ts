import { describe, expect, it } from 'vitest';
import { TxnBatcher } from '../src/internal/txn-batcher.js';
import { cmp, op } from '../src/internal/store.js';
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
});
