/**
 * `npm run bench -- --scale N`: what one participant service costs with many branches in flight, in
 * its own process (deployment/scale-participant.ts), at 1k, 10k, … up to N pending branches.
 *
 * Per level, on a fresh throwaway etcd:
 *  1. setup: N transactions as a participant's Try leaves them — the global TRYING (deadline two
 *     hours away), the branch PREPARED and its member — bulk-written in Txns of txloop's own
 *     records (built with its record builders, checked by its parsers), several Txns in flight;
 *  2. the participant `bank-a` starts, compiled to JavaScript and run by plain node as deployed
 *     (tsx's loader alone would add ~40 MiB of RSS): the first list of its prefix (`start()`, timed in the child)
 *     and its election; its event loop's longest stall over both;
 *  3. settle: until the leader's published stats (`txloop top`'s source) show every branch waiting
 *     for its decision (queue empty, nothing processing);
 *  4. idle: the participant's and etcd's CPU over --idle-seconds (the leader publishes its stats and
 *     keeps its lease meanwhile), then RSS and heap used after a full GC, and the peak RSS so far;
 *  5. one relist of the prefix (timed, with the event loop's longest stall);
 *  6. drain: every global decided COMMITTING and every branch ordered to confirm, bulk-written as
 *     a decision would; the drain rate is N over the time from the first order written to the N-th
 *     confirm done, with CPU per branch; then RSS and heap again, with N DONE branches in the cache.
 *
 * Leadership changes of the participant during the level are counted (there should be none). This
 * is a script, not a test: it asserts nothing about timing.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Etcd3, IRequestOp } from 'etcd3';
import { renderRows, type Cell } from '../src/table.js';
import { startEtcd, type EtcdServer } from '../src/testing.js';
import { JsonLineProcess, type ProcessEvent } from '../tools/processes.js';
import type { Args } from './args.js';
import { createEtcdClient, DEFAULT_NAMESPACE, Keys, memberOf, newBranchId, newWriteId, newXid, op, orderFor, parseBranch, parseGlobal, parseMember, parseOrder, tccRules, withEvent, type BranchRecord, type GlobalRecord } from './internals.js';
import { profilesIn, summarizeProfile, type ProfileSummary } from './profile.js';
import { fmt, processCpuSeconds, round } from './stats.js';

const HERE = new URL('.', import.meta.url).pathname;
const PROFILE_DIR = join(HERE, '..', 'bench-profiles');
/** The participant compiled to JavaScript (gitignored), so its RSS is the engine's, not tsx's loader's too. */
const CHILD_DIR = join(HERE, '..', '.cache', 'scale-child');
const INITIATOR = 'orders';
const PARTICIPANT = 'bank-a';
const RESOURCE = 'account';
/** Puts per setup Txn: three records per transaction, within etcd's default --max-txn-ops (128). */
const TX_PER_SETUP_TXN = 42;
/** Two puts per transaction (the decided global and the order). */
const TX_PER_ORDER_TXN = 64;
const TXNS_IN_FLIGHT = 8;

export interface Memory {
  rss: number;
  heapUsed: number;
  /** The JS heap's pages (used or not). */
  heapTotal: number;
  /** Memory of Buffers and other ArrayBuffers, outside the JS heap. */
  arrayBuffers: number;
  maxRss: number;
  /** Resident bytes of the C heap (glibc's main arena) and of anonymous mappings (V8's pages among them). */
  cHeap?: number;
  anonymous?: number;
  /** V8's heap spaces: [pages, used] bytes by space (new, old, code, large_object, …). */
  spaces: Record<string, [number, number]>;
}

export interface ScaleLevel {
  pending: number;
  loadAtStart: number;
  setupSeconds: number;
  branchValueBytes: number;
  listMs: number;
  leadMs: number;
  /** etcd's CPU from the participant's spawn to its first list done and leading. */
  startEtcdCpuSeconds: number;
  startLoopMaxMs: number;
  /** The participant's process before its first list (Node, the loader, the modules, the etcd client). */
  before: Memory;
  /** From leading to every branch reconciled once (as the published stats show it). */
  settleSeconds: number;
  idle: { seconds: number; cpuPercent: number; etcdCpuPercent: number; loopMaxMs: number };
  memory: Memory;
  relist: { ms: number; loopMaxMs: number };
  drain: { ordersSeconds: number; seconds: number; perSecond: number; cpuMsPerBranch: number; etcdCpuMsPerBranch: number; loopMaxMs: number };
  memoryAfterDrain: Memory;
  termsLost: number;
  warnings: [string, number][];
}

export interface ScaleRun {
  etcdVersion: string;
  loadAtStart: number;
  loadAtEnd: number;
  levels: ScaleLevel[];
  profiles: { pending: number; summary: ProfileSummary }[];
}

/**
 * Compiles deployment/scale-participant.ts and what it imports (txloop's src included) with the
 * project's compiler options into .cache/scale-child/; returns the script to run with plain node.
 */
async function compileChild(): Promise<string> {
  mkdirSync(CHILD_DIR, { recursive: true });
  const config = join(CHILD_DIR, 'tsconfig.json');
  writeFileSync(
    config,
    JSON.stringify({ extends: '../../tsconfig.json', compilerOptions: { rootDir: '../..', outDir: '.', declaration: false, sourceMap: false }, include: [], files: ['../../bench/deployment/scale-participant.ts'] }),
  );
  await promisify(execFile)(process.execPath, [join(HERE, '..', 'node_modules', 'typescript', 'bin', 'tsc'), '-p', config], { maxBuffer: 16 << 20 });
  return join(CHILD_DIR, 'bench', 'deployment', 'scale-participant.js');
}

/** 1k, 10k, … below N, then N. */
export function scaleLevels(n: number): number[] {
  const levels: number[] = [];
  for (let l = 1000; l < n; l *= 10) levels.push(l);
  levels.push(n);
  return levels;
}

class Child {
  private nextId = 1;
  constructor(readonly proc: JsonLineProcess) {}

  async ask(cmd: string, timeoutMs = 600_000): Promise<ProcessEvent> {
    const id = this.nextId++;
    const from = this.proc.events.length;
    this.proc.send({ id, cmd });
    const reply = await this.proc.waitForEvent((e) => e.reply === id, `${cmd} reply`, { timeoutMs, from });
    if (typeof reply.error === 'string') throw new Error(`${PARTICIPANT}: ${reply.error}`);
    return reply;
  }
}

interface Pending {
  global: GlobalRecord;
  branch: BranchRecord;
}

/** N transactions as a participant's Try leaves them: global TRYING, branch PREPARED, its member. */
function pendingTransactions(n: number, keys: Keys): { ops: IRequestOp[][]; pending: Pending[]; branchBytes: number } {
  const now = Date.now();
  const timeoutMs = 2 * 3_600_000;
  const pending: Pending[] = [];
  const ops: IRequestOp[][] = [];
  let branchBytes = 0;
  let batch: IRequestOp[] = [];
  for (let i = 0; i < n; i++) {
    const xid = newXid(INITIATOR, now);
    const global = withEvent<GlobalRecord>({ v: 1, xid, app: INITIATOR, name: 'scale', mode: 'tcc', status: 'TRYING', createdAt: now, timeoutMs, deadline: now + timeoutMs, events: [] }, 'Began', `began by scale-bench with timeout ${timeoutMs}ms`, now);
    const branchId = newBranchId();
    const registered = withEvent<BranchRecord>(
      { v: 1, mode: 'tcc', xid, app: INITIATOR, branchId, owner: PARTICIPANT, resource: RESOURCE, payload: { account: `a-${i % 100}`, amount: 1 }, createdAt: now, deadline: global.deadline, tryState: 'PENDING', updatedAt: now, writeId: newWriteId(), keyLayout: 2, events: [] },
      'Registered',
      `branch joined by ${PARTICIPANT}/scale-bench`,
      now,
    );
    const branch = { ...tccRules.withTryResult(registered, 'SUCCEEDED', undefined, now)!, updatedAt: now, writeId: newWriteId() };
    const member = memberOf(branch);
    const bkey = keys.branch(PARTICIPANT, xid, branchId);
    const gkey = keys.global(xid);
    const mkey = keys.memberOf(branch);
    if (i === 0) {
      // What the engine will read back: fail here, not in the child, if a shape drifted.
      parseGlobal(gkey, Buffer.from(JSON.stringify(global)));
      parseBranch(bkey, Buffer.from(JSON.stringify(branch)));
      parseMember(mkey, Buffer.from(JSON.stringify(member)));
    }
    branchBytes += JSON.stringify(branch).length;
    batch.push(op.put(gkey, global), op.put(bkey, branch), op.put(mkey, member));
    pending.push({ global, branch });
    if (batch.length >= TX_PER_SETUP_TXN * 3) {
      ops.push(batch);
      batch = [];
    }
  }
  if (batch.length > 0) ops.push(batch);
  return { ops, pending, branchBytes: branchBytes / n };
}

/** What commit() writes for each: the global COMMITTING with its decision, and the branch's order. */
function decisions(pending: Pending[], keys: Keys): IRequestOp[][] {
  const now = Date.now();
  const ops: IRequestOp[][] = [];
  let batch: IRequestOp[] = [];
  for (const [i, { global, branch }] of pending.entries()) {
    const decided = withEvent<GlobalRecord>(
      { ...global, status: 'COMMITTING', decision: { outcome: 'commit', by: 'commit', at: now, writeId: newWriteId() }, fannedOut: true },
      'Decided',
      'commit by commit (1 branches)',
      now,
    );
    const order = orderFor(branch, 'tcc', 'confirm', 'commit', now);
    const okey = keys.order(PARTICIPANT, branch.xid, branch.branchId);
    if (i === 0) {
      parseGlobal(keys.global(global.xid), Buffer.from(JSON.stringify(decided)));
      parseOrder(okey, Buffer.from(JSON.stringify(order)));
    }
    batch.push(op.put(keys.global(global.xid), decided), op.put(okey, order));
    if (batch.length >= TX_PER_ORDER_TXN * 2) {
      ops.push(batch);
      batch = [];
    }
  }
  if (batch.length > 0) ops.push(batch);
  return ops;
}

async function writeAll(client: Etcd3, txns: IRequestOp[][]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < txns.length) {
      const success = txns[next++]!;
      await client.kv.txn({ compare: [], success, failure: [] });
    }
  };
  await Promise.all(Array.from({ length: TXNS_IN_FLIGHT }, worker));
}

async function poll<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const memoryOf = (e: ProcessEvent): Memory => {
  const m = e.memory as Record<string, number>;
  return { rss: m.rss!, heapUsed: m.heapUsed!, heapTotal: m.heapTotal!, arrayBuffers: m.arrayBuffers!, maxRss: m.maxRss!, spaces: (e.memory as { spaces?: Memory['spaces'] }).spaces ?? {}, ...(m.cHeap !== undefined ? { cHeap: m.cHeap, anonymous: m.anonymous! } : {}) };
};

async function runLevel(n: number, script: string, args: Args, say: (s: string) => void, track: (f: () => Promise<void>) => void): Promise<{ level: ScaleLevel; etcdVersion: string; profile?: ProfileSummary }> {
  const loadAtStart = loadavg()[0] ?? 0;
  let etcd: EtcdServer | undefined;
  let client: Etcd3 | undefined;
  let child: Child | undefined;
  const cleanup = async (): Promise<void> => {
    child?.proc.endInput();
    await child?.proc.stop('SIGTERM', 30_000);
    client?.close();
    await etcd?.stop();
  };
  track(cleanup);
  try {
    etcd = await startEtcd();
    client = createEtcdClient({ endpoints: etcd.endpoints });
    const etcdVersion = (await client.maintenance.status()).version;
    const keys = new Keys(DEFAULT_NAMESPACE);

    say(`${n} pending branches: bulk-writing ${n} transactions (global, branch, member)…`);
    const s0 = performance.now();
    const { ops, pending, branchBytes } = pendingTransactions(n, keys);
    await writeAll(client, ops);
    const setupSeconds = (performance.now() - s0) / 1000;

    say(`${n}: starting ${PARTICIPANT} in its own process (first list, election)…`);
    const profileDir = join(PROFILE_DIR, `scale-${n}`);
    const nodeArgs = ['--expose-gc', ...(args.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])];
    const config = { endpoints: etcd.endpoints, app: PARTICIPANT, retentionMs: 3_600_000, expect: n, ...(args.workers !== undefined ? { workers: args.workers } : {}) };
    const etcdCpu0 = processCpuSeconds(etcd.pid) ?? Number.NaN;
    child = new Child(new JsonLineProcess({ name: PARTICIPANT, script, javascript: true, args: [JSON.stringify(config)], stdin: 'pipe', nodeArgs }));
    const ready = await child.proc.waitForEvent((e) => e.event === 'ready', 'ready', { timeoutMs: 600_000 });
    const startEtcdCpuSeconds = (processCpuSeconds(etcd.pid) ?? Number.NaN) - etcdCpu0;
    const pid = child.proc.pid;
    const ledAt = performance.now();

    say(`${n}: waiting until every branch was reconciled once…`);
    const statsKey = `${DEFAULT_NAMESPACE}${PARTICIPANT}/stats`;
    await poll('every branch waiting for its decision in the published stats', 900_000, async () => {
      const raw = await client!.get(statsKey).string();
      if (raw === null) return undefined;
      const q = (JSON.parse(raw) as { queues: { branches: { depth: number; processing: number; waiting: number } } }).queues.branches;
      return q.depth === 0 && q.processing === 0 && q.waiting >= n ? true : undefined;
    });
    const settleSeconds = (performance.now() - ledAt) / 1000;

    say(`${n}: idle for ${args.idleSeconds}s…`);
    await child.ask('loop');
    const c0 = processCpuSeconds(pid) ?? Number.NaN;
    const e0 = processCpuSeconds(etcd.pid) ?? Number.NaN;
    const i0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, args.idleSeconds * 1000));
    const idleWall = (performance.now() - i0) / 1000;
    const c1 = processCpuSeconds(pid) ?? Number.NaN;
    const e1 = processCpuSeconds(etcd.pid) ?? Number.NaN;
    const idleLoop = (await child.ask('loop')).loop as { maxMs: number };
    const memory = memoryOf(await child.ask('memory'));
    if (args.heapSnapshot) say(`${n}: heap snapshot written to ${String((await child.ask('heapSnapshot')).file)}`);

    say(`${n}: one relist…`);
    const rl = await child.ask('relist');
    const relist = { ms: Number(rl.ms), loopMaxMs: (rl.loop as { maxMs: number }).maxMs };

    say(`${n}: deciding every transaction (commit) and ordering every branch to confirm…`);
    const orderTxns = decisions(pending, keys);
    const dc0 = processCpuSeconds(pid) ?? Number.NaN;
    const de0 = processCpuSeconds(etcd.pid) ?? Number.NaN;
    const d0 = Date.now();
    await child.ask('loop');
    await writeAll(client, orderTxns);
    const ordersSeconds = (Date.now() - d0) / 1000;
    say(`${n}: orders written in ${fmt(ordersSeconds)}s; waiting for ${n} confirms…`);
    const drained = await child.ask('drained', 120_000 + n * 20);
    const drainSeconds = (Number(drained.drainedAt) - d0) / 1000;
    const dc1 = processCpuSeconds(pid) ?? Number.NaN;
    const de1 = processCpuSeconds(etcd.pid) ?? Number.NaN;
    const afterDrain = await child.ask('memory');
    if (args.heapSnapshot) say(`${n}: heap snapshot after the drain written to ${String((await child.ask('heapSnapshot')).file)}`);
    const warnings = (await child.ask('logs')).warnings as [string, number][];

    child.proc.endInput();
    await child.proc.exit;
    const profile = args.profile ? profilesIn(profileDir).map((f) => summarizeProfile(f)).sort((x, y) => y.totalMs - x.totalMs)[0] : undefined;
    return {
      etcdVersion,
      ...(profile ? { profile } : {}),
      level: {
        pending: n,
        loadAtStart,
        setupSeconds,
        branchValueBytes: branchBytes,
        listMs: Number(ready.listMs),
        leadMs: Number(ready.leadMs),
        startEtcdCpuSeconds,
        startLoopMaxMs: (ready.loop as { maxMs: number }).maxMs,
        before: memoryOf({ memory: ready.before }),
        settleSeconds,
        idle: { seconds: idleWall, cpuPercent: ((c1 - c0) / idleWall) * 100, etcdCpuPercent: ((e1 - e0) / idleWall) * 100, loopMaxMs: idleLoop.maxMs },
        memory,
        relist,
        drain: {
          ordersSeconds,
          seconds: drainSeconds,
          perSecond: n / drainSeconds,
          cpuMsPerBranch: ((dc1 - dc0) * 1000) / n,
          etcdCpuMsPerBranch: ((de1 - de0) * 1000) / n,
          loopMaxMs: (drained.loop as { maxMs: number }).maxMs,
        },
        memoryAfterDrain: memoryOf(afterDrain),
        termsLost: Number(afterDrain.termsLost),
        warnings,
      },
    };
  } finally {
    await cleanup();
  }
}

export async function runScale(args: Args, say: (s: string) => void, onCleanup: (f: () => Promise<void>) => void): Promise<ScaleRun> {
  const loadAtStart = loadavg()[0] ?? 0;
  const levels: ScaleLevel[] = [];
  const profiles: ScaleRun['profiles'] = [];
  let etcdVersion = '';
  say('compiling the participant to JavaScript (.cache/scale-child)…');
  const script = await compileChild();
  for (const n of args.scaleLevels ?? scaleLevels(args.scale!)) {
    const r = await runLevel(n, script, args, say, onCleanup);
    etcdVersion = r.etcdVersion;
    levels.push(r.level);
    if (r.profile) profiles.push({ pending: n, summary: r.profile });
  }
  return { etcdVersion, loadAtStart, loadAtEnd: loadavg()[0] ?? 0, levels, profiles };
}

const mib = (b: number): string => fmt(b / 1024 / 1024, 0);

export function printScale(run: ScaleRun): void {
  const L = run.levels;
  const rows: Cell[][] = [
    ['pending branches on one participant', ...L.map((l) => l.pending)],
    ['load average (1 min) at start', ...L.map((l) => fmt(l.loadAtStart, 2))],
    ['branch record, bytes', ...L.map((l) => fmt(l.branchValueBytes, 0))],
    ['first list (start()), s', ...L.map((l) => fmt(l.listMs / 1000, 2))],
    ['  etcd CPU during start, s', ...L.map((l) => fmt(l.startEtcdCpuSeconds, 2))],
    ['  longest event-loop stall, start, ms', ...L.map((l) => fmt(l.startLoopMaxMs, 0))],
    ['elected, then every branch reconciled, s', ...L.map((l) => fmt(l.settleSeconds, 1))],
    ['RSS before the first list, MiB', ...L.map((l) => mib(l.before.rss))],
    ['  its C heap, MiB', ...L.map((l) => (l.before.cHeap === undefined ? 'n/a' : mib(l.before.cHeap)))],
    ['RSS, MiB', ...L.map((l) => mib(l.memory.rss))],
    ['heap used after GC, MiB', ...L.map((l) => mib(l.memory.heapUsed))],
    ['  heap pages (total), MiB', ...L.map((l) => mib(l.memory.heapTotal))],
    ['Buffers (array buffers), MiB', ...L.map((l) => mib(l.memory.arrayBuffers))],
    ['  resident C heap (glibc main arena), MiB', ...L.map((l) => (l.memory.cHeap === undefined ? 'n/a' : mib(l.memory.cHeap)))],
    ['  resident anonymous maps (V8 pages, …), MiB', ...L.map((l) => (l.memory.anonymous === undefined ? 'n/a' : mib(l.memory.anonymous)))],
    ['peak RSS so far, MiB', ...L.map((l) => mib(l.memory.maxRss))],
    ['idle CPU, % of a core', ...L.map((l) => fmt(l.idle.cpuPercent, 2))],
    ['  etcd idle CPU, %', ...L.map((l) => fmt(l.idle.etcdCpuPercent, 2))],
    ['  longest event-loop stall, idle, ms', ...L.map((l) => fmt(l.idle.loopMaxMs, 0))],
    ['relist, s', ...L.map((l) => fmt(l.relist.ms / 1000, 2))],
    ['  longest event-loop stall, relist, ms', ...L.map((l) => fmt(l.relist.loopMaxMs, 0))],
    ['orders written (bulk), s', ...L.map((l) => fmt(l.drain.ordersSeconds, 1))],
    ['drain rate, branches/s', ...L.map((l) => fmt(l.drain.perSecond, 0))],
    ['  participant CPU per branch, ms', ...L.map((l) => fmt(l.drain.cpuMsPerBranch, 2))],
    ['  etcd CPU per branch, ms', ...L.map((l) => fmt(l.drain.etcdCpuMsPerBranch, 2))],
    ['  longest event-loop stall, drain, ms', ...L.map((l) => fmt(l.drain.loopMaxMs, 0))],
    ['RSS after drain (all DONE), MiB', ...L.map((l) => mib(l.memoryAfterDrain.rss))],
    ['heap used after drain, MiB', ...L.map((l) => mib(l.memoryAfterDrain.heapUsed))],
    ['Buffers after drain, MiB', ...L.map((l) => mib(l.memoryAfterDrain.arrayBuffers))],
    ['  resident C heap after drain, MiB', ...L.map((l) => (l.memoryAfterDrain.cHeap === undefined ? 'n/a' : mib(l.memoryAfterDrain.cHeap)))],
    ['peak RSS, MiB', ...L.map((l) => mib(l.memoryAfterDrain.maxRss))],
    ['leadership lost', ...L.map((l) => l.termsLost)],
  ];
  console.log(`\netcd ${run.etcdVersion}; load average ${fmt(run.loadAtStart, 2)} at start, ${fmt(run.loadAtEnd, 2)} at end`);
  for (const line of renderRows(rows, { alignRight: L.map((_, i) => i + 1) })) console.log(line);
  for (const l of L) for (const [w, c] of l.warnings) console.log(`  ${l.pending}: ${c} × ${w}`);
  for (const l of L) {
    const spaces = (m: Memory): string => Object.entries(m.spaces).filter(([, [size]]) => size >= 1 << 20).map(([name, [size, used]]) => `${name} ${mib(size)}/${mib(used)}`).join(', ');
    console.log(`  ${l.pending}: V8 heap spaces, MiB pages/used: idle ${spaces(l.memory)}; after drain ${spaces(l.memoryAfterDrain)}`);
  }
  for (const p of run.profiles) {
    console.log(`\nprofile at ${p.pending} (${fmt(p.summary.totalMs / 1000, 1)} s busy): ${p.summary.file}`);
    for (const [k, share] of p.summary.packages) console.log(`  ${fmt(share * 100, 1).padStart(5)} %  ${k}`);
    for (const [k, share] of p.summary.functions) console.log(`  ${fmt(share * 100, 1).padStart(5)} %  ${k}`);
  }
}

export function scaleJson(run: ScaleRun): unknown {
  return {
    mode: 'scale',
    etcdVersion: run.etcdVersion,
    loadAverage: round(run.loadAtStart, 2),
    levels: run.levels.map((l) => ({
      pending: l.pending,
      loadAverage: round(l.loadAtStart, 2),
      listSeconds: round(l.listMs / 1000, 3),
      rssBeforeListMiB: round(l.before.rss / 1048576, 1),
      rssMiB: round(l.memory.rss / 1048576, 1),
      heapUsedMiB: round(l.memory.heapUsed / 1048576, 1),
      arrayBuffersMiB: round(l.memory.arrayBuffers / 1048576, 1),
      peakRssMiB: round(l.memoryAfterDrain.maxRss / 1048576, 1),
      idleCpuPercent: round(l.idle.cpuPercent, 2),
      relistSeconds: round(l.relist.ms / 1000, 3),
      drainPerSec: round(l.drain.perSecond, 1),
      cpuMsPerBranch: round(l.drain.cpuMsPerBranch, 3),
      rssAfterDrainMiB: round(l.memoryAfterDrain.rss / 1048576, 1),
      longestStallMs: round(Math.max(l.startLoopMaxMs, l.idle.loopMaxMs, l.relist.loopMaxMs, l.drain.loopMaxMs), 0),
      leadershipLost: l.termsLost,
    })),
  };
}

/** The whole `--scale` run as main.ts dispatches it: the levels, the table (unless --json), the JSON line. */
export async function scaleMain(args: Args, say: (s: string) => void): Promise<void> {
  const cleanups: (() => Promise<void>)[] = [];
  const onSignal = (sig: NodeJS.Signals): void => {
    console.error(`\n${sig}: stopping the participant and etcd`);
    void Promise.allSettled(cleanups.map((f) => f())).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (args.profile) mkdirSync(PROFILE_DIR, { recursive: true });
    const run = await runScale(args, say, (f) => cleanups.push(f));
    if (!args.jsonOnly) printScale(run);
    console.log(JSON.stringify(scaleJson(run)));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
