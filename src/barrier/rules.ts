/**
 * The branch barrier's rules (seed 003: idempotence, empty rollback, anti-hanging; DESIGN invariant 5:
 * fencing), as pure functions over one branch's barrier record. The etcd and PostgreSQL barriers
 * read the record, ask `decide()` what to do, and write its `next` record in the same etcd Txn /
 * SQL transaction as the participant's own write — so the rules are the same for both stores and
 * tested without either (test/barrier-rules.test.ts).
 *
 * One record per (xid, branchId):
 *   phase1       the branch's first phase: `try` (TCC) or `action` (saga), and whether it was
 *                `applied` (its handler's write committed) or `blocked` (a cancel/compensation came
 *                first: that empty rollback is recorded so the late first phase is refused);
 *   phase2       the second-phase op applied: `confirm`, `cancel` or `compensate` (`emptyRollback`
 *                when it ran without effect because its first phase never had);
 *   fencingToken the highest (fencing token, attempt) that wrote this record, so an attempt of an
 *   + attempt    older term (or an older attempt of the same term) is refused.
 */
import { ValidationError } from '../errors.js';
import { validateBranchId, validateXid } from '../store/index.js';

export const BarrierOp = {
  /** TCC phase 1. */
  TRY: 'try',
  /** TCC phase 2, forward. */
  CONFIRM: 'confirm',
  /** TCC phase 2, rollback of `try`. */
  CANCEL: 'cancel',
  /** Saga: a step's action (phase 1 of its branch). */
  ACTION: 'action',
  /** Saga: the rollback of `action`. */
  COMPENSATE: 'compensate',
} as const;
export type BarrierOp = (typeof BarrierOp)[keyof typeof BarrierOp];
export type Phase1Op = typeof BarrierOp.TRY | typeof BarrierOp.ACTION;
export type Phase2Op = typeof BarrierOp.CONFIRM | typeof BarrierOp.CANCEL | typeof BarrierOp.COMPENSATE;

const OPS: readonly string[] = Object.values(BarrierOp);
const PHASE1_OPS: readonly string[] = [BarrierOp.TRY, BarrierOp.ACTION];
/** The phase-1 op each rollback op undoes. */
const ORIGIN: Record<string, Phase1Op> = { [BarrierOp.CANCEL]: BarrierOp.TRY, [BarrierOp.COMPENSATE]: BarrierOp.ACTION, [BarrierOp.CONFIRM]: BarrierOp.TRY };

export const BarrierRefusal = {
  /** A first phase (Try/action) arriving after its rollback, or after its second phase (anti-hanging). */
  HANGING: 'hanging',
  /** A newer (fencingToken, attempt) already wrote this branch's barrier: this attempt is stale. */
  STALE_TERM: 'stale-term',
  /** An op that contradicts what is recorded: a cancel after a confirm, a confirm after a cancel, saga ops on a TCC branch. */
  CONFLICT: 'conflict',
} as const;
export type BarrierRefusal = (typeof BarrierRefusal)[keyof typeof BarrierRefusal];

/**
 * What the barrier needs from a handler's context. txloop's `TryContext` and `PhaseTwoContext` fit
 * as they are: pass the context your handler received.
 */
export interface BarrierContext {
  readonly xid: string;
  readonly branchId: string;
  /** The leader term that started a phase-2 attempt (absent in a Try: it runs on the caller's request). */
  readonly fencingToken?: string;
  /** The attempt number, with `fencingToken`. */
  readonly attempt?: number;
  /** A phase-2 context's action: checked against the op, so a confirm handler cannot record a cancel. */
  readonly action?: string;
  /** Aborted when the handler must stop: the barrier then commits nothing. */
  readonly signal?: AbortSignal;
}

/** One branch's barrier record, as both stores keep it. */
export interface BarrierRecord {
  readonly xid: string;
  readonly branchId: string;
  readonly phase1?: Phase1Op;
  readonly phase1State?: 'applied' | 'blocked';
  readonly phase2?: Phase2Op;
  /** The phase-2 op was an empty rollback: it ran no handler, because its first phase never had. */
  readonly emptyRollback?: boolean;
  /** The highest fencing token that wrote this record, a decimal integer; '0' before any. */
  readonly fencingToken: string;
  /** The attempt that went with it; 0 before any. */
  readonly attempt: number;
  /** Epoch ms. */
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** What a barrier call did. A refusal is not an outcome: it throws {@link BarrierRefused}. */
export type BarrierResult<T> =
  /** The handler ran and its write committed together with the barrier record. */
  | { readonly outcome: 'applied'; readonly applied: true; readonly value: T }
  /** Already applied (a retry, a redelivery, a replayed request): nothing ran, nothing was written. */
  | { readonly outcome: 'duplicate'; readonly applied: false }
  /** A rollback whose first phase never ran: the handler did not run; the record now blocks that first phase. */
  | { readonly outcome: 'empty-rollback'; readonly applied: false };

export interface BarrierFence {
  readonly token: bigint;
  readonly attempt: number;
}

export type BarrierDecision =
  | { readonly kind: 'run'; readonly next: BarrierRecord }
  | { readonly kind: 'empty-rollback'; readonly next: BarrierRecord }
  | { readonly kind: 'duplicate' }
  | { readonly kind: 'refuse'; readonly reason: BarrierRefusal; readonly message: string };

/** A checked call: the ids, the op, and the fence of a phase-2 attempt. */
export interface BarrierCall {
  readonly xid: string;
  readonly branchId: string;
  readonly op: BarrierOp;
  readonly fence: BarrierFence | undefined;
}

const MAX_TOKEN = 2n ** 63n - 1n;

/** Validates what a handler passed; a mistake here is the caller's, so it is a ValidationError. */
export function barrierCall(ctx: BarrierContext, op: BarrierOp): BarrierCall {
  if (typeof ctx !== 'object' || ctx === null) throw new ValidationError('ctx', 'pass the context your handler received');
  const xid = validateXid(ctx.xid, 'ctx.xid');
  const branchId = validateBranchId(ctx.branchId, 'ctx.branchId');
  if (typeof op !== 'string' || !OPS.includes(op)) throw new ValidationError('op', `${JSON.stringify(op)} is not a barrier op: use one of ${OPS.join(', ')}`);
  if (ctx.action !== undefined && ctx.action !== op) {
    throw new ValidationError('op', `the barrier was asked to record ${op} in a ${String(ctx.action)} handler`);
  }
  let fence: BarrierFence | undefined;
  if (ctx.fencingToken !== undefined) {
    // An etcd revision: a 64-bit signed integer (a PostgreSQL bigint holds it).
    if (typeof ctx.fencingToken !== 'string' || !/^(0|[1-9][0-9]{0,18})$/.test(ctx.fencingToken) || BigInt(ctx.fencingToken) > MAX_TOKEN) {
      throw new ValidationError('ctx.fencingToken', `${JSON.stringify(ctx.fencingToken)} is not a fencing token (a decimal integer, an etcd revision)`);
    }
    const attempt = ctx.attempt ?? 0;
    if (!Number.isSafeInteger(attempt) || attempt < 0 || attempt > 2_147_483_647) {
      throw new ValidationError('ctx.attempt', `${JSON.stringify(ctx.attempt)} is not an attempt number`);
    }
    fence = { token: BigInt(ctx.fencingToken), attempt };
  } else if (ctx.attempt !== undefined) {
    throw new ValidationError('ctx.fencingToken', 'an attempt without its fencing token cannot be ordered against other attempts');
  }
  return { xid, branchId, op, fence };
}

/** -1, 0 or 1 as `a` orders before, with or after `b` (the token first, then the attempt). */
export function compareFences(a: BarrierFence, b: BarrierFence): number {
  if (a.token !== b.token) return a.token < b.token ? -1 : 1;
  return a.attempt === b.attempt ? 0 : a.attempt < b.attempt ? -1 : 1;
}

export function fenceOf(record: BarrierRecord): BarrierFence {
  return { token: BigInt(record.fencingToken), attempt: record.attempt };
}

/** The record before anything was written for a branch. */
export function emptyRecord(xid: string, branchId: string, now: number): BarrierRecord {
  return { xid, branchId, fencingToken: '0', attempt: 0, createdAt: now, updatedAt: now };
}

/**
 * What to do with `call` given the branch's record (undefined: nothing recorded yet). The fence is
 * checked first: a stale attempt is told so even when its op is already applied.
 */
export function decide(record: BarrierRecord | undefined, call: BarrierCall, now: number): BarrierDecision {
  const { op, fence } = call;
  const current = record ?? emptyRecord(call.xid, call.branchId, now);
  const what = `${op} of branch ${call.branchId} in ${call.xid}`;
  if (fence && compareFences(fenceOf(current), fence) > 0) {
    return refuse(
      BarrierRefusal.STALE_TERM,
      `${what} refused: fencing token ${fence.token} attempt ${fence.attempt} is older than token ${current.fencingToken} attempt ${current.attempt}, which already wrote this branch's barrier`,
    );
  }
  // A fenced write records its fence; an unfenced one (a Try) keeps the one recorded.
  const fenced = fence && compareFences(fence, fenceOf(current)) > 0 ? { fencingToken: fence.token.toString(), attempt: fence.attempt } : {};
  const next = (change: Partial<BarrierRecord>): BarrierRecord => ({ ...current, ...change, ...fenced, updatedAt: now });

  if (PHASE1_OPS.includes(op)) {
    if (current.phase1State === 'blocked' || (current.phase2 !== undefined && current.phase1State === undefined)) {
      return refuse(BarrierRefusal.HANGING, `${what} refused: its ${current.phase2 ?? 'rollback'} came first${current.emptyRollback ? ' (an empty rollback)' : ''}, so it may not run now (anti-hanging)`);
    }
    if (current.phase1 !== undefined && current.phase1 !== op) return refuse(BarrierRefusal.CONFLICT, `${what} refused: this branch recorded ${current.phase1}, not ${op}`);
    if (current.phase1State === 'applied') return { kind: 'duplicate' };
    return { kind: 'run', next: next({ phase1: op as Phase1Op, phase1State: 'applied' }) };
  }

  const origin = ORIGIN[op]!;
  if (current.phase2 === op) return { kind: 'duplicate' };
  if (current.phase2 !== undefined) return refuse(BarrierRefusal.CONFLICT, `${what} refused: this branch already recorded ${current.phase2}`);
  if (current.phase1 !== undefined && current.phase1 !== origin) return refuse(BarrierRefusal.CONFLICT, `${what} refused: this branch recorded ${current.phase1}, and ${op} follows ${origin}`);
  if (op !== BarrierOp.CONFIRM && current.phase1State === undefined) {
    // Empty rollback: nothing to undo. Recorded, so the first phase, if it comes late, is refused.
    return { kind: 'empty-rollback', next: next({ phase1: origin, phase1State: 'blocked', phase2: op as Phase2Op, emptyRollback: true }) };
  }
  return { kind: 'run', next: next({ phase2: op as Phase2Op, emptyRollback: false }) };
}

function refuse(reason: BarrierRefusal, message: string): BarrierDecision {
  return { kind: 'refuse', reason, message };
}
