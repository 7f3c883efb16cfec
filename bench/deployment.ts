/**
 * The deployment layout (`--layout processes`, the default): etcd, the initiator and two participants
 * each in its own process, the Trys over HTTP keep-alive — what users deploy. This process only
 * orchestrates and measures: per in-flight level it runs `--tx` committed 2-branch transactions and
 * takes, over exactly that window, each process's CPU (/proc), etcd's own counters (revisions, raft
 * proposals, watch events, bytes in and out), every process's etcd requests, and the latencies the
 * initiator saw; then raw Txn/s on the same etcd from Node (this process) and from Go (bench/go-raw).
 * Finished transactions are collected inside the window (`--retention-ms`, default 1 s).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdServer } from '../src/testing.js';
import { JsonLineProcess, type ProcessEvent } from '../tools/processes.js';
import type { Args } from './args.js';
import type { ChildConfig } from './deployment/child.js';
import { diffCounters, scrapeEtcd, type EtcdCounters } from './etcd-metrics.js';
import { ensureGoRaw, goRawPhase } from './go-raw.js';
import { createEtcdClient } from './internals.js';
import { profilesIn, summarizeProfile, type ProfileSummary } from './profile.js';
import { rawPhase } from './raw.js';
import { RequestCounter, type RpcCounts } from './requests.js';
import { processCpuSeconds, type LatencySummary } from './stats.js';
import { currentRevision } from './tcc.js';

const HERE = new URL('.', import.meta.url).pathname;
const PROFILE_DIR = join(HERE, '..', 'bench-profiles');

export type ProcessName = 'initiator' | 'bank-a' | 'bank-b' | 'etcd';

export interface LevelResult {
  concurrency: number;
  /** Open loop at this rate (the half-of-peak run), instead of closed loop at `concurrency`. */
  ratePerSec?: number;
  tx: number;
  seconds: number;
  txPerSec: number;
  beginToCommitMs: LatencySummary;
  commitCallMs: LatencySummary;
  decisionToDoneMs: LatencySummary;
  beginToDoneMs: LatencySummary;
  /** CPU ms per committed transaction, by process. */
  cpuMsPerTx: Record<ProcessName, number>;
  revisions: number;
  etcd: EtcdCounters;
  rpcs: Record<Exclude<ProcessName, 'etcd'>, RpcCounts>;
  rawNodeTxnPerSec?: number;
  rawGoTxnPerSec?: number;
  /** SDK warn/error lines during the window, all processes. */
  warnings: [string, number][];
}

export interface DeploymentRun {
  mode: Args['mode'];
  etcdVersion: string;
  loadAtStart: number;
  loadAtEnd: number;
  levels: LevelResult[];
  halfPeak: LevelResult | undefined;
  goRawMissing: string | undefined;
  profiles: { name: string; summary: ProfileSummary }[];
}

class Service {
  private nextId = 1;
  constructor(readonly name: Exclude<ProcessName, 'etcd'>, readonly proc: JsonLineProcess) {}

  async ask(cmd: string, extra: ProcessEvent = {}, timeoutMs = 660_000): Promise<ProcessEvent> {
    const id = this.nextId++;
    const from = this.proc.events.length;
    this.proc.send({ id, cmd, ...extra });
    const reply = await this.proc.waitForEvent((e) => e.reply === id, `${cmd} reply`, { timeoutMs, from });
    if (typeof reply.error === 'string') throw new Error(`${this.name}: ${reply.error}`);
    return reply;
  }
}

function spawnService(name: Service['name'], script: string, config: ChildConfig, profile: boolean): Service {
  const nodeArgs = profile ? ['--cpu-prof', '--cpu-prof-dir', join(PROFILE_DIR, name)] : [];
  return new Service(name, new JsonLineProcess({ name, script: join(HERE, 'deployment', script), args: [JSON.stringify(config)], stdin: 'pipe', nodeArgs }));
}

export async function runDeployment(args: Args, say: (s: string) => void, onCleanup: (f: () => Promise<void>) => void): Promise<DeploymentRun> {
  const loadAtStart = loadavg()[0] ?? 0;
  let etcd: EtcdServer | undefined;
  let client: Etcd3 | undefined;
  const services: Service[] = [];
  let stopping: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (stopping ??= (async () => {
      // Closing stdin lets each child close its service and exit 0 (writing its CPU profile);
      // SIGTERM only for one that has not exited by then.
      for (const s of services) s.proc.endInput();
      await Promise.allSettled(
        services.map(async (s) => {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([s.proc.exit, new Promise((r) => (timer = setTimeout(r, 20_000)))]);
          clearTimeout(timer);
          await s.proc.stop('SIGTERM', 5_000);
        }),
      );
      client?.close();
      await etcd?.stop();
    })());
  onCleanup(cleanup);
  if (args.profile) {
    rmSync(PROFILE_DIR, { recursive: true, force: true });
    mkdirSync(PROFILE_DIR, { recursive: true });
  }
  say('starting a throwaway etcd and building bench/go-raw (once)…');
  const [server, go] = await Promise.all([startEtcd(), ensureGoRaw()]);
  etcd = server;
  client = createEtcdClient({ endpoints: etcd.endpoints });
  const etcdVersion = (await client.maintenance.status()).version;
  const endpoints = etcd.endpoints;
  const base = { endpoints, retentionMs: args.retentionMs, ...(args.workers !== undefined ? { workers: args.workers } : {}) };

  say('starting the participants bank-a, bank-b and the initiator, each in its own process…');
  const bankA = spawnService('bank-a', 'participant.ts', { ...base, app: 'bank-a' }, args.profile);
  const bankB = spawnService('bank-b', 'participant.ts', { ...base, app: 'bank-b' }, args.profile);
  services.push(bankA, bankB);
  const ready = async (s: Service): Promise<ProcessEvent> => s.proc.waitForEvent((e) => e.event === 'ready', 'ready', { timeoutMs: 60_000 });
  const [readyA, readyB] = await Promise.all([ready(bankA), ready(bankB)]);
  const initiator = spawnService('initiator', 'initiator.ts', { ...base, app: 'orders', participants: { 'bank-a': String(readyA.url), 'bank-b': String(readyB.url) } }, args.profile);
  services.push(initiator);
  await ready(initiator);
  const pids: Record<ProcessName, number> = { initiator: initiator.proc.pid, 'bank-a': bankA.proc.pid, 'bank-b': bankB.proc.pid, etcd: etcd.pid };

  say(`warming up (${args.warmup} transactions, 2000 raw Txns)…`);
  await rawPhase(client, 2000, 16, undefined, 'warmup');
  if (args.warmup > 0) await initiator.ask('run', { count: args.warmup, concurrency: 16, mode: args.mode });

  const measure = async (concurrency: number, ratePerSec?: number): Promise<LevelResult> => {
    const cpu = (): Record<ProcessName, number> => Object.fromEntries(Object.entries(pids).map(([n, pid]) => [n, processCpuSeconds(pid) ?? Number.NaN])) as Record<ProcessName, number>;
    const rpcs = async (): Promise<RpcCounts[]> => Promise.all(services.map(async (s) => (await s.ask('snapshot')).rpc as RpcCounts));
    await Promise.all(services.map((s) => s.ask('logs')));
    const [rev0, etcd0, rpc0] = [await currentRevision(client!), await scrapeEtcd(endpoints[0]!), await rpcs()];
    const cpu0 = cpu();
    const t = await initiator.ask('run', { count: args.tx, concurrency, pipelined: args.pipelined, mode: args.mode, ...(ratePerSec !== undefined ? { ratePerSec } : {}) });
    const cpu1 = cpu();
    const [rev1, etcd1, rpc1] = [await currentRevision(client!), await scrapeEtcd(endpoints[0]!), await rpcs()];
    const warnings = new Map<string, number>();
    for (const s of services) for (const [k, n] of (await s.ask('logs')).warnings as [string, number][]) warnings.set(k, (warnings.get(k) ?? 0) + n);
    const perTx = (n: number): number => (n * 1000) / args.tx;
    const seconds = Number(t.seconds);
    return {
      concurrency,
      ...(ratePerSec !== undefined ? { ratePerSec } : {}),
      tx: args.tx,
      seconds,
      txPerSec: args.tx / seconds,
      beginToCommitMs: t.beginToCommitMs as LatencySummary,
      commitCallMs: t.commitCallMs as LatencySummary,
      decisionToDoneMs: t.decisionToDoneMs as LatencySummary,
      beginToDoneMs: t.beginToDoneMs as LatencySummary,
      cpuMsPerTx: Object.fromEntries((Object.keys(pids) as ProcessName[]).map((n) => [n, perTx(cpu1[n] - cpu0[n])])) as Record<ProcessName, number>,
      revisions: Number(BigInt(rev1) - BigInt(rev0)),
      etcd: diffCounters(etcd0, etcd1),
      rpcs: Object.fromEntries(services.map((s, i) => [s.name, RequestCounter.diff(rpc0[i]!, rpc1[i]!)])) as LevelResult['rpcs'],
      warnings: [...warnings.entries()].sort((a, b) => b[1] - a[1]),
    };
  };

  const levels: LevelResult[] = [];
  for (const c of args.concurrencies) {
    say(`${args.tx} transactions at ${c} in flight…`);
    const level = await measure(c);
    const rawOps = Math.ceil(args.rawOps / 2);
    say(`raw etcd Txns at ${c} in flight: ${rawOps} from Node, ${rawOps} from Go…`);
    level.rawNodeTxnPerSec = (await rawPhase(client, rawOps, c, undefined, `node-${c}`)).perSecond;
    if (go.binary) level.rawGoTxnPerSec = (await goRawPhase(go.binary, endpoints, rawOps, c, `go-${c}`)).perSecond;
    levels.push(level);
  }
  // Decision → done is a latency, so it is taken below saturation: open loop at half the peak rate.
  const peak = Math.max(...levels.map((l) => l.txPerSec));
  say(`${args.tx} transactions open loop at half the peak rate (${(peak / 2).toFixed(0)}/s)…`);
  const halfPeak = await measure(Math.max(...args.concurrencies), peak / 2);

  const loadAtEnd = loadavg()[0] ?? 0;
  await cleanup();
  const profiles = args.profile
    ? services.flatMap((s) => {
        // One file per thread: the main thread is the busy one (the other is tsx's loader).
        const summaries = profilesIn(join(PROFILE_DIR, s.name)).map((f) => summarizeProfile(f));
        const main = summaries.sort((x, y) => y.totalMs - x.totalMs)[0];
        return main ? [{ name: s.name, summary: main }] : [];
      })
    : [];
  return { mode: args.mode, etcdVersion, loadAtStart, loadAtEnd, levels, halfPeak, goRawMissing: go.why, profiles };
}
