/**
 * txloop benchmark: committed 2-branch TCC transactions per second against etcd's own raw write
 * rate, measured in one run on one throwaway etcd.
 *
 *   npm run bench -- [--tx 2000] [--concurrency 16] [--raw-ops 10000] [--warmup 100]
 *                    [--workers 8] [--pipelined] [--also-concurrency 64] [--json] [--verbose]
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
 *  4. only with --also-concurrency N: --tx more TCC transactions at concurrency N, then --raw-ops/2
 *     raw Txns at N, for a side-by-side row (group commit batches more when more is in flight);
 *  5. history replay (after the clocks stopped): every revision of each TCC window, split into the
 *     logical write Txns it carried, for the writes-per-transaction breakdown.
 *
 * Group commit (src/internal/txn-batcher.ts): every store Txn goes through a per-service batcher, and
 * Txns submitted while one RPC is in flight go out together as the nested Txns of one outer Txn with
 * no compares. So three figures differ: logical write Txns (what the SDK asks for: 11 per committed
 * 2-branch transaction), etcd revisions (raft writes: one per outer Txn that wrote something, however
 * many nested Txns it carried) and RPCs. The raw Txns go straight to the client, never batched.
 *
 * All three services (initiator `orders`, participants `bank-a` and `bank-b`, no-op handlers) live in
 * this process and share one etcd3 client, so on a small machine this process's CPU, not etcd, is
 * usually the limit: the table prints both CPU figures.
 *
 * This is a script, not a test: it asserts nothing about timing.
 */
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Etcd3, type IRequestOp, type ICompare, type ITxnRequest } from 'etcd3';
import { pino } from 'pino';
import { TxloopService, GlobalStatus } from '../src/index.js';
import { prefixEnd } from '../src/etcd/index.js';
import { Keys, DEFAULT_NAMESPACE } from '../src/store/index.js';
import { startEtcd, type EtcdServer } from '../src/testing.js';
import { BACKGROUND, replay, type RevisionSummary } from './history.js';
import { LogTally, PhaseClock, fmt, round, summarize, table, type LatencySummary } from './stats.js';

const USAGE = `usage: npm run bench -- [options]
  --tx N             measured TCC transactions (default 2000)
  --concurrency C    transactions in flight, and raw Txns in flight (default 16)
  --raw-ops N        raw etcd Txns measured (default 10000)
  --warmup N         unmeasured TCC transactions first (default 100)
  --workers N        phase-2 workers per service (ServiceOptions.concurrency; default: the SDK's, 8)
  --pipelined        don't wait for completion before the next begin (phase 2 overlaps, unbounded)
  --also-concurrency N
                     after the main run, --tx more TCC transactions (and --raw-ops/2 raw Txns) at
                     concurrency N, printed side by side (off by default; try 64)
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
  alsoConcurrency: number | undefined;
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
      'also-concurrency': { type: 'string' },
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
    alsoConcurrency: values['also-concurrency'] === undefined ? undefined : int('also-concurrency', values['also-concurrency'], 64, 1),
    jsonOnly: values.json ?? false,
    verbose: values.verbose ?? false,
  };
}

/** Counts since the start, or (after `diff`) over one phase. */
interface RpcCounts {
  /** Txn RPCs sent (outer requests: a batch of nested Txns counts once). */
  txnRpcs: number;
  /** Of those, outer Txns carrying nested Txns (group commit batches). */
  batchedRpcs: number;
  /** Txn RPCs that failed (the batcher then resends each nested Txn alone, counted again). */
  failedRpcs: number;
  /** Logical Txns that got an answer: nested ones counted one by one, plus unbatched ones. */
  logicalWrite: number;
  logicalReadOnly: number;
  /** Range RPCs (Store.range pages, getRaw). */
  range: number;
  /** Batch sizes seen: nested Txns per batched RPC → count. */
  batchSizes: Record<string, number>;
  /** Logical write Txns whose compares failed, by what they tried to write. */
  conflicts: Record<string, number>;
}

/**
 * Counts the etcd RPCs the services make through the shared client (reads cost etcd too) and the
 * logical Txns inside them. Group commit sends concurrent store Txns as the nested Txns
 * (`request_txn`) of one outer Txn with no compares, which always "succeeds": each nested Txn is
 * classified and counted on its own, and a conflict is a nested `response_txn.succeeded === false`.
 */
class RpcCounter {
  private readonly counts: RpcCounts = { txnRpcs: 0, batchedRpcs: 0, failedRpcs: 0, logicalWrite: 0, logicalReadOnly: 0, range: 0, batchSizes: {}, conflicts: {} };

  constructor(
    client: Etcd3,
    private readonly keys: Keys,
  ) {
    const kv = client.kv;
    const txn = kv.txn.bind(kv);
    const range = kv.range.bind(kv);
    const c = this.counts;
    kv.txn = async (req, options) => {
      c.txnRpcs++;
      const nested = nestedTxns(req);
      if (nested) {
        c.batchedRpcs++;
        c.batchSizes[nested.length] = (c.batchSizes[nested.length] ?? 0) + 1;
      }
      let res;
      try {
        res = await txn(req, options);
      } catch (err) {
        c.failedRpcs++;
        throw err;
      }
      if (nested) nested.forEach((n, i) => this.logical(n, res.responses[i]?.response_txn?.succeeded));
      else this.logical(req, res.succeeded);
      return res;
    };
    kv.range = (req, options) => {
      c.range++;
      return range(req, options);
    };
  }

  private logical(req: ITxnRequest, succeeded: boolean | undefined): void {
    const success = (req.success ?? []) as IRequestOp[];
    const writes = success.some((o) => o.request_put || o.request_delete_range || o.request_txn);
    if (!writes) {
      this.counts.logicalReadOnly++;
      return;
    }
    this.counts.logicalWrite++;
    if (succeeded === false) {
      const what = [
        ...new Set(success.map((o) => (o.request_put ? `put ${this.keys.parse(String(o.request_put.key ?? ''))?.kind ?? 'other'}` : o.request_delete_range ? 'delete' : 'txn'))),
      ].join('+');
      this.counts.conflicts[what] = (this.counts.conflicts[what] ?? 0) + 1;
    }
  }

  snapshot(): RpcCounts {
    return structuredClone(this.counts);
  }

  /** What happened between two snapshots. */
  static diff(a: RpcCounts, b: RpcCounts): RpcCounts {
    const sub = (x: Record<string, number>, y: Record<string, number>): Record<string, number> =>
      Object.fromEntries(Object.entries(y).map(([k, n]) => [k, n - (x[k] ?? 0)]).filter(([, n]) => Number(n) > 0));
    return {
      txnRpcs: b.txnRpcs - a.txnRpcs,
      batchedRpcs: b.batchedRpcs - a.batchedRpcs,
      failedRpcs: b.failedRpcs - a.failedRpcs,
      logicalWrite: b.logicalWrite - a.logicalWrite,
      logicalReadOnly: b.logicalReadOnly - a.logicalReadOnly,
      range: b.range - a.range,
      batchSizes: sub(a.batchSizes, b.batchSizes),
      conflicts: sub(a.conflicts, b.conflicts),
    };
  }
}

/** The nested Txns of a group-commit batch (an outer Txn of only `request_txn` ops, no compares), or undefined. */
function nestedTxns(req: ITxnRequest): ITxnRequest[] | undefined {
  const success = req.success ?? [];
  if ((req.compare ?? []).length > 0 || (req.failure ?? []).length > 0 || success.length === 0) return undefined;
  if (!success.every((o) => o.request_txn)) return undefined;
  return success.map((o) => o.request_txn!);
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
      if (kind !== 'global' && kind !== 'member' && kind !== 'branch' && kind !== 'order') continue;
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
  /** etcd revisions (raft writes) during the run: revision after − before. */
  revisions: number;
  benchCpu: number;
  etcdCpu: number | undefined;
  rpcs: RpcCounts;
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

  /** Runs `count` transactions, `concurrency` at a time; returns per-transaction timings (ms). */
  async run(count: number, concurrency: number): Promise<{ beginToCommit: number[]; commitCall: number[]; decisionToCompletion: number[]; beginToCompletion: number[] }> {
    const out = { beginToCommit: [] as number[], commitCall: [] as number[], decisionToCompletion: [] as number[], beginToCompletion: [] as number[] };
    const pending: Promise<void>[] = [];
    await runWorkers(count, concurrency, async (i) => {
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

async function tccPhase(
  bench: Bench,
  client: Etcd3,
  rpc: RpcCounter,
  count: number,
  concurrency: number,
  etcdPid: number | undefined,
): Promise<TccResult & { from: string; to: string }> {
  const from = await currentRevision(client);
  const rpc0 = rpc.snapshot();
  const clock = new PhaseClock(etcdPid);
  const t = await withTimeout(bench.run(count, concurrency), 600_000, `the ${count} transactions did not all complete within 10 minutes`);
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
    rpcs: RpcCounter.diff(rpc0, rpc1),
    from,
    to,
  };
}

interface KindRow {
  kind: string;
  writes: number;
  perTx: number;
  opsPerTxn: number;
  bytesPerTx: number;
}

/** What one TCC run cost etcd: logical writes by kind (history), revisions, RPCs; all per transaction too. */
interface Figures {
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

function figures(tcc: TccResult, revisions: RevisionSummary[]): Figures {
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
  let historyClient: Etcd3 | undefined;
  let bench: Bench | undefined;
  let stopping: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (stopping ??= (async () => {
      await bench?.close();
      client?.close();
      historyClient?.close();
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
    if (args.warmup > 0) await bench.run(args.warmup, args.concurrency);

    // The raw rate is measured in two halves, before and after the TCC run, so that drift (other
    // load on the machine, etcd's growing keyspace) shows up instead of skewing the ratio unseen.
    const firstHalf = Math.ceil(args.rawOps / 2);
    say(`raw etcd Txns: ${firstHalf} at concurrency ${args.concurrency}…`);
    const rawBefore = await rawPhase(client, firstHalf, args.concurrency, pid, 'before');

    say(`TCC: ${args.tx} transactions at concurrency ${args.concurrency}${args.pipelined ? ' (pipelined)' : ''}…`);
    logs.reset();
    const tcc = await tccPhase(bench, client, rpc, args.tx, args.concurrency, pid);
    const warnings = logs.entries();

    say(`raw etcd Txns: ${args.rawOps - firstHalf} at concurrency ${args.concurrency}…`);
    const rawAfter = args.rawOps - firstHalf > 0 ? await rawPhase(client, args.rawOps - firstHalf, args.concurrency, pid, 'after') : rawBefore;
    const raw = combineRaw(rawBefore, rawAfter);

    // Optional: the same again at a higher concurrency, where group commit has more to batch.
    let also: { tcc: TccResult & { from: string; to: string }; raw: RawResult; concurrency: number } | undefined;
    if (args.alsoConcurrency !== undefined) {
      const c = args.alsoConcurrency;
      say(`TCC: ${args.tx} transactions at concurrency ${c}${args.pipelined ? ' (pipelined)' : ''}…`);
      const t = await tccPhase(bench, client, rpc, args.tx, c, pid);
      say(`raw etcd Txns: ${firstHalf} at concurrency ${c}…`);
      also = { tcc: t, raw: await rawPhase(client, firstHalf, c, pid, 'also'), concurrency: c };
    }

    say(`replaying etcd history of the TCC run${also ? 's' : ''}…`);
    // A client of its own: the history comes in big responses (see replay()), and they must not
    // share a watch stream with the services' informers.
    historyClient = new Etcd3({ hosts: etcd.endpoints, grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 } });
    const history = await replay(historyClient, keys, tcc.from, tcc.to);
    const f = figures(tcc, history.revisions);
    const alsoHistory = also ? await replay(historyClient, keys, also.tcc.from, also.tcc.to) : undefined;
    const alsoFigures = also && alsoHistory ? figures(also.tcc, alsoHistory.revisions) : undefined;
    // Everything the finished transactions leave in etcd until retention collects it (warm-up included).
    const stored = await storedRecords(client, keys);
    const finished = args.tx + args.warmup + (also ? args.tx : 0);
    const retainedPerTx = { keys: stored.keys / finished, bytes: stored.bytes / finished };
    const ratio = tcc.perSecond / raw.perSecond;
    const per = (n: number): number => round(n / args.tx, 3);

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

    if (!args.jsonOnly) {
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
        "Requests are counted by wrapping the shared client's kv.txn/kv.range, nested Txns one by one; they also include failed " +
          'compares, read-only Txns and the leader/stats writes, which bypass the batcher; leases and watches are not counted. ' +
          'Background writes (leader stats every 5 s, leader keys) are shown apart; retentionMs is 24 h, so no GC deletes happen during the run.',
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
