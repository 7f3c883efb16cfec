/**
 * `npm run demo -- go`: the TCC transfers with bank-b written in Go — demo/go-bank, a Go program
 * using the Go client (clients/go) beside its sidecar — while bank-a and bank-c are the Node account
 * services. bank-b's txloop service is two `txloop sidecar` processes: the leader, which the Go
 * bank's Try middleware registers and reports through, and a standby. The demo process initiates.
 *
 *   1. A pays C 30 and B pays C 50 in one transaction: the Go bank's Try freezes 50 behind the
 *      Participant middleware, its leader sidecar calls its confirm → COMMITTED.
 *   2. A pays C 40 and B pays C 60, but B has only 50 left: the Go bank's Try answers 409, the
 *      transaction rolls back, A's freeze is released and the Go bank's cancel is an empty rollback
 *      → ROLLED_BACK.
 *   3. B pays C 25: the Go bank holds its confirm until its caller hangs up, and the leader sidecar
 *      is SIGKILLed in the middle of it; the standby takes the lease and calls the confirm again
 *      (a newer fencing token), which the Go bank applies once → COMMITTED after failover.
 *
 * Passes when each ended so and money is conserved across the three banks (A and C in etcd, B in
 * the Go bank's GET /account), nothing frozen or pending. Without `go` on PATH it says so in one
 * line and exits 0.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { TxloopService, type TransactionView } from '../../src/index.js';
import { AccountStore, OPENING_BALANCES } from '../accounts.js';
import { expect, finalCheck } from '../checks.js';
import { AccountService, LEASE_TTL_SECONDS, logDir, root, startDemoEtcd, waitForLeader } from '../cluster.js';
import { CLI, GO_MISSING, GoBank, Sidecar, buildGoBank, goVersion, type GoBankEvent } from '../go-services.js';
import { onCleanup, outsideWatchdog } from '../lifecycle.js';
import { note, say, showBalances, showTransaction, type AccountReader } from '../print.js';
import { TryRejected, leg, transfer } from '../transfers.js';

/** The balances after the three transfers. */
const EXPECTED_FINAL = { A: 70, B: 25, C: 105 };
/** Scenario 3: the Go bank holds its confirm at most this long; the kill ends the hold well before. */
const HOLD_CONFIRM_MS = 15_000;

const workDir = join(root, '.txloop-demo', 'go-bank');

export async function goScenario(): Promise<number> {
  const version = await goVersion();
  if (!version) {
    say(GO_MISSING);
    return 0;
  }
  say('txloop demo: TCC transfers where bank-b is a Go program beside its sidecar, no coordinator');
  say('  (bank-a and bank-c are Node services; bank-b is demo/go-bank on clients/go, its txloop service two sidecars)');
  say();
  if (!existsSync(CLI)) throw new Error(`${relative(process.cwd(), CLI)} is missing: run npm run build (npm run demo builds it first)`);
  // The build bounds itself; the watchdog's limit is for the run that follows.
  const built = await outsideWatchdog(() => buildGoBank(version));
  note(built.builtInMs !== undefined ? `built demo/go-bank with ${version} in ${(built.builtInMs / 1000).toFixed(1)}s → ${relative(process.cwd(), built.binary)}` : `demo/go-bank is up to date (${relative(process.cwd(), built.binary)}, ${version})`);

  const etcd = await startDemoEtcd();
  if (!etcd) return 1;
  const { endpoints, client } = etcd;
  const store = new AccountStore(client);
  for (const name of ['A', 'C']) await store.open(name, OPENING_BALANCES[name]!);

  // bank-a and bank-c: the Node account services (accounts in etcd). bank-b: the Go bank.
  mkdirSync(workDir, { recursive: true });
  const bankA = new AccountService('bank-a', 'A', 1, endpoints);
  const bankC = new AccountService('bank-c', 'C', 1, endpoints);
  const goBank = new GoBank(built.binary, 'bank-b', 'B', OPENING_BALANCES.B!, join(workDir, 'account-B.json'));
  for (const s of [bankA, bankC, goBank]) onCleanup(`${s.name} (pid ${s.pid})`, async () => void (await s.stop()));
  await goBank.ready();

  // Its two sidecars, both calling the Go bank back; the first leads (it starts alone), the second stands by.
  const resources = join(workDir, 'resources.yaml');
  writeFileSync(
    resources,
    [
      "# bank-b's TCC resources: the Go bank's paths its sidecars call (demo/go-bank)",
      'resources:',
      '  debit: { try: /try/debit, confirm: /debit/confirm, cancel: /debit/cancel }',
      '  credit: { try: /try/credit, confirm: /credit/confirm, cancel: /credit/cancel }',
      '',
    ].join('\n'),
  );
  const sidecar = (n: number): Sidecar => {
    const s = new Sidecar(`bank-b/sidecar#${n}`, 'bank-b', endpoints, goBank.url(''), resources, LEASE_TTL_SECONDS, join(logDir, `go-sidecar-${n}.log`));
    onCleanup(`${s.name} (pid ${s.pid})`, async () => void (await s.stop('SIGTERM', 5_000)));
    return s;
  };
  const sidecar1 = sidecar(1);
  await sidecar1.ready();
  await leaderIs(client, 'bank-b', sidecar1.pid, 15_000);
  const sidecar2 = sidecar(2);
  await Promise.all([sidecar2.ready(), bankA.ready(), bankC.ready()]);
  await goBank.useSidecar(sidecar1);
  for (const s of [bankA, bankC]) note(`${s.name.padEnd(16)} account ${s.account}  pid ${s.pid}  http://127.0.0.1:${s.port}  (Node, account in etcd)`);
  note(`${goBank.name.padEnd(16)} account B  pid ${goBank.pid}  ${goBank.url('')}  (Go, ${version}; its account in memory, written through to ${relative(process.cwd(), join(workDir, 'account-B.json'))})`);
  note(`${sidecar1.name.padEnd(16)}            pid ${sidecar1.pid}  ${sidecar1.url}  (the Go bank's own: its Trys register and report here)`);
  note(`${sidecar2.name.padEnd(16)}            pid ${sidecar2.pid}  ${sidecar2.url}  (standby: calls the Go bank back only once it leads)`);
  note(`service logs (level warn): ${relative(process.cwd(), logDir) || logDir}/`);

  const txLog = pino({ level: process.env.TXLOOP_LOG_LEVEL ?? 'warn', base: { app: 'transfer' } }, pino.destination({ dest: join(logDir, 'transfer.log'), sync: true }));
  const transferSvc = new TxloopService({ app: 'transfer', identity: `transfer#1/pid-${process.pid}`, etcd: { endpoints }, leaseTtlSeconds: LEASE_TTL_SECONDS, logger: txLog });
  onCleanup('transfer service', () => transferSvc.close());
  await transferSvc.start();
  const names = new Map<number, string>([[process.pid, 'transfer#1 (this process)'], ...[bankA, bankC, sidecar1, sidecar2].map((s) => [s.pid, s.name] as [number, string])]);
  const leaders: string[] = [];
  for (const app of ['transfer', 'bank-a', 'bank-b', 'bank-c']) {
    const l = await waitForLeader(client, app, 15_000);
    leaders.push(`${app} → ${names.get(l.pid) ?? l.identity}`);
  }
  note(`leaders (etcd lease, ${LEASE_TTL_SECONDS}s TTL): ${leaders.join(', ')}`);

  // B's account is the Go bank's; A's and C's are in etcd.
  const accounts: AccountReader = { read: (name) => (name === 'B' ? goBank.read() : store.read(name)) };
  await showBalances(accounts, 'opening balances (A and C in etcd, B in the Go bank)');
  goBank.onEvent((e) => showGoEvent(e));

  const v1 = await commitStep(transferSvc, accounts, bankA, goBank, bankC);
  const v2 = await rollbackStep(transferSvc, accounts, bankA, goBank, bankC);
  const v3 = await failoverStep(client, transferSvc, goBank, bankC, sidecar1, sidecar2);
  return finalCheck(accounts, `1: ${v1.status}, 2: ${v2.status}, 3: ${v3.status} after failover of the Go bank's sidecar`, EXPECTED_FINAL);
}

/** What the Go bank says about its phase 2, printed as it happens. */
function showGoEvent(e: GoBankEvent): void {
  if (e.event !== 'phase2') return;
  const b = e.branch;
  const what = b ? `${b.kind === 'debit' ? `B −${b.amount}` : `B +${b.amount}`}` : '';
  const attempt = `branch ${e.branchId}, attempt ${e.attempt}, fencing token ${e.fencingToken}`;
  const acct = e.account ? `  (B: balance ${e.account.balance}, frozen ${e.account.frozen}, incoming ${e.account.incoming})` : '';
  switch (e.result) {
    case 'applied':
      return note(`go-bank  confirm ${what} applied (${attempt})${acct}`);
    case 'released':
      return note(`go-bank  cancel: released ${b?.amount ?? '?'} (${attempt})${acct}`);
    case 'empty':
      return note(`go-bank  cancel: empty rollback, its Try (${e.tryState}) froze nothing; a late Try of it is refused (${attempt})${acct}`);
    case 'repeat':
      return note(`go-bank  ${e.action} again: already done, nothing changed (${attempt})`);
    case 'abandoned':
      return; // scenario 3 prints it after the kill that caused it
    default:
      return note(`go-bank  ${e.action} ${e.result} (${attempt}): ${e.error ?? ''}`);
  }
}

async function commitStep(svc: TxloopService, accounts: AccountReader, bankA: AccountService, goBank: GoBank, bankC: AccountService): Promise<TransactionView> {
  say();
  say('== 1. A pays C 30 and B (Go) pays C 50 in one TCC transaction ==');
  const s1 = await transfer(svc, 'A pays C 30, B pays C 50', [leg(bankA, 'debit', 30, 'C'), leg(goBank, 'debit', 50, 'C'), leg(bankC, 'credit', 30, 'A'), leg(bankC, 'credit', 50, 'B')]);
  expect(!s1.error, `scenario 1: a Try failed unexpectedly: ${s1.error?.message}`);
  const v1 = await svc.waitForCompletion(s1.xid, { timeoutMs: 20_000 });
  note(`transaction ${v1.status} (${v1.completedAt ? v1.completedAt.getTime() - v1.createdAt.getTime() : '?'} ms after begin)`);
  showTransaction(v1);
  await showBalances(accounts, 'balances after 1');
  expect(v1.status === 'COMMITTED', `scenario 1 ended ${v1.status}, expected COMMITTED`);
  return v1;
}

async function rollbackStep(svc: TxloopService, accounts: AccountReader, bankA: AccountService, goBank: GoBank, bankC: AccountService): Promise<TransactionView> {
  say();
  say("== 2. A pays C 40 and B (Go) pays C 60, but B has only 50 left: the Go bank's Try fails, everything rolls back ==");
  const frozenBefore = (await accounts.read('A'))!.frozen;
  const before = await balances(accounts);
  const mark = goBank.events.length;
  const s2 = await transfer(svc, 'A pays C 40, B pays C 60', [leg(bankA, 'debit', 40, 'C'), leg(bankC, 'credit', 40, 'A'), leg(bankC, 'credit', 60, 'B'), leg(goBank, 'debit', 60, 'C')]);
  expect(s2.error instanceof TryRejected && s2.error.status === 409, `scenario 2: expected the Go bank's Try to be refused with 409, got ${s2.error ? s2.error.message : 'success'}`);
  const v2 = await svc.waitForCompletion(s2.xid, { timeoutMs: 20_000 });
  note(`transaction ${v2.status}`);
  showTransaction(v2);
  const cancel = await goBank.waitForEvent((e) => e.event === 'phase2' && e.xid === s2.xid && e.action === 'cancel', "the Go bank's cancel", { timeoutMs: 10_000, from: mark });
  expect(cancel.result === 'empty' && cancel.tryState === 'FAILED', `scenario 2: the Go bank's cancel was ${cancel.result} (its Try ${cancel.tryState}), expected an empty rollback of a FAILED Try`);
  const frozenAfter = (await accounts.read('A'))!.frozen;
  note(`A frozen before: ${frozenBefore}, while the transaction was open: ${frozenBefore + 40}, after the rollback: ${frozenAfter}`);
  await showBalances(accounts, 'balances after 2 (unchanged)');
  const after = await balances(accounts);
  expect(v2.status === 'ROLLED_BACK', `scenario 2 ended ${v2.status}, expected ROLLED_BACK`);
  expect(frozenAfter === frozenBefore, `scenario 2: A's frozen amount is ${frozenAfter} after the rollback, expected ${frozenBefore}`);
  expect(after === before, `scenario 2: balances changed by a rolled-back transaction (${before} → ${after})`);
  return v2;
}

async function failoverStep(client: Etcd3, svc: TxloopService, goBank: GoBank, bankC: AccountService, sidecar1: Sidecar, sidecar2: Sidecar): Promise<TransactionView> {
  say();
  say("== 3. B (Go) pays C 25; bank-b's leader sidecar is killed (SIGKILL) in the middle of the Go bank's confirm ==");
  const leaderOf = async (): Promise<{ leader: Sidecar; standby: Sidecar }> => {
    const l = await waitForLeader(client, 'bank-b', 10_000);
    const leader = [sidecar1, sidecar2].find((s) => s.pid === l.pid);
    if (!leader) throw new Error(`bank-b's leader ${l.identity} is none of the sidecars this demo started`);
    return { leader, standby: leader === sidecar1 ? sidecar2 : sidecar1 };
  };
  let { leader: victim, standby } = await leaderOf();
  note(`bank-b's leader: ${victim.name} (pid ${victim.pid}); standby: ${standby.name} (pid ${standby.pid}), which runs no confirm/cancel while it is not the leader`);
  note(`the Go bank will hold its confirm until its caller hangs up (holdConfirmMs ${HOLD_CONFIRM_MS} in the Try payload: at most that long)`);
  const mark = goBank.events.length;
  const s3 = await transfer(svc, 'B pays C 25 (failover)', [leg(goBank, 'debit', 25, 'C', { holdConfirmMs: HOLD_CONFIRM_MS }), leg(bankC, 'credit', 25, 'B')]);
  expect(!s3.error, `scenario 3: a Try failed unexpectedly: ${s3.error?.message}`);
  const held = await goBank.waitForEvent((e) => e.event === 'phase2-start' && e.xid === s3.xid && e.action === 'confirm', `the confirm of ${s3.xid} to start`, { timeoutMs: 15_000, from: mark });
  // The confirm came from whichever sidecar leads now (on a starved machine a lease can change hands).
  const now = await leaderOf();
  if (now.leader !== victim) note(`(bank-b's leadership moved to ${now.leader.name} meanwhile)`);
  ({ leader: victim, standby } = now);
  note(`go-bank  confirm attempt ${held.attempt} of branch ${held.branchId} started (fencing token ${held.fencingToken}, called by ${victim.name}): ${held.holdMs ? 'held' : 'NOT held'}`);
  expect(held.holdMs === HOLD_CONFIRM_MS, `scenario 3: the Go bank did not hold the first confirm of ${s3.xid}`);
  await sleep(300);
  showTransaction(await svc.get(s3.xid));
  const killedAt = Date.now();
  victim.kill('SIGKILL');
  const exit = await victim.exit;
  note(`SIGKILL → ${victim.name} (pid ${victim.pid}) died (${exit.signal ?? `code ${exit.code}`}) with the Go bank's confirm unanswered`);
  expect(exit.signal === 'SIGKILL', `scenario 3: ${victim.name} exited with ${exit.signal ?? exit.code}, expected SIGKILL`);
  const abandoned = await goBank.waitForEvent((e) => e.event === 'phase2' && e.xid === s3.xid && e.action === 'confirm' && e.attempt === held.attempt && e.fencingToken === held.fencingToken, `the held confirm of ${s3.xid} to end`, { timeoutMs: HOLD_CONFIRM_MS + 5_000, from: mark });
  note(`go-bank  confirm attempt ${abandoned.attempt} ${abandoned.result}${abandoned.error ? `: ${abandoned.error}` : ''}`);
  expect(abandoned.result === 'abandoned', `scenario 3: the held confirm ended ${abandoned.result}, expected abandoned when its sidecar died`);
  await leaderIs(client, 'bank-b', standby.pid, 15_000);
  note(`${standby.name} became bank-b's leader ${Date.now() - killedAt} ms after the kill (the dead leader's lease expired)`);
  const done = await goBank.waitForEvent((e) => e.event === 'phase2' && e.xid === s3.xid && e.action === 'confirm' && e.result === 'applied', `the confirm of ${s3.xid} to be applied`, { timeoutMs: 20_000, from: mark });
  note(`${standby.name} called the confirm again: attempt ${done.attempt}, fencing token ${done.fencingToken} (the killed attempt's was ${held.fencingToken}); the Go bank applied it once`);
  expect(BigInt(done.fencingToken ?? 0) > BigInt(held.fencingToken ?? 0), `scenario 3: the standby's confirm has fencing token ${done.fencingToken}, not newer than ${held.fencingToken}`);
  const v3 = await svc.waitForCompletion(s3.xid, { timeoutMs: 20_000 });
  note(`transaction ${v3.status} after failover (${Date.now() - killedAt} ms after the kill)`);
  showTransaction(v3);
  expect(v3.status === 'COMMITTED', `scenario 3 ended ${v3.status}, expected COMMITTED`);
  if (victim === sidecar1) {
    await goBank.useSidecar(standby);
    note(`the Go bank now registers its Trys through ${standby.name} (its own sidecar is gone)`);
  }
  return v3;
}

async function balances(accounts: AccountReader): Promise<string> {
  return (await Promise.all(['A', 'B', 'C'].map(async (n) => (await accounts.read(n))!.balance))).join();
}

/** Waits until `pid` holds `app`'s leader key. */
async function leaderIs(client: Etcd3, app: string, pid: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while ((await waitForLeader(client, app, timeoutMs).catch(() => undefined))?.pid !== pid) {
    if (Date.now() > until) throw new Error(`pid ${pid} did not become ${app}'s leader within ${timeoutMs}ms`);
    await sleep(50);
  }
}
