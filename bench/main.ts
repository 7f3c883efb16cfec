/**
 * txloop benchmark: committed 2-branch TCC transactions per second against etcd's own raw write
 * rate, measured in one run on one throwaway etcd.
 *
 *   npm run bench -- [--tx 2000] [--concurrency 16] [--raw-ops 10000] [--warmup 100]
 *                    [--workers 8] [--pipelined] [--json] [--verbose]
 *
 * Phases, in order, all on the same etcd and the same etcd3 client:
 *  0. warm-up: raw Txns and --warmup TCC transactions, not measured;
 *  1. raw, first half: --raw-ops/2 Txns of one compare (key absent) + one put (512-byte value) at
 *     --concurrency;
 *  2. TCC: --tx transactions at --concurrency: begin, Try on two participant services (in parallel),
 *     commit; a transaction is done when the initiator's leader emits 'completed' (COMMITTED).
 *     By default each of the C workers waits for its transaction's completion before beginning the
 *     next (closed loop: at most C transactions in flight, phase 2 included); --pipelined starts the
 *     next one as soon as commit() returns (phase 2 then overlaps, unbounded);
 *  3. raw, second half (so drift between phases shows as before/after figures);
 *  4. history replay (after the clocks stopped): every revision of the TCC window, classified by what
 *     the Txn wrote, for the writes-per-transaction breakdown.
 *
 * All three services (initiator `orders`, participants `bank-a` and `bank-b`, no-op handlers) live in
 * this process and share one etcd3 client, so on a small machine this process's CPU, not etcd, is
 * usually the limit: the table prints both CPU figures.
 *
 * This is a script, not a test: it asserts nothing about timing.
 */
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Etcd3, type IRequestOp, type ICompare } from 'etcd3';
import { pino } from 'pino';
import { TxloopService, GlobalStatus } from '../src/index.js';
import { Keys, DEFAULT_NAMESPACE, prefixEnd } from '../src/internal/keys.js';
import { startEtcd, type EtcdServer } from '../src/testing.js';
import { replay, type TxnSummary } from './history.js';
import { LogTally, PhaseClock, fmt, round, summarize, table, type LatencySummary } from './stats.js';

const USAGE = `usage: npm run bench -- [options]
  --tx N             measured TCC transactions (default 2000)
  --concurrency C    transactions in flight, and raw Txns in flight (default 16)
  --raw-ops N        raw etcd Txns measured (default 10000)
  --warmup N         unmeasured TCC transactions first (default 100)
  --workers N        phase-2 workers per service (ServiceOptions.concurrency; default: the SDK's, 8)
  --pipelined        don't wait for completion before the next begin (phase 2 overlaps, unbounded)
  --json             print only the JSON line
  --verbose          pass the services' log lines (level $TXLOOP_LOG_LEVEL, default warn) to stderr
  --help`;

interface Args {
  tx: number;
  concurrency: number;
  rawOps: number;
  warmup: number;
  workers: number | undefined;
  pipelined: boolean;
  jsonOnly: boolean;
  verbose: boolean;
}

function parse(): Args {
  const { values } = parseArgs({
    options: {
      tx: { type: 'string' },
      concurrency: { type: 'string' },
      'raw-ops': { type: 'string' },
      warmup: { type: 'string' },
      workers: { type: 'string' },
      pipelined: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, fallback: number, min: number): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}\n${USAGE}`);
    return n;
  };
  return {
    tx: int('tx', values.tx, 2000, 1),
    concurrency: int('concurrency', values.concurrency, 16, 1),
    rawOps: int('raw-ops', values['raw-ops'], 10_000, 1),
    warmup: int('warmup', values.warmup, 100, 0),
    workers: values.workers === undefined ? undefined : int('workers', values.workers, 8, 1),
    pipelined: values.pipelined ?? false,
    jsonOnly: values.json ?? false,
    verbose: values.verbose ?? false,
  };
}

/**
 * Counts the etcd RPCs the services make through the shared client (reads cost etcd too), and the
 * write Txns whose compares failed (conflicts), by what they tried to write.
 */
class RpcCounter {
  txnWrite = 0;
  txnReadOnly = 0;
  range = 0;
  readonly conflicts = new Map<string, number>();

  constructor(client: Etcd3, keys: Keys) {
    const kv = client.kv;
    const txn = kv.txn.bind(kv);
    const range = kv.range.bind(kv);
    kv.txn = async (req, options) => {
      const success = (req.success ?? []) as IRequestOp[];
      const writes = success.some((o) => o.request_put || o.request_delete_range || o.request_txn);
      if (writes) this.txnWrite++;
      else this.txnReadOnly++;
      const res = await txn(req, options);
      if (writes && !res.succeeded) {
        const what = [...new Set(success.map((o) => (o.request_put ? `put ${keys.parse(String(o.request_put.key ?? ""))?.kind ?? 'other'}` : o.request_delete_range ? 'delete' : 'txn')))].join('+');
        this.conflicts.set(what, (this.conflicts.get(what) ?? 0) + 1);
      }
      return res;
    };
    kv.range = (req, options) => {
      this.range++;
      return range(req, options);
    };
  }

  snapshot(): { txnWrite: number; txnReadOnly: number; range: number; conflicts: Record<string, number> } {
    return { txnWrite: this.txnWrite, txnReadOnly: this.txnReadOnly, range: this.range, conflicts: Object.fromEntries(this.conflicts) };
  }
}

/** Transaction records (globals, links, branches, orders: not leader/stats keys) stored now, read page by page. */
async function storedRecords(client: Etcd3, keys: Keys): Promise<{ keys: number; bytes: number }> {
  const prefix = keys.ns;
  const end = prefixEnd(prefix);
  let start = Buffer.from(prefix);
  let count = 0;
  let bytes = 0;
  for (;;) {
    const res = await client.kv.range({ key: start, range_end: end, limit: 1000 });
    for (const kv of res.kvs) {
      const kind = keys.parse(kv.key.toString())?.kind;
      if (kind !== 'global' && kind !== 'link' && kind !== 'branch' && kind !== 'order') continue;
      count++;
      bytes += kv.key.length + kv.value.length;
    }
    const last = res.kvs.at(-1);
    if (!res.more || !last) return { keys: count, bytes };
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
}

async function currentRevision(client: Etcd3): Promise<string> {
  const res = await client.kv.range({ key: Buffer.from('txloop-bench/revision-probe') });
  return res.header.revision;
}

/** C workers pulling from a shared counter until `total` jobs ran. */
async function runWorkers(total: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (next < total) await job(next++);
    }),
  );
}

interface RawResult {
  ops: number;
  seconds: number;
  perSecond: number;
  latencyMs: LatencySummary;
  samples: number[];
  benchCpu: number;
  etcdCpu: number | undefined;
}

async function rawPhase(client: Etcd3, ops: number, concurrency: number, etcdPid: number | undefined, tag: string): Promise<RawResult> {
  const value = Buffer.alloc(512, 'x');
  const latencies: number[] = [];
  const clock = new PhaseClock(etcdPid);
  await runWorkers(ops, concurrency, async (i) => {
    const key = Buffer.from(`txloop-bench/raw/${tag}/${i}`);
    const compare: ICompare[] = [{ key, target: 'Create', result: 'Equal', create_revision: 0 }];
    const t0 = performance.now();
    const res = await client.kv.txn({ compare, success: [{ request_put: { key, value } }], failure: [] });
    latencies.push(performance.now() - t0);
    if (!res.succeeded) throw new Error(`raw Txn on ${key.toString()} did not succeed`);
  });
  const { seconds, benchCpu, etcdCpu } = clock.stop();
  return { ops, seconds, perSecond: ops / seconds, latencyMs: summarize(latencies), samples: latencies, benchCpu, etcdCpu };
}

function combineRaw(a: RawResult, b: RawResult): RawResult & { before: number; after: number } {
  if (a === b) return { ...a, before: a.perSecond, after: a.perSecond };
  const seconds = a.seconds + b.seconds;
  const ops = a.ops + b.ops;
  const weighted = (x: number, y: number): number => (x * a.seconds + y * b.seconds) / seconds;
  const etcdCpu = a.etcdCpu === undefined || b.etcdCpu === undefined ? undefined : weighted(a.etcdCpu, b.etcdCpu);
  return {
    ops,
    seconds,
    perSecond: ops / seconds,
    latencyMs: summarize([...a.samples, ...b.samples]),
    samples: [],
    benchCpu: weighted(a.benchCpu, b.benchCpu),
    etcdCpu,
    before: a.perSecond,
    after: b.perSecond,
  };
}

interface TccResult {
  tx: number;
  seconds: number;
  perSecond: number;
  beginToCommitMs: LatencySummary;
  commitCallMs: LatencySummary;
  decisionToCompletionMs: LatencySummary;
  beginToCompletionMs: LatencySummary;
  revisions: number;
  benchCpu: number;
  etcdCpu: number | undefined;
  rpcs: { txnWrite: number; txnReadOnly: number; range: number; conflicts: Record<string, number> };
}

class Bench {
  private readonly services: TxloopService[] = [];
  private readonly waiters = new Map<string, { resolve: (status: GlobalStatus) => void; at?: number }>();
  private readonly completedAt = new Map<string, { at: number; status: GlobalStatus }>();
  initiator!: TxloopService;
  private bankA!: TxloopService;
  private bankB!: TxloopService;

  constructor(
    private readonly client: Etcd3,
    private readonly args: Args,
    readonly logs: LogTally,
  ) {}

  async start(): Promise<void> {
    const logger = pino({ level: process.env.TXLOOP_LOG_LEVEL ?? 'warn' }, this.logs);
    const common = {
      client: this.client,
      logger,
      // Long retention: no collection (GC deletes) during the measurement.
      retentionMs: 24 * 3_600_000,
      defaultTimeoutMs: 120_000,
      ...(this.args.workers !== undefined ? { concurrency: this.args.workers } : {}),
    };
    this.initiator = new TxloopService({ ...common, app: 'orders' });
    this.bankA = new TxloopService({ ...common, app: 'bank-a' });
    this.bankB = new TxloopService({ ...common, app: 'bank-b' });
    this.services.push(this.initiator, this.bankA, this.bankB);
    const noop = {
      try: async () => ({ frozen: true }),
      confirm: async () => undefined,
      cancel: async () => undefined,
    };
    this.bankA.resource('debit', noop);
    this.bankB.resource('credit', noop);
    this.initiator.on('completed', ({ xid, status }) => {
      const at = performance.now();
      const w = this.waiters.get(xid);
      this.completedAt.set(xid, { at, status });
      if (w) {
        this.waiters.delete(xid);
        w.resolve(status);
      }
    });
    const leading = this.services.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.isLeader()) return resolve();
          const on = ({ leading: l }: { leading: boolean }): void => {
            if (l) {
              s.off('leader', on);
              resolve();
            }
          };
          s.on('leader', on);
        }),
    );
    await Promise.all(this.services.map((s) => s.start()));
    await withTimeout(Promise.all(leading), 30_000, 'services did not become leaders');
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.services.map((s) => s.close()));
  }

  /** Runs `count` transactions; returns per-transaction timings (ms). */
  async run(count: number): Promise<{ beginToCommit: number[]; commitCall: number[]; decisionToCompletion: number[]; beginToCompletion: number[] }> {
    const out = { beginToCommit: [] as number[], commitCall: [] as number[], decisionToCompletion: [] as number[], beginToCompletion: [] as number[] };
    const pending: Promise<void>[] = [];
    await runWorkers(count, this.args.concurrency, async (i) => {
      const t0 = performance.now();
      const tx = await this.initiator.begin({ name: `bench ${i}`, timeoutMs: 120_000 });
      const completed = new Promise<GlobalStatus>((resolve) => {
        const early = this.completedAt.get(tx.xid);
        if (early) resolve(early.status);
        else this.waiters.set(tx.xid, { resolve });
      });
      await Promise.all([
        this.bankA.tryBranch(tx.context, 'debit', { account: `a-${i % 100}`, amount: 1 }),
        this.bankB.tryBranch(tx.context, 'credit', { account: `b-${i % 100}`, amount: 1 }),
      ]);
      const t1 = performance.now();
      await tx.commit();
      const t2 = performance.now();
      out.beginToCommit.push(t2 - t0);
      out.commitCall.push(t2 - t1);
      const finish = completed.then((status) => {
        if (status !== GlobalStatus.COMMITTED) throw new Error(`transaction ${tx.xid} ended ${status}, not COMMITTED`);
        const at = this.completedAt.get(tx.xid)!.at;
        this.completedAt.delete(tx.xid);
        out.decisionToCompletion.push(at - t2);
        out.beginToCompletion.push(at - t0);
      });
      if (this.args.pipelined) pending.push(finish);
      else await finish;
    });
    await Promise.all(pending);
    return out;
  }
}

async function tccPhase(bench: Bench, client: Etcd3, rpc: RpcCounter, count: number, etcdPid: number | undefined): Promise<TccResult & { from: string; to: string }> {
  const from = await currentRevision(client);
  const rpc0 = rpc.snapshot();
  const clock = new PhaseClock(etcdPid);
  const t = await withTimeout(bench.run(count), 600_000, `the ${count} transactions did not all complete within 10 minutes`);
  const { seconds, benchCpu, etcdCpu } = clock.stop();
  const rpc1 = rpc.snapshot();
  const to = await currentRevision(client);
  const revisions = Number(BigInt(to) - BigInt(from));
  return {
    tx: count,
    seconds,
    perSecond: count / seconds,
    beginToCommitMs: summarize(t.beginToCommit),
    commitCallMs: summarize(t.commitCall),
    decisionToCompletionMs: summarize(t.decisionToCompletion),
    beginToCompletionMs: summarize(t.beginToCompletion),
    revisions,
    benchCpu,
    etcdCpu,
    rpcs: {
      txnWrite: rpc1.txnWrite - rpc0.txnWrite,
      txnReadOnly: rpc1.txnReadOnly - rpc0.txnReadOnly,
      range: rpc1.range - rpc0.range,
      conflicts: Object.fromEntries(Object.entries(rpc1.conflicts).map(([k, n]) => [k, n - (rpc0.conflicts[k] ?? 0)]).filter(([, n]) => Number(n) > 0)),
    },
    from,
    to,
  };
}

function breakdown(txns: TxnSummary[], tx: number): { kind: string; txns: number; perTx: number; opsPerTxn: number; bytesPerTx: number }[] {
  const by = new Map<string, { txns: number; ops: number; bytes: number }>();
  for (const t of txns) {
    const e = by.get(t.kind) ?? { txns: 0, ops: 0, bytes: 0 };
    e.txns++;
    e.ops += t.ops;
    e.bytes += t.bytes;
    by.set(t.kind, e);
  }
  return [...by.entries()].map(([kind, e]) => ({ kind, txns: e.txns, perTx: round(e.txns / tx, 3), opsPerTxn: round(e.ops / e.txns, 2), bytesPerTx: round(e.bytes / tx, 0) }));
}

function nullIfNaN(n: number): number | null {
  return Number.isNaN(n) ? null : n;
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

let interrupted = false;

async function main(): Promise<void> {
  const args = parse();
  const say = (s: string): void => {
    if (!args.jsonOnly) console.error(s);
  };
  let etcd: EtcdServer | undefined;
  let client: Etcd3 | undefined;
  let bench: Bench | undefined;
  let stopping: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (stopping ??= (async () => {
      await bench?.close();
      client?.close();
      await etcd?.stop();
    })());
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = true;
    console.error(`\n${sig}: stopping services and etcd`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const loadAtStart = loadavg()[0] ?? 0;
    say('starting a throwaway etcd…');
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoints });
    const keys = new Keys(DEFAULT_NAMESPACE);
    const rpc = new RpcCounter(client, keys);
    const logs = new LogTally(args.verbose);
    bench = new Bench(client, args, logs);
    await bench.start();
    const pid = etcd.pid;
    const etcdVersion = (await client.maintenance.status()).version;

    say(`warming up (${args.warmup} TCC transactions, ${Math.min(2000, args.rawOps)} raw Txns)…`);
    await rawPhase(client, Math.min(2000, args.rawOps), args.concurrency, pid, 'warmup');
    if (args.warmup > 0) await bench.run(args.warmup);

    // The raw rate is measured in two halves, before and after the TCC run, so that drift (other
    // load on the machine, etcd's growing keyspace) shows up instead of skewing the ratio unseen.
    const firstHalf = Math.ceil(args.rawOps / 2);
    say(`raw etcd Txns: ${firstHalf} at concurrency ${args.concurrency}…`);
    const rawBefore = await rawPhase(client, firstHalf, args.concurrency, pid, 'before');

    say(`TCC: ${args.tx} transactions at concurrency ${args.concurrency}${args.pipelined ? ' (pipelined)' : ''}…`);
    logs.reset();
    const tcc = await tccPhase(bench, client, rpc, args.tx, pid);
    const warnings = logs.entries();

    say(`raw etcd Txns: ${args.rawOps - firstHalf} at concurrency ${args.concurrency}…`);
    const rawAfter = args.rawOps - firstHalf > 0 ? await rawPhase(client, args.rawOps - firstHalf, args.concurrency, pid, 'after') : rawBefore;
    const raw = combineRaw(rawBefore, rawAfter);

    say('replaying etcd history of the TCC run…');
    const { txns, complete } = await replay(client, keys, tcc.from, tcc.to);
    const rows = breakdown(txns, args.tx);
    // Everything the finished transactions leave in etcd until retention collects it (warm-up included).
    const stored = await storedRecords(client, keys);
    const finished = args.tx + args.warmup;
    const retainedPerTx = { keys: stored.keys / finished, bytes: stored.bytes / finished };
    const background = rows.filter((r) => r.kind.includes('background')).reduce((s, r) => s + r.txns, 0);
    const writesPerTx = tcc.revisions / args.tx;
    const txWritesPerTx = (tcc.revisions - background) / args.tx;
    const ratio = tcc.perSecond / raw.perSecond;
    const rpcPerTx = { txnWrite: tcc.rpcs.txnWrite / args.tx, txnReadOnly: tcc.rpcs.txnReadOnly / args.tx, range: tcc.rpcs.range / args.tx };

    const result = {
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
      writesPerTx: round(writesPerTx, 3),
      txWritesPerTx: round(txWritesPerTx, 3),
      backgroundWrites: background,
      etcdRpcPerTx: { txnWrite: round(rpcPerTx.txnWrite, 3), txnReadOnly: round(rpcPerTx.txnReadOnly, 3), range: round(rpcPerTx.range, 3) },
      failedWriteTxns: tcc.rpcs.conflicts,
      retainedPerTx: { keys: round(retainedPerTx.keys, 2), bytes: round(retainedPerTx.bytes, 0) },
      writeBreakdown: Object.fromEntries(rows.map((r) => [r.kind, { perTx: r.perTx, opsPerTxn: r.opsPerTxn, bytesPerTx: r.bytesPerTx }])),
      historyComplete: complete,
      sdkWarningsDuringRun: Object.fromEntries(warnings),
    };

    if (!args.jsonOnly) {
      const ms = (l: LatencySummary): [string, string, string] => [fmt(l.p50, 2), fmt(l.p99, 2), fmt(l.max, 2)];
      const cpu = (benchCpu: number, etcdCpu: number | undefined): string => `bench ${fmt(benchCpu * 100, 0)}% · etcd ${etcdCpu === undefined ? 'n/a' : `${fmt(etcdCpu * 100, 0)}%`}`;
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
      console.log(
        table([
          ['ETCD WRITES DURING THE TCC RUN', 'TXNS', 'PER TX', 'OPS/TXN', 'BYTES/TX'],
          ...rows.map((r) => [r.kind, r.txns, fmt(r.perTx, 3), fmt(r.opsPerTxn, 2), String(r.bytesPerTx)]),
          ['total (revision after − before)', tcc.revisions, fmt(writesPerTx, 3), '', String(rows.reduce((s, r) => s + r.bytesPerTx, 0))],
          ['  of which transaction writes', tcc.revisions - background, fmt(txWritesPerTx, 3), '', ''],
        ]),
      );
      console.log('');
      console.log(
        `etcd RPCs per tx through the shared client: ${fmt(rpcPerTx.txnWrite, 2)} write Txns, ${fmt(rpcPerTx.txnReadOnly, 2)} read-only Txns, ${fmt(rpcPerTx.range, 2)} Ranges` +
          ` (leases and watches not counted).`,
      );
      console.log(
        `Kept in etcd per finished transaction until retention (${fmt(retainedPerTx.keys, 2)} keys, ${fmt(retainedPerTx.bytes / 1024, 1)} KiB): ` +
          `the services' informers cache all of it and relist it on every resync.`,
      );
      const conflicts = Object.entries(tcc.rpcs.conflicts);
      if (conflicts.length > 0) console.log(`Write Txns that failed their compare (conflicts, retried by the SDK): ${conflicts.map(([k, n]) => `${n} × ${k}`).join(', ')}.`);
      console.log(
        'Writes are counted as etcd revisions: each write Txn bumps the revision once, whatever its op count. Background writes (leader ' +
          `stats every 5 s, leader keys) are included in the total and shown apart. retentionMs is 24 h, so no GC deletes happen during the run.` +
          (complete ? '' : ' (History replay incomplete: the breakdown may miss some revisions.)'),
      );
      if (warnings.length > 0) {
        console.log('');
        console.log(table([['SDK LOG LINES DURING THE TCC RUN (warn+)', 'COUNT'], ...warnings.map(([k, n]) => [k, n])]));
      }
      console.log('');
    }
    console.log(JSON.stringify(result));
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    if (interrupted) return; // the signal handler exits once etcd is stopped
    console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
