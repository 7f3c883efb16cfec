/** The deployment layout's results: the tables, and the JSON line (`--json` prints only that). */
import { availableParallelism } from 'node:os';
import { renderRows, type Cell } from '../src/table.js';
import type { DeploymentRun, LevelResult, ProcessName } from './deployment.js';
import { fmt, round } from './stats.js';

const PROCS: ProcessName[] = ['initiator', 'bank-a', 'bank-b', 'etcd'];

function cpuTotal(l: LevelResult): number {
  return PROCS.reduce((sum, p) => sum + l.cpuMsPerTx[p], 0);
}

/** tx/s × revisions per tx ÷ raw Go-client Txn/s: the share of etcd's own write rate the engine turns into transactions. */
export function efficiency(l: LevelResult): number | undefined {
  return l.rawGoTxnPerSec === undefined ? undefined : (l.txPerSec * (l.revisions / l.tx)) / l.rawGoTxnPerSec;
}

function rpcsPerTx(l: LevelResult, p: Exclude<ProcessName, 'etcd'>): number {
  const r = l.rpcs[p];
  return (r.txnRpcs + r.range) / l.tx;
}

function levelJson(l: LevelResult) {
  const per = (n: number, d = 3): number => round(n / l.tx, d);
  return {
    concurrency: l.concurrency,
    ...(l.ratePerSec !== undefined ? { ratePerSec: round(l.ratePerSec, 1) } : {}),
    txPerSec: round(l.txPerSec, 1),
    commitP50Ms: l.beginToCommitMs.p50,
    commitP99Ms: l.beginToCommitMs.p99,
    commitCallP50Ms: l.commitCallMs.p50,
    doneP50Ms: l.beginToDoneMs.p50,
    doneP99Ms: l.beginToDoneMs.p99,
    decisionToDoneP50Ms: l.decisionToDoneMs.p50,
    decisionToDoneP99Ms: l.decisionToDoneMs.p99,
    cpuMsPerTx: round(cpuTotal(l), 2),
    cpuMsPerTxByProcess: Object.fromEntries(PROCS.map((p) => [p, round(l.cpuMsPerTx[p], 2)])),
    revisionsPerTx: per(l.revisions),
    proposalsPerTx: per(l.etcd.proposals),
    rpcsPerTxByProcess: { initiator: round(rpcsPerTx(l, 'initiator'), 2), 'bank-a': round(rpcsPerTx(l, 'bank-a'), 2), 'bank-b': round(rpcsPerTx(l, 'bank-b'), 2) },
    readOnlyTxnsPerTxByProcess: { initiator: per(l.rpcs.initiator.logicalReadOnly, 2), 'bank-a': per(l.rpcs['bank-a'].logicalReadOnly, 2), 'bank-b': per(l.rpcs['bank-b'].logicalReadOnly, 2) },
    /** Logical writes whose compares failed, by what they wrote (a cache behind etcd, races). */
    conflicts: { initiator: l.rpcs.initiator.conflicts, 'bank-a': l.rpcs['bank-a'].conflicts, 'bank-b': l.rpcs['bank-b'].conflicts },
    logicalWritesPerTx: per(l.rpcs.initiator.logicalWrite + l.rpcs['bank-a'].logicalWrite + l.rpcs['bank-b'].logicalWrite, 2),
    bytesWrittenPerTx: per(l.etcd.bytesReceived, 0),
    watchEventsPerTx: per(l.etcd.watchEvents, 2),
    watchMessagesPerTx: per(l.etcd.watchMessages, 2),
    bytesSentByEtcdPerTx: per(l.etcd.bytesSent, 0),
    rawNodeTxnPerSec: l.rawNodeTxnPerSec === undefined ? null : round(l.rawNodeTxnPerSec, 0),
    rawGoTxnPerSec: l.rawGoTxnPerSec === undefined ? null : round(l.rawGoTxnPerSec, 0),
    efficiency: efficiency(l) === undefined ? null : round(efficiency(l)!, 3),
    warnings: l.warnings,
  };
}

export function deploymentJson(run: DeploymentRun) {
  const levels = run.levels.map(levelJson);
  const head = levels[0]!;
  return {
    bench: `txloop-${run.mode}-2branch`,
    mode: run.mode,
    layout: 'processes',
    etcdVersion: run.etcdVersion,
    node: process.version,
    cpus: availableParallelism(),
    loadAverage: round(run.loadAtStart, 2),
    loadAverageAtEnd: round(run.loadAtEnd, 2),
    // The headline is the first level (16 in flight by default); every level is in `levels`.
    concurrency: head.concurrency,
    txPerSec: head.txPerSec,
    revisionsPerTx: head.revisionsPerTx,
    cpuMsPerTx: head.cpuMsPerTx,
    commitP50Ms: head.commitP50Ms,
    commitP99Ms: head.commitP99Ms,
    doneP50Ms: head.doneP50Ms,
    doneP99Ms: head.doneP99Ms,
    rawGoTxnPerSec: head.rawGoTxnPerSec,
    rawNodeTxnPerSec: head.rawNodeTxnPerSec,
    levels,
    halfPeak: run.halfPeak ? levelJson(run.halfPeak) : null,
    ...(run.goRawMissing ? { rawGoMissing: run.goRawMissing } : {}),
  };
}

/** What a "transaction" is in each mode, and what the latency columns time. */
const MODE_LINES: Record<DeploymentRun['mode'], string> = {
  tcc: 'mode: tcc — begin, a Try on each participant, commit; commit = begin → commit() returned, done = → COMMITTED',
  saga: 'mode: saga — 2 steps, bank-a then bank-b; commit = the submit call, done = submit → SUCCEEDED (both steps ran in turn)',
  message: 'mode: message — prepare, submit to 2 consumers; commit = prepare → submit() returned, done = → DELIVERED (both consumers acknowledged)',
};

function table(rows: Cell[][]): string {
  return renderRows(rows, { gap: 2 }).join('\n');
}

export function printDeployment(run: DeploymentRun): void {
  const all = [...run.levels, ...(run.halfPeak ? [run.halfPeak] : [])];
  const label = (l: LevelResult): string => (l.ratePerSec !== undefined ? `${fmt(l.ratePerSec, 0)}/s open` : String(l.concurrency));
  const out: string[] = [];
  out.push(`layout: processes (initiator, bank-a, bank-b, etcd ${run.etcdVersion}: each its own process; Trys over HTTP keep-alive)`);
  out.push(MODE_LINES[run.mode]);
  out.push(`load average at start ${fmt(run.loadAtStart, 2)}, at end ${fmt(run.loadAtEnd, 2)}; ${availableParallelism()} CPUs; Node ${process.version}`);
  out.push('');
  out.push(
    table([
      ['in flight', 'tx/s', 'commit p50', 'commit p99', 'done p50', 'done p99', 'decision→done p99', 'CPU ms/tx', 'init', 'bank-a', 'bank-b', 'etcd', 'revisions/tx', 'proposals/tx'],
      ...all.map((l) => [
        label(l),
        fmt(l.txPerSec, 1),
        fmt(l.beginToCommitMs.p50),
        fmt(l.beginToCommitMs.p99),
        fmt(l.beginToDoneMs.p50),
        fmt(l.beginToDoneMs.p99),
        fmt(l.decisionToDoneMs.p99),
        fmt(cpuTotal(l), 2),
        fmt(l.cpuMsPerTx.initiator, 2),
        fmt(l.cpuMsPerTx['bank-a'], 2),
        fmt(l.cpuMsPerTx['bank-b'], 2),
        fmt(l.cpuMsPerTx.etcd, 2),
        fmt(l.revisions / l.tx, 2),
        fmt(l.etcd.proposals / l.tx, 2),
      ]),
    ]),
  );
  out.push('');
  out.push(
    table([
      ['in flight', 'RPCs/tx init', 'bank-a', 'bank-b', 'logical writes/tx', 'bytes to etcd/tx', 'watch events/tx', 'watch msgs/tx', 'bytes from etcd/tx', 'raw Node Txn/s', 'raw Go Txn/s', 'efficiency'],
      ...all.map((l) => {
        const j = levelJson(l);
        return [label(l), fmt(j.rpcsPerTxByProcess.initiator, 2), fmt(j.rpcsPerTxByProcess['bank-a'], 2), fmt(j.rpcsPerTxByProcess['bank-b'], 2), fmt(j.logicalWritesPerTx, 2), fmt(j.bytesWrittenPerTx, 0), fmt(j.watchEventsPerTx, 2), fmt(j.watchMessagesPerTx, 2), fmt(j.bytesSentByEtcdPerTx, 0), fmt(l.rawNodeTxnPerSec, 0), fmt(l.rawGoTxnPerSec, 0), fmt(efficiency(l), 3)];
      }),
    ]),
  );
  if (run.goRawMissing) out.push(`raw Go Txn/s: not measured (${run.goRawMissing})`);
  const warned = all.flatMap((l) => l.warnings.map(([k, n]) => `  ${label(l)}: ${n}× ${k}`));
  if (warned.length > 0) out.push('', 'SDK warnings/errors during the windows:', ...warned.slice(0, 20));
  for (const p of run.profiles) {
    out.push('', `CPU profile ${p.name} (${fmt(p.summary.totalMs, 0)} ms busy; ${p.summary.file}):`);
    out.push(`  by package: ${p.summary.packages.map(([k, s]) => `${k} ${fmt(s * 100, 1)}%`).join(', ')}`);
    for (const [fn, s] of p.summary.functions) out.push(`  ${fmt(s * 100, 1).padStart(5)}%  ${fn}`);
  }
  console.error(out.join('\n'));
}
