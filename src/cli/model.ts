/**
 * What the CLI knows about a namespace: every txloop key read from etcd, validated with the record
 * parse functions. A record that fails validation is kept as MALFORMED with its problem (the command
 * that shows it warns on stderr) instead of stopping the command. Fed by one range, or by a watch.
 */
import type { IKeyValue } from 'etcd3';
import type { LeaderRecord } from '../internal/leader.js';
import { Keys, appOfXid } from '../internal/keys.js';
import {
  MalformedRecord,
  parseJsonObject,
  Phase2State,
  branchStatus,
  parseBranch,
  parseGlobal,
  parseLink,
  parseOrder,
  type BranchRecord,
  type GlobalRecord,
  type LinkRecord,
  type OrderRecord,
} from '../internal/records.js';
import type { ServiceStats } from '../service.js';

export const MALFORMED = 'MALFORMED';

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
  links: Entry<LinkRecord>[];
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
  link?: Entry<LinkRecord>;
  status: string;
  createdAt?: number;
}

export interface ServiceItem {
  app: string;
  leader?: Entry<LeaderRecord>;
  stats?: Entry<ServiceStats>;
}

/** What a changed key affects, so `-w` re-renders only that row. */
/** Every record behind an item that failed validation, as `key: problem`. */
export function problemsOf(...entries: (Entry<unknown> | undefined)[]): string[] {
  return entries.filter((e): e is Entry<unknown> => e?.problem !== undefined).map((e) => `${e.key}: ${e.problem}`);
}

/** The entry a key gets, given the parse function of its kind; undefined deletes it. */
type EntryOf = <T>(parse: (key: string, raw: Buffer) => T) => Entry<T> | undefined;

export type Change = { kind: 'global'; xid: string } | { kind: 'branch'; key: string } | { kind: 'service'; app: string };

export class Model {
  readonly keys: Keys;
  private readonly globals = new Map<string, Entry<GlobalRecord>>();
  /** xid → link key → link */
  private readonly links = new Map<string, Map<string, Entry<LinkRecord>>>();
  /** branch key → branch */
  private readonly branches = new Map<string, Entry<BranchRecord>>();
  /** branch key (not order key) → order */
  private readonly orders = new Map<string, Entry<OrderRecord>>();
  private readonly leaders = new Map<string, Entry<LeaderRecord>>();
  private readonly stats = new Map<string, Entry<ServiceStats>>();

  constructor(namespace: string) {
    this.keys = new Keys(namespace);
  }

  static from(namespace: string, kvs: IKeyValue[]): Model {
    const m = new Model(namespace);
    for (const kv of kvs) m.set(kv.key.toString(), kv.value);
    return m;
  }

  /** Applies a put (value) or delete (undefined) of one key. */
  set(key: string, value: Buffer | undefined): Change | undefined {
    return this.apply(key, (parse) => value && this.parse(key, value, parse));
  }

  /** A key whose value could not be read at all (e.g. larger than the client accepts): kept as malformed. */
  unreadable(key: string, problem: string): Change | undefined {
    return this.apply(key, () => ({ key, problem }));
  }

  private apply(key: string, entryOf: EntryOf): Change | undefined {
    const p = this.keys.parse(key);
    if (!p) return undefined;
    switch (p.kind) {
      case 'global':
        update(this.globals, p.xid, entryOf(parseGlobal));
        return { kind: 'global', xid: p.xid };
      case 'link': {
        let m = this.links.get(p.xid);
        if (!m) this.links.set(p.xid, (m = new Map()));
        update(m, key, entryOf(parseLink));
        if (m.size === 0) this.links.delete(p.xid);
        return { kind: 'global', xid: p.xid };
      }
      case 'branch':
        update(this.branches, key, entryOf(parseBranch));
        return { kind: 'branch', key };
      case 'order': {
        const bkey = this.keys.branch(p.owner, p.xid, p.branchId);
        update(this.orders, bkey, entryOf(parseOrder));
        return { kind: 'branch', key: bkey };
      }
      case 'leader':
        update(this.leaders, p.app, entryOf(parseLeader));
        return { kind: 'service', app: p.app };
      case 'stats':
        update(this.stats, p.app, entryOf(parseStats));
        return { kind: 'service', app: p.app };
    }
  }

  /** Every app with at least one key in the namespace, sorted. */
  apps(): string[] {
    const apps = new Set<string>([...this.leaders.keys(), ...this.stats.keys()]);
    for (const xid of this.globals.keys()) apps.add(appOfXid(xid));
    for (const xid of this.links.keys()) apps.add(appOfXid(xid));
    for (const key of this.branches.keys()) {
      const p = this.keys.parse(key);
      if (p) apps.add(p.app);
    }
    return [...apps].sort();
  }

  globalXids(): string[] {
    return [...this.globals.keys()];
  }

  branchKeys(): string[] {
    return [...this.branches.keys()];
  }

  global(xid: string): GlobalItem | undefined {
    const entry = this.globals.get(xid);
    if (!entry) return undefined;
    const links = [...(this.links.get(xid)?.values() ?? [])];
    const branches: BranchItem[] = [];
    for (const l of links) {
      const p = this.keys.parse(l.key);
      if (p?.kind !== 'link') continue;
      const b = this.branch(this.keys.branch(p.owner, p.xid, p.branchId));
      if (b) branches.push(b);
    }
    const g = entry.record;
    const done = links.filter((l) => l.record?.state === Phase2State.DONE).length;
    const parked = links.filter((l) => l.record?.state === Phase2State.FAILED).length;
    return {
      key: entry.key,
      xid,
      app: g?.app ?? this.keys.parse(entry.key)?.app ?? '',
      entry,
      links,
      branches,
      status: g ? g.status : MALFORMED,
      done,
      total: links.length,
      parked,
      ...(g ? { createdAt: g.createdAt } : {}),
    };
  }

  branch(key: string): BranchItem | undefined {
    const entry = this.branches.get(key);
    const p = this.keys.parse(key);
    if (!entry || !p || p.kind !== 'branch') return undefined;
    const order = this.orders.get(key);
    const link = this.links.get(p.xid)?.get(this.keys.link(p.xid, p.owner, p.branchId));
    const b = entry.record;
    return {
      key,
      xid: p.xid,
      branchId: p.branchId,
      owner: p.owner,
      entry,
      ...(order ? { order } : {}),
      ...(link ? { link } : {}),
      status: b ? branchStatus(b, order?.record) : MALFORMED,
      ...(b ? { createdAt: b.createdAt } : {}),
    };
  }

  service(app: string): ServiceItem {
    const leader = this.leaders.get(app);
    const stats = this.stats.get(app);
    return { app, ...(leader ? { leader } : {}), ...(stats ? { stats } : {}) };
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

function update<T>(map: Map<string, T>, id: string, value: T | undefined): void {
  if (value === undefined) map.delete(id);
  else map.set(id, value);
}


export function parseLeader(key: string, raw: Buffer): LeaderRecord {
  const o = parseJsonObject(key, raw);
  if (typeof o.identity !== 'string') throw new MalformedRecord(key, 'identity must be a string');
  if (typeof o.since !== 'number') throw new MalformedRecord(key, 'since must be a number');
  return o as unknown as LeaderRecord;
}

export function parseStats(key: string, raw: Buffer): ServiceStats {
  const o = parseJsonObject(key, raw);
  if (typeof o.identity !== 'string') throw new MalformedRecord(key, 'identity must be a string');
  if (typeof o.at !== 'number') throw new MalformedRecord(key, 'at must be a number');
  const q = o.queues as Record<string, unknown> | undefined;
  if (typeof q !== 'object' || q === null || typeof q.globals !== 'object' || typeof q.branches !== 'object') throw new MalformedRecord(key, 'queues must hold globals and branches');
  if (typeof o.phase2 !== 'object' || o.phase2 === null) throw new MalformedRecord(key, 'phase2 must be an object');
  return o as unknown as ServiceStats;
}
