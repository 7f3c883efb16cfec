/**
 * The TCC phase: three services in this process (initiator `orders`, participants `bank-a` and
 * `bank-b`, no-op handlers) sharing the bench's etcd3 client, and committed 2-branch transactions
 * run through them: begin, Try on both participants (in parallel), commit; a transaction is done
 * when the initiator's leader emits 'completed' (COMMITTED).
 */
import type { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { GlobalStatus, TxloopService } from '../src/index.js';
import type { Args } from './args.js';
import type { LogTally } from './logs.js';
import { RequestCounter, type RpcCounts } from './requests.js';
import { PhaseClock, summarize, type LatencySummary } from './stats.js';
import { runWorkers, withTimeout } from './workers.js';

export interface TccResult {
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

/** The three services and the transactions run through them. */
export class TccServices {
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

/** Runs `count` measured transactions at `concurrency`, with what they cost: time, CPU, revisions, requests. */
export async function tccPhase(
  bench: TccServices,
  client: Etcd3,
  rpc: RequestCounter,
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
  rpc.assertCounting(rpc0);
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
    rpcs: RequestCounter.diff(rpc0, rpc1),
    from,
    to,
  };
}

/** etcd's current revision (a read of a key nobody writes). */
export async function currentRevision(client: Etcd3): Promise<string> {
  const res = await client.kv.range({ key: Buffer.from('txloop-bench/revision-probe') });
  return res.header.revision;
}
