/**
 * What every record store of store/ writes through: one etcd client, the key layout, and group
 * commit. A Txn submitted here may share an RPC and a revision with concurrent ones (txn-batcher),
 * each keeping its own compares and outcome.
 */
import type { Etcd3, ICompare, IKeyValue, IRequestOp, ITxnResponse } from 'etcd3';
import { TxnBatcher, rangePrefix, type SubmitOptions } from '../etcd/index.js';
import { Keys } from './keys.js';

export interface Versioned<T> {
  record: T;
  modRevision: string;
  key: string;
}

export class StoreEdge {
  readonly keys: Keys;
  readonly batcher: TxnBatcher;

  constructor(
    readonly client: Etcd3,
    namespace: string,
    /** etcd's --max-txn-ops: the most ops one Txn (and one level of a nested Txn) may carry. */
    readonly maxTxnOps = 128,
    /** The client's request timeout: how long a Txn with a deadline of its own may wait at most. */
    requestTimeoutMs = 10_000,
  ) {
    this.keys = new Keys(namespace);
    this.batcher = new TxnBatcher(client, { maxBatch: maxTxnOps, callTimeoutMs: requestTimeoutMs });
  }

  /** One Txn; concurrent ones share an RPC and a revision through group commit. */
  txn(compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = [], options: SubmitOptions = {}): Promise<ITxnResponse> {
    return this.batcher.submit({ compare, success, failure }, options);
  }

  /** Every key under `prefix` at one revision, in bounded responses, linear in the key count. */
  range(prefix: string, revision?: string): Promise<{ kvs: IKeyValue[]; revision: string }> {
    return rangePrefix(this.client, prefix, revision !== undefined ? { revision } : {});
  }

  /** `key` now, or as it was at `revision` (which fails once etcd compacted that revision away). */
  async getRaw(key: string, revision?: string): Promise<IKeyValue | undefined> {
    const res = await this.client.kv.range({ key: Buffer.from(key), ...(revision !== undefined ? { revision } : {}) });
    return res.kvs[0];
  }
}
