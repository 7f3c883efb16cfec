/**
 * Replays etcd's history between two revisions and says what each write Txn was. Every write Txn
 * bumps the revision exactly once and all its puts/deletes carry that revision as mod_revision, so
 * grouping watch events by mod_revision recovers the Txns. Run after the measurement, so it costs
 * the measured run nothing.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { Keys } from '../src/internal/keys.js';

export type WriteKind =
  | 'begin (create global)'
  | 'register branch (+link)'
  | 'Try result (branch+link)'
  | 'decide (global+orders)'
  | 'phase-2 done (branch+link)'
  | 'phase-2 other (branch+link)'
  | 'complete (global)'
  | 'participant order'
  | 'stats (background)'
  | 'leader (background)'
  | 'gc delete'
  | 'other';

export interface TxnSummary {
  revision: string;
  kind: WriteKind;
  ops: number;
  /** Bytes of keys + values written (deletes count their key only). */
  bytes: number;
}

interface Event {
  type: 'put' | 'delete';
  kv: IKeyValue;
}

/**
 * Reads every event of the whole keyspace in (from, to] and groups them by revision. Every revision
 * in that window is some write, so the replay is complete once revision `to` has arrived.
 */
export async function replay(client: Etcd3, keys: Keys, from: string, to: string): Promise<{ txns: TxnSummary[]; complete: boolean }> {
  const byRevision = new Map<string, Event[]>();
  const target = BigInt(to);
  if (target <= BigInt(from)) return { txns: [], complete: true };
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
    watcher.on('error', (err) => {
      clearTimeout(guard);
      reject(err);
    });
  }).finally(() => watcher.cancel().catch(() => undefined));
  const txns = [...byRevision.entries()]
    .sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : 1))
    .map(([revision, events]) => ({
      revision,
      kind: classify(keys, events),
      ops: events.length,
      bytes: events.reduce((s, e) => s + e.kv.key.length + (e.type === 'put' ? e.kv.value.length : 0), 0),
    }));
  return { txns, complete: complete && txns.length === Number(target - BigInt(from)) };
}

function classify(keys: Keys, events: Event[]): WriteKind {
  if (events.every((e) => e.type === 'delete')) return 'gc delete';
  const parsed = events.map((e) => ({ e, p: keys.parse(e.kv.key.toString()) }));
  const kinds = new Set(parsed.map(({ p }) => p?.kind ?? 'unknown'));
  if (kinds.has('stats')) return 'stats (background)';
  if (kinds.has('leader')) return 'leader (background)';
  const global = parsed.find(({ p }) => p?.kind === 'global');
  if (global) {
    if (kinds.has('order')) return 'decide (global+orders)';
    const status = field(global.e.kv.value, 'status');
    if (status === 'TRYING') return 'begin (create global)';
    if (status === 'COMMITTED' || status === 'ROLLED_BACK') return 'complete (global)';
    return 'other';
  }
  const branch = parsed.find(({ p }) => p?.kind === 'branch');
  if (branch) {
    const record = json(branch.e.kv.value);
    const phase2 = record?.phase2 as { state?: string } | undefined;
    if (phase2) return phase2.state === 'DONE' ? 'phase-2 done (branch+link)' : 'phase-2 other (branch+link)';
    if (record?.tryState === 'PENDING') return 'register branch (+link)';
    return 'Try result (branch+link)';
  }
  if (kinds.size === 1 && kinds.has('order')) return 'participant order';
  return 'other';
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
