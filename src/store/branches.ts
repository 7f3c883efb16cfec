/**
 * Branch records, with the member record the initiator keeps of each in the same Txn, and their
 * phase-2 orders. Registration is refused once the global left TRYING (invariant 2); progress writes
 * are fenced on the writer's leadership (invariant 5).
 */
import { retrying } from '../backoff.js';
import type { IRequestOp } from 'etcd3';
import { BranchRegistrationRefused, LeadershipLost, TransactionNotFound, WriteConflict } from '../errors.js';
import { cmp, op, type Fence } from '../etcd/index.js';
import type { StoreEdge, Versioned } from './edge.js';
import { newWriteId } from './ids.js';
import { parseBranch, parseGlobal, parseOrder } from './parse.js';
import { TCC_GLOBAL_VALUE_ABOVE, memberOf, type BranchRecord, type OrderRecord } from './records.js';

export interface Registration extends Versioned<BranchRecord> {
  /** The branch id was already registered (a retried Try with a caller-chosen id). */
  existed: boolean;
}

export class BranchStore {
  constructor(private readonly edge: StoreEdge) {}

  async get(owner: string, xid: string, branchId: string): Promise<Versioned<BranchRecord> | undefined> {
    const key = this.edge.keys.branch(owner, xid, branchId);
    const kv = await this.edge.getRaw(key);
    return kv ? { key, record: parseBranch(key, kv.value), modRevision: kv.mod_revision } : undefined;
  }

  async getOrder(owner: string, xid: string, branchId: string): Promise<OrderRecord | undefined> {
    const key = this.edge.keys.order(owner, xid, branchId);
    const kv = await this.edge.getRaw(key);
    return kv ? parseOrder(key, kv.value) : undefined;
  }

  /**
   * Joins a branch to a global that is still TRYING (its key at version 1); refused once it was
   * decided (anti-hanging). A branch id that already exists returns that branch with `existed`.
   */
  async register(branch: BranchRecord): Promise<Registration> {
    const gkey = this.edge.keys.global(branch.xid);
    const bkey = this.edge.keys.branch(branch.owner, branch.xid, branch.branchId);
    const res = await this.edge.txn(
      // TRYING, and a TCC transaction: a saga or a message takes no Trys.
      [cmp.version(gkey, 1), cmp.valueAbove(gkey, TCC_GLOBAL_VALUE_ABOVE), cmp.absent(bkey)],
      [op.put(bkey, branch), op.put(this.edge.keys.memberOf(branch), memberOf(branch))],
      [op.get(gkey), op.get(bkey)],
    );
    if (res.succeeded) return { key: bkey, record: branch, modRevision: res.header.revision, existed: false };
    const bkv = res.responses[1]?.response_range.kvs[0];
    if (bkv) {
      const existing = parseBranch(bkey, bkv.value);
      // Our own write replayed by the client after a lost response is not a second registration.
      return { key: bkey, record: existing, modRevision: bkv.mod_revision, existed: existing.writeId !== branch.writeId };
    }
    const gkv = res.responses[0]?.response_range.kvs[0];
    if (!gkv) throw new TransactionNotFound(branch.xid);
    const global = parseGlobal(gkey, gkv.value);
    throw new BranchRegistrationRefused(branch.xid, global.status, global.mode);
  }

  /**
   * Compare-and-swap of a branch with the record `change` computes from the current one, re-read
   * and recomputed when a concurrent write wins. `change` returns undefined when nothing is left to
   * write. Resolves undefined when the branch is gone.
   */
  async update(current: Versioned<BranchRecord>, change: (record: BranchRecord) => BranchRecord | undefined, attempts = 10): Promise<Versioned<BranchRecord> | undefined> {
    let cur = current;
    // A concurrent write won: recompute from the record it wrote (returned by the failed Txn).
    return retrying(async () => {
      const changed = change(cur.record);
      if (!changed) return cur;
      const next = { ...changed, updatedAt: Date.now(), writeId: newWriteId() };
      const res = await this.edge.txn([cmp.mod(cur.key, cur.modRevision)], [op.put(cur.key, next), ...this.memberOps(next)], [op.get(cur.key)]);
      if (res.succeeded) return { key: cur.key, record: next, modRevision: res.header.revision };
      const kv = res.responses[0]?.response_range.kvs[0];
      if (!kv) return undefined;
      cur = { key: cur.key, record: parseBranch(cur.key, kv.value), modRevision: kv.mod_revision };
      throw new WriteConflict(current.key);
    }, { attempts, retryOn: (err) => err instanceof WriteConflict });
  }

  /**
   * Records phase-2 progress of a branch (an attempt started, failed, succeeded, or parked), fenced on
   * the writer's leadership and on the branch not having changed since it was read.
   */
  async recordProgress(fence: Fence | undefined, current: Versioned<BranchRecord>, next: BranchRecord): Promise<Versioned<BranchRecord>> {
    const written = { ...next, updatedAt: Date.now(), writeId: newWriteId() };
    const res = await this.edge.txn(
      [cmp.mod(current.key, current.modRevision), ...cmp.fenced(fence)],
      [op.put(current.key, written), ...this.memberOps(written)],
      [op.get(current.key), ...(fence ? [op.get(fence.key)] : [])],
    );
    if (res.succeeded) return { key: current.key, record: written, modRevision: res.header.revision };
    if (fence) {
      const leader = res.responses[1]?.response_range.kvs[0];
      if (!leader || leader.create_revision !== fence.createRevision) throw new LeadershipLost(fence.key, true);
    }
    throw new WriteConflict(current.key);
  }

  /**
   * Puts a branch back, with an order of its own, where it is gone (a Try that finished after its
   * transaction was collected: its owner must still cancel what it reserved). False when the branch
   * exists again.
   */
  async restoreWithOrder(branch: BranchRecord, order: OrderRecord): Promise<boolean> {
    const bkey = this.edge.keys.branch(branch.owner, branch.xid, branch.branchId);
    const res = await this.edge.txn([cmp.absent(bkey)], [op.put(bkey, { ...branch, updatedAt: Date.now(), writeId: newWriteId() }), op.put(this.edge.keys.order(branch.owner, branch.xid, branch.branchId), order)]);
    return res.succeeded;
  }

  /** Writes the order for a branch where none exists yet. */
  async ensureOrder(owner: string, order: OrderRecord): Promise<void> {
    const okey = this.edge.keys.order(owner, order.xid, order.branchId);
    await this.edge.txn([cmp.absent(okey)], [op.put(okey, order)]);
  }

  /** Deletes one branch with its order and member if it is unchanged since read (fenced). */
  async delete(fence: Fence, current: Versioned<BranchRecord>): Promise<boolean> {
    const b = current.record;
    const res = await this.edge.txn(
      [cmp.mod(current.key, current.modRevision), ...cmp.fenced(fence)],
      [op.del(current.key), op.del(this.edge.keys.order(b.owner, b.xid, b.branchId)), op.del(this.edge.keys.memberOf(b))],
    );
    return res.succeeded;
  }

  /**
   * The member record of `branch`, updated only where it still exists (a nested Txn): a branch whose
   * global and member are gone, such as an orphan's cancel, grows none back.
   */
  memberOps(branch: BranchRecord): IRequestOp[] {
    return [op.putIfPresent(this.edge.keys.memberOf(branch), memberOf(branch))];
  }
}
