/**
 * Validation of the records read back from etcd. Anything in etcd may have been written by an older
 * version, by hand, or corrupted, and a malformed record must never stop a control loop (invariant 9):
 * each parser returns a typed record or throws MalformedRecord naming the key and the problem.
 *
 * Records written by earlier versions read as today's: no `mode` means TCC, a phase-2 state FAILED
 * means PARKED.
 */
import { MalformedRecord } from '../errors.js';
import { Action, GlobalStatus, MODE_NAME_RULE, Mode, Phase2State, TryState, isDecided } from '../states.js';
import type { LeaderRecord, ReplicaRecord } from '../leader.js';
import type { ServiceStats } from '../stats.js';
import { validateApp, validateBranchId, validateResource } from './keys.js';
import type { BranchRecord, GlobalRecord, MemberRecord, OrderRecord } from './records.js';

type Obj = Record<string, unknown>;

/**
 * A parser that also reads cache entries, each parsed once: the informer hands every change to the
 * router (which validates it), then to a reconcile, which may read it again with its neighbours,
 * moments later. `ofEntry` is keyed by the cache entry (a new one per change, so a change is always
 * parsed afresh); the last two thousand of at most 8 KiB are kept (not every cached one: that
 * would double the cache's memory; not large ones, which it must not pin). Callers treat records as immutable (they build new ones with spreads); handlers
 * get a copy of the payload.
 */
const MEMO_SIZE = 2048;
/** Larger values are parsed each time: the memo must not pin big payloads. */
const MEMO_MAX_BYTES = 8192;
export interface Parser<T> {
  (key: string, raw: string | Buffer): T;
  /** The record of a cache entry, parsed once per entry. */
  ofEntry(key: string, entry: { readonly value: Buffer; readonly size?: number }): T;
}
function memoized<T>(parse: (key: string, raw: string | Buffer) => T): Parser<T> {
  const seen = new Map<object, T>();
  return Object.assign((key: string, raw: string | Buffer) => parse(key, raw), {
    ofEntry(key: string, entry: { readonly value: Buffer; readonly size?: number }): T {
      const hit = seen.get(entry);
      if (hit !== undefined) return hit;
      const value = entry.value;
      const record = parse(key, value);
      if ((entry.size ?? value.length) > MEMO_MAX_BYTES) return record;
      if (seen.size >= MEMO_SIZE) seen.delete(seen.keys().next().value!);
      seen.set(entry, record);
      return record;
    },
  });
}

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
/**
 * Records without a mode were written before modes existed: they are TCC. Any well-formed mode name
 * reads: whether a service runs that mode is its mode registry's decision, not the parser's.
 */
function mode(key: string, o: Obj): void {
  if (o.mode === undefined) o.mode = Mode.TCC;
  else if (typeof o.mode !== 'string' || !MODE_NAME_RULE.test(o.mode)) throw new MalformedRecord(key, `mode must be a mode name like ${JSON.stringify(Mode.TCC)} (${MODE_NAME_RULE.source}), got ${JSON.stringify(o.mode)}`);
}
/**
 * A saga's declared steps (GlobalRecord.steps). The owner that finishes a group builds the next
 * group's keys from them, so each must name valid keys; branch ids are unique, and groups run
 * 0, 1, 2… with none missing (a gap would end the saga's forward run early).
 */
function sagaSteps(key: string, steps: unknown): void {
  if (!Array.isArray(steps)) throw new MalformedRecord(key, 'steps must be an array');
  const ids = new Set<string>();
  let groups = 0;
  steps.forEach((s: unknown, i) => {
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new MalformedRecord(key, `steps[${i}] must be an object`);
    validKeyParts(key, s as Obj, { owner: validateApp, resource: validateResource, branchId: validateBranchId }, `steps[${i}]`);
    const step = s as Obj;
    const group = step.group;
    if (typeof group !== 'number' || !Number.isSafeInteger(group) || group < 0) throw new MalformedRecord(key, `steps[${i}].group must be a whole number from 0`);
    if (ids.has(step.branchId as string)) throw new MalformedRecord(key, `steps[${i}].branchId ${JSON.stringify(step.branchId)} is used by another step`);
    ids.add(step.branchId as string);
    if (group > groups) throw new MalformedRecord(key, `steps[${i}].group is ${group}, after group ${groups - 1}: groups must follow each other from 0`);
    if (group === groups) groups++;
    if (!('payload' in step)) step.payload = null;
  });
}
/** Fields a record's keys are built from, each checked by its key rule (a MalformedRecord naming it). */
function validKeyParts(key: string, o: Obj, rules: Record<string, (v: unknown, field: string) => string>, where: string): void {
  for (const [f, valid] of Object.entries(rules)) {
    try {
      valid(o[f], `${where}.${f}`);
    } catch (err) {
      throw new MalformedRecord(key, (err as Error).message);
    }
  }
}
/** A saga step's group: its place in the saga's order (steps of one group run concurrently). */
function optGroup(key: string, o: Obj): void {
  if (o.group !== undefined && (typeof o.group !== 'number' || !Number.isSafeInteger(o.group) || o.group < 0)) throw new MalformedRecord(key, `group must be a whole number from 0, got ${JSON.stringify(o.group)}`);
}
/** A prepared message's consumers: each a service, a resource and a branch id (its submit makes them branches). */
function consumers(key: string, o: Obj): void {
  if (o.consumers === undefined) return;
  if (!Array.isArray(o.consumers)) throw new MalformedRecord(key, 'consumers must be an array');
  o.consumers.forEach((c: unknown, i) => {
    if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new MalformedRecord(key, `consumers[${i}] must be an object`);
    // Its keys are built from these at submit: one that names no valid key must not get that far.
    validKeyParts(key, c as Obj, { service: validateApp, resource: validateResource, branchId: validateBranchId }, `consumers[${i}]`);
    if (!('payload' in c)) (c as Obj).payload = null;
  });
}
/** A phase-2 state; FAILED is what versions before 0.2 wrote for PARKED. */
function phase2State(key: string, o: Obj, field: string): void {
  if (o[field] === 'FAILED') o[field] = Phase2State.PARKED;
  oneOf(key, o, field, Phase2State);
}

export const parseGlobal = memoized(function parseGlobal(key: string, raw: string | Buffer): GlobalRecord {
  const o = parseObject(key, raw);
  str(key, o, 'xid');
  str(key, o, 'app');
  if (typeof o.name !== 'string') throw new MalformedRecord(key, 'name must be a string');
  mode(key, o);
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
  if (o.steps !== undefined) sagaSteps(key, o.steps);
  if (isDecided(o.status as GlobalStatus) && o.decision === undefined) throw new MalformedRecord(key, `status ${String(o.status)} without a decision`);
  consumers(key, o);
  events(key, o);
  return o as unknown as GlobalRecord;
});

export const parseBranch = memoized(function parseBranch(key: string, raw: string | Buffer): BranchRecord {
  const o = parseObject(key, raw);
  mode(key, o);
  for (const f of ['xid', 'app', 'branchId', 'owner', 'resource']) str(key, o, f);
  num(key, o, 'createdAt');
  num(key, o, 'deadline');
  num(key, o, 'updatedAt');
  oneOf(key, o, 'tryState', TryState);
  if (o.phase2 !== undefined) {
    const p = o.phase2 as Obj;
    if (typeof p !== 'object' || p === null) throw new MalformedRecord(key, 'phase2 must be an object');
    oneOf(key, p, 'action', Action);
    phase2State(key, p, 'state');
    num(key, p, 'attempts');
    optNum(key, p, 'budgetFrom');
    optNum(key, p, 'nextRetryAt');
  }
  optGroup(key, o);
  if (typeof o.writeId !== 'string') o.writeId = '';
  events(key, o);
  return o as unknown as BranchRecord;
});

export const parseMember = memoized(function parseMember(key: string, raw: string | Buffer): MemberRecord {
  const o = parseObject(key, raw);
  for (const f of ['xid', 'owner', 'branchId', 'resource']) str(key, o, f);
  oneOf(key, o, 'tryState', TryState);
  if (o.action !== undefined) oneOf(key, o, 'action', Action);
  if (o.state !== undefined) phase2State(key, o, 'state');
  optGroup(key, o);
  return o as unknown as MemberRecord;
});

export const parseOrder = memoized(function parseOrder(key: string, raw: string | Buffer): OrderRecord {
  const o = parseObject(key, raw);
  mode(key, o);
  str(key, o, 'xid');
  str(key, o, 'branchId');
  oneOf(key, o, 'action', Action);
  num(key, o, 'decidedAt');
  if (typeof o.by !== 'string') o.by = '';
  return o as unknown as OrderRecord;
});

export function parseLeaderRecord(key: string, raw: string | Buffer): LeaderRecord {
  const o = parseJsonObject(key, raw);
  str(key, o, 'identity');
  num(key, o, 'since');
  if (o.lease !== undefined && typeof o.lease !== 'string') throw new MalformedRecord(key, 'lease must be a string');
  return o as unknown as LeaderRecord;
}

/**
 * A replica's presence record. Only written by 0.2 and later (the election), so every field is
 * required: a record missing one was not written by a replica.
 */
export function parseReplicaRecord(key: string, raw: string | Buffer): ReplicaRecord {
  const o = parseJsonObject(key, raw);
  str(key, o, 'identity');
  if (typeof o.host !== 'string') throw new MalformedRecord(key, 'host must be a string');
  if (typeof o.pid !== 'number' || !Number.isSafeInteger(o.pid) || o.pid < 0) throw new MalformedRecord(key, `pid must be a process id (a whole number from 0), got ${JSON.stringify(o.pid)}`);
  num(key, o, 'since');
  if (typeof o.lease !== 'string' || !/^[1-9][0-9]{0,18}$/.test(o.lease)) throw new MalformedRecord(key, `lease must be a lease id in decimal, got ${JSON.stringify(o.lease)}`);
  return o as unknown as ReplicaRecord;
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
