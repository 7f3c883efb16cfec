/**
 * Collection: deletes a finished transaction and everything of it (orders, branches, members),
 * global last, and only while nothing changed since it was read (invariant 8: never while a branch
 * is not done).
 */
import { OperationRefused, RefusalReason } from '../errors.js';
import { cmp, op, type Fence } from '../etcd/index.js';
import { Phase2State, isTerminal } from '../states.js';
import type { StoreEdge } from './edge.js';
import type { GlobalStore } from './globals.js';

export class CollectionStore {
  constructor(
    private readonly edge: StoreEdge,
    private readonly globals: GlobalStore,
  ) {}

  /** False, deleting nothing more, when a member is not done or something changed meanwhile. */
  async collect(xid: string, fence: Fence | undefined): Promise<boolean> {
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
}
