import { describe, expect, it } from 'vitest';
import { Informer } from '../src/cache/index.js';
import { freshNamespace, quietLogger, useEtcd, waitFor } from './helpers/harness.js';

const env = useEtcd();

async function etcdState(prefix: string): Promise<Map<string, string>> {
  const all = await env.client.getAll().prefix(prefix).strings();
  return new Map(Object.entries(all));
}

function cacheState(informer: Informer): Map<string, string> {
  return new Map([...informer.cache].map(([k, v]) => [k, v.value.toString()]));
}

async function compactNow(): Promise<string> {
  const res = await env.client.kv.range({ key: Buffer.from('\0'), limit: 1 });
  await env.client.kv.compact({ revision: res.header.revision, physical: true });
  return res.header.revision;
}

function makeInformer(prefix: string, extra: Partial<ConstructorParameters<typeof Informer>[0]> = {}): { informer: Informer; changes: string[] } {
  const changes: string[] = [];
  const informer = new Informer({
    client: env.client,
    prefix,
    logger: quietLogger,
    onChange: (key) => changes.push(key),
    ...extra,
  });
  return { informer, changes };
}

describe('invariant 6: no missed events (list, watch from revision + 1, relist on compaction, resync)', () => {
  it('writes racing the initial list are all seen: the cache ends equal to etcd', async () => {
    const prefix = freshNamespace('inf-race');
    const writes = Promise.all(Array.from({ length: 200 }, (_, i) => env.client.put(`${prefix}k${i}`).value(`v${i}`)));
    const { informer } = makeInformer(prefix);
    await informer.start();
    await writes;
    await Promise.all(Array.from({ length: 50 }, (_, i) => env.client.delete().key(`${prefix}k${i * 2}`)));
    try {
      const want = await etcdState(prefix);
      await waitFor(() => JSON.stringify([...cacheState(informer)].sort()) === JSON.stringify([...want].sort()), { what: 'cache equal to etcd' });
      expect(want.size).toBe(150);
    } finally {
      await informer.stop();
    }
  });

  it('when the revision to watch from was compacted (writes and a compaction between list and watch), it relists and misses nothing', async () => {
    const prefix = freshNamespace('inf-compact');
    await env.client.put(`${prefix}before`).value('1');
    // Listed by the first list and untouched in the gap: its change must still be handed on,
    // although the list whose watch failed already put it in the cache.
    await env.client.put(`${prefix}untouched`).value('0');
    let first = true;
    const { informer, changes } = makeInformer(prefix, {
      afterList: async () => {
        if (!first) return;
        first = false;
        // In the gap between list and watch: changes the watch would have to replay, then compaction.
        await env.client.put(`${prefix}during`).value('2');
        await env.client.put(`${prefix}before`).value('changed');
        await compactNow();
      },
    });
    await informer.start();
    try {
      await waitFor(() => informer.cache.get(`${prefix}during`)?.value.toString() === '2', { what: 'key written in the gap' });
      // onChange follows the cache update once the watch is open again: wait for it too.
      await waitFor(() => changes.includes(`${prefix}during`) && changes.includes(`${prefix}untouched`), { what: 'the changes handed on' });
      expect(informer.relists).toBeGreaterThanOrEqual(2);
      expect(informer.cache.get(`${prefix}before`)?.value.toString()).toBe('changed');
      expect(changes).toContain(`${prefix}during`);
      expect(changes).toContain(`${prefix}untouched`);
      // And the watch established after the relist is live.
      await env.client.put(`${prefix}after`).value('3');
      await waitFor(() => informer.cache.has(`${prefix}after`), { what: 'event after relist' });
    } finally {
      await informer.stop();
    }
  });

  it('a running watch survives etcd compaction and keeps delivering events', async () => {
    const prefix = freshNamespace('inf-live');
    const { informer } = makeInformer(prefix);
    await informer.start();
    try {
      for (let i = 0; i < 20; i++) await env.client.put(`${prefix}a${i}`).value(String(i));
      await compactNow();
      for (let i = 0; i < 20; i++) await env.client.put(`${prefix}b${i}`).value(String(i));
      const want = await etcdState(prefix);
      await waitFor(() => cacheState(informer).size === want.size && [...want].every(([k, v]) => cacheState(informer).get(k) === v), { what: 'cache after compaction' });
    } finally {
      await informer.stop();
    }
  });

  it('periodic resync relists the prefix and hands on only what the watch missed: a missed put, update and delete are repaired and delivered, unchanged keys are not delivered again', async () => {
    const prefix = freshNamespace('inf-resync');
    for (const k of ['same', 'put', 'updated']) await env.client.put(`${prefix}${k}`).value('1');
    const { informer, changes } = makeInformer(prefix, { resyncMs: 150 });
    await informer.start();
    try {
      await env.client.put(`${prefix}updated`).value('2');
      await waitFor(() => informer.cache.get(`${prefix}updated`)?.value.toString() === '2', { what: 'the update seen by the watch' });
      // What a watch that skipped events leaves behind: a put never seen, an update seen late, a delete never seen.
      const updated = informer.cache.get(`${prefix}updated`)!;
      informer.cache.delete(`${prefix}put`);
      informer.cache.set(`${prefix}updated`, { value: Buffer.from('1'), modRevision: '1', createRevision: updated.createRevision });
      informer.cache.set(`${prefix}deleted`, { value: Buffer.from('1'), modRevision: '1', createRevision: '1' });
      changes.length = 0;
      const relists = informer.relists;
      await waitFor(() => informer.relists >= relists + 3, { what: 'three resyncs' });
      expect(cacheState(informer)).toEqual(await etcdState(prefix));
      expect([...new Set(changes)].sort()).toEqual([`${prefix}deleted`, `${prefix}put`, `${prefix}updated`]);
      expect(changes.filter((k) => k === `${prefix}updated`)).toHaveLength(1); // once repaired, not again
      expect(changes).not.toContain(`${prefix}same`);
    } finally {
      await informer.stop();
    }
  });

  it('a relist of a large cache lists keys in sub-ranges cut at cached keys, at one revision: keys added between the cuts, deleted and changed behind its back all come out right, and only they are handed on', async () => {
    const prefix = freshNamespace('inf-split');
    const key = (i: number, tail = ''): string => `${prefix}k${String(i).padStart(5, '0')}${tail}`;
    for (let i = 0; i < 12_000; i += 128) {
      await env.client.kv.txn({ compare: [], success: Array.from({ length: Math.min(128, 12_000 - i) }, (_, j) => ({ request_put: { key: Buffer.from(key(i + j)), value: Buffer.from('v') } })), failure: [] });
    }
    const { informer, changes } = makeInformer(prefix);
    await informer.start();
    try {
      expect(informer.cache.size).toBe(12_000);
      // Keys written between and beyond the cached ones, once the watch has delivered them…
      const added = [key(0, 'a'), key(4_999, 'a'), key(5_000, 'a')];
      await Promise.all(added.map((k) => env.client.put(k).value('new')));
      await waitFor(() => added.every((k) => informer.cache.has(k)), { what: 'the added keys through the watch' });
      // …then what a watch that missed events leaves: puts never seen, an update seen late, deletes never seen.
      for (const k of [...added, key(7_000)]) informer.cache.delete(k);
      const changed = informer.cache.get(key(3_000))!;
      informer.cache.set(key(3_000), { value: Buffer.from('old'), modRevision: '1', createRevision: changed.createRevision });
      for (const k of [key(11_999, 'z'), `${prefix}a`]) informer.cache.set(k, { value: Buffer.from('gone by now'), modRevision: '1', createRevision: '1' });
      changes.length = 0;
      await informer.relist('test');
      expect(cacheState(informer)).toEqual(await etcdState(prefix));
      expect([...changes].sort()).toEqual([key(0, 'a'), key(3_000), key(4_999, 'a'), key(5_000, 'a'), key(7_000), key(11_999, 'z'), `${prefix}a`].sort());
    } finally {
      await informer.stop();
    }
  });

  it('a prefix never matches a longer sibling app name (pay vs payments)', async () => {
    const ns = freshNamespace('inf-prefix');
    await env.client.put(`${ns}payments/gtx/k`).value('other app');
    const { informer } = makeInformer(`${ns}pay/`);
    await informer.start();
    try {
      await env.client.put(`${ns}pay/gtx/k`).value('mine');
      await env.client.put(`${ns}payments/gtx/k2`).value('other app');
      // Written after the sibling's key: events come in revision order, so once this one is in the
      // cache, the sibling's would be too had the watch matched it (waiting for the first own key
      // alone could look before a wrongly matched event arrived).
      await env.client.put(`${ns}pay/gtx/k3`).value('mine too');
      await waitFor(() => informer.cache.has(`${ns}pay/gtx/k3`), { what: 'own key written last' });
      expect([...informer.cache.keys()].sort()).toEqual([`${ns}pay/gtx/k`, `${ns}pay/gtx/k3`]);
    } finally {
      await informer.stop();
    }
  });

  it('a prefix larger than one gRPC message (4 MiB) is listed page by page at one revision', async () => {
    const prefix = freshNamespace('inf-big');
    const value = 'x'.repeat(8 * 1024);
    for (let i = 0; i < 600; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => env.client.put(`${prefix}k${String(i + j).padStart(4, '0')}`).value(value)));
    }
    const { informer } = makeInformer(prefix);
    await informer.start();
    try {
      expect(informer.cache.size).toBe(600);
      expect(informer.relists).toBe(1);
    } finally {
      await informer.stop();
    }
  });
});
