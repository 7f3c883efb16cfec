/**
 * A saga's writes: its submission, and a step's finish together with the move it makes (the next
 * group's branches, compensation orders, the saga's new status), in one Txn guarded by the saga and
 * its members as read — so of two steps of a group finishing at once, exactly one sees the group
 * complete and moves the saga on. What the move is, is the saga mode's rule (modes/saga/rules.ts).
 */
import type { IRequestOp } from 'etcd3';
import { retrying } from '../backoff.js';
import { LeadershipLost, WriteConflict } from '../errors.js';
import { cmp, op, type Fence } from '../etcd/index.js';
import { Action, Mode } from '../states.js';
import type { BranchStore } from './branches.js';
import type { StoreEdge, Versioned } from './edge.js';
import type { GlobalStore, TransactionRead } from './globals.js';
import { newWriteId } from './ids.js';
import { memberOf, orderFor, type BranchRecord, type GlobalRecord, type MemberRecord } from './records.js';

/** What a saga write carries besides the step's own record (modes/saga/rules.ts SagaMove). */
export interface SagaWrite {
  global?: GlobalRecord;
  create: BranchRecord[];
  compensate: Pick<MemberRecord, 'owner' | 'branchId'>[];
}

export class SagaStore {
  constructor(
    private readonly edge: StoreEdge,
    private readonly globals: GlobalStore,
    private readonly branches: BranchStore,
  ) {}

  /** Writes a new saga with its first group's branches, members and action orders, in one Txn. */
  async submit(global: GlobalRecord, first: BranchRecord[]): Promise<void> {
    const gkey = this.edge.keys.global(global.xid);
    const res = await this.edge.txn([cmp.absent(gkey)], [op.put(gkey, global), ...this.createOps(first, global.createdAt)], [op.get(gkey)]);
    if (res.succeeded) return;
    const existing = res.responses[0]?.response_range.kvs[0];
    // Our own write replayed by the client after a lost response is not a conflict.
    if (existing && JSON.parse(existing.value.toString()).createdAt === global.createdAt) return;
    throw new WriteConflict(gkey);
  }

  /** The ops that order `steps`: each one's branch, member and action order. */
  createOps(steps: BranchRecord[], at: number): IRequestOp[] {
    return steps.flatMap((b) => [
      op.put(this.edge.keys.branch(b.owner, b.xid, b.branchId), b),
      op.put(this.edge.keys.memberOf(b), memberOf(b)),
      op.put(this.edge.keys.order(b.owner, b.xid, b.branchId), orderFor(b, Mode.SAGA, Action.ACTION, 'saga', at)),
    ]);
  }

  /**
   * Writes a step's finished record `next` (over `current`, fenced on the writer's leadership when
   * `fence` is given) with the move `move` computes from the saga as read now; re-read and
   * recomputed when another step's write won. WriteConflict when the step's own record changed.
   */
  async finishStep(fence: Fence | undefined, current: Versioned<BranchRecord>, next: BranchRecord, move: (read: TransactionRead & { global: NonNullable<TransactionRead['global']> }, member: MemberRecord) => SagaWrite): Promise<Versioned<BranchRecord>> {
    return retrying(
      async () => {
        const read = await this.globals.read(next.xid);
        // The saga is gone (collected): there is nothing left to move; the step records itself.
        if (!read.global) return this.branches.recordProgress(fence, current, next);
        const global = read.global;
        const m = move({ ...read, global }, memberOf(next));
        const movedOn = m.global !== undefined || m.create.length > 0 || m.compensate.length > 0;
        const written: BranchRecord = { ...next, ...(movedOn ? { handedOn: true as const } : {}), updatedAt: Date.now(), writeId: newWriteId() };
        const xid = global.record.xid;
        const ops: IRequestOp[] = [
          op.put(current.key, written),
          ...this.branches.memberOps(written),
          ...(m.global ? [op.put(global.key, m.global)] : []),
          ...this.createOps(m.create, Date.now()),
          ...m.compensate.map((s) => op.put(this.edge.keys.order(s.owner, xid, s.branchId), orderFor({ xid, branchId: s.branchId }, Mode.SAGA, Action.COMPENSATE, m.global?.decision?.by ?? global.record.decision?.by ?? 'saga', Date.now()))),
        ];
        // The saga and its members as read (so of two finishes of a group exactly one sees it
        // complete), and, besides, never over a branch already created.
        const compares = [
          cmp.mod(current.key, current.modRevision),
          ...cmp.fenced(fence),
          cmp.mod(global.key, global.modRevision),
          ...this.edge.keys.members(xid).flatMap((p) => cmp.prefixUnchangedSince(p, read.revision)),
          ...m.create.map((b) => cmp.absent(this.edge.keys.branch(b.owner, b.xid, b.branchId))),
        ];
        const res = await this.edge.txn(compares, ops, [op.get(current.key), ...(fence ? [op.get(fence.key)] : [])]);
        if (res.succeeded) return { key: current.key, record: written, modRevision: res.header.revision };
        if (fence) {
          const leader = res.responses[1]?.response_range.kvs[0];
          if (!leader || leader.create_revision !== fence.createRevision) throw new LeadershipLost(fence.key, true);
        }
        const now = res.responses[0]?.response_range.kvs[0];
        // The step itself changed (an operator's repair): not ours to overwrite; the caller re-reads.
        if (!now || now.mod_revision !== current.modRevision) throw new StepChanged(current.key);
        // Another step (or a decision) moved the saga meanwhile: read it again and recompute.
        throw new WriteConflict(global.key);
      },
      { attempts: 20, retryOn: (err) => err instanceof WriteConflict && !(err instanceof StepChanged) },
    );
  }
}

/** The step's own record changed since it was read. */
class StepChanged extends WriteConflict {}
