/** Columns, filters and JSON shapes of what `get`, `top` and `-w` print. */
import { isOpen, isTerminal, type GlobalStatus } from '../states.js';
import { NONE, age, cell, relative, type Column } from './format.js';
import { MALFORMED, MODES, type BranchItem, type GlobalItem, type ServiceItem } from './model.js';
import { UsageError } from './errors.js';

export interface Sortable<R> extends Column<R> {
  /** What --sort-by compares for this column; the cell text when absent. */
  sortKey?(row: R): string | number;
}

// ---------------------------------------------------------------------------------------------
// Globals

export const globalColumns: Sortable<GlobalItem>[] = [
  // minWidth: room for a typical `<app>.<17 chars>` xid, so `-w` keeps its columns when the first list was empty.
  { header: 'XID', value: (g) => g.xid, minWidth: 26 },
  { header: 'APP', value: (g) => g.app || NONE, minWidth: 8 },
  { header: 'MODE', value: (g) => g.entry.record?.mode.toUpperCase() ?? NONE },
  { header: 'STATUS', value: (g) => g.status, minWidth: 12 },
  { header: 'BRANCHES', value: (g) => `${g.done}/${g.total}`, sortKey: (g) => g.total - g.done, minWidth: 8 },
  { header: 'PARKED', value: (g) => String(g.parked), wide: true, sortKey: (g) => g.parked },
  { header: 'NAME', value: (g) => cell(g.entry.record?.name, 40), wide: true, minWidth: 16 },
  { header: 'DECIDED BY', value: (g) => cell(decisionText(g)), wide: true },
  { header: 'DEADLINE', value: (g) => (g.entry.record && isOpen(g.entry.record.status) ? relative(g.entry.record.deadline) : NONE), wide: true, sortKey: (g) => g.entry.record?.deadline ?? 0 },
  { header: 'AGE', value: (g) => age(g.createdAt), sortKey: (g) => -(g.createdAt ?? 0) },
];

/** Who decided: `commit`/`rollback` (the initiator's own call), `deadline`, `participant:<app>`, `operator:<login>`; STATUS tells the outcome. */
function decisionText(g: GlobalItem): string | undefined {
  return g.entry.record?.decision?.by;
}

/**
 * --status for globals: a status name (TRYING, COMMITTING, ROLLING_BACK, COMMITTED, ROLLED_BACK, a
 * message's PREPARED, SUBMITTED, DELIVERED, DISCARDED, MALFORMED), or `active` (not finished), `done`
 * (finished), `parked` (has a parked branch; `failed`, its name before 0.2, still works).
 */
export const GLOBAL_STATUS_WORDS = [...new Set(MODES.all().flatMap((m) => m.statuses)), MALFORMED, 'ACTIVE', 'DONE', 'PARKED', 'FAILED'];

export function matchGlobal(g: GlobalItem, statuses: string[]): boolean {
  if (statuses.length === 0) return true;
  return statuses.some((s) => {
    if (s === 'ACTIVE') return g.status !== MALFORMED && !isTerminal(g.status as GlobalStatus);
    if (s === 'DONE') return g.status !== MALFORMED && isTerminal(g.status as GlobalStatus);
    if (s === 'PARKED' || s === 'FAILED') return g.parked > 0;
    return g.status === s;
  });
}

export function globalJson(g: GlobalItem): unknown {
  if (!g.entry.record) return malformedJson(g.entry.key, g.entry.problem, g.entry.raw);
  return { ...g.entry.record, branches: g.branches.map(branchJson) };
}

// ---------------------------------------------------------------------------------------------
// Branches

export const branchColumns: Sortable<BranchItem>[] = [
  { header: 'BRANCH', value: (b) => `${b.xid}/${b.branchId}`, minWidth: 39 },
  { header: 'OWNER', value: (b) => b.owner, minWidth: 8 },
  { header: 'RESOURCE', value: (b) => b.entry.record?.resource ?? NONE, minWidth: 10 },
  { header: 'ACTION', value: (b) => b.entry.record?.phase2?.action ?? b.order?.record?.action ?? NONE, minWidth: 7 },
  { header: 'STATUS', value: (b) => b.status, minWidth: 18 },
  { header: 'ATTEMPTS', value: (b) => String(b.entry.record?.phase2?.attempts ?? 0), sortKey: (b) => b.entry.record?.phase2?.attempts ?? 0 },
  { header: 'NEXT RETRY', value: (b) => nextRetry(b), sortKey: (b) => b.entry.record?.phase2?.nextRetryAt ?? Number.MAX_SAFE_INTEGER },
  { header: 'LAST ERROR', value: (b) => cell(lastError(b), 50), minWidth: 20 },
  { header: 'TRY', value: (b) => b.entry.record?.tryState ?? NONE, wide: true, minWidth: 9 },
  { header: 'RESOLUTION', value: (b) => cell(resolution(b)), wide: true },
  { header: 'AGE', value: (b) => age(b.createdAt), sortKey: (b) => -(b.createdAt ?? 0) },
];

function nextRetry(b: BranchItem): string {
  const p = b.entry.record?.phase2;
  if (!p || p.state !== 'ACTIVE' || p.nextRetryAt === undefined) return NONE;
  return relative(Math.max(p.nextRetryAt, Date.now()));
}

function lastError(b: BranchItem): string | undefined {
  if (!b.entry.record) return b.entry.problem;
  return b.entry.record.phase2?.lastError ?? b.entry.record.tryError;
}

function resolution(b: BranchItem): string | undefined {
  const r = b.entry.record?.phase2?.resolution;
  return r ? `${r.as} by ${r.by}: ${r.reason}` : undefined;
}

/**
 * --status for branches: a status word as shown (PARKED, CONFIRMING, CANCELLED, PREPARED, ...: the
 * words of each mode), or `pending` (not finished and not parked), `done` (confirmed, cancelled or
 * resolved), `resolved`; `failed`, PARKED's name before 0.2, still works.
 */
export const BRANCH_STATUS_WORDS = [...new Set(MODES.all().flatMap((m) => m.branchWords.all)), 'FAILED', MALFORMED, 'PENDING', 'DONE', 'RESOLVED'];

export function matchBranch(b: BranchItem, statuses: string[]): boolean {
  if (statuses.length === 0) return true;
  // A branch with a record is of a mode the CLI knows (model.ts keeps any other as MALFORMED).
  const words = b.entry.record ? MODES.of(b.entry.record.mode).branchWords : undefined;
  return statuses.some((s) => {
    if (s === 'PENDING') return words?.pending.includes(b.status) ?? false;
    if (s === 'DONE') return words?.done.includes(b.status) ?? false;
    if (s === 'RESOLVED') return words?.resolved.includes(b.status) ?? false;
    if (s === 'FAILED') return words?.parked.includes(b.status) ?? false;
    return b.status === s;
  });
}

export function branchJson(b: BranchItem): unknown {
  if (!b.entry.record) return malformedJson(b.entry.key, b.entry.problem, b.entry.raw);
  return { ...b.entry.record, status: b.status, ...(b.order?.record ? { order: b.order.record } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Services (get leaders, top)

export const leaderColumns: Sortable<ServiceItem>[] = [
  { header: 'APP', value: (s) => s.app, minWidth: 8 },
  { header: 'LEADER', value: (s) => (s.leader ? (s.leader.record?.identity ?? MALFORMED) : NONE), minWidth: 20 },
  { header: 'HOST', value: (s) => s.leader?.record?.host ?? NONE, minWidth: 12 },
  { header: 'PID', value: (s) => (s.leader?.record?.pid !== undefined ? String(s.leader.record.pid) : NONE), minWidth: 7 },
  { header: 'REPLICAS', value: (s) => String(replicaCount(s)), sortKey: (s) => replicaCount(s) },
  { header: 'LEASE', value: (s) => leaseHex(s.leader?.record?.lease), wide: true, minWidth: 16 },
  { header: 'AGE', value: (s) => age(s.leader?.record?.since), sortKey: (s) => -(s.leader?.record?.since ?? 0) },
];

/**
 * The replicas of a service that announced themselves (leader and standbys): its presence records
 * that parse. Each lives as long as its replica's lease; a malformed one is named on stderr, not counted.
 */
export function replicaCount(s: ServiceItem): number {
  return s.replicas.filter((r) => r.record !== undefined).length;
}

/** A lease id in hex, as etcdctl prints it (`etcdctl lease timetolive 694d9a3c…`); the record keeps it in decimal. */
function leaseHex(lease: string | undefined): string {
  if (lease === undefined || lease === '') return NONE;
  try {
    return BigInt(lease).toString(16);
  } catch {
    return lease;
  }
}

const queue = (s: ServiceItem, f: 'depth' | 'processing' | 'waiting' | 'retries'): number | undefined => {
  const q = s.stats?.record?.queues;
  return q ? (q.globals[f] ?? 0) + (q.branches[f] ?? 0) : undefined;
};
const num = (n: number | undefined): string => (n === undefined ? NONE : String(n));

export const topColumns: Sortable<ServiceItem>[] = [
  { header: 'APP', value: (s) => s.app },
  { header: 'LEADER', value: (s) => (s.leader ? (s.leader.record?.identity ?? MALFORMED) : NONE) },
  { header: 'REPLICAS', value: (s) => String(replicaCount(s)), sortKey: (s) => replicaCount(s) },
  { header: 'QUEUE', value: (s) => num(queue(s, 'depth')), sortKey: (s) => queue(s, 'depth') ?? -1 },
  { header: 'PROCESSING', value: (s) => num(queue(s, 'processing')) },
  { header: 'WAITING', value: (s) => num(queue(s, 'waiting')) },
  // The workqueues' delayed re-adds (client-go's retries_total): backoffs and scheduled rechecks, not phase-2 attempts (FAILED counts those).
  { header: 'REQUEUES', value: (s) => num(queue(s, 'retries')), sortKey: (s) => queue(s, 'retries') ?? -1 },
  { header: 'SUCCEEDED', value: (s) => num(s.stats?.record?.phase2.succeeded) },
  { header: 'FAILED', value: (s) => num(s.stats?.record?.phase2.failed), sortKey: (s) => s.stats?.record?.phase2.failed ?? -1 },
  { header: 'PARKED', value: (s) => num(parkedOf(s) ?? (s.stats?.record ? 0 : undefined)), sortKey: (s) => parkedOf(s) ?? -1 },
  // Records the service could not use (logged by it once each); `get`, `describe` and `top` name them.
  { header: 'MALFORMED', value: (s) => num(malformedTotal(s)), sortKey: (s) => malformedTotal(s) ?? -1 },
  { header: 'UPDATED', value: (s) => age(s.stats?.record?.at) },
];

/** Records the service's leader reported it could not use, all kinds together; 0 from a service that does not report them. */
function malformedTotal(s: ServiceItem): number | undefined {
  const stats = s.stats?.record;
  if (!stats) return undefined;
  return Object.values(stats.malformed ?? {}).reduce((n, c) => n + c, 0);
}

export function serviceJson(s: ServiceItem): unknown {
  const part = (e: ServiceItem['leader'] | ServiceItem['stats'] | ServiceItem['replicas'][number]): unknown => (e ? (e.record ?? malformedJson(e.key, e.problem, e.raw)) : null);
  return { app: s.app, leader: part(s.leader), stats: part(s.stats), replicas: s.replicas.map(part) };
}

// ---------------------------------------------------------------------------------------------

function malformedJson(key: string, problem: string | undefined, raw: string | undefined): unknown {
  return { key, status: MALFORMED, problem, raw };
}

/** Parses --status into upper-case words, refusing unknown ones (exit 2). */
export function parseStatuses(value: string | undefined, allowed: string[], flag = '--status'): string[] {
  if (value === undefined) return [];
  const words = value
    .split(',')
    .map((s) => s.trim().toUpperCase().replace(/-/g, '_'))
    .filter(Boolean);
  // `--status ''` (an empty variable, say) would otherwise quietly mean "every status".
  if (words.length === 0) throw new UsageError(`${flag} needs a value: use one of ${allowed.map((a) => a.toLowerCase()).join(', ')}`);
  for (const w of words) {
    if (!allowed.includes(w)) throw new UsageError(`invalid ${flag} ${JSON.stringify(w.toLowerCase())}: use one of ${allowed.map((a) => a.toLowerCase()).join(', ')}`);
  }
  return words;
}

/**
 * --sort-by: a column header (`age`, `status`, `next-retry`, ...) or a JSON path into the `-o json`
 * object (`.createdAt`, `.phase2.attempts`), as kubectl takes.
 */
export function sorter<R>(spec: string | undefined, columns: Sortable<R>[], json: (r: R) => unknown): ((a: R, b: R) => number) | undefined {
  const key = sortKeyOf(spec, columns, json);
  return key && ((a, b) => compare(key(a), key(b)));
}

/** What --sort-by compares for a row (see sorter), so a listing can keep that instead of the row's records. */
export function sortKeyOf<R>(spec: string | undefined, columns: Sortable<R>[], json: (r: R) => unknown): ((r: R) => unknown) | undefined {
  if (spec === undefined) return undefined;
  const s = spec.trim().replace(/^\{(.*)\}$/, '$1');
  if (s.startsWith('.')) {
    const path = s.slice(1).split('.').filter(Boolean);
    return (r: R) => path.reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), json(r));
  }
  const want = s.toUpperCase().replace(/[-_]/g, ' ');
  const col = columns.find((c) => c.header === want);
  if (!col) throw new UsageError(`invalid --sort-by ${JSON.stringify(spec)}: use a column (${columns.map((c) => c.header.toLowerCase().replace(/ /g, '-')).join(', ')}) or a JSON path like .createdAt`);
  return col.sortKey ?? ((r: R) => col.value(r));
}

export function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === undefined || a === null) return 1;
  if (b === undefined || b === null) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b), 'en', { numeric: true });
}

/** Default order: oldest first, then by key (xids are time-ordered). */
export function byCreation<R extends { createdAt?: number; key: string }>(a: R, b: R): number {
  return (a.createdAt ?? 0) - (b.createdAt ?? 0) || a.key.localeCompare(b.key);
}

/** Parked branches a leader published; leaders before 0.2 counted them as FAILED. */
function parkedOf(s: ServiceItem): number | undefined {
  const b = s.stats?.record?.branches;
  return b ? (b.PARKED ?? b.FAILED) : undefined;
}
