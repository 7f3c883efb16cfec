/**
 * The figures derived from a TCC run: logical writes by kind (from the history replay), revisions,
 * requests, all per transaction; and what the finished transactions keep in etcd.
 */
import type { Etcd3 } from 'etcd3';
import { BACKGROUND, type RevisionSummary } from './history.js';
import { rangePrefix, type Keys } from './internals.js';
import type { TccResult } from './tcc.js';

export interface KindRow {
  kind: string;
  writes: number;
  perTx: number;
  opsPerTxn: number;
  bytesPerTx: number;
}

/** What one TCC run cost etcd: logical writes by kind (history), revisions, RPCs; all per transaction too. */
export interface Figures {
  rows: KindRow[];
  /** Logical write Txns of the transactions (background excluded) that took effect. */
  txWrites: number;
  txBytes: number;
  backgroundWrites: number;
  /** Revisions that carried only background writes, and revisions carrying ≥ 2 logical writes. */
  backgroundOnlyRevisions: number;
  batchedRevisions: number;
  /** Revisions (after − before), and those carrying some transaction write. */
  revisions: number;
  txRevisions: number;
  writesPerTx: number;
  txWritesPerTx: number;
  logicalWriteTxnsPerTx: number;
  /** Transaction write Txns per revision carrying them. */
  writesPerRevision: number;
  /** All RPCs counted (Txn + Range) per transaction, and logical Txns per Txn RPC. */
  rpcsPerTx: number;
  logicalTxnsPerTxnRpc: number;
  meanBatch: number;
  largestBatch: number;
}

export function figures(tcc: TccResult, revisions: RevisionSummary[]): Figures {
  const by = new Map<string, { writes: number; ops: number; bytes: number }>();
  let backgroundOnlyRevisions = 0;
  let batchedRevisions = 0;
  for (const r of revisions) {
    if (r.writes.every((w) => BACKGROUND.has(w.kind))) backgroundOnlyRevisions++;
    if (r.writes.length > 1) batchedRevisions++;
    for (const w of r.writes) {
      const e = by.get(w.kind) ?? { writes: 0, ops: 0, bytes: 0 };
      e.writes++;
      e.ops += w.ops;
      e.bytes += w.bytes;
      by.set(w.kind, e);
    }
  }
  const tx = tcc.tx;
  const rows = [...by.entries()].map(([kind, e]) => ({ kind, writes: e.writes, perTx: e.writes / tx, opsPerTxn: e.ops / e.writes, bytesPerTx: e.bytes / tx }));
  const background = [...by.entries()].filter(([k]) => BACKGROUND.has(k as never));
  const backgroundWrites = background.reduce((s, [, e]) => s + e.writes, 0);
  const txWrites = [...by.values()].reduce((s, e) => s + e.writes, 0) - backgroundWrites;
  const txBytes = [...by.values()].reduce((s, e) => s + e.bytes, 0) - background.reduce((s, [, e]) => s + e.bytes, 0);
  const txRevisions = tcc.revisions - backgroundOnlyRevisions;
  const r = tcc.rpcs;
  const batched = Object.entries(r.batchSizes).map(([size, n]) => [Number(size), n] as const);
  const nestedInBatches = batched.reduce((s, [size, n]) => s + size * n, 0);
  return {
    rows,
    txWrites,
    txBytes,
    backgroundWrites,
    backgroundOnlyRevisions,
    batchedRevisions,
    revisions: tcc.revisions,
    txRevisions,
    writesPerTx: tcc.revisions / tx,
    txWritesPerTx: txRevisions / tx,
    logicalWriteTxnsPerTx: txWrites / tx,
    writesPerRevision: txRevisions > 0 ? txWrites / txRevisions : Number.NaN,
    rpcsPerTx: (r.txnRpcs + r.range) / tx,
    logicalTxnsPerTxnRpc: r.txnRpcs > 0 ? (r.logicalWrite + r.logicalReadOnly) / r.txnRpcs : Number.NaN,
    meanBatch: r.batchedRpcs > 0 ? nestedInBatches / r.batchedRpcs : Number.NaN,
    largestBatch: batched.reduce((m, [size]) => Math.max(m, size), 0),
  };
}

/** Transaction records (globals, members, branches, orders: not leader/stats keys) stored now. */
export async function storedRecords(client: Etcd3, keys: Keys): Promise<{ keys: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  for (const kv of (await rangePrefix(client, keys.ns)).kvs) {
    const kind = keys.parse(kv.key.toString())?.kind;
    if (kind !== 'global' && kind !== 'member' && kind !== 'branch' && kind !== 'order') continue;
    count++;
    bytes += kv.key.length + kv.value.length;
  }
  return { keys: count, bytes };
}
