/** Reads from etcd for the CLI: the whole namespace at one revision, into a Model. */
import type { Etcd3, IKeyValue } from 'etcd3';
import { MAX_RECEIVE_MESSAGE_BYTES, rangePrefix } from '../etcd/index.js';
import { Model } from './model.js';

export async function loadModel(client: Etcd3, namespace: string): Promise<{ model: Model; kvs: IKeyValue[]; revision: string }> {
  const model = new Model(namespace);
  const { kvs, revision } = await rangePrefix(client, namespace, {
    // One value etcd holds but this client cannot receive is one unusable record, not a failed listing.
    onTooLarge: (key) => model.unreadable(key.toString(), `value larger than the ${MAX_RECEIVE_MESSAGE_BYTES / 1024 / 1024} MiB etcd response the CLI accepts`),
  });
  for (const kv of kvs) model.set(kv.key.toString(), kv.value);
  return { model, kvs, revision };
}
