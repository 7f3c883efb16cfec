/**
 * The engine's Store as the CLI uses it: its prefix reads (the informer behind `-w` lists through
 * `range`) go through rangePrefix, linear and bounded in message size, instead of `limit` pages.
 * Redundant once Store.range itself calls rangePrefix.
 */
import type { IKeyValue } from 'etcd3';
import { rangePrefix } from '../internal/range.js';
import { Store } from '../internal/store.js';

export class CliStore extends Store {
  override range(prefix: string, revision?: string): Promise<{ kvs: IKeyValue[]; revision: string }> {
    return rangePrefix(this.client, prefix, revision !== undefined ? { revision } : {});
  }
}
