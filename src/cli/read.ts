/**
 * What `get -w` starts from: every key under a prefix (the namespace, or one service's) at one
 * revision, into a Model, with the key-values the watch's informer is seeded with. A watch keeps
 * what it lists (it re-renders rows from it), so this holds the prefix whole; `get` without -w
 * streams instead (listing.ts).
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { MAX_RECEIVE_MESSAGE_BYTES } from '../etcd/index.js';
import { Model } from './model.js';
import { Snapshot, prefixSpan } from './scan.js';

export async function loadModel(client: Etcd3, namespace: string, prefix = namespace): Promise<{ model: Model; kvs: IKeyValue[]; revision: string }> {
  const model = new Model(namespace);
  const snap = new Snapshot(client);
  await snap.pin(prefix);
  const kvs: IKeyValue[] = [];
  const scan = snap.scan(prefixSpan(prefix), {
    // One value etcd holds but this client cannot receive is one unusable record, not a failed listing.
    onTooLarge: (key) => model.unreadable(key.toString(), `value larger than the ${MAX_RECEIVE_MESSAGE_BYTES / 1024 / 1024} MiB etcd response the CLI accepts`),
  });
  for await (const batch of scan) {
    for (const kv of batch) {
      kvs.push(kv);
      model.set(kv.key.toString(), kv.value);
    }
  }
  return { model, kvs, revision: snap.revision! };
}
