/**
 * The storage edge: every state change is one etcd Txn whose compares make the invariants hold,
 * grouped by the records it changes.
 *
 * - One decision (invariant 1): decisions.ts, with the mode's rule.
 * - No branch after the decision (invariant 2): branches.register compares the global's version.
 * - Fencing (invariant 5): branch progress and completion compare the writer's leader key.
 * - Completion and collection (invariant 8): globals.complete, collection.ts.
 *
 * etcd3's connection pool may retry a Txn whose outcome it never saw, so every write carries a
 * writeId; when a Txn "fails" the caller re-reads and treats its own earlier write as success.
 */
import type { Etcd3, ICompare, IKeyValue, IRequestOp, ITxnResponse } from 'etcd3';
import type { SubmitOptions, TxnBatcher } from '../etcd/index.js';
import { BranchStore } from './branches.js';
import { CollectionStore } from './collection.js';
import { DecisionStore } from './decisions.js';
import { StoreEdge } from './edge.js';
import { GlobalStore } from './globals.js';
import type { Keys } from './keys.js';
import { RepairStore } from './repairs.js';
import { SagaStore } from './sagas.js';
import { StatsStore } from './stats.js';

export class Store {
  readonly edge: StoreEdge;
  readonly globals: GlobalStore;
  readonly branches: BranchStore;
  readonly decisions: DecisionStore;
  readonly collection: CollectionStore;
  readonly repairs: RepairStore;
  readonly sagas: SagaStore;
  readonly stats: StatsStore;

  constructor(client: Etcd3, namespace: string, maxTxnOps = 128, requestTimeoutMs = 10_000) {
    this.edge = new StoreEdge(client, namespace, maxTxnOps, requestTimeoutMs);
    this.globals = new GlobalStore(this.edge);
    this.branches = new BranchStore(this.edge);
    this.decisions = new DecisionStore(this.edge, this.globals);
    this.collection = new CollectionStore(this.edge, this.globals);
    this.sagas = new SagaStore(this.edge, this.globals, this.branches);
    this.repairs = new RepairStore(this.edge, this.globals, this.branches, this.sagas);
    this.stats = new StatsStore(this.edge);
  }

  get keys(): Keys {
    return this.edge.keys;
  }

  get client(): Etcd3 {
    return this.edge.client;
  }

  get batcher(): TxnBatcher {
    return this.edge.batcher;
  }

  get maxTxnOps(): number {
    return this.edge.maxTxnOps;
  }

  txn(compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = [], options: SubmitOptions = {}): Promise<ITxnResponse> {
    return this.edge.txn(compare, success, failure, options);
  }

  range(prefix: string, revision?: string): Promise<{ kvs: IKeyValue[]; revision: string }> {
    return this.edge.range(prefix, revision);
  }
}
