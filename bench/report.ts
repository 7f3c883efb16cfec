/** The benchmark's results: the JSON line (`--json` prints only that) and the tables printed above it. */
import { availableParallelism } from 'node:os';
import { renderRows, type Cell } from '../src/table.js';
import type { Args } from './args.js';
import type { Figures } from './figures.js';
import { BACKGROUND } from './history.js';
import type { RawResult } from './raw.js';
import { fmt, round, type LatencySummary } from './stats.js';
import type { TccResult } from './tcc.js';

/** Everything one run measured. */
export interface Run {
  args: Args;
  etcdVersion: string;
  loadAtStart: number;
  raw: RawResult & { before: number; after: number };
  tcc: TccResult;
  f: Figures;
  history: { complete: boolean };
  /** The --also-concurrency run. */
  also: { tcc: TccResult; raw: RawResult; concurrency: number } | undefined;
  alsoFigures: Figures | undefined;
  alsoHistory: { complete: boolean } | undefined;
  retainedPerTx: { keys: number; bytes: number };
  /** The SDK's warn/error log lines during the TCC run, by message. */
  warnings: [string, number][];
}

export type Result = ReturnType<typeof toJson>;

function nullIfNaN(n: number): number | null {
  return Number.isNaN(n) ? null : n;
}

/** Rows as columns two spaces apart, numbers right-aligned. */
function table(rows: Cell[][]): string {
  return renderRows(rows, { gap: 2 }).join('\n');
}

/** The JSON line. */
export function toJson(run: Run) {
  const { args, etcdVersion, loadAtStart, raw, tcc, f, history, also, alsoFigures, alsoHistory, retainedPerTx, warnings } = run;
  const ratio = tcc.perSecond / raw.perSecond;
  const per = (n: number): number => round(n / args.tx, 3);
  return {
    bench: 'txloop-tcc-2branch',
    etcdVersion,
    node: process.version,
    cpus: availableParallelism(),
    loadAvgAtStart: round(loadAtStart, 2),
    concurrency: args.concurrency,
    mode: args.pipelined ? 'pipelined' : 'closed-loop',
    phase2WorkersPerService: args.workers ?? 8,
    raw: { ops: raw.ops, txnPerSec: round(raw.perSecond, 1), txnPerSecBefore: round(raw.before, 1), txnPerSecAfter: round(raw.after, 1), latencyMs: raw.latencyMs, benchCpu: nullIfNaN(round(raw.benchCpu, 2)), etcdCpu: raw.etcdCpu === undefined ? null : round(raw.etcdCpu, 2) },
    tcc: {
      tx: tcc.tx,
      seconds: round(tcc.seconds, 3),
      txPerSec: round(tcc.perSecond, 1),
      beginToCommitMs: tcc.beginToCommitMs,
      commitCallMs: tcc.commitCallMs,
      decisionToCompletionMs: tcc.decisionToCompletionMs,
      beginToCompletionMs: tcc.beginToCompletionMs,
      benchCpu: nullIfNaN(round(tcc.benchCpu, 2)),
      etcdCpu: tcc.etcdCpu === undefined ? null : round(tcc.etcdCpu, 2),
    },
    ratioTccToRaw: round(ratio, 4),
    /** etcd revisions (raft writes) per transaction: (revision after − before) ÷ tx, background included. */
    writesPerTx: round(f.writesPerTx, 3),
    /** The same, without revisions that carried only background writes. */
    txWritesPerTx: round(f.txWritesPerTx, 3),
    /** Logical write Txns of the transactions that took effect (from the history), per transaction. */
    logicalWriteTxnsPerTx: round(f.logicalWriteTxnsPerTx, 3),
    logicalWriteTxnsPerRevision: nullIfNaN(round(f.writesPerRevision, 2)),
    /** Txn + Range RPCs through the shared client per transaction. */
    rpcsPerTx: round(f.rpcsPerTx, 3),
    backgroundWrites: f.backgroundWrites,
    backgroundOnlyRevisions: f.backgroundOnlyRevisions,
    etcdRpcPerTx: {
      txn: per(tcc.rpcs.txnRpcs),
      txnBatched: per(tcc.rpcs.batchedRpcs),
      range: per(tcc.rpcs.range),
      logicalWriteTxns: per(tcc.rpcs.logicalWrite),
      logicalReadOnlyTxns: per(tcc.rpcs.logicalReadOnly),
    },
    logicalTxnsPerTxnRpc: nullIfNaN(round(f.logicalTxnsPerTxnRpc, 2)),
    batches: { rpcs: tcc.rpcs.batchedRpcs, meanSize: nullIfNaN(round(f.meanBatch, 2)), largest: f.largestBatch, failedRpcs: tcc.rpcs.failedRpcs },
    failedWriteTxns: tcc.rpcs.conflicts,
    retainedPerTx: { keys: round(retainedPerTx.keys, 2), bytes: round(retainedPerTx.bytes, 0) },
    writeBreakdown: Object.fromEntries(f.rows.map((r) => [r.kind, { writeTxns: r.writes, perTx: round(r.perTx, 3), opsPerTxn: round(r.opsPerTxn, 2), bytesPerTx: round(r.bytesPerTx, 0) }])),
    historyComplete: history.complete,
    sdkWarningsDuringRun: Object.fromEntries(warnings),
    alsoAt:
      also && alsoFigures
        ? {
            concurrency: also.concurrency,
            tx: also.tcc.tx,
            seconds: round(also.tcc.seconds, 3),
            txPerSec: round(also.tcc.perSecond, 1),
            rawTxnPerSec: round(also.raw.perSecond, 1),
            ratioTccToRaw: round(also.tcc.perSecond / also.raw.perSecond, 4),
            beginToCompletionMs: also.tcc.beginToCompletionMs,
            benchCpu: nullIfNaN(round(also.tcc.benchCpu, 2)),
            etcdCpu: also.tcc.etcdCpu === undefined ? null : round(also.tcc.etcdCpu, 2),
            writesPerTx: round(alsoFigures.writesPerTx, 3),
            logicalWriteTxnsPerTx: round(alsoFigures.logicalWriteTxnsPerTx, 3),
            rpcsPerTx: round(alsoFigures.rpcsPerTx, 3),
            logicalTxnsPerTxnRpc: nullIfNaN(round(alsoFigures.logicalTxnsPerTxnRpc, 2)),
            failedWriteTxns: also.tcc.rpcs.conflicts,
            historyComplete: alsoHistory?.complete ?? false,
          }
        : null,
  };
}

/** The tables and notes printed before the JSON line. */
export function printReport(run: Run, result: Result): void {
  const { args, etcdVersion, loadAtStart, raw, tcc, f, history, also, alsoFigures, alsoHistory, retainedPerTx, warnings } = run;
  const ratio = tcc.perSecond / raw.perSecond;
  const ms = (l: LatencySummary): [string, string, string] => [fmt(l.p50, 2), fmt(l.p99, 2), fmt(l.max, 2)];
  const cpu = (benchCpu: number, etcdCpu: number | undefined): string => `bench ${fmt(benchCpu * 100, 0)}% · etcd ${etcdCpu === undefined ? 'n/a' : `${fmt(etcdCpu * 100, 0)}%`}`;
  const r = tcc.rpcs;
  console.log('');
  console.log(
    `txloop bench — etcd ${etcdVersion}, Node ${process.version}, ${result.cpus} CPUs (load average ${fmt(loadAtStart, 2)} at start), ` +
      `concurrency ${args.concurrency}, ${result.mode}, ${result.phase2WorkersPerService} phase-2 workers/service`,
  );
  console.log('');
  console.log(
    table([
      ['THROUGHPUT', 'COUNT', 'SECONDS', 'PER SECOND', 'CPU (1 core = 100%)'],
      ['raw etcd Txn (1 compare + 1 put)', raw.ops, fmt(raw.seconds, 2), fmt(raw.perSecond, 1), cpu(raw.benchCpu, raw.etcdCpu)],
      ['  half before / half after the TCC run', '', '', `${fmt(raw.before, 0)} / ${fmt(raw.after, 0)}`, ''],
      ['committed 2-branch TCC tx', tcc.tx, fmt(tcc.seconds, 2), fmt(tcc.perSecond, 1), cpu(tcc.benchCpu, tcc.etcdCpu)],
      ['ratio TCC tx/s ÷ raw Txn/s', '', '', fmt(ratio, 4), ''],
    ]),
  );
  console.log('');
  console.log(
    table([
      ['LATENCY (ms)', 'P50', 'P99', 'MAX'],
      ['raw Txn', ...ms(raw.latencyMs)],
      ['begin → commit() returned', ...ms(tcc.beginToCommitMs)],
      ['commit() call alone', ...ms(tcc.commitCallMs)],
      ['commit() returned → completed (COMMITTED)', ...ms(tcc.decisionToCompletionMs)],
      ['begin → completed', ...ms(tcc.beginToCompletionMs)],
    ]),
  );
  console.log('');
  const background = f.rows.filter((row) => BACKGROUND.has(row.kind as never));
  console.log(
    table([
      ['LOGICAL WRITE TXNS DURING THE TCC RUN', 'WRITE TXNS', 'PER TX', 'OPS/TXN', 'BYTES/TX'],
      ...f.rows.filter((row) => !BACKGROUND.has(row.kind as never)).map((row) => [row.kind, row.writes, fmt(row.perTx, 3), fmt(row.opsPerTxn, 2), fmt(row.bytesPerTx, 0)]),
      ['transaction writes (sum)', f.txWrites, fmt(f.logicalWriteTxnsPerTx, 3), '', fmt(f.txBytes / args.tx, 0)],
      ...background.map((row) => [row.kind, row.writes, fmt(row.perTx, 3), fmt(row.opsPerTxn, 2), fmt(row.bytesPerTx, 0)]),
    ]),
  );
  console.log('');
  console.log(
    table([
      ['ETCD REVISIONS (RAFT WRITES) DURING THE TCC RUN', 'REVISIONS', 'PER TX'],
      ['etcd writes: revision after − before', f.revisions, fmt(f.writesPerTx, 3)],
      ['  carrying transaction writes', f.txRevisions, fmt(f.txWritesPerTx, 3)],
      ['    of which ≥ 2 logical writes (group commit)', f.batchedRevisions, fmt(f.batchedRevisions / args.tx, 3)],
      ['  background writes only', f.backgroundOnlyRevisions, fmt(f.backgroundOnlyRevisions / args.tx, 3)],
      ['transaction write Txns per revision carrying them', '', fmt(f.writesPerRevision, 2)],
    ]),
  );
  console.log('');
  console.log(
    table([
      ['ETCD REQUESTS THROUGH THE SHARED CLIENT', 'COUNT', 'PER TX'],
      ['all RPCs (Txn + Range)', r.txnRpcs + r.range, fmt(f.rpcsPerTx, 3)],
      ['  Txn RPCs (a batch counts once)', r.txnRpcs, fmt(r.txnRpcs / args.tx, 3)],
      [`    of which batches (mean ${fmt(f.meanBatch, 2)}, largest ${f.largestBatch} nested Txns)`, r.batchedRpcs, fmt(r.batchedRpcs / args.tx, 3)],
      ['  Range RPCs', r.range, fmt(r.range / args.tx, 3)],
      ['logical Txns: write', r.logicalWrite, fmt(r.logicalWrite / args.tx, 3)],
      ['  of which failed their compares', Object.values(r.conflicts).reduce((s, n) => s + n, 0), ''],
      ['logical Txns: read-only', r.logicalReadOnly, fmt(r.logicalReadOnly / args.tx, 3)],
      ['logical Txns per Txn RPC', '', fmt(f.logicalTxnsPerTxnRpc, 2)],
    ]),
  );
  if (also && alsoFigures && result.alsoAt) {
    const row = (c: number, t: TccResult, rawPerSecond: number, g: Figures): string[] => [
      String(c),
      fmt(t.perSecond, 1),
      fmt(rawPerSecond, 0),
      fmt(t.perSecond / rawPerSecond, 4),
      `${fmt(t.beginToCompletionMs.p50, 1)} / ${fmt(t.beginToCompletionMs.p99, 1)}`,
      fmt(g.writesPerTx, 3),
      fmt(g.logicalWriteTxnsPerTx, 3),
      fmt(g.rpcsPerTx, 3),
      fmt(g.logicalTxnsPerTxnRpc, 2),
      cpu(t.benchCpu, t.etcdCpu),
    ];
    console.log('');
    console.log(
      table([
        ['CONCURRENCY', 'TX/S', 'RAW TXN/S', 'RATIO', 'BEGIN→COMPLETED P50 / P99 MS', 'REVISIONS/TX', 'WRITE TXNS/TX', 'RPCS/TX', 'TXNS/RPC', 'CPU'],
        row(args.concurrency, tcc, raw.perSecond, f),
        row(also.concurrency, also.tcc, also.raw.perSecond, alsoFigures),
      ]),
    );
  }
  console.log('');
  console.log(
    `Kept in etcd per finished transaction until retention (${fmt(retainedPerTx.keys, 2)} keys, ${fmt(retainedPerTx.bytes / 1024, 1)} KiB): ` +
      `the services' informers cache all of it and relist it on every resync.`,
  );
  const conflicts = Object.entries(r.conflicts);
  if (conflicts.length > 0) console.log(`Logical write Txns that failed their compare (conflicts, retried by the SDK): ${conflicts.map(([k, n]) => `${n} × ${k}`).join(', ')}.`);
  if (r.failedRpcs > 0) console.log(`Txn RPCs that failed: ${r.failedRpcs} (a failed batch is resent one nested Txn at a time).`);
  console.log(
    '"etcd writes" are revisions (revision after − before, ÷ tx): group commit sends the store Txns a service submits while ' +
      'one of its RPCs is in flight as the nested Txns of one outer Txn, which etcd applies as one revision (one raft entry).',
  );
  console.log(
    "Logical write Txns by kind (each with its own compares; 11 per committed 2-branch transaction: each phase-2 attempt is recorded before its handler and after) are split out of etcd's " +
      'history after the run, by record: a branch with its link, a decision with its orders (the batcher never batches two ' +
      'Txns that write one key). They count writes that took effect.' +
      (history.complete && (alsoHistory?.complete ?? true) ? '' : ' HISTORY REPLAY INCOMPLETE: the breakdown misses revisions.'),
  );
  console.log(
    "Requests are counted as the shared client's gRPC clients start them (grpc-js's callInvocationTransformer), nested Txns one by one; they also include failed " +
      'compares, read-only Txns and the leader/stats writes, which bypass the batcher; leases and watches are not counted. ' +
      'Background writes (leader stats every 5 s, leader keys) are shown apart; retentionMs is 24 h, so no GC deletes happen during the run.',
  );
  if (warnings.length > 0) {
    console.log('');
    console.log(table([['SDK LOG LINES DURING THE TCC RUN (warn+)', 'COUNT'], ...warnings.map(([k, n]) => [k, n])]));
  }
  console.log('');
}
