/**
 * `npm run demo`: the TCC transfer of seed 000 (accounts A, B and C in three services; A and B pay C
 * 80 together) on a local etcd that the demo starts itself.
 *
 *   1. A pays C 30 and B pays C 50 in one transaction: Try freezes on A and B and announces the
 *      credits on C, Confirm moves the money → COMMITTED.
 *   2. A pays C 40 and B pays C 60, but B has only 50 left: B's Try fails, the transaction rolls back
 *      and A's freeze is released → ROLLED_BACK.
 *   3. A pays C 25 while bank-c runs two replicas: the leader replica is killed with SIGKILL in the
 *      middle of its confirm, the standby takes over the lease and confirms → COMMITTED after failover.
 *
 * Exits 0 only when every scenario ended as expected and money is conserved. Every process it started
 * (three account services, a standby replica, etcd) is stopped on exit, on errors and on Ctrl-C.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { TxloopService, type BranchView, type GlobalTransaction, type TransactionView } from '../src/index.js';
import { EtcdNotInstalledError, EtcdStartError, startEtcd } from '../src/testing.js';
import { AccountStore, available, type Account, type TransferLeg } from './accounts.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const logDir = join(root, '.txloop-demo', 'logs');
const started = Date.now();
const INITIAL: Record<string, number> = { A: 100, B: 100, C: 0 };
const EXPECTED_FINAL: Record<string, number> = { A: 45, B: 50, C: 105 };
const LEASE_TTL_SECONDS = 2;
/** The confirm on C in scenario 3 takes this long, so the kill lands in the middle of it. */
const SETTLE_DELAY_MS = 2_500;
const WATCHDOG_MS = 80_000;

// -----------------------------------------------------------------------------------------------
// Output

/** Set by Ctrl-C / SIGTERM: the demo stops everything and prints nothing more. */
let interrupted: NodeJS.Signals | undefined;
const say = (line = ''): void => {
  if (!interrupted) process.stdout.write(`${line}\n`);
};
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const note = (line: string): void => say(`  [${elapsed().padStart(5)}] ${line}`);
const problems: string[] = [];
function expect(ok: boolean, what: string): void {
  if (!ok) {
    problems.push(what);
    note(`!! ${what}`);
  }
}

/** Prints rows as columns; columns listed in `right` are right-aligned (numbers). */
function table(rows: string[][], indent = '    ', right: number[] = []): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) {
    say(indent + r.map((c, i) => (right.includes(i) ? c.padStart(widths[i]!) : i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
  }
}

/** Human description of each branch, keyed by branch id, filled in as the Try calls return. */
const legNames = new Map<string, string>();

function phase2Text(v: TransactionView, b: BranchView): string {
  if (!b.action) {
    // The decision wrote this branch's order; its service has not recorded an attempt yet.
    if (v.status === 'COMMITTING') return `confirm ordered, not yet recorded by ${b.owner}'s leader`;
    if (v.status === 'ROLLING_BACK') return `cancel ordered, not yet recorded by ${b.owner}'s leader`;
    return b.tryState === 'SUCCEEDED' ? 'prepared, waiting for the decision' : '-';
  }
  const tries = `${b.attempts} attempt${b.attempts === 1 ? '' : 's'}`;
  const empty = b.action === 'cancel' && b.tryState !== 'SUCCEEDED' ? ' (empty rollback)' : '';
  const err = b.lastError ? `; last error: ${b.lastError}` : '';
  return `${b.action} ${b.state ?? 'ordered'} after ${tries}${empty}${err}`;
}

function showTransaction(v: TransactionView): void {
  const decision = v.decision ? `decided ${v.decision.outcome} by ${v.decision.by}${v.decision.reason ? ` (${v.decision.reason})` : ''}` : 'undecided';
  say(`    ${v.xid}  "${v.name}"  status ${v.status}  ${decision}`);
  const rows = [['BRANCH', 'OWNER', 'RESOURCE', 'LEG', 'TRY', 'PHASE 2']];
  for (const b of v.branches) rows.push([b.branchId, b.owner, b.resource, legNames.get(b.branchId) ?? '?', b.tryState, phase2Text(v, b)]);
  table(rows, '      ');
}

async function showBalances(store: AccountStore, title: string): Promise<Record<string, Account>> {
  const all: Record<string, Account> = {};
  for (const name of Object.keys(INITIAL)) {
    const a = await store.read(name);
    if (!a) throw new Error(`account ${name} vanished from etcd`);
    all[name] = a;
  }
  const accts = Object.values(all);
  const sum = (f: (a: Account) => number): number => accts.reduce((s, a) => s + f(a), 0);
  say(`    ${title}`);
  const rows = [['ACCOUNT', 'BALANCE', 'FROZEN', 'INCOMING', 'AVAILABLE']];
  for (const a of accts) rows.push([a.name, String(a.balance), String(a.frozen), String(a.incoming), String(available(a))]);
  rows.push(['total', String(sum((a) => a.balance)), String(sum((a) => a.frozen)), String(sum((a) => a.incoming)), String(sum(available))]);
  table(rows, '      ', [1, 2, 3, 4]);
  return all;
}

// -----------------------------------------------------------------------------------------------
// Child processes

interface ServiceEvent {
  event: string;
  app: string;
  replica: string;
  pid: number;
  at: number;
  [k: string]: unknown;
}

class ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly events: ServiceEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  port: number | undefined;
  private waiters: (() => void)[] = [];

  constructor(
    readonly app: string,
    readonly account: string,
    readonly replica: number,
    endpoints: string[],
  ) {
    this.name = `${app}#${replica}`;
    const logFd = openSync(join(logDir, `${app}-${replica}.log`), 'w');
    this.child = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, 'account-service.ts'), '--app', app, '--account', account, '--replica', String(replica), '--endpoints', endpoints.join(',')],
      { cwd: root, stdio: ['pipe', 'pipe', logFd], env: { ...process.env, TXLOOP_ENDPOINTS: endpoints.join(',') } },
    );
    closeSync(logFd);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        this.wake();
        resolve({ code, signal });
      });
    });
    this.child.stdin?.on('error', () => undefined);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let e: ServiceEvent;
      try {
        e = JSON.parse(line) as ServiceEvent;
      } catch {
        return;
      }
      this.events.push(e);
      if (e.event === 'ready' && typeof e.port === 'number') this.port = e.port;
      this.wake();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves with the first event (from index `from` on) that matches; rejects on timeout or exit. */
  async waitFor(what: string, match: (e: ServiceEvent) => boolean, timeoutMs: number, from = 0): Promise<ServiceEvent> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find(match);
      if (found) return found;
      if (this.exitStatus) throw new Error(`${this.name} exited (${this.exitStatus.signal ?? `code ${this.exitStatus.code}`}) while waiting for ${what}; see ${relative(root, join(logDir, `${this.app}-${this.replica}.log`))}`);
      const left = until - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs}ms waiting for ${this.name}: ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async ready(): Promise<void> {
    await this.waitFor('ready (HTTP port)', (e) => e.event === 'ready', 30_000);
  }

  url(path: string): string {
    if (this.port === undefined) throw new Error(`${this.name} is not ready`);
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** SIGTERM (the service resigns leadership and exits), SIGKILL if it takes longer than 3s. */
  async stop(): Promise<void> {
    if (this.exitStatus) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3_000);
    await this.exited;
    clearTimeout(t);
  }
}

// -----------------------------------------------------------------------------------------------
// Cleanup: everything started registers how to stop it; run in reverse on any exit path.

const cleanups: { what: string; fn: () => Promise<void> }[] = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    // Newest first; also stops what is registered while this runs (main() may still be starting things).
    for (let c = cleanups.pop(); c; c = cleanups.pop()) {
      const { what, fn } = c;
      try {
        await Promise.race([fn(), sleep(8_000).then(() => Promise.reject(new Error('timed out')))]);
      } catch (err) {
        process.stderr.write(`demo: could not stop ${what}: ${(err as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = signal;
    process.stderr.write(`\ndemo: ${signal}; stopping the services and etcd\n`);
    void cleanup().finally(() => process.exit(code));
  });
}

// -----------------------------------------------------------------------------------------------
// Transfers

interface Leg {
  via: ServiceProcess;
  resource: 'debit' | 'credit';
  body: TransferLeg;
  label: string;
}

class TryRejected extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function callTry(tx: GlobalTransaction, leg: Leg): Promise<{ branchId: string; account?: Pick<Account, 'name' | 'balance' | 'frozen' | 'incoming'> }> {
  const res = await fetch(leg.via.url(`/try/${leg.resource}`), {
    method: 'POST',
    headers: tx.headers({ 'content-type': 'application/json' }),
    body: JSON.stringify(leg.body),
    signal: tx.signal,
  });
  const body = (await res.json().catch(() => ({}))) as { branchId?: string; error?: string; account?: Pick<Account, 'name' | 'balance' | 'frozen' | 'incoming'> };
  if (body.branchId) legNames.set(body.branchId, leg.label);
  if (!res.ok) throw new TryRejected(res.status, `${leg.via.name} answered ${res.status}: ${body.error ?? res.statusText}`);
  if (!body.branchId) throw new Error(`${leg.via.name} answered without a branchId`);
  return { branchId: body.branchId, ...(body.account ? { account: body.account } : {}) };
}

/** begin → Try every leg over HTTP → commit; a failed Try rolls back. Returns the xid either way. */
async function transfer(svc: TxloopService, name: string, legs: Leg[]): Promise<{ xid: string; error?: Error }> {
  let xid = '';
  try {
    await svc.transaction({ name, timeoutMs: 15_000 }, async (tx) => {
      xid = tx.xid;
      note(`begin ${tx.xid}`);
      for (const leg of legs) {
        const r = await callTry(tx, leg).catch((err: unknown) => {
          note(`Try ${leg.resource.padEnd(6)} ${leg.label.padEnd(14)} via ${leg.via.name}: REFUSED — ${(err as Error).message}`);
          throw err;
        });
        const a = r.account;
        note(`Try ${leg.resource.padEnd(6)} ${leg.label.padEnd(14)} via ${leg.via.name}: ok, branch ${r.branchId}${a ? `  (${a.name}: balance ${a.balance}, frozen ${a.frozen}, incoming ${a.incoming})` : ''}`);
      }
      note('all Trys succeeded → commit (one etcd compare-and-swap; the services\' leaders confirm their own branches)');
    });
    return { xid };
  } catch (err) {
    if (xid) note(`transaction() rolled back ${xid} (one etcd compare-and-swap; the services' leaders cancel their own branches)`);
    return { xid, error: err as Error };
  }
}

async function leaderRecord(client: Etcd3, app: string): Promise<{ identity: string; pid: number } | undefined> {
  const raw = await client.get(`txloop/${app}/leader`).string();
  return raw ? (JSON.parse(raw) as { identity: string; pid: number }) : undefined;
}

async function waitForLeader(client: Etcd3, app: string, timeoutMs: number): Promise<{ identity: string; pid: number }> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const rec = await leaderRecord(client, app);
    if (rec) return rec;
    if (Date.now() > until) throw new Error(`no replica of ${app} became leader within ${timeoutMs}ms`);
    await sleep(50);
  }
}

// -----------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  say('txloop demo: the TCC account transfer of seed 000 across three services, no coordinator');
  say('  (etcd is the only shared component; each service confirms/cancels its own branches)');
  say();

  // etcd: make sure a binary is there (installs Debian's etcd-server when run as root), then start one.
  const ensure = spawnSync('bash', [join(root, 'scripts', 'ensure-etcd.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (ensure.status !== 0) {
    say('demo: etcd is not available (see the message above); nothing was started.');
    return 1;
  }
  mkdirSync(logDir, { recursive: true });
  let etcd: Awaited<ReturnType<typeof startEtcd>>;
  try {
    etcd = await startEtcd({ logFile: join(logDir, 'etcd.log') });
  } catch (err) {
    if (err instanceof EtcdNotInstalledError || err instanceof EtcdStartError) {
      say(`demo: could not start etcd: ${err.message}`);
      return 1;
    }
    throw err;
  }
  cleanups.push({ what: `etcd (pid ${etcd.pid})`, fn: () => etcd.stop() });
  const { endpoints } = etcd;
  note(`etcd started: ${endpoints.join(', ')} (pid ${etcd.pid}, data in ${etcd.dataDir})`);

  const client = new Etcd3({ hosts: endpoints });
  cleanups.push({ what: 'etcd client', fn: async () => client.close() });
  const store = new AccountStore(client);
  for (const [name, balance] of Object.entries(INITIAL)) await store.open(name, balance);

  // The three account services (one process each) and a standby replica of bank-c.
  const bankA = new ServiceProcess('bank-a', 'A', 1, endpoints);
  const bankB = new ServiceProcess('bank-b', 'B', 1, endpoints);
  const bankC1 = new ServiceProcess('bank-c', 'C', 1, endpoints);
  const bankC2 = new ServiceProcess('bank-c', 'C', 2, endpoints);
  const services = [bankA, bankB, bankC1, bankC2];
  for (const s of services) cleanups.push({ what: `${s.name} (pid ${s.pid})`, fn: () => s.stop() });
  await Promise.all(services.map((s) => s.ready()));
  for (const s of services) note(`${s.name.padEnd(8)} account ${s.account}  pid ${s.pid}  http://127.0.0.1:${s.port}`);
  note(`service logs (pino, level warn): ${relative(process.cwd(), logDir) || logDir}/`);

  // The initiator: this process. Its own control loop expires deadlines and completes its globals.
  const txLog = pino({ level: process.env.TXLOOP_LOG_LEVEL ?? 'warn', base: { app: 'transfer' } }, pino.destination({ dest: join(logDir, 'transfer.log'), sync: true }));
  const transferSvc = new TxloopService({ app: 'transfer', identity: `transfer#1/pid-${process.pid}`, etcd: { endpoints }, leaseTtlSeconds: LEASE_TTL_SECONDS, logger: txLog });
  cleanups.push({ what: 'transfer service', fn: () => transferSvc.close() });
  await transferSvc.start();

  const leaders: Record<string, { identity: string; pid: number }> = {};
  for (const app of ['transfer', 'bank-a', 'bank-b', 'bank-c']) leaders[app] = await waitForLeader(client, app, 15_000);
  note(`leaders (etcd lease, ${LEASE_TTL_SECONDS}s TTL): ${Object.entries(leaders).map(([app, l]) => `${app} → ${l.identity}`).join(', ')}`);
  await showBalances(store, 'opening balances');

  const leg = (via: ServiceProcess, resource: 'debit' | 'credit', amount: number, counterparty: string, extra: Partial<TransferLeg> = {}): Leg => ({
    via,
    resource,
    body: { amount, counterparty, ...extra },
    label: resource === 'debit' ? `${via.account} −${amount} → ${counterparty}` : `${via.account} +${amount} ← ${counterparty}`,
  });

  // ---------------------------------------------------------------------------------------------
  say();
  say('== 1. A pays C 30 and B pays C 50 in one TCC transaction (seed 000) ==');
  const s1 = await transfer(transferSvc, 'seed 000: A pays C 30, B pays C 50', [
    leg(bankA, 'debit', 30, 'C'),
    leg(bankB, 'debit', 50, 'C'),
    leg(bankC1, 'credit', 30, 'A'),
    leg(bankC1, 'credit', 50, 'B'),
  ]);
  expect(!s1.error, `scenario 1: a Try failed unexpectedly: ${s1.error?.message}`);
  const v1 = await transferSvc.waitForCompletion(s1.xid, { timeoutMs: 20_000 });
  note(`transaction ${v1.status} (${v1.completedAt ? v1.completedAt.getTime() - v1.createdAt.getTime() : '?'} ms after begin)`);
  showTransaction(v1);
  await showBalances(store, 'balances after 1');
  expect(v1.status === 'COMMITTED', `scenario 1 ended ${v1.status}, expected COMMITTED`);

  // ---------------------------------------------------------------------------------------------
  say();
  say('== 2. A pays C 40 and B pays C 60, but B has only 50 left: B\'s Try fails, everything rolls back ==');
  const frozenBefore = (await store.read('A'))!.frozen;
  const balancesBefore2 = await Promise.all(['A', 'B', 'C'].map(async (n) => (await store.read(n))!.balance));
  note(`A frozen before: ${frozenBefore}`);
  const s2 = await transfer(transferSvc, 'A pays C 40, B pays C 60', [
    leg(bankA, 'debit', 40, 'C'),
    leg(bankC1, 'credit', 40, 'A'),
    leg(bankC1, 'credit', 60, 'B'),
    leg(bankB, 'debit', 60, 'C'),
  ]);
  expect(s2.error instanceof TryRejected && s2.error.status === 409, `scenario 2: expected B's Try to be refused with 409, got ${s2.error ? s2.error.message : 'success'}`);
  const v2 = await transferSvc.waitForCompletion(s2.xid, { timeoutMs: 20_000 });
  note(`transaction ${v2.status}`);
  showTransaction(v2);
  const frozenAfter = (await store.read('A'))!.frozen;
  note(`A frozen before: ${frozenBefore}, while the transaction was open: ${frozenBefore + 40}, after the rollback: ${frozenAfter}`);
  await showBalances(store, 'balances after 2 (unchanged)');
  const balancesAfter2 = await Promise.all(['A', 'B', 'C'].map(async (n) => (await store.read(n))!.balance));
  expect(v2.status === 'ROLLED_BACK', `scenario 2 ended ${v2.status}, expected ROLLED_BACK`);
  expect(frozenAfter === frozenBefore, `scenario 2: A's frozen amount is ${frozenAfter} after the rollback, expected ${frozenBefore}`);
  expect(balancesAfter2.join() === balancesBefore2.join(), `scenario 2: balances changed by a rolled-back transaction (${balancesBefore2.join()} → ${balancesAfter2.join()})`);

  // ---------------------------------------------------------------------------------------------
  say();
  say('== 3. A pays C 25; bank-c\'s leader is killed (SIGKILL) in the middle of its confirm ==');
  const cLeader = await waitForLeader(client, 'bank-c', 10_000);
  const victim = [bankC1, bankC2].find((s) => s.pid === cLeader.pid);
  if (!victim) throw new Error(`bank-c's leader ${cLeader.identity} is none of the replicas this demo started`);
  const standby = victim === bankC1 ? bankC2 : bankC1;
  note(`bank-c leader: ${victim.name} (pid ${victim.pid}); standby: ${standby.name} (pid ${standby.pid}), which serves Try calls but runs no confirm/cancel while it is not the leader`);
  note(`C's confirm will take ${SETTLE_DELAY_MS}ms this time (settleDelayMs in the Try payload)`);
  const s3 = await transfer(transferSvc, 'A pays C 25 (failover)', [
    leg(bankA, 'debit', 25, 'C'),
    // Any replica serves Try; only the leader runs confirm/cancel.
    leg(standby, 'credit', 25, 'A', { settleDelayMs: SETTLE_DELAY_MS }),
  ]);
  expect(!s3.error, `scenario 3: a Try failed unexpectedly: ${s3.error?.message}`);
  const startEvent = await victim.waitFor(`confirm of ${s3.xid} to start`, (e) => e.event === 'phase2-start' && e.xid === s3.xid && e.action === 'confirm', 10_000);
  note(`${victim.name} started confirm attempt ${String(startEvent.attempt)} of its branch ${String(startEvent.branchId)}`);
  await sleep(300);
  const during = await transferSvc.get(s3.xid);
  showTransaction(during);
  const standbyMark = standby.events.length;
  const killedAt = Date.now();
  victim.child.kill('SIGKILL');
  const exit = await victim.exited;
  note(`SIGKILL → ${victim.name} (pid ${victim.pid}) died (${exit.signal ?? `code ${exit.code}`}) with its confirm unfinished`);
  expect(exit.signal === 'SIGKILL', `scenario 3: ${victim.name} exited with ${exit.signal ?? exit.code}, expected SIGKILL`);
  await standby.waitFor('leadership', (e) => e.event === 'leader' && e.leading === true, 15_000, standbyMark);
  const newLeader = await waitForLeader(client, 'bank-c', 5_000);
  note(`${standby.name} became bank-c's leader ${Date.now() - killedAt} ms after the kill (the dead leader's lease expired); leader key now: ${newLeader.identity}`);
  expect(newLeader.pid === standby.pid, `scenario 3: bank-c's leader is ${newLeader.identity}, expected the standby ${standby.name}`);
  const done = await standby.waitFor(`confirm of ${s3.xid}`, (e) => e.event === 'phase2' && e.xid === s3.xid && e.result === 'succeeded', 20_000, standbyMark);
  note(`${standby.name} ran the confirm again and recorded it (${String(done.durationMs)} ms; recorded as attempt ${String(done.attempt)}: the killed attempt never got to record itself)`);
  const v3 = await transferSvc.waitForCompletion(s3.xid, { timeoutMs: 20_000 });
  note(`transaction ${v3.status} after failover (${Date.now() - killedAt} ms after the kill)`);
  showTransaction(v3);
  expect(v3.status === 'COMMITTED', `scenario 3 ended ${v3.status}, expected COMMITTED`);

  // ---------------------------------------------------------------------------------------------
  say();
  say('== Final check ==');
  const final = await showBalances(store, 'final balances');
  const accts = Object.values(final);
  const total = accts.reduce((s, a) => s + a.balance, 0);
  const initialTotal = Object.values(INITIAL).reduce((s, n) => s + n, 0);
  expect(total === initialTotal, `money not conserved: total ${total}, started with ${initialTotal}`);
  for (const a of accts) {
    expect(a.frozen === 0, `account ${a.name} still has ${a.frozen} frozen`);
    expect(a.incoming === 0, `account ${a.name} still has ${a.incoming} incoming`);
    expect(a.balance === EXPECTED_FINAL[a.name], `account ${a.name} ends with ${a.balance}, expected ${EXPECTED_FINAL[a.name]}`);
    const open = Object.entries(a.branches).filter(([, b]) => b.phase === 'tried');
    expect(open.length === 0, `account ${a.name} has branches neither confirmed nor cancelled: ${open.map(([id]) => id).join(', ')}`);
  }
  const outcomes = `1: ${v1.status}, 2: ${v2.status}, 3: ${v3.status} after failover`;
  if (problems.length > 0) {
    say();
    say(`FAILED (${outcomes}):`);
    for (const p of problems) say(`  - ${p}`);
    return 1;
  }
  say();
  say(`OK: ${outcomes}; money conserved (total ${total} = ${initialTotal}, nothing frozen or pending) in ${elapsed()}`);
  return 0;
}

const watchdog = setTimeout(() => {
  process.stderr.write(`demo: still running after ${WATCHDOG_MS / 1000}s; giving up\n`);
  void cleanup().finally(() => process.exit(1));
}, WATCHDOG_MS);

let code = 1;
try {
  code = await main();
} catch (err) {
  code = 1;
  // After Ctrl-C the steps fail because their processes are gone; that is not news.
  if (!interrupted) {
    say();
    say(`FAILED: ${(err as Error).stack ?? String(err)}`);
    for (const p of problems) say(`  - ${p}`);
    say(`service logs: ${relative(process.cwd(), logDir) || logDir}/`);
  }
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
process.exit(interrupted === 'SIGINT' ? 130 : interrupted === 'SIGTERM' ? 143 : code);
