/**
 * Operator repairs (the CLI's retry and resolve, later the Kubernetes mirror's): each one Txn that
 * refuses what the invariants forbid, with an OperationRefused whose `reason` lets each surface say
 * why in its own words. Every repair is recorded in the branch's timeline with who did it.
 */
import { BranchNotFound, OperationRefused, RefusalReason, TransactionNotFound, WriteConflict } from '../errors.js';
import { cmp, op } from '../etcd/index.js';
import { Phase2State, type Action } from '../states.js';
import type { BranchStore } from './branches.js';
import type { StoreEdge, Versioned } from './edge.js';
import type { GlobalStore, TransactionRead } from './globals.js';
import type { SagaStore, SagaWrite } from './sagas.js';
import { newWriteId } from './ids.js';
import { freshBudget, withEvent, type BranchRecord, type MemberRecord, type Phase2, type Resolution } from './records.js';

export class RepairStore {
  constructor(
    private readonly edge: StoreEdge,
    private readonly globals: GlobalStore,
    private readonly branches: BranchStore,
    private readonly sagas: SagaStore,
  ) {}

  /** Puts a parked branch back into its owner's queue with a fresh attempt budget. */
  async retryBranch(owner: string, xid: string, branchId: string, by: string, dryRun = false): Promise<BranchRecord> {
    const cur = await this.branches.get(owner, xid, branchId);
    if (!cur) throw new BranchNotFound(xid, branchId);
    const p = cur.record.phase2;
    if (p?.state !== Phase2State.PARKED) throw notParked(xid, branchId, cur.record, 'retried');
    const next = retried(cur.record, p, by);
    if (dryRun) return next;
    return (await this.branches.recordProgress(undefined, cur, next)).record;
  }

  /**
   * Re-queues every parked branch of a transaction in one Txn: all of them or none (the Txn compares
   * each branch's mod revision, so a branch that changed meanwhile fails the whole retry).
   */
  async retryParkedBranches(xid: string, by: string, dryRun = false): Promise<BranchRecord[]> {
    const { global, members } = await this.globals.read(xid);
    if (!global && members.length === 0) throw new TransactionNotFound(xid);
    const parked = members.filter((m) => m.record.state === Phase2State.PARKED);
    if (parked.length === 0) throw new OperationRefused(xid, RefusalReason.NOTHING_PARKED, `transaction ${xid}${global ? ` (${global.record.status})` : ''} has no parked branch; only parked branches can be retried`);
    // etcd limits compares and success ops separately: one compare, two puts (branch, member) per branch.
    if (parked.length * 2 > this.edge.maxTxnOps) {
      throw new OperationRefused(xid, RefusalReason.TOO_MANY, `transaction ${xid} has ${parked.length} parked branches, more than one Txn can re-queue; retry them one by one (XID/BRANCH)`);
    }
    const current: Versioned<BranchRecord>[] = [];
    const next: BranchRecord[] = [];
    for (const m of parked) {
      const cur = await this.branches.get(m.record.owner, xid, m.record.branchId);
      const p = cur?.record.phase2;
      if (!cur || p?.state !== Phase2State.PARKED) throw new WriteConflict(m.key);
      current.push(cur);
      next.push({ ...retried(cur.record, p, by), updatedAt: Date.now(), writeId: newWriteId() });
    }
    if (dryRun) return next;
    const res = await this.edge.txn(
      current.map((c) => cmp.mod(c.key, c.modRevision)),
      next.flatMap((b, i) => [op.put(current[i]!.key, b), ...this.branches.memberOps(b)]),
    );
    if (!res.succeeded) throw new WriteConflict(this.edge.keys.members(xid)[0]!);
    return next;
  }

  /**
   * Records a human's heuristic decision for a parked branch: it counts as done and completion can
   * proceed. `move`: what else the resolution writes in the same Txn (a saga's next move, from its
   * mode's rule), read and recomputed as a step's own finish is. `force`: also a branch that is not
   * parked — one whose service never runs (retired, or misnamed in a saga) — when the operator
   * knows no handler of it is running.
   */
  async resolveBranch(owner: string, xid: string, branchId: string, as: Resolution['as'], reason: string, by: string, options: ResolveOptions = {}): Promise<BranchRecord> {
    const cur = await this.branches.get(owner, xid, branchId);
    if (!cur) throw new BranchNotFound(xid, branchId);
    const b = cur.record;
    const p = b.phase2;
    const order = await this.branches.getOrder(owner, xid, branchId);
    if (!p && !order) {
      throw new OperationRefused(xid, RefusalReason.NOT_DECIDED, `branch ${branchId} of ${xid} has no decision yet; abort or commit the transaction first`, branchId);
    }
    // What is owed: an order newer than the recorded work (a saga's compensation after its action) wins.
    const owed = order && (!p || (p.state === Phase2State.DONE && p.action !== order.action)) ? order.action : p!.action;
    if (p?.state === Phase2State.DONE && owed === p.action) {
      throw new OperationRefused(xid, RefusalReason.ALREADY_DONE, `branch ${branchId} of ${xid} is already done (${p.resolution ? `resolved as ${p.resolution.as}` : p.action}); nothing to resolve`, branchId);
    }
    if (p?.state !== Phase2State.PARKED && !options.force) {
      throw new OperationRefused(xid, RefusalReason.NOT_PARKED, `branch ${branchId} of ${xid} is still being retried by its service${p ? '' : ' (or its service is not running)'}; resolve only parked branches (or, when you know its service will not run it, --force)`, branchId);
    }
    const fits = RESOLUTIONS[owed];
    if (!fits.includes(as)) {
      throw new OperationRefused(xid, RefusalReason.WRONG_RESOLUTION, `branch ${branchId} of ${xid} ${p?.state === Phase2State.PARKED && p.action === owed ? 'is parked in' : 'owes'} its ${owed}; it can be resolved as ${fits.join(' or ') || 'nothing (fail it instead)'}, not ${as}`, branchId);
    }
    const now = Date.now();
    const base = p && p.action === owed ? p : { action: owed, attempts: p?.attempts ?? 0 };
    const next = withEvent({ ...b, phase2: { ...base, state: Phase2State.DONE, doneAt: now, resolution: { as, reason, at: now, by } } }, 'Resolved', `resolved as ${as} by ${by}${p?.state === Phase2State.PARKED ? '' : ' (forced: not parked)'}: ${reason}`, now);
    if (options.dryRun) return next;
    if (options.move) return (await this.sagas.finishStep(undefined, cur, next, options.move)).record;
    return (await this.branches.recordProgress(undefined, cur, next)).record;
  }
}

export interface ResolveOptions {
  /** Check and return what would be written, writing nothing. */
  dryRun?: boolean;
  /** What else the resolution writes in its Txn: a saga's next move (modes/saga/rules.ts). */
  move?: (read: TransactionRead & { global: NonNullable<TransactionRead['global']> }, member: MemberRecord) => SagaWrite;
  /** Resolve a branch that is not parked (its service does not run it). */
  force?: boolean;
}

/**
 * What a branch owing each action can be resolved as: TCC either way (a heuristic outcome); a
 * compensation or a delivery only as done; a saga step's action not at all (it fails, and the saga
 * compensates).
 */
const RESOLUTIONS: Record<Action, readonly Resolution['as'][]> = {
  confirm: ['confirmed', 'cancelled'],
  cancel: ['confirmed', 'cancelled'],
  action: [],
  compensate: ['compensated'],
  deliver: ['delivered'],
};

function retried(b: BranchRecord, p: Phase2, by: string): BranchRecord {
  return withEvent({ ...b, phase2: freshBudget(p) }, 'Retried', `re-queued by ${by}`);
}

function notParked(xid: string, branchId: string, b: BranchRecord, what: string): OperationRefused {
  const p = b.phase2;
  const where = !p ? 'its phase 2 has not started' : p.state === Phase2State.DONE ? `its ${p.action} is done` : `its ${p.action} is still being attempted`;
  return new OperationRefused(xid, RefusalReason.NOT_PARKED, `branch ${branchId} of ${xid} is not parked (${where}); only parked branches can be ${what}`, branchId);
}
