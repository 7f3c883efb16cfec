/**
 * A leader with 100k cached keys keeps its lease: passes over the whole cache (a relist that finds
 * every key changed, a new term's replay of the cache and the reconciles that follow) run in slices,
 * so the lease's keep-alives go on (invariant 5's local check drops leadership once they go
 * unanswered for the TTL less a margin). The lease here is 3 s, so a stall of about a second and a
 * half would show as a lost term.
 */
import type { IRequestOp } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { useEtcd, waitFor } from './helpers/harness.js';

const env = useEtcd();

const N = 100_000;
const PUTS_PER_TXN = 128;

/** N branches a Try left PREPARED, their deadline two hours away: each reconcile only schedules a look at the deadline. */
async function writePendingBranches(ns: string, owner: string): Promise<void> {
  const now = Date.now();
  const txns: IRequestOp[][] = [];
  for (let i = 0; i < N; i += PUTS_PER_TXN) {
    const ops: IRequestOp[] = [];
    for (let j = i; j < Math.min(N, i + PUTS_PER_TXN); j++) {
      const xid = `shop.${now.toString(36).padStart(9, '0')}${String(j).padStart(8, '0')}`;
      const branchId = `b${j}`;
      const record = { v: 1, mode: 'tcc', xid, app: 'shop', branchId, owner, resource: 'r', payload: { n: j }, createdAt: now, deadline: now + 7_200_000, tryState: 'SUCCEEDED', updatedAt: now, writeId: `w${j}`, keyLayout: 2, events: [] };
      ops.push({ request_put: { key: Buffer.from(`${ns}${owner}/branch/${xid}/${branchId}`), value: Buffer.from(JSON.stringify(record)) } });
    }
    txns.push(ops);
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < txns.length) await env.client.kv.txn({ compare: [], success: txns[next++]!, failure: [] });
    }),
  );
}

describe('a leader with 100k cached keys', () => {
  it('keeps its lease (no new term, its leader key and lease stay) through a relist that finds every key changed and through a new term replaying the whole cache', { timeout: 300_000 }, async () => {
    const { ns, h } = env.fresh('scale-lease');
    await writePendingBranches(ns, 'bank');
    const svc = h.service({ app: 'bank', leaseTtlSeconds: 3 }).resource('r', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    const leading: boolean[] = [];
    svc.on('leader', ({ leading: l }) => leading.push(l));
    const leaderKey = `${ns}bank/leader`;
    const statsKey = `${ns}bank/stats`;
    const leaderNow = async (): Promise<{ created: string; lease: string } | undefined> => {
      const kv = (await env.client.kv.range({ key: Buffer.from(leaderKey) })).kvs[0];
      return kv ? { created: kv.create_revision, lease: kv.lease } : undefined;
    };
    /**
     * Waits until the stats published by the term created at `term` show every branch reconciled
     * ('settled'), or until leadership changes meanwhile ('lost': `leading` grew past `events`).
     */
    const settledUnder = (term: string, events: number, what: string): Promise<string> =>
      waitFor(
        async () => {
          if (leading.length !== events) return 'lost';
          const kv = (await env.client.kv.range({ key: Buffer.from(statsKey) })).kvs[0];
          if (!kv || BigInt(kv.create_revision) < BigInt(term)) return false;
          const q = (JSON.parse(kv.value.toString()) as { queues: { branches: { depth: number; processing: number; waiting: number } } }).queues.branches;
          return q.depth === 0 && q.processing === 0 && q.waiting === N ? 'settled' : false;
        },
        { what, timeoutMs: 180_000, intervalMs: 200 },
      );

    await svc.start({ timeoutMs: 120_000 });
    await waitFor(() => svc.isLeader(), { what: 'leadership', timeoutMs: 60_000 });
    const first = (await leaderNow())!;
    // The first term replays the cache as it begins: 100k keys queued, each reconciled once.
    expect(await settledUnder(first.created, 1, 'the first term done with every branch')).toBe('settled');

    // A watch that missed everything (e.g. a long partition): the relist reads, applies and hands on all 100k.
    const informer = (svc as unknown as { manager: { informer: { cache: Map<string, { value: Buffer; modRevision: string; createRevision: string }>; relist(reason: string): Promise<void> } } }).manager.informer;
    for (const [key, kv] of informer.cache) informer.cache.set(key, { value: kv.value, modRevision: '1', createRevision: kv.createRevision });
    await informer.relist('test: every key changed');
    expect([...informer.cache.values()].filter((kv) => kv.modRevision === '1')).toEqual([]);
    expect(leading).toEqual([true]);
    expect(await leaderNow()).toEqual(first);

    // A new term: the leader key goes (as when a lease is lost), the replica campaigns again and wins.
    await env.client.delete().key(leaderKey);
    await waitFor(async () => leading.length === 3 && svc.isLeader() && (await leaderNow())?.created !== first.created, { what: 'a second term', timeoutMs: 60_000 });
    const second = (await leaderNow())!;
    expect(await settledUnder(second.created, 3, 'the second term done with every branch')).toBe('settled');
    expect(leading).toEqual([true, false, true]);
    expect(svc.isLeader()).toBe(true);
    expect(await leaderNow()).toEqual(second);
  });
});
