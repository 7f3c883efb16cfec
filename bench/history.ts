/**
 * Replays etcd's history between two revisions and says which logical write Txns each revision
 * carried. Run after the measurement, so it costs the measured run nothing.
 *
 * With group commit (src/internal/txn-batcher.ts) one revision can carry several logical write Txns
 * of different kinds: concurrent store Txns go out as the nested Txns of one outer Txn and share its
 * revision. The history has no marker between nested Txns, so the events of a revision are split by
 * the keys they wrote instead. That is exact for the writes this benchmark makes, because the batcher
 * never puts two Txns that write a common key into one batch, and every store write is anchored on
 * one record:
 *
 * - a put of a global is one write (begin, decide, complete), plus the orders of the same
 *   transaction put at that revision when it is a decision;
 * - a put of a branch is one write (register, Try result, phase-2 progress), plus its member record;
 * - an order put with no decision of its transaction at that revision is one participant order;
 * - a stats or leader key is one background write;
 * - deletes of one transaction's records at one revision are one GC delete (collection deletes a
 *   transaction's records in sequential Txns, never two of one transaction in one batch).
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { Keys, type ParsedKey } from './internals.js';

export type WriteKind =
  | 'begin (create global)'
  | 'register branch (+member)'
  | 'Try result (branch+member)'
  | 'decide (global+orders)'
  | 'phase-2 done (branch+member)'
  | 'phase-2 other (branch+member)'
  | 'complete (global)'
  | 'participant order'
  | 'stats (background)'
  | 'leader (background)'
  | 'gc delete'
  | 'other';

export const BACKGROUND: ReadonlySet<WriteKind> = new Set<WriteKind>(['stats (background)', 'leader (background)']);

/** One logical write Txn, as recovered from the events of its revision. */
export interface WriteSummary {
  kind: WriteKind;
  ops: number;
  /** Bytes of keys + values written (deletes count their key only). */
  bytes: number;
}

/** One etcd revision (one raft write) and the logical write Txns it carried. */
export interface RevisionSummary {
  revision: string;
  writes: WriteSummary[];
}

interface Event {
  type: 'put' | 'delete';
  kv: IKeyValue;
}

/**
 * Reads every event of the whole keyspace in (from, to] and groups them by revision. Every revision
 * in that window is some write, so the replay is complete once revision `to` has arrived.
 *
 * Give it a client of its own with a large `grpc.max_receive_message_length`: etcd sends the history
 * in responses of up to 1000 revisions, which with group commit easily exceed gRPC's default 4 MiB.
 * An oversized response breaks the watch stream, and etcd3 then resumes the watcher at the current
 * revision, silently skipping the window; so a disconnect ends the replay as incomplete.
 */
export async function replay(client: Etcd3, keys: Keys, from: string, to: string): Promise<{ revisions: RevisionSummary[]; complete: boolean }> {
  const byRevision = new Map<string, Event[]>();
  const target = BigInt(to);
  if (target <= BigInt(from)) return { revisions: [], complete: true };
  const all = Buffer.from([0]);
  const watcher = await client.watch().inRange({ start: all, end: all }).startRevision((BigInt(from) + 1n).toString()).create();
  const complete = await new Promise<boolean>((resolve, reject) => {
    // A guard against waiting forever (say, history compacted away); the summary then says so.
    const guard = setTimeout(() => resolve(false), 15_000);
    watcher.on('data', (res) => {
      for (const ev of res.events) {
        if (BigInt(ev.kv.mod_revision) > target) continue;
        const list = byRevision.get(ev.kv.mod_revision) ?? [];
        list.push({ type: ev.type === 'Delete' ? 'delete' : 'put', kv: ev.kv });
        byRevision.set(ev.kv.mod_revision, list);
      }
      if (res.events.some((ev) => BigInt(ev.kv.mod_revision) >= target)) {
        clearTimeout(guard);
        resolve(true);
      }
    });
    watcher.on('disconnected', () => {
      clearTimeout(guard);
      resolve(false);
    });
    watcher.on('error', (err) => {
      clearTimeout(guard);
      reject(err);
    });
  }).finally(() => watcher.cancel().catch(() => undefined));
  const revisions = [...byRevision.entries()]
    .sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : 1))
    .map(([revision, events]) => ({ revision, writes: split(keys, events) }));
  return { revisions, complete: complete && revisions.length === Number(target - BigInt(from)) };
}

/** Splits the events of one revision into the logical write Txns that made them (see the header). */
function split(keys: Keys, events: Event[]): WriteSummary[] {
  const parsed = events.map((e) => ({ e, p: keys.parse(e.kv.key.toString()), bytes: e.kv.key.length + (e.type === 'put' ? e.kv.value.length : 0) }));
  const used = new Set<number>();
  const writes: WriteSummary[] = [];
  const add = (kind: WriteKind, idx: number[]): void => {
    for (const i of idx) used.add(i);
    writes.push({ kind, ops: idx.length, bytes: idx.reduce((s, i) => s + parsed[i]!.bytes, 0) });
  };
  const xidOf = (p: ParsedKey | undefined): string | undefined => (p && 'xid' in p ? p.xid : undefined);
  const puts = (kind: string, match: (p: ParsedKey) => boolean): number[] =>
    parsed.flatMap(({ e, p }, i) => (e.type === 'put' && p?.kind === kind && !used.has(i) && match(p) ? [i] : []));

  // Globals first: a decision takes the orders of its transaction written at the same revision.
  parsed.forEach(({ e, p }, i) => {
    if (e.type !== 'put' || p?.kind !== 'global') return;
    const status = field(e.kv.value, 'status');
    if (status === 'TRYING') return add('begin (create global)', [i]);
    if (status === 'COMMITTED' || status === 'ROLLED_BACK') return add('complete (global)', [i]);
    const orders = puts('order', (o) => xidOf(o) === p.xid);
    add(orders.length > 0 ? 'decide (global+orders)' : 'other', [i, ...orders]);
  });
  // Branches, each with its own member record.
  parsed.forEach(({ e, p }, i) => {
    if (e.type !== 'put' || p?.kind !== 'branch') return;
    const link = puts('member', (l) => l.kind === 'member' && l.xid === p.xid && l.owner === p.owner && l.branchId === p.branchId);
    const record = json(e.kv.value);
    const phase2 = record?.phase2 as { state?: string } | undefined;
    const kind: WriteKind = phase2
      ? phase2.state === 'DONE'
        ? 'phase-2 done (branch+member)'
        : 'phase-2 other (branch+member)'
      : record?.tryState === 'PENDING'
        ? 'register branch (+member)'
        : 'Try result (branch+member)';
    add(kind, [i, ...link]);
  });
  // What is left: participant orders, background keys, deletes, anything else.
  const deletes = new Map<string, number[]>();
  parsed.forEach(({ e, p }, i) => {
    if (used.has(i)) return;
    if (p?.kind === 'stats') return add('stats (background)', [i]);
    if (p?.kind === 'leader') return add('leader (background)', [i]);
    if (e.type === 'delete') {
      const group = xidOf(p) ?? e.kv.key.toString();
      deletes.set(group, [...(deletes.get(group) ?? []), i]);
      return;
    }
    if (p?.kind === 'order') return add('participant order', [i]);
    add('other', [i]);
  });
  for (const idx of deletes.values()) add('gc delete', idx);
  return writes;
}

function json(value: Buffer): Record<string, unknown> | undefined {
  try {
    return JSON.parse(value.toString()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function field(value: Buffer, name: string): unknown {
  return json(value)?.[name];
}
