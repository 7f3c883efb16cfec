/**
 * What the CLI knows about a namespace: every key read from etcd, validated with the record parse
 * functions. A record that fails validation is kept as MALFORMED with its problem instead of
 * stopping the command; a key that is no txloop key, and a member or order whose global or branch is
 * missing, are kept as problems too: problems() lists every record the CLI cannot use, for the
 * warnings on stderr. Fed by one range, or by a watch.
 */
import { MalformedRecord } from '../errors.js';
import { builtInModes } from '../modes/index.js';
import { Phase2State } from '../states.js';
import {
  Keys,
  appOfXid,
  parseBranch,
  parseGlobal,
  parseLeaderRecord,
  parseMember,
  parseOrder,
  parseReplicaRecord,
  parseStatsRecord,
  type BranchRecord,
  type GlobalRecord,
  type MemberRecord,
  type OrderRecord,
  type ParsedKey,
} from '../store/index.js';
import type { LeaderRecord, ReplicaRecord } from '../leader.js';
import type { ServiceStats } from '../stats.js';
import { keyProblem } from './key-problems.js';

export const MALFORMED = 'MALFORMED';

/** The modes the CLI understands: their words, their branch statuses. */
export const MODES = builtInModes();

/**
 * `parse`, and a record of a mode the CLI does not understand kept as MALFORMED naming its mode (as a
 * service reports it): its statuses and words are its mode's, unknown here.
 */
function ofKnownMode<T extends { mode: string }>(parse: (key: string, raw: Buffer) => T): (key: string, raw: Buffer) => T {
  return (key, raw) => {
    const record = parse(key, raw);
    const problem = MODES.notRun(record.mode);
    if (problem !== undefined) throw new MalformedRecord(key, problem);
    return record;
  };
}
const parseKnownGlobal = ofKnownMode(parseGlobal);
const parseKnownBranch = ofKnownMode(parseBranch);
const parseKnownOrder = ofKnownMode(parseOrder);

export interface Entry<T> {
  key: string;
  record?: T;
  /** Why the record could not be used (then `record` is undefined). */
  problem?: string;
  raw?: string;
}

export interface GlobalItem {
  key: string;
  xid: string;
  app: string;
  entry: Entry<GlobalRecord>;
  members: Entry<MemberRecord>[];
  branches: BranchItem[];
  status: string;
  done: number;
  total: number;
  parked: number;
  createdAt?: number;
}

export interface BranchItem {
  key: string;
  xid: string;
  branchId: string;
  owner: string;
  entry: Entry<BranchRecord>;
  order?: Entry<OrderRecord>;
  member?: Entry<MemberRecord>;
  status: string;
  createdAt?: number;
}

export interface ServiceItem {
  app: string;
  leader?: Entry<LeaderRecord>;
  stats?: Entry<ServiceStats>;
  /** Every presence record of the app (one per live replica, the leader's included), by key. */
  replicas: Entry<ReplicaRecord>[];
}

/** The entry a key gets, given the parse function of its kind; undefined deletes it. */
type EntryOf = <T>(parse: (key: string, raw: Buffer) => T) => Entry<T> | undefined;

/** What a changed key affects, so `-w` re-renders only that row. */
export type Change = { kind: 'global'; xid: string } | { kind: 'branch'; key: string } | { kind: 'service'; app: string };

export class Model {
  readonly keys: Keys;
  private readonly globals = new Map<string, Entry<GlobalRecord>>();
  /** xid → member key → member */
  private readonly members = new Map<string, Map<string, Entry<MemberRecord>>>();
  /** branch key → branch */
  private readonly branches = new Map<string, Entry<BranchRecord>>();
  /** branch key (not order key) → order */
  private readonly orders = new Map<string, Entry<OrderRecord>>();
  private readonly leaders = new Map<string, Entry<LeaderRecord>>();
  private readonly stats = new Map<string, Entry<ServiceStats>>();
  /** app → presence key → presence record */
  private readonly replicas = new Map<string, Map<string, Entry<ReplicaRecord>>>();
  /** Keys under the namespace that are no txloop key → why. */
  private readonly strays = new Map<string, string>();

  constructor(namespace: string) {
    this.keys = new Keys(namespace);
  }

  /** Applies a put (value) or delete (undefined) of one key. */
  set(key: string, value: Buffer | undefined): Change | undefined {
    return this.apply(key, value !== undefined, (parse) => value && this.parse(key, value, parse));
  }

  /** A key whose value could not be read at all (e.g. larger than the client accepts): kept as malformed. */
  unreadable(key: string, problem: string): Change | undefined {
    return this.apply(key, true, () => ({ key, problem }));
  }

  private apply(key: string, present: boolean, entryOf: EntryOf): Change | undefined {
    const p = this.keys.parse(key);
    const stray = p ? misplaced(this.keys, p) : key.startsWith(this.keys.ns) ? keyProblem(this.keys.ns, key) : undefined;
    if (!p || stray !== undefined) {
      if (stray !== undefined && present) this.strays.set(key, stray);
      else this.strays.delete(key);
      return undefined;
    }
    switch (p.kind) {
      case 'global':
        update(this.globals, p.xid, entryOf(parseKnownGlobal));
        return { kind: 'global', xid: p.xid };
      case 'member': {
        let m = this.members.get(p.xid);
        if (!m) this.members.set(p.xid, (m = new Map()));
        update(m, key, entryOf(parseMember));
        if (m.size === 0) this.members.delete(p.xid);
        return { kind: 'global', xid: p.xid };
      }
      case 'branch':
        update(this.branches, key, entryOf(parseKnownBranch));
        return { kind: 'branch', key };
      case 'order': {
        const bkey = this.keys.branch(p.owner, p.xid, p.branchId);
        update(this.orders, bkey, entryOf(parseKnownOrder));
        return { kind: 'branch', key: bkey };
      }
      case 'leader':
        update(this.leaders, p.app, entryOf(parseLeaderRecord));
        return { kind: 'service', app: p.app };
      case 'stats':
        update(this.stats, p.app, entryOf(parseStatsRecord));
        return { kind: 'service', app: p.app };
      case 'replica': {
        let r = this.replicas.get(p.app);
        if (!r) this.replicas.set(p.app, (r = new Map()));
        update(r, key, entryOf(parseReplicaRecord));
        if (r.size === 0) this.replicas.delete(p.app);
        return { kind: 'service', app: p.app };
      }
    }
  }

  /**
   * Every record the CLI cannot use, as `key: problem`, sorted by key: values that fail validation,
   * keys that are no txloop key, and members and orders whose global or branch record is missing.
   * One consistent read never holds such a member or order (they are written and deleted with what
   * they point to), so they are only reported for a whole read, not for one key under `-w`.
   */
  problems(): string[] {
    const out: [string, string][] = [...this.strays];
    for (const e of this.entries()) if (e.problem !== undefined) out.push([e.key, e.problem]);
    for (const [xid, members] of this.members) {
      if (this.globals.has(xid)) continue;
      for (const m of members.values()) if (m.problem === undefined) out.push([m.key, `orphan member: transaction ${xid} has no global record`]);
    }
    for (const [bkey, o] of this.orders) {
      if (o.problem !== undefined || this.branches.has(bkey)) continue;
      const p = this.keys.parse(bkey);
      out.push([o.key, `orphan order: branch ${p?.kind === 'branch' ? `${p.xid}/${p.branchId}` : bkey} has no branch record`]);
    }
    return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, problem]) => `${k}: ${problem}`);
  }

  /** The problem with the record at `key` alone (its key or its value), as `key: problem`. */
  problemAt(key: string): string[] {
    const stray = this.strays.get(key);
    if (stray !== undefined) return [`${key}: ${stray}`];
    const e = this.entryAt(key);
    return e?.problem !== undefined ? [`${key}: ${e.problem}`] : [];
  }

  private *entries(): Iterable<Entry<unknown>> {
    yield* this.globals.values();
    for (const m of this.members.values()) yield* m.values();
    yield* this.branches.values();
    yield* this.orders.values();
    yield* this.leaders.values();
    yield* this.stats.values();
    for (const r of this.replicas.values()) yield* r.values();
  }

  private entryAt(key: string): Entry<unknown> | undefined {
    const p = this.keys.parse(key);
    switch (p?.kind) {
      case 'global':
        return this.globals.get(p.xid);
      case 'member':
        return this.members.get(p.xid)?.get(key);
      case 'branch':
        return this.branches.get(key);
      case 'order':
        return this.orders.get(this.keys.branch(p.owner, p.xid, p.branchId));
      case 'leader':
        return this.leaders.get(p.app);
      case 'stats':
        return this.stats.get(p.app);
      case 'replica':
        return this.replicas.get(p.app)?.get(key);
      default:
        return undefined;
    }
  }

  /** Every app with at least one key in the namespace, sorted. */
  apps(): string[] {
    const apps = new Set<string>([...this.leaders.keys(), ...this.stats.keys(), ...this.replicas.keys()]);
    for (const xid of this.globals.keys()) apps.add(appOfXid(xid));
    for (const xid of this.members.keys()) apps.add(appOfXid(xid));
    for (const key of this.branches.keys()) {
      const p = this.keys.parse(key);
      if (p) apps.add(p.app);
    }
    return [...apps].sort();
  }

  globalXids(): string[] {
    return [...this.globals.keys()];
  }

  /** Every member record's key (today's and legacy ones). */
  memberKeys(): string[] {
    return [...this.members.values()].flatMap((m) => [...m.keys()]);
  }

  branchKeys(): string[] {
    return [...this.branches.keys()];
  }

  global(xid: string): GlobalItem | undefined {
    const entry = this.globals.get(xid);
    if (!entry) return undefined;
    const members = [...(this.members.get(xid)?.values() ?? [])];
    const branches: BranchItem[] = [];
    for (const m of members) {
      const p = this.keys.parse(m.key);
      if (p?.kind !== 'member') continue;
      const b = this.branch(this.keys.branch(p.owner, p.xid, p.branchId));
      if (b) branches.push(b);
    }
    const g = entry.record;
    const done = members.filter((m) => m.record?.state === Phase2State.DONE).length;
    const parked = members.filter((m) => m.record?.state === Phase2State.PARKED).length;
    return {
      key: entry.key,
      xid,
      app: g?.app ?? this.keys.parse(entry.key)?.app ?? '',
      entry,
      members,
      branches,
      status: g ? g.status : MALFORMED,
      done,
      total: members.length,
      parked,
      ...(g ? { createdAt: g.createdAt } : {}),
    };
  }

  branch(key: string): BranchItem | undefined {
    const entry = this.branches.get(key);
    const p = this.keys.parse(key);
    if (!entry || !p || p.kind !== 'branch') return undefined;
    const order = this.orders.get(key);
    const byKey = this.members.get(p.xid);
    const member = this.keys.memberKeys(p.xid, p.owner, p.branchId).map((k) => byKey?.get(k)).find((m) => m !== undefined);
    const b = entry.record;
    return {
      key,
      xid: p.xid,
      branchId: p.branchId,
      owner: p.owner,
      entry,
      ...(order ? { order } : {}),
      ...(member ? { member } : {}),
      status: b ? MODES.of(b.mode).branchStatus(b, order?.record) : MALFORMED,
      ...(b ? { createdAt: b.createdAt } : {}),
    };
  }

  service(app: string): ServiceItem {
    const leader = this.leaders.get(app);
    const stats = this.stats.get(app);
    // Oldest first (a malformed one, without a time, last), then by key.
    const since = (e: Entry<ReplicaRecord>): number => e.record?.since ?? Number.MAX_SAFE_INTEGER;
    const replicas = [...(this.replicas.get(app)?.values() ?? [])].sort((a, b) => since(a) - since(b) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { app, ...(leader ? { leader } : {}), ...(stats ? { stats } : {}), replicas };
  }

  private parse<T>(key: string, value: Buffer, parse: (key: string, raw: Buffer) => T): Entry<T> {
    try {
      return { key, record: parse(key, value) };
    } catch (err) {
      const problem = err instanceof MalformedRecord ? err.problem : (err as Error).message;
      return { key, problem, raw: value.toString().slice(0, 2000) };
    }
  }
}

/**
 * A key Keys.parse accepts that still cannot be used: a global or member filed under another app
 * than its xid names (the CLI, like the services, looks them up under the xid's app).
 */
function misplaced(keys: Keys, p: ParsedKey): string | undefined {
  if ((p.kind === 'global' || p.kind === 'member') && appOfXid(p.xid) !== p.app) return `transaction ${p.xid} belongs under ${keys.app(appOfXid(p.xid))}, not ${keys.app(p.app)}`;
  return undefined;
}

function update<T>(map: Map<string, T>, id: string, value: T | undefined): void {
  if (value === undefined) map.delete(id);
  else map.set(id, value);
}
