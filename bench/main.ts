/**
 * txloop benchmark: committed 2-branch TCC transactions per second against etcd's own raw write
 * rate, measured in one run on one throwaway etcd.
 *
 * By default (`--layout processes`) the services run as deployed, each in its own process: see
 * deployment.ts. What follows describes `--layout inproc`, all three services in this process.
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
 *
 * This file runs the phases in order; each idea has its own file: args.ts (the command line),
 * raw.ts (the raw phase), tcc.ts (the services and the TCC phase), requests.ts (request counting),
 * history.ts (the history replay), figures.ts (what the run cost, per transaction), report.ts (the
 * tables and the JSON line), stats.ts and logs.ts (percentiles, CPU, the SDK's log lines).
 */
import { loadavg } from 'node:os';
import type { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdServer } from '../src/testing.js';
import { parse, type Args } from './args.js';
import { runDeployment } from './deployment.js';
import { deploymentJson, printDeployment } from './deployment-report.js';
import { figures, storedRecords } from './figures.js';
import { replay } from './history.js';
import { DEFAULT_NAMESPACE, Keys, createEtcdClient } from './internals.js';
import { LogTally } from './logs.js';
import { combineRaw, rawPhase, type RawResult } from './raw.js';
import { printReport, toJson, type Run } from './report.js';
import { RequestCounter } from './requests.js';
import { scaleMain } from './scale.js';
import { sidecarBench } from './sidecar.js';
import { TccServices, tccPhase, type TccResult } from './tcc.js';

let interrupted = false;

async function main(): Promise<void> {
  const args = parse();
  const say = (s: string): void => {
    if (!args.jsonOnly) console.error(s);
  };
  if (args.scale !== undefined) return scaleMain(args, say);
  if (args.via === 'sidecar') return sidecarBench(args, say);
  if (args.layout === 'processes') return deployment(args, say);
  let etcd: EtcdServer | undefined;
  let client: Etcd3 | undefined;
  let historyClient: Etcd3 | undefined;
  let bench: TccServices | undefined;
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
    const keys = new Keys(DEFAULT_NAMESPACE);
    // Counts the requests of everything that uses this client (services and raw Txns; see requests.ts).
    const rpc = new RequestCounter(keys);
    client = createEtcdClient({ endpoints: etcd.endpoints }, { grpcOptions: rpc.grpcOptions });
    const logs = new LogTally(args.verbose);
    bench = new TccServices(client, args, logs);
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
    historyClient = createEtcdClient({ endpoints: etcd.endpoints });
    const history = await replay(historyClient, keys, tcc.from, tcc.to);
    const f = figures(tcc, history.revisions);
    const alsoHistory = also ? await replay(historyClient, keys, also.tcc.from, also.tcc.to) : undefined;
    const alsoFigures = also && alsoHistory ? figures(also.tcc, alsoHistory.revisions) : undefined;
    // Everything the finished transactions leave in etcd until retention collects it (warm-up included).
    const stored = await storedRecords(client, keys);
    const finished = args.tx + args.warmup + (also ? args.tx : 0);
    const retainedPerTx = { keys: stored.keys / finished, bytes: stored.bytes / finished };
    const run: Run = { args, etcdVersion, loadAtStart, raw, tcc, f, history, also, alsoFigures, alsoHistory, retainedPerTx, warnings };
    const result = toJson(run);
    if (!args.jsonOnly) printReport(run, result);
    console.log(JSON.stringify(result));
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The deployment layout (the default): see deployment.ts. */
async function deployment(args: Args, say: (s: string) => void): Promise<void> {
  let cleanup: (() => Promise<void>) | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = true;
    console.error(`\n${sig}: stopping services and etcd`);
    void (cleanup?.() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const run = await runDeployment(args, say, (f) => (cleanup = f));
    if (!args.jsonOnly) printDeployment(run);
    console.log(JSON.stringify(deploymentJson(run)));
  } finally {
    await cleanup?.();
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
