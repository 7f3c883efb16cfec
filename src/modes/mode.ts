/**
 * How a transaction mode plugs into the runtime: its statuses, its decision rule, what a deadline
 * means, its reconcile steps for globals and branches, and the words the CLI shows. The runtime and
 * the store know nothing of TCC; everything TCC-specific is a TransactionMode (modes/tcc/).
 */
import type { CachedKv } from '../cache/index.js';
import type { ReconcileContext, ReconcileResult } from '../runtime/index.js';
import type { Action, GlobalStatus, ModeName, Outcome } from '../states.js';
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

/**
 * The words `branchStatus` returns, grouped the way the CLI's `--status` filters branches. Every
 * word is upper case; `all` lists them in the order the CLI's help and errors do.
 */
export interface BranchWords {
  readonly all: readonly string[];
  /** Not finished and not waiting for a human. */
  readonly pending: readonly string[];
  /** Finished: by the mode's own action or by a human's resolution. */
  readonly done: readonly string[];
  /** Finished by a human's resolution. */
  readonly resolved: readonly string[];
  /** Waiting for a human (`txloop retry` / `resolve`). */
  readonly parked: readonly string[];
}

export interface TransactionMode<Handlers = unknown> {
  /** What records of this mode carry in `mode` (MODE_NAME_RULE). */
  readonly name: ModeName;
  /** The statuses a global of this mode goes through. */
  readonly statuses: readonly GlobalStatus[];
  /** The decision rule for a request, applied to the transaction as read (store/decisions.ts runs it). */
  decisionRule(request: DecisionRequest): DecisionRule;
  /** What passing the deadline decides for a global still undecided. */
  deadlineOutcome(global: GlobalRecord): Outcome;
  /** The phase-2 action a global in `status` has ordered every one of its branches; undefined while undecided. */
  orderedAction(status: GlobalStatus): Action | undefined;
  reconcileGlobal(ctx: ReconcileContext<Handlers>, found: GlobalInCache, signal: AbortSignal): Promise<ReconcileResult>;
  reconcileBranch(ctx: ReconcileContext<Handlers>, found: BranchInCache, signal: AbortSignal): Promise<ReconcileResult>;
  /** One word for a branch's state, as the CLI shows it: one of `branchWords.all`. */
  branchStatus(branch: BranchRecord, order?: OrderRecord): string;
  readonly branchWords: BranchWords;
}
