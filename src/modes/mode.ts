/**
 * How a transaction mode plugs into the runtime: its statuses, its decision rule, what a deadline
 * means, its reconcile steps for globals and branches, and the words the CLI shows. The runtime and
 * the store know nothing of TCC; everything TCC-specific is a TransactionMode (modes/tcc/).
 */
import type { CachedKv } from '../cache/index.js';
import type { ReconcileContext, ReconcileResult } from '../runtime/index.js';
import type { GlobalStatus, Mode, Outcome } from '../states.js';
import type { BranchRecord, DecisionRule, GlobalRecord, OrderRecord, Versioned } from '../store/index.js';

/** A global as the reconcile step gets it: parsed, with its cache entry. */
export interface GlobalInCache {
  global: Versioned<GlobalRecord>;
}

/** A branch as the reconcile step gets it: parsed, with its order and both cache entries. */
export interface BranchInCache {
  branch: Versioned<BranchRecord>;
  order?: OrderRecord;
  branchKv: CachedKv;
  orderKv?: CachedKv;
}

/** A request to decide a global: commit or rollback, by whom, why. */
export interface DecisionRequest {
  outcome: Outcome;
  /** Recorded as who decided: commit | rollback | deadline | participant:<app> | operator:<login>. */
  by: string;
  reason?: string;
  /** Identifies this decision, so a retry of the same write is recognised as ours. */
  writeId: string;
  now: number;
}

export interface TransactionMode<Handlers = unknown> {
  readonly name: Mode;
  /** The statuses a global of this mode goes through. */
  readonly statuses: readonly GlobalStatus[];
  /** The decision rule for a request, applied to the transaction as read (store/decisions.ts runs it). */
  decisionRule(request: DecisionRequest): DecisionRule;
  /** What passing the deadline decides for a global still undecided. */
  deadlineOutcome(global: GlobalRecord): Outcome;
  reconcileGlobal(ctx: ReconcileContext<Handlers>, found: GlobalInCache, signal: AbortSignal): Promise<ReconcileResult>;
  reconcileBranch(ctx: ReconcileContext<Handlers>, found: BranchInCache, signal: AbortSignal): Promise<ReconcileResult>;
  /** One word for a branch's state, as the CLI shows it. */
  branchStatus(branch: BranchRecord, order?: OrderRecord): string;
}
