/**
 * The JSON records txloop keeps in etcd, and their validation. Records are read back defensively:
 * anything in etcd may have been written by an older version, by hand, or corrupted, and a malformed
 * record must never stop a control loop (invariant 9 in the README's table).
 */
import { PayloadError, TxloopError } from '../errors.js';
import type { WorkqueueStats } from '../runtime/workqueue.js';

export const GlobalStatus = {
  TRYING: 'TRYING',
  COMMITTING: 'COMMITTING',
  ROLLING_BACK: 'ROLLING_BACK',
  COMMITTED: 'COMMITTED',
  ROLLED_BACK: 'ROLLED_BACK',
} as const;
export type GlobalStatus = (typeof GlobalStatus)[keyof typeof GlobalStatus];

export const TryState = { PENDING: 'PENDING', SUCCEEDED: 'SUCCEEDED', FAILED: 'FAILED' } as const;
export type TryState = (typeof TryState)[keyof typeof TryState];

export const Action = { CONFIRM: 'confirm', CANCEL: 'cancel' } as const;
export type Action = (typeof Action)[keyof typeof Action];

/** Phase-2 progress of a branch: ACTIVE until its action succeeds (DONE) or it is parked (FAILED). */
export const Phase2State = { ACTIVE: 'ACTIVE', DONE: 'DONE', FAILED: 'FAILED' } as const;
export type Phase2State = (typeof Phase2State)[keyof typeof Phase2State];

export interface TimelineEvent {
  at: number;
  type: string;
  message: string;
}

export interface Decision {
  outcome: 'commit' | 'rollback';
  /** commit | rollback | deadline | participant:<app> | operator */
  by: string;
  reason?: string;
  at: number;
  writeId: string;
}

export interface GlobalRecord {
  v: 1;
  xid: string;
  app: string;
  name: string;
  mode: 'tcc';
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
  events: TimelineEvent[];
}

export interface Resolution {
  as: 'confirmed' | 'cancelled';
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
  events: TimelineEvent[];
}

/** The initiator's summary of a branch, kept equal to the branch record by writing both in one Txn. */
export interface LinkRecord {
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
}

export interface OrderRecord {
  v: 1;
  xid: string;
  branchId: string;
  action: Action;
  decidedAt: number;
  by: string;
  /** The branch's global is gone: its owner, not the initiator, collects the branch when done. */
  orphan?: boolean;
}

/** Orders written before `orphan` existed marked it in `by` (`participant:<app>:orphan`). */
export function isOrphanOrder(order: OrderRecord | undefined): boolean {
  return order !== undefined && (order.orphan === true || order.by.endsWith(':orphan'));
}

/** `<ns><app>/leader`: who holds the service's leadership, bound to its lease. */
export interface LeaderRecord {
  identity: string;
  host: string;
  pid: number;
  since: number;
  lease: string;
}

/** `<ns><app>/stats`: the leader's queue figures for `txloop top`, bound to its lease. */
export interface ServiceStats {
  identity: string;
  at: number;
  queues: { globals: WorkqueueStats; branches: WorkqueueStats };
  phase2: { succeeded: number; failed: number; parked: number; completed: number; collected: number };
  branches: Record<string, number>;
  /** Records under the service's prefix the engine cannot use, by key prefix (gtx, link, branch, …). */
  malformed?: Record<string, number>;
}

export const MAX_EVENTS = 30;

export function withEvent<T extends { events: TimelineEvent[] }>(record: T, type: string, message: string, at = Date.now()): T {
  const events = [...record.events, { at, type, message }];
  return { ...record, events: events.length > MAX_EVENTS ? events.slice(events.length - MAX_EVENTS) : events };
}

export function linkOf(b: BranchRecord): LinkRecord {
  const link: LinkRecord = { v: 1, xid: b.xid, owner: b.owner, branchId: b.branchId, resource: b.resource, tryState: b.tryState };
  if (b.phase2) {
    link.action = b.phase2.action;
    link.state = b.phase2.state;
    link.attempts = b.phase2.attempts;
    if (b.phase2.lastError !== undefined) link.lastError = b.phase2.lastError.slice(0, 200);
    if (b.phase2.resolution) link.resolution = b.phase2.resolution.as;
  }
  return link;
}

/** Attempts spent since the budget last started afresh: what the attempt limit is compared with. */
export function attemptsInBudget(p: Pick<Phase2, 'attempts' | 'budgetFrom'>): number {
  return p.attempts - (p.budgetFrom ?? 0);
}

/** Phase 2 of `p` re-queued with a fresh attempt budget; the attempt count goes on growing. */
export function freshBudget(p: Phase2, action: Action = p.action): Phase2 {
  return { action, state: Phase2State.ACTIVE, attempts: p.attempts, budgetFrom: p.attempts, ...(p.lastError ? { lastError: p.lastError } : {}) };
}

export function isTerminal(status: GlobalStatus): boolean {
  return status === GlobalStatus.COMMITTED || status === GlobalStatus.ROLLED_BACK;
}

/** The action every branch of a decided global receives. */
export function actionFor(status: GlobalStatus): Action | undefined {
  if (status === GlobalStatus.COMMITTING || status === GlobalStatus.COMMITTED) return Action.CONFIRM;
  if (status === GlobalStatus.ROLLING_BACK || status === GlobalStatus.ROLLED_BACK) return Action.CANCEL;
  return undefined;
}

/** One word for a branch's state, as the CLI and logs show it. */
export function branchStatus(b: BranchRecord, order?: OrderRecord): string {
  const p = b.phase2;
  if (p) {
    if (p.state === Phase2State.FAILED) return 'FAILED';
    if (p.state === Phase2State.DONE) {
      if (p.resolution) return p.resolution.as === 'confirmed' ? 'RESOLVED_CONFIRMED' : 'RESOLVED_CANCELLED';
      return p.action === Action.CONFIRM ? 'CONFIRMED' : 'CANCELLED';
    }
    return p.action === Action.CONFIRM ? 'CONFIRMING' : 'CANCELLING';
  }
  if (order) return order.action === Action.CONFIRM ? 'CONFIRMING' : 'CANCELLING';
  if (b.tryState === TryState.SUCCEEDED) return 'PREPARED';
  if (b.tryState === TryState.FAILED) return 'TRY_FAILED';
  return 'TRYING';
}

// ---------------------------------------------------------------------------------------------
// Validation of records read back from etcd

export class MalformedRecord extends TxloopError {
  override readonly name = 'MalformedRecord';
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(`malformed record at ${key}: ${problem}`);
  }
}

type Obj = Record<string, unknown>;

/** A JSON object read from etcd, or MalformedRecord naming the key. */
export function parseJsonObject(key: string, raw: string | Buffer): Obj {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString());
  } catch (err) {
    throw new MalformedRecord(key, `not JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new MalformedRecord(key, 'not a JSON object');
  return value as Obj;
}

function parseObject(key: string, raw: string | Buffer): Obj {
  const value = parseJsonObject(key, raw);
  if (value.v !== 1) throw new MalformedRecord(key, `unsupported record version ${JSON.stringify(value.v)}`);
  return value;
}

function str(key: string, o: Obj, field: string): string {
  const v = o[field];
  if (typeof v !== 'string' || v.length === 0) throw new MalformedRecord(key, `${field} must be a non-empty string`);
  return v;
}
function num(key: string, o: Obj, field: string): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new MalformedRecord(key, `${field} must be a finite number`);
  return v;
}
function optNum(key: string, o: Obj, field: string): void {
  if (o[field] !== undefined) num(key, o, field);
}
function oneOf<T extends string>(key: string, o: Obj, field: string, values: Record<string, T>): T {
  const v = o[field];
  if (!Object.values(values).includes(v as T)) throw new MalformedRecord(key, `${field} must be one of ${Object.values(values).join('|')}, got ${JSON.stringify(v)}`);
  return v as T;
}
function events(key: string, o: Obj): void {
  if (o.events === undefined) {
    o.events = [];
    return;
  }
  if (!Array.isArray(o.events)) throw new MalformedRecord(key, 'events must be an array');
}

export function parseGlobal(key: string, raw: string | Buffer): GlobalRecord {
  const o = parseObject(key, raw);
  str(key, o, 'xid');
  str(key, o, 'app');
  if (typeof o.name !== 'string') throw new MalformedRecord(key, 'name must be a string');
  if (o.mode !== 'tcc') throw new MalformedRecord(key, `unsupported mode ${JSON.stringify(o.mode)}`);
  oneOf(key, o, 'status', GlobalStatus);
  num(key, o, 'createdAt');
  num(key, o, 'timeoutMs');
  num(key, o, 'deadline');
  optNum(key, o, 'completedAt');
  if (o.decision !== undefined) {
    const d = o.decision as Obj;
    if (typeof d !== 'object' || d === null) throw new MalformedRecord(key, 'decision must be an object');
    if (d.outcome !== 'commit' && d.outcome !== 'rollback') throw new MalformedRecord(key, 'decision.outcome must be commit|rollback');
    str(key, d, 'by');
    num(key, d, 'at');
  }
  if (o.status !== GlobalStatus.TRYING && o.decision === undefined) throw new MalformedRecord(key, `status ${String(o.status)} without a decision`);
  events(key, o);
  return o as unknown as GlobalRecord;
}

export function parseBranch(key: string, raw: string | Buffer): BranchRecord {
  const o = parseObject(key, raw);
  for (const f of ['xid', 'app', 'branchId', 'owner', 'resource']) str(key, o, f);
  num(key, o, 'createdAt');
  num(key, o, 'deadline');
  num(key, o, 'updatedAt');
  oneOf(key, o, 'tryState', TryState);
  if (o.phase2 !== undefined) {
    const p = o.phase2 as Obj;
    if (typeof p !== 'object' || p === null) throw new MalformedRecord(key, 'phase2 must be an object');
    oneOf(key, p, 'action', Action);
    oneOf(key, p, 'state', Phase2State);
    num(key, p, 'attempts');
    optNum(key, p, 'budgetFrom');
    optNum(key, p, 'nextRetryAt');
  }
  if (typeof o.writeId !== 'string') o.writeId = '';
  events(key, o);
  return o as unknown as BranchRecord;
}

export function parseLink(key: string, raw: string | Buffer): LinkRecord {
  const o = parseObject(key, raw);
  for (const f of ['xid', 'owner', 'branchId', 'resource']) str(key, o, f);
  oneOf(key, o, 'tryState', TryState);
  if (o.action !== undefined) oneOf(key, o, 'action', Action);
  if (o.state !== undefined) oneOf(key, o, 'state', Phase2State);
  return o as unknown as LinkRecord;
}

export function parseOrder(key: string, raw: string | Buffer): OrderRecord {
  const o = parseObject(key, raw);
  str(key, o, 'xid');
  str(key, o, 'branchId');
  oneOf(key, o, 'action', Action);
  num(key, o, 'decidedAt');
  return o as unknown as OrderRecord;
}

export function parseLeaderRecord(key: string, raw: string | Buffer): LeaderRecord {
  const o = parseJsonObject(key, raw);
  str(key, o, 'identity');
  num(key, o, 'since');
  if (o.lease !== undefined && typeof o.lease !== 'string') throw new MalformedRecord(key, 'lease must be a string');
  return o as unknown as LeaderRecord;
}

export function parseStatsRecord(key: string, raw: string | Buffer): ServiceStats {
  const o = parseJsonObject(key, raw);
  str(key, o, 'identity');
  num(key, o, 'at');
  const q = o.queues as Record<string, unknown> | undefined;
  if (typeof q !== 'object' || q === null || typeof q.globals !== 'object' || q.globals === null || typeof q.branches !== 'object' || q.branches === null) {
    throw new MalformedRecord(key, 'queues must hold globals and branches');
  }
  if (typeof o.phase2 !== 'object' || o.phase2 === null) throw new MalformedRecord(key, 'phase2 must be an object');
  if (o.malformed !== undefined) {
    const m = o.malformed as Record<string, unknown>;
    const counts = typeof m === 'object' && m !== null && !Array.isArray(m) ? Object.values(m) : undefined;
    if (!counts?.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 0)) throw new MalformedRecord(key, 'malformed must map record kinds to counts');
  }
  return o as unknown as ServiceStats;
}

/** Serialises a user payload, refusing what cannot round-trip through JSON or fit in one etcd value. */
export function encodePayload(payload: unknown, maxBytes: number, field = 'payload'): unknown {
  if (payload === undefined) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (err) {
    throw new PayloadError(field, `is not JSON-serialisable (${(err as Error).message}); pass plain objects, arrays, strings, numbers, booleans or null`);
  }
  if (text === undefined) throw new PayloadError(field, `is not JSON-serialisable (got ${typeof payload}); pass plain data`);
  const size = Buffer.byteLength(text);
  if (size > maxBytes) {
    throw new PayloadError(field, `is ${size} bytes as JSON, over the ${maxBytes}-byte limit (maxPayloadBytes); keep large data in your own store and pass a reference`);
  }
  return JSON.parse(text) as unknown;
}
