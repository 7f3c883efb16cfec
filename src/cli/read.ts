/** Reads from etcd for the CLI: whole prefixes at one revision, page by page. */
import type { Etcd3, IKeyValue } from 'etcd3';
import { prefixEnd } from '../internal/keys.js';
import { Model } from './model.js';

const PAGE = 500;

/**
 * Every key under `prefix` at one revision. Paged, so a namespace holding many transactions does not
 * hit gRPC's message size limit.
 */
export async function rangeAll(client: Etcd3, prefix: string): Promise<{ kvs: IKeyValue[]; revision: string }> {
  const end = prefixEnd(prefix);
  const kvs: IKeyValue[] = [];
  let from = Buffer.from(prefix);
  let revision: string | undefined;
  for (;;) {
    const res = await client.kv.range({ key: from, range_end: end, limit: PAGE, ...(revision ? { revision } : {}) });
    revision ??= res.header.revision;
    kvs.push(...res.kvs);
    const last = res.kvs[res.kvs.length - 1];
    if (!res.more || !last) return { kvs, revision };
    from = Buffer.concat([last.key, Buffer.from([0])]);
  }
}

export async function loadModel(client: Etcd3, namespace: string): Promise<{ model: Model; revision: string }> {
  const { kvs, revision } = await rangeAll(client, namespace);
  return { model: Model.from(namespace, kvs), revision };
}
