/**
 * Collection: deletes a finished transaction and everything of it (orders, branches, members),
 * global last, and only while nothing changed since it was read (invariant 8: never while a branch
 * is not done).
 */
import { OperationRefused, RefusalReason } from '../errors.js';
import { cmp, op, type Fence } from '../etcd/index.js';
import { Phase2State, isTerminal } from '../states.js';
import type { StoreEdge } from './edge.js';
import type { GlobalStore, TransactionRead } from './globals.js';

export class CollectionStore {
  constructor(
    private readonly edge: StoreEdge,
    private readonly globals: GlobalStore,
  ) {}

  /**
   * False, deleting nothing more, when a member is not done or something changed meanwhile.
   * `cached` (the informer's copy): when it holds the whole transaction and it fits one Txn, that
   * Txn deletes everything, guarded by the global's revision and the member prefixes unchanged since
   * the newest revision seen; if the cache was behind, the etcd read below starts over.
   */
  async collect(xid: string, fence: Fence | undefined, cached?: TransactionRead): Promise<boolean> {
    if (cached?.global && (await this.collectInOne(xid, fence, cached as TransactionRead & { global: NonNullable<TransactionRead['global']> }))) return true;
    const { global, members } = await this.globals.read(xid);
    if (!global) return false;
    const g = global.record;
    if (!isTerminal(g.status)) {
      throw new OperationRefused(xid, RefusalReason.NOT_FINISHED, `transaction ${xid} is ${g.status}; only finished transactions are collected`);
    }
    if (members.some((m) => m.record.state !== Phase2State.DONE)) return false;
    const fenceCmp = cmp.fenced(fence);
    // A member is written in the same Txn as its branch, so an unchanged member means an unchanged branch.
    const perChunk = Math.max(1, Math.floor((this.edge.maxTxnOps - 1) / 2));
    for (let i = 0; i < members.length; i += perChunk) {
      const part = members.slice(i, i + perChunk);
      const res = await this.edge.txn(
        [...part.map((m) => cmp.mod(m.key, m.modRevision)), ...fenceCmp],
        part.flatMap((m) => [op.del(this.edge.keys.order(m.record.owner, xid, m.record.branchId)), op.del(this.edge.keys.branch(m.record.owner, xid, m.record.branchId))]),
      );
      if (!res.succeeded) return false;
    }
    const res = await this.edge.txn([cmp.mod(global.key, global.modRevision), ...fenceCmp], [...this.edge.keys.members(xid).map((p) => op.delPrefix(p)), op.del(global.key)]);
    return res.succeeded;
  }

  private async collectInOne(xid: string, fence: Fence | undefined, read: TransactionRead & { global: NonNullable<TransactionRead['global']> }): Promise<boolean> {
    const { global, members, revision } = read;
    if (!isTerminal(global.record.status) || members.some((m) => m.record.state !== Phase2State.DONE)) return false;
    const prefixes = this.edge.keys.members(xid);
    const ops = [
      ...members.flatMap((m) => [op.del(this.edge.keys.order(m.record.owner, xid, m.record.branchId)), op.del(this.edge.keys.branch(m.record.owner, xid, m.record.branchId))]),
      ...prefixes.map((p) => op.delPrefix(p)),
      op.del(global.key),
    ];
    const compares = [cmp.mod(global.key, global.modRevision), ...prefixes.flatMap((p) => cmp.prefixUnchangedSince(p, revision)), ...cmp.fenced(fence)];
    if (ops.length > this.edge.maxTxnOps || compares.length > this.edge.maxTxnOps) return false;
    return (await this.edge.txn(compares, ops)).succeeded;
  }
}
