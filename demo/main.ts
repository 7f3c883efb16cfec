/**
 * `npm run demo`: TCC transfers between accounts A, B and C in three services (first A and B pay C
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
 *
 * `npm run demo -- --keep` then keeps etcd and the services running for the operator's CLI
 * (docs/cli.md): it locks ledger C for audit and makes one more transfer, whose credit confirm on
 * bank-c fails until the branch is parked as FAILED (the services park after 5 attempts in this
 * mode), leaves another transfer TRYING with a 1 h timeout, prints the `txloop` commands to explore
 * and repair them (`curl -s -X POST …/audit/unlock` on bank-c lifts the lock), reports what happens to
 * those two transfers, and stops everything on Ctrl-C. That Ctrl-C is its normal end: the demo then
 * exits 0 when every check passed (npm itself still reports 130 for a Ctrl-C).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
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
/** --keep: the services park a branch as FAILED after this many failed phase-2 attempts (txloop's default is 10). */
const KEEP_DEAD_THRESHOLD = 5;
/** --keep: the transfer left TRYING has this timeout, so it is still there for `txloop abort`. */
const KEEP_TRYING_TIMEOUT_MS = 3_600_000;

let keep = false;
try {
  const { values } = parseArgs({ options: { keep: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } });
  if (values.help) {
    process.stdout.write('usage: npm run demo [-- --keep]\n  --keep  after the checks, keep etcd and the services running with a parked and a TRYING transfer\n          for the txloop CLI (docs/cli.md); Ctrl-C stops everything\n');
    process.exit(0);
  }
  keep = values.keep;
} catch (err) {
  process.stderr.write(`demo: ${(err as Error).message}\nusage: npm run demo [-- --keep]\n`);
  process.exit(2);
}

// -----------------------------------------------------------------------------------------------
// Output

// `npm run demo | tee log` and Ctrl-C: the same SIGINT ends tee, and our next write to its pipe fails
// with EPIPE, which Node raises as an 'error' event on the stream; unhandled, that is a crash that
// skips the cleanup below (services, etcd and its data dir left behind). Whoever read the output is
// gone, so the demo stops writing to that stream and carries on stopping what it started.
const gone = new Set<NodeJS.WriteStream>();
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => gone.add(stream));
const write = (stream: NodeJS.WriteStream, text: string): void => {
  if (!gone.has(stream) && !stream.destroyed) stream.write(text);
};
const warn = (line: string): void => write(process.stderr, `${line}\n`);

/** Set by Ctrl-C / SIGTERM: the demo stops everything and prints nothing more. */
let interrupted: NodeJS.Signals | undefined;
const say = (line = ''): void => {
  if (!interrupted) write(process.stdout, `${line}\n`);
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
  /** Called with every event as it arrives. */
  readonly listeners: ((e: ServiceEvent) => void)[] = [];
  private waiters: (() => void)[] = [];

  constructor(
    readonly app: string,
    readonly account: string,
    readonly replica: number,
    endpoints: string[],
    extraArgs: string[] = [],
  ) {
    this.name = `${app}#${replica}`;
    const logFd = openSync(join(logDir, `${app}-${replica}.log`), 'w');
    this.child = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, 'account-service.ts'), '--app', app, '--account', account, '--replica', String(replica), '--endpoints', endpoints.join(','), ...extraArgs],
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
      for (const l of this.listeners) l(e);
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
        warn(`demo: could not stop ${what}: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}
/**
 * Set (before the demo prints "Ctrl-C stops the services and etcd.") once --keep waits for Ctrl-C:
 * a signal from then on is the normal end, and main() returns the checks' exit code. A signal before
 * that interrupts the demo: cleanup, exit 130/143.
 */
let waitingForCtrlC = false;
/** The signal came while --keep waited for it: the exit code is the checks' result, not 130/143. */
let endedTheWait = false;
/** Resolved by the first SIGINT/SIGTERM, so a signal that comes before the wait starts still ends it. */
let signalled!: () => void;
const interruption = new Promise<void>((resolve) => (signalled = resolve));
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = signal;
    warn(`\ndemo: ${signal}; stopping the services and etcd`);
    signalled();
    endedTheWait = waitingForCtrlC;
    if (endedTheWait) return;
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
  say('txloop demo: TCC account transfers across three services, no coordinator');
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
  const extraArgs = keep ? ['--dead-threshold', String(KEEP_DEAD_THRESHOLD)] : [];
  const bankA = new ServiceProcess('bank-a', 'A', 1, endpoints, extraArgs);
  const bankB = new ServiceProcess('bank-b', 'B', 1, endpoints, extraArgs);
  const bankC1 = new ServiceProcess('bank-c', 'C', 1, endpoints, extraArgs);
  const bankC2 = new ServiceProcess('bank-c', 'C', 2, endpoints, extraArgs);
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
  say('== 1. A pays C 30 and B pays C 50 in one TCC transaction ==');
  const s1 = await transfer(transferSvc, 'A pays C 30, B pays C 50', [
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
  if (!keep) return 0;
  return keepForOperators({ endpoints, store, transferSvc, bankA, bankB, bankC: standby, leg });
}

// -----------------------------------------------------------------------------------------------
// --keep: something for the operator's CLI, then wait for Ctrl-C

interface KeepContext {
  endpoints: string[];
  store: AccountStore;
  transferSvc: TxloopService;
  bankA: ServiceProcess;
  bankB: ServiceProcess;
  /** The replica of bank-c still running after scenario 3 (now its leader). */
  bankC: ServiceProcess;
  leg: (via: ServiceProcess, resource: 'debit' | 'credit', amount: number, counterparty: string) => Leg;
}

/** Prints the services' phase-2 attempts and ledger locks as they happen (only --keep does this). */
function reportServiceEvents(services: ServiceProcess[]): void {
  for (const s of services) {
    s.listeners.push((e) => {
      if (e.event === 'audit') {
        note(
          e.locked
            ? `${s.name}: ledger ${s.account} locked for audit: every confirm on ${s.account} fails until POST /audit/unlock`
            : `${s.name}: ledger ${s.account} unlocked: confirms on ${s.account} go through again (a parked branch stays FAILED until \`txloop retry\`)`,
        );
      }
      if (e.event !== 'phase2') return;
      const what = `${s.name}: ${String(e.action)} of branch ${String(e.branchId)} (${String(e.resource)}, ${String(e.xid)})`;
      if (e.result === 'succeeded') note(`${what} succeeded on attempt ${String(e.attempt)}`);
      else if (e.result === 'failed') note(`${what} attempt ${String(e.attempt)} failed: ${String(e.error)}`);
      else note(`${what} attempt ${String(e.attempt)} failed: ${String(e.error)} → parked as FAILED, waiting for a human`);
    });
  }
}

/**
 * Money is conserved for what was decided: what is on the accounts plus what a committed transfer
 * has taken from its payer but not yet credited (its credit confirm is pending or parked) is the
 * opening total; frozen and incoming amounts are exactly the open Trys, and only of unfinished
 * transfers.
 */
async function moneyCheck(store: AccountStore, svc: TxloopService, title: string): Promise<boolean> {
  const accts = Object.values(await showBalances(store, title));
  const initialTotal = Object.values(INITIAL).reduce((s, n) => s + n, 0);
  const total = accts.reduce((s, a) => s + a.balance, 0);
  const statusOf = async (xid: string): Promise<string> => (await svc.get(xid).catch(() => undefined))?.status ?? 'DELETED';
  let ok = true;
  const fail = (what: string): void => {
    ok = false;
    note(`!! ${what}`);
  };
  // Per transfer: confirmed debits − confirmed credits = money between its payer and its payee.
  const moving = new Map<string, number>();
  const reserved = new Map<string, string[]>();
  for (const a of accts) {
    let frozen = 0;
    let incoming = 0;
    for (const b of Object.values(a.branches)) {
      if (b.phase === 'confirmed') moving.set(b.xid, (moving.get(b.xid) ?? 0) + (b.kind === 'debit' ? b.amount : -b.amount));
      if (b.phase !== 'tried') continue;
      if (b.kind === 'debit') frozen += b.amount;
      else incoming += b.amount;
      reserved.set(b.xid, [...(reserved.get(b.xid) ?? []), `${a.name} ${b.kind === 'debit' ? 'frozen' : 'incoming'} ${b.amount}`]);
    }
    if (a.frozen !== frozen || a.incoming !== incoming) fail(`account ${a.name}: frozen ${a.frozen}, incoming ${a.incoming}, but its open Trys add up to ${frozen} and ${incoming}`);
  }
  const onTheWay: string[] = [];
  let inFlight = 0;
  for (const [xid, amount] of moving) {
    if (amount === 0) continue;
    const status = await statusOf(xid);
    inFlight += amount;
    onTheWay.push(`${amount} debited, not yet credited in ${xid} (${status})`);
    if (status !== 'COMMITTING') fail(`${xid} is ${status}, but ${amount} left its payer without reaching its payee`);
  }
  const open: string[] = [];
  for (const [xid, parts] of reserved) {
    const status = await statusOf(xid);
    open.push(`${parts.join(', ')} held by ${xid} (${status})`);
    if (status === 'COMMITTED' || status === 'ROLLED_BACK' || status === 'DELETED') fail(`${xid} is ${status}, but Trys of it still hold ${parts.join(', ')}`);
  }
  if (total + inFlight !== initialTotal) fail(`money not conserved: ${total} on the accounts + ${inFlight} on the way ≠ ${initialTotal}`);
  if (ok) {
    note(`money conserved: ${total} on the accounts${onTheWay.length ? ` + ${onTheWay.join(' + ')}` : ''} = ${initialTotal}`);
    note(open.length ? `open Trys: ${open.join('; ')}` : 'nothing frozen or pending');
  }
  return ok;
}

async function keepForOperators(k: KeepContext): Promise<number> {
  const { transferSvc, bankA, bankB, bankC, leg } = k;
  say();
  say('== 4. (--keep) Something to fix: a confirm that keeps failing, and a transfer left TRYING ==');
  reportServiceEvents([bankA, bankB, bankC]);
  note(`locking ledger C for audit (POST /audit/lock on ${bankC.name}); in this mode the services park a branch as FAILED after ${KEEP_DEAD_THRESHOLD} failed attempts`);
  const lockMark = bankC.events.length;
  const locked = await fetch(bankC.url('/audit/lock'), { method: 'POST' });
  if (!locked.ok) throw new Error(`POST /audit/lock on ${bankC.name} answered ${locked.status}: ${await locked.text()}`);
  await bankC.waitFor('the audit lock', (e) => e.event === 'audit' && e.locked === true, 5_000, lockMark);

  const markA = bankA.events.length;
  const markC = bankC.events.length;
  const parked = await transfer(transferSvc, 'A pays C 10', [leg(bankA, 'debit', 10, 'C'), leg(bankC, 'credit', 10, 'A')]);
  if (parked.error) throw new Error(`the transfer to park failed before its decision: ${parked.error.message}`);
  await bankA.waitFor(`A's confirm of ${parked.xid}`, (e) => e.event === 'phase2' && e.xid === parked.xid && e.result === 'succeeded', 20_000, markA);
  await bankC.waitFor(`C's confirm of ${parked.xid} to be parked`, (e) => e.event === 'phase2' && e.xid === parked.xid && e.result === 'parked', 30_000, markC);
  showTransaction(await transferSvc.get(parked.xid));

  const tx = await transferSvc.begin({ name: 'B pays A 5', timeoutMs: KEEP_TRYING_TIMEOUT_MS });
  note(`begin ${tx.xid} (timeout ${KEEP_TRYING_TIMEOUT_MS / 3_600_000} h)`);
  for (const l of [leg(bankB, 'debit', 5, 'A'), leg(bankA, 'credit', 5, 'B')]) {
    const r = await callTry(tx, l);
    const a = r.account;
    note(`Try ${l.resource.padEnd(6)} ${l.label.padEnd(14)} via ${l.via.name}: ok, branch ${r.branchId}${a ? `  (${a.name}: balance ${a.balance}, frozen ${a.frozen}, incoming ${a.incoming})` : ''}`);
  }
  note('no commit, no rollback: it stays TRYING until someone decides (or its deadline passes)');
  showTransaction(await transferSvc.get(tx.xid));
  let ok = await moneyCheck(k.store, transferSvc, 'balances now');
  if (!ok) return 1;

  // What the operator can do, and how.
  const cli = 'npx txloop';
  const cmds: [string, string][] = [
    ...(existsSync(join(root, 'dist', 'cli', 'main.js')) ? [] : ([['npm run build', 'once: builds dist/cli/main.js']] as [string, string][])),
    [`export TXLOOP_ENDPOINTS=${k.endpoints.join(',')}`, ''],
    [`${cli} get gtx`, "this run's five transfers"],
    [`${cli} get branches --status failed`, 'the credit on C, parked as FAILED'],
    [`${cli} describe gtx ${parked.xid}`, 'its attempts, last error and events'],
    [`curl -s -X POST ${bankC.url('/audit/unlock')}`, 'lift the audit lock on ledger C (the cause) …'],
    [`${cli} retry ${parked.xid}`, '… then run the confirm again → COMMITTED'],
    [`${cli} abort ${tx.xid} --reason "customer cancelled"`, 'roll back the transfer left TRYING'],
    [`${cli} top`, "each service's leader and queues"],
  ];
  const width = Math.max(...cmds.map(([c]) => c.length));
  say();
  say('== Explore with the CLI: etcd and the services keep running until Ctrl-C ==');
  say('  In another terminal, in this directory:');
  say();
  for (const [c, why] of cmds) say(`    ${why ? `${c.padEnd(width)}   # ${why}` : c}`);
  say();
  say(`  \`${cli} …\` runs this checkout's dist/cli/main.js (the same as \`node dist/cli/main.js …\`); docs/cli.md has every command.`);
  say(`  A retry before the unlock fails ${KEEP_DEAD_THRESHOLD} more times and parks the branch again.`);
  say('  Service logs: ' + (relative(process.cwd(), logDir) || logDir) + '/. This terminal reports what happens to the two transfers.');
  // From here on a signal is the normal end. Set before the line below is printed: a test (or a
  // person) that waits for that line and then signals can never hit the interrupt path instead.
  waitingForCtrlC = true;
  say('  Ctrl-C stops the services and etcd.');
  say();

  // Until Ctrl-C: report each of the two as it finishes, with the balances.
  clearTimeout(watchdog);
  const stopFollowing = new AbortController();
  let reports = Promise.resolve();
  const follow = async (xid: string): Promise<void> => {
    try {
      const v = await transferSvc.waitForCompletion(xid, { timeoutMs: 7 * 24 * 3_600_000, signal: stopFollowing.signal });
      reports = reports.then(async () => {
        note(`${xid} "${v.name}" is ${v.status}`);
        showTransaction(v);
        if (!(await moneyCheck(k.store, transferSvc, `balances after ${xid}`))) ok = false;
        say();
      });
      await reports;
    } catch (err) {
      if (!stopFollowing.signal.aborted && !interrupted) note(`!! stopped following ${xid}: ${(err as Error).message}`);
    }
  };
  const followers = [follow(parked.xid), follow(tx.xid)];
  const keepAlive = setInterval(() => undefined, 3_600_000);
  await interruption;
  clearInterval(keepAlive);
  stopFollowing.abort();
  await Promise.race([Promise.all(followers), sleep(2_000)]);
  return ok ? 0 : 1;
}

const watchdog = setTimeout(() => {
  warn(`demo: still running after ${WATCHDOG_MS / 1000}s; giving up`);
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
// A Ctrl-C that ends --keep's wait is its normal end: the exit code is the checks' result.
process.exit(endedTheWait ? code : interrupted === 'SIGINT' ? 130 : interrupted === 'SIGTERM' ? 143 : code);
