/**
 * What the demo runs on: its own etcd, the accounts in it, the three account services (one process
 * each, bank-c with a standby replica) and the `transfer` initiator service in this process.
 * Everything started here is registered for cleanup.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { TxloopService } from '../src/index.js';
// txloop's one client factory (receive limit, call deadlines, fault handling); not a public export.
import { createEtcdClient } from '../src/etcd/index.js';
import { EtcdNotInstalledError, EtcdStartError, startEtcd } from '../src/testing.js';
import { JsonLineProcess } from '../tools/processes.js';
import { AccountStore, OPENING_BALANCES } from './accounts.js';
import { onCleanup } from './lifecycle.js';
import { note, say } from './print.js';

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..');
export const logDir = join(root, '.txloop-demo', 'logs');
/** The services' and the initiator's leader lease. */
export const LEASE_TTL_SECONDS = 2;
/** --keep: the services park a branch after this many failed phase-2 attempts (txloop's default is 10). */
export const KEEP_MAX_ATTEMPTS = 5;

/** What demo/account-service.ts reports on stdout, one JSON object a line. */
export interface ServiceEvent {
  event: string;
  app: string;
  replica: string;
  pid: number;
  at: number;
  [k: string]: unknown;
}

/** One replica of an account service (demo/account-service.ts), its own process. */
export class AccountService extends JsonLineProcess<ServiceEvent> {
  port: number | undefined;

  constructor(
    readonly app: string,
    readonly account: string,
    readonly replica: number,
    endpoints: string[],
    extraArgs: string[] = [],
  ) {
    super({
      name: `${app}#${replica}`,
      script: join(here, 'account-service.ts'),
      args: ['--app', app, '--account', account, '--replica', String(replica), '--endpoints', endpoints.join(','), ...extraArgs],
      cwd: root,
      env: { TXLOOP_ENDPOINTS: endpoints.join(',') },
      stderrFile: join(logDir, `${app}-${replica}.log`),
      // The service exits when its stdin closes: it does not outlive the demo, even a SIGKILLed one.
      stdin: 'pipe',
    });
    this.onEvent((e) => {
      if (e.event === 'ready' && typeof e.port === 'number') this.port = e.port;
    });
  }

  async ready(): Promise<void> {
    await this.waitForEvent((e) => e.event === 'ready', 'ready (HTTP port)', { timeoutMs: 30_000 });
  }

  url(path: string): string {
    if (this.port === undefined) throw new Error(`${this.name} is not ready`);
    return `http://127.0.0.1:${this.port}${path}`;
  }
}

export interface Cluster {
  endpoints: string[];
  /** A plain etcd3 client (the accounts, the leader keys). */
  client: Etcd3;
  store: AccountStore;
  /** The initiator: this process. Its own control loop expires deadlines and completes its globals. */
  transferSvc: TxloopService;
  bankA: AccountService;
  bankB: AccountService;
  bankC1: AccountService;
  bankC2: AccountService;
}

/**
 * The demo's own etcd (installed first when missing and run as root) and a client of it, both
 * stopped at cleanup; undefined (and a message printed) when etcd cannot be had.
 */
export async function startDemoEtcd(): Promise<{ endpoints: string[]; client: Etcd3 } | undefined> {
  // etcd: make sure a binary is there (installs Debian's etcd-server when run as root), then start one.
  const ensure = spawnSync('bash', [join(root, 'scripts', 'ensure-etcd.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (ensure.status !== 0) {
    say('demo: etcd is not available (see the message above); nothing was started.');
    return undefined;
  }
  mkdirSync(logDir, { recursive: true });
  let etcd: Awaited<ReturnType<typeof startEtcd>>;
  try {
    etcd = await startEtcd({ logFile: join(logDir, 'etcd.log') });
  } catch (err) {
    if (err instanceof EtcdNotInstalledError || err instanceof EtcdStartError) {
      say(`demo: could not start etcd: ${err.message}`);
      return undefined;
    }
    throw err;
  }
  onCleanup(`etcd (pid ${etcd.pid})`, () => etcd.stop());
  const { endpoints } = etcd;
  note(`etcd started: ${endpoints.join(', ')} (pid ${etcd.pid}, data in ${etcd.dataDir})`);

  const client = createEtcdClient({ endpoints });
  onCleanup('etcd client', async () => client.close());
  return { endpoints, client };
}

/** Starts everything; undefined (and a message printed) when etcd cannot be had. */
export async function startCluster(options: { keep: boolean }): Promise<Cluster | undefined> {
  const etcd = await startDemoEtcd();
  if (!etcd) return undefined;
  const { endpoints, client } = etcd;
  const store = new AccountStore(client);
  for (const [name, balance] of Object.entries(OPENING_BALANCES)) await store.open(name, balance);

  // The three account services (one process each) and a standby replica of bank-c.
  const extraArgs = options.keep ? ['--max-attempts', String(KEEP_MAX_ATTEMPTS)] : [];
  const bankA = new AccountService('bank-a', 'A', 1, endpoints, extraArgs);
  const bankB = new AccountService('bank-b', 'B', 1, endpoints, extraArgs);
  const bankC1 = new AccountService('bank-c', 'C', 1, endpoints, extraArgs);
  const bankC2 = new AccountService('bank-c', 'C', 2, endpoints, extraArgs);
  const services = [bankA, bankB, bankC1, bankC2];
  for (const s of services) onCleanup(`${s.name} (pid ${s.pid})`, async () => void (await s.stop()));
  await Promise.all(services.map((s) => s.ready()));
  for (const s of services) note(`${s.name.padEnd(8)} account ${s.account}  pid ${s.pid}  http://127.0.0.1:${s.port}`);
  note(`service logs (pino, level warn): ${relative(process.cwd(), logDir) || logDir}/`);

  const txLog = pino({ level: process.env.TXLOOP_LOG_LEVEL ?? 'warn', base: { app: 'transfer' } }, pino.destination({ dest: join(logDir, 'transfer.log'), sync: true }));
  const transferSvc = new TxloopService({ app: 'transfer', identity: `transfer#1/pid-${process.pid}`, etcd: { endpoints }, leaseTtlSeconds: LEASE_TTL_SECONDS, logger: txLog });
  onCleanup('transfer service', () => transferSvc.close());
  await transferSvc.start();

  const leaders: Record<string, { identity: string; pid: number }> = {};
  for (const app of ['transfer', 'bank-a', 'bank-b', 'bank-c']) leaders[app] = await waitForLeader(client, app, 15_000);
  note(`leaders (etcd lease, ${LEASE_TTL_SECONDS}s TTL): ${Object.entries(leaders).map(([app, l]) => `${app} → ${l.identity}`).join(', ')}`);
  return { endpoints, client, store, transferSvc, bankA, bankB, bankC1, bankC2 };
}

/** The leader record of `app` (txloop's default namespace), as soon as one of its replicas leads. */
export async function waitForLeader(client: Etcd3, app: string, timeoutMs: number): Promise<{ identity: string; pid: number }> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const raw = await client.get(`txloop/${app}/leader`).string();
    if (raw) return JSON.parse(raw) as { identity: string; pid: number };
    if (Date.now() > until) throw new Error(`no replica of ${app} became leader within ${timeoutMs}ms`);
    await sleep(50);
  }
}
