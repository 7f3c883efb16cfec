/** rangePrefix against a real etcd: whole prefixes at one revision, in responses the client can receive. */
import { Etcd3, type IKeyValue } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { etcdFaultHandling } from '../src/etcd/index.js';
import { prefixEnd } from '../src/etcd/index.js';
import { isTooLarge, listKeys, rangePrefix } from '../src/etcd/index.js';
import { freshNamespace, useEtcd } from './helpers/harness.js';

const env = useEtcd();

/** A client that receives at most `bytes` per response, with txloop's fault handling. */
function clientReceiving(bytes: number): Etcd3 {
  return new Etcd3({ hosts: env.endpoints, grpcOptions: { 'grpc.max_receive_message_length': bytes }, faultHandling: etcdFaultHandling(2) }) // 2: with the per-host breaker a cluster client has, which a too-large answer must not trip;
}

async function putAll(entries: [string, string][]): Promise<void> {
  for (let i = 0; i < entries.length; i += 64) await Promise.all(entries.slice(i, i + 64).map(([k, v]) => env.client.put(k).value(v)));
}

const text = (kvs: IKeyValue[]): [string, string][] => kvs.map((kv) => [kv.key.toString(), kv.value.toString()]);

describe('rangePrefix', () => {
  it('returns every key under the prefix once, in key order, with its value, and nothing beyond the prefix', async () => {
    const ns = freshNamespace('range');
    const entries: [string, string][] = Array.from({ length: 700 }, (_, i) => [`${ns}k/${String(i).padStart(4, '0')}`, 'v'.repeat((i * 37) % 20_000)]);
    await putAll(entries);
    // Neighbours: the key just past the prefix, and the prefix without its slash.
    await env.client.put(prefixEnd(ns).toString()).value('outside');
    await env.client.put(ns.slice(0, -1)).value('outside');
    const client = clientReceiving(256 * 1024 * 1024);
    try {
      const { kvs, revision } = await rangePrefix(client, ns);
      expect(text(kvs)).toEqual(entries);
      expect(BigInt(revision)).toBeGreaterThan(0n);
    } finally {
      client.close();
    }
  });

  it('reads every key at one revision: what was written after it is not seen when that revision is asked for', async () => {
    const ns = freshNamespace('range-rev');
    const before: [string, string][] = Array.from({ length: 300 }, (_, i) => [`${ns}${String(i).padStart(3, '0')}`, `old ${i}`]);
    await putAll(before);
    const client = clientReceiving(256 * 1024 * 1024);
    try {
      const first = await rangePrefix(client, ns);
      await putAll(before.map(([k], i) => [k, `new ${i}`]));
      await env.client.put(`${ns}999`).value('added later');
      const again = await rangePrefix(client, ns, { revision: first.revision });
      expect(again.revision).toBe(first.revision);
      expect(text(again.kvs)).toEqual(before);
      expect((await rangePrefix(client, ns)).kvs).toHaveLength(301);
      const keysOnly = await rangePrefix(client, ns, { keysOnly: true, revision: first.revision });
      expect(keysOnly.kvs.map((kv) => kv.key.toString())).toEqual(before.map(([k]) => k));
      expect(keysOnly.kvs.every((kv) => kv.value.length === 0)).toBe(true);
    } finally {
      client.close();
    }
  });

  it('listKeys cut at split keys (present or not, at the ends or not) returns what one keys-only range does, at one revision', async () => {
    const ns = freshNamespace('range-split');
    const entries: [string, string][] = Array.from({ length: 500 }, (_, i) => [`${ns}${String(i).padStart(3, '0')}`, `v${i}`]);
    await putAll(entries);
    const client = clientReceiving(256 * 1024 * 1024);
    try {
      const whole = await listKeys(client, ns);
      await env.client.put(`${ns}250x`).value('written after the revision asked for');
      const splits = [`${ns}000`, `${ns}100`, `${ns}1005`, `${ns}250`, `${ns}499`].map((k) => Buffer.from(k));
      const cut = await listKeys(client, ns, whole.revision, splits);
      expect(cut.revision).toBe(whole.revision);
      expect(cut.kvs.map((kv) => kv.key.toString())).toEqual(entries.map(([k]) => k));
      expect(cut.kvs.map((kv) => kv.mod_revision)).toEqual(whole.kvs.map((kv) => kv.mod_revision));
      const now = await listKeys(client, ns, undefined, splits);
      expect(now.kvs).toHaveLength(501);
    } finally {
      client.close();
    }
  });

  it('halves a batch whose response is over the receive limit, returns every key, and leaves the client usable', async () => {
    const ns = freshNamespace('range-halve');
    // Sixteen 30 kB values (the first batch) are 480 kB: over a 200 kB limit until halved twice.
    const entries: [string, string][] = Array.from({ length: 40 }, (_, i) => [`${ns}${String(i).padStart(2, '0')}`, String(i % 10).repeat(30_000)]);
    await putAll(entries);
    const client = clientReceiving(200_000);
    try {
      expect(text((await rangePrefix(client, ns)).kvs)).toEqual(entries);
      // etcd3's own fault handling would have opened the circuit breaker on those answers and failed this for 5 s.
      expect((await client.get(entries[0]![0]))?.length).toBe(30_000);
    } finally {
      client.close();
    }
  });

  it('a value too large to receive even alone is reported to onTooLarge and left out; without onTooLarge the read fails', async () => {
    const ns = freshNamespace('range-huge');
    await putAll([
      [`${ns}a`, 'small'],
      [`${ns}b`, 'h'.repeat(150_000)],
      [`${ns}c`, 'small too'],
    ]);
    const client = clientReceiving(100_000);
    try {
      const tooLarge: string[] = [];
      const { kvs } = await rangePrefix(client, ns, { onTooLarge: (key, err) => (expect(isTooLarge(err)).toBe(true), tooLarge.push(key.toString())) });
      expect(text(kvs)).toEqual([
        [`${ns}a`, 'small'],
        [`${ns}c`, 'small too'],
      ]);
      expect(tooLarge).toEqual([`${ns}b`]);
      const failed = await rangePrefix(client, ns).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isTooLarge(failed)).toBe(true);
    } finally {
      client.close();
    }
  });
});
