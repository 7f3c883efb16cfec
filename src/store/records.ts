/**
 * The JSON records txloop keeps in etcd (their shapes), and the small pure helpers every mode uses
 * on them. Validation of what is read back is in parse.ts; the rules of each mode in modes/.
 */
import { Action, Phase2State, type GlobalStatus, type ModeName, type Outcome, type TryState } from '../states.js';

export interface TimelineEvent {
  at: number;
  type: string;
  message: string;
}

export interface Decision {
  outcome: Outcome;
  /** commit | rollback | deadline | participant:<app> | operator:<login> */
  by: string;
  reason?: string;
  at: number;
  writeId: string;
}

/**
 * How a branch registration's Txn tells a TCC global from a saga's or a message's: all three sit at
 * version 1 until they are decided, but a TCC global's JSON begins `{"v"` (every version's), while
 * sagas and messages are written with `mode` first, `{"mode"`. etcd compares values bytewise, so
 * "value above `{"n`" holds for exactly the TCC ones — no read before a Try's registration.
 */
export const TCC_GLOBAL_VALUE_ABOVE = '{"n';

export interface GlobalRecord {
  v: 1;
  xid: string;
  app: string;
  name: string;
  mode: ModeName;
  status: GlobalStatus;
  createdAt: number;
  timeoutMs: number;
  deadline: number;
  decision?: Decision;
  /** false while some branches still lack their phase-2 order (decision larger than one etcd Txn). */
  fannedOut?: boolean;
  completedAt?: number;
  /** A human resolved a branch against the decision (what TCC calls a "heuristic" outcome). */
  heuristic?: boolean;
  /** A saga's steps, in order, as its initiator declared them: each group's branches are created from them when it is ordered. */
  steps?: SagaStepPlan[];
  /**
   * A 2-phase message's consumers, kept in its global from prepare until its submit turns each into
   * a branch of its own (a discarded message keeps them, for inspection).
   */
  consumers?: MessageConsumerEntry[];
  events: TimelineEvent[];
}

/** One step of a saga as declared: its owner runs `resource`'s action (and, if the saga fails, its compensation). */
export interface SagaStepPlan {
  branchId: string;
  owner: string;
  resource: string;
  /** Groups run in order (0 first); steps of one group run concurrently. */
  group: number;
  payload: unknown;
}

/** One consumer of a prepared message: which service's consumer resource gets what, under which branch id. */
export interface MessageConsumerEntry {
  service: string;
  resource: string;
  branchId: string;
  payload: unknown;
}

export interface Resolution {
  /** confirmed | cancelled (TCC), compensated (a saga step), delivered (a message consumer). */
  as: 'confirmed' | 'cancelled' | 'compensated' | 'delivered';
  reason: string;
  at: number;
  by: string;
}

export interface Phase2 {
  action: Action;
  state: Phase2State;
  /** Attempts ever started for this branch: recorded before each handler runs, never reset, so it only grows. */
  attempts: number;
  /** `attempts` when the attempt budget last started afresh (an operator's retry, a late Try's re-opened cancel). */
  budgetFrom?: number;
  lastError?: string;
  lastAttemptAt?: number;
  nextRetryAt?: number;
  doneAt?: number;
  resolution?: Resolution;
}

export interface BranchRecord {
  v: 1;
  mode: ModeName;
  xid: string;
  /** The initiator's app (where the global lives). */
  app: string;
  branchId: string;
  owner: string;
  resource: string;
  payload: unknown;
  createdAt: number;
  /** The global's deadline, copied so a participant can act on it without reading the global. */
  deadline: number;
  tryState: TryState;
  tryError?: string;
  phase2?: Phase2;
  updatedAt: number;
  writeId: string;
  /** 2: its member record is under `member/`; absent (0.1, or a 0.2 service with `legacyLinks`): under `link/`. */
  keyLayout?: 2;
  /** A saga step's group: groups run in order, the steps of one group concurrently. */
  group?: number;
  /**
   * A saga step whose finish moved the saga on (ordered the next group, or ended it): from then on
   * the saga's deadline is other owners' business. A step finished before the rest of its group
   * still watches it (invariant 10).
   */
  handedOn?: true;
  events: TimelineEvent[];
}

/**
 * The initiator's record of one member branch of its transaction, kept equal to the branch record's
 * summary by writing both in one Txn: what decisions and completion read without visiting every
 * participant's prefix.
 */
export interface MemberRecord {
  v: 1;
  xid: string;
  owner: string;
  branchId: string;
  resource: string;
  tryState: TryState;
  action?: Action;
  state?: Phase2State;
  attempts?: number;
  lastError?: string;
  resolution?: Resolution['as'];
  /** A saga step's group (BranchRecord.group). */
  group?: number;
  /** Never stored: a read's stand-in for a member record that does not parse (its key's facts only). */
  malformed?: true;
}

export interface OrderRecord {
  v: 1;
  mode: ModeName;
  xid: string;
  branchId: string;
  action: Action;
  decidedAt: number;
  by: string;
  /** The branch's global is gone: its owner, not the initiator, collects the branch when done. */
  orphan?: boolean;
}

export const MAX_EVENTS = 30;

/** `record` with one more timeline event; the timeline keeps the last MAX_EVENTS. */
export function withEvent<T extends { events: TimelineEvent[] }>(record: T, type: string, message: string, at = Date.now()): T {
  const events = [...record.events, { at, type, message }];
  return { ...record, events: events.length > MAX_EVENTS ? events.slice(events.length - MAX_EVENTS) : events };
}

/** The initiator's summary of a branch. */
export function memberOf(b: BranchRecord): MemberRecord {
  const member: MemberRecord = { v: 1, xid: b.xid, owner: b.owner, branchId: b.branchId, resource: b.resource, tryState: b.tryState };
  if (b.phase2) {
    member.action = b.phase2.action;
    member.state = b.phase2.state;
    member.attempts = b.phase2.attempts;
    if (b.phase2.lastError !== undefined) member.lastError = b.phase2.lastError.slice(0, 200);
    if (b.phase2.resolution) member.resolution = b.phase2.resolution.as;
  }
  if (b.group !== undefined) member.group = b.group;
  return member;
}

/** Orders written before `orphan` existed marked it in `by` (`participant:<app>:orphan`). */
export function isOrphanOrder(order: OrderRecord | undefined): boolean {
  return order !== undefined && (order.orphan === true || order.by.endsWith(':orphan'));
}

/** Attempts spent since the budget last started afresh: what the attempt limit is compared with. */
export function attemptsInBudget(p: Pick<Phase2, 'attempts' | 'budgetFrom'>): number {
  return p.attempts - (p.budgetFrom ?? 0);
}

/** Phase 2 of `p` re-queued with a fresh attempt budget; the attempt count goes on growing. */
export function freshBudget(p: Phase2, action: Action = p.action): Phase2 {
  return { action, state: Phase2State.ACTIVE, attempts: p.attempts, budgetFrom: p.attempts, ...(p.lastError ? { lastError: p.lastError } : {}) };
}

/** A phase-2 order for a member branch. */
export function orderFor(member: Pick<MemberRecord, 'xid' | 'branchId'>, mode: ModeName, action: Action, by: string, at: number, orphan = false): OrderRecord {
  return { v: 1, mode, xid: member.xid, branchId: member.branchId, action, decidedAt: at, by, ...(orphan ? { orphan: true } : {}) };
}


/**
 * What a finished branch (phase 2 DONE) is kept as in its owner's memory until it is collected:
 * the record without its payload and its timeline, which nothing reads once phase 2 is done. Its
 * phase 2 (action, attempts, `doneAt`, a resolution), Try state and key fields stay, so its status
 * word, an orphan's collection (store/branches.ts `delete`) and its member key are unchanged.
 * Undefined for a branch not DONE. Never written back: etcd keeps the whole record.
 */
export function finishedSummary(b: BranchRecord): BranchRecord | undefined {
  // A saga step's action is done, but its compensation may follow and needs the payload.
  if (b.phase2?.state !== Phase2State.DONE || b.phase2.action === Action.ACTION) return undefined;
  const { payload: _payload, events: _events, tryError: _tryError, ...rest } = b;
  return { ...rest, payload: null, events: [] };
}
