/**
 * `--keep`: something for the operator's CLI (docs/cli.md) after the checks. Ledger C is locked for
 * audit and one more transfer is made, whose credit confirm on bank-c fails until the branch is
 * parked; another transfer is left TRYING with a 1 h timeout. Prints the `txloop`
 * commands to explore and repair them, reports what happens to those two transfers, and waits for
 * Ctrl-C, which is its normal end.
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { moneyCheck } from '../checks.js';
import { KEEP_MAX_ATTEMPTS, logDir, root, type AccountService, type Cluster } from '../cluster.js';
import { interruptedBy, interruption, signalsEndTheWait, stopWatchdog } from '../lifecycle.js';
import { note, say, showCommands, showTransaction } from '../print.js';
import { callTry, leg, noteTry, transfer } from '../transfers.js';

/** The transfer left TRYING has this timeout, so it is still there for `txloop abort`. */
const KEEP_TRYING_TIMEOUT_MS = 3_600_000;

export interface KeepContext extends Cluster {
  /** The replica of bank-c still running after scenario 3 (now its leader). */
  bankC: AccountService;
}

/** Prints the services' phase-2 attempts and ledger locks as they happen (only --keep does this). */
function reportServiceEvents(services: AccountService[]): void {
  for (const s of services) {
    s.onEvent((e) => {
      if (e.event === 'audit') {
        note(
          e.locked
            ? `${s.name}: ledger ${s.account} locked for audit: every confirm on ${s.account} fails until POST /audit/unlock`
            : `${s.name}: ledger ${s.account} unlocked: confirms on ${s.account} go through again (a parked branch stays parked until \`txloop retry\`)`,
        );
      }
      if (e.event !== 'phase2') return;
      const what = `${s.name}: ${String(e.action)} of branch ${String(e.branchId)} (${String(e.resource)}, ${String(e.xid)})`;
      if (e.result === 'succeeded') note(`${what} succeeded on attempt ${String(e.attempt)}`);
      else if (e.result === 'failed') note(`${what} attempt ${String(e.attempt)} failed: ${String(e.error)}`);
      else note(`${what} attempt ${String(e.attempt)} failed: ${String(e.error)} → parked, waiting for a human`);
    });
  }
}

/** Returns the exit code once Ctrl-C ended the wait: 0 when every money check passed. */
export async function keepForOperators(k: KeepContext): Promise<number> {
  const { transferSvc, bankA, bankB, bankC } = k;
  say();
  say('== 4. (--keep) Something to fix: a confirm that keeps failing, and a transfer left TRYING ==');
  reportServiceEvents([bankA, bankB, bankC]);
  note(`locking ledger C for audit (POST /audit/lock on ${bankC.name}); in this mode the services park a branch after ${KEEP_MAX_ATTEMPTS} failed attempts`);
  const lockMark = bankC.events.length;
  const locked = await fetch(bankC.url('/audit/lock'), { method: 'POST' });
  if (!locked.ok) throw new Error(`POST /audit/lock on ${bankC.name} answered ${locked.status}: ${await locked.text()}`);
  await bankC.waitForEvent((e) => e.event === 'audit' && e.locked === true, 'the audit lock', { timeoutMs: 5_000, from: lockMark });

  const markA = bankA.events.length;
  const markC = bankC.events.length;
  const parked = await transfer(transferSvc, 'A pays C 10', [leg(bankA, 'debit', 10, 'C'), leg(bankC, 'credit', 10, 'A')]);
  if (parked.error) throw new Error(`the transfer to park failed before its decision: ${parked.error.message}`);
  await bankA.waitForEvent((e) => e.event === 'phase2' && e.xid === parked.xid && e.result === 'succeeded', `A's confirm of ${parked.xid}`, { timeoutMs: 20_000, from: markA });
  await bankC.waitForEvent((e) => e.event === 'phase2' && e.xid === parked.xid && e.result === 'parked', `C's confirm of ${parked.xid} to be parked`, { timeoutMs: 30_000, from: markC });
  showTransaction(await transferSvc.get(parked.xid));

  const tx = await transferSvc.begin({ name: 'B pays A 5', timeoutMs: KEEP_TRYING_TIMEOUT_MS });
  note(`begin ${tx.xid} (timeout ${KEEP_TRYING_TIMEOUT_MS / 3_600_000} h)`);
  for (const l of [leg(bankB, 'debit', 5, 'A'), leg(bankA, 'credit', 5, 'B')]) noteTry(l, await callTry(tx, l));
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
    [`${cli} get branches --status parked`, 'the credit on C, parked'],
    [`${cli} describe gtx ${parked.xid}`, 'its attempts, last error and events'],
    [`curl -s -X POST ${bankC.url('/audit/unlock')}`, 'lift the audit lock on ledger C (the cause) …'],
    [`${cli} retry ${parked.xid}`, '… then run the confirm again → COMMITTED'],
    [`${cli} abort ${tx.xid} --reason "customer cancelled"`, 'roll back the transfer left TRYING'],
    [`${cli} top`, "each service's leader and queues"],
  ];
  say();
  say('== Explore with the CLI: etcd and the services keep running until Ctrl-C ==');
  say('  In another terminal, in this directory:');
  say();
  showCommands(cmds);
  say();
  say(`  \`${cli} …\` runs this checkout's dist/cli/main.js (the same as \`node dist/cli/main.js …\`); docs/cli.md has every command.`);
  say(`  A retry before the unlock fails ${KEEP_MAX_ATTEMPTS} more times and parks the branch again.`);
  say('  Service logs: ' + (relative(process.cwd(), logDir) || logDir) + '/. This terminal reports what happens to the two transfers.');
  // From here on a signal is the normal end. Set before the line below is printed: a test (or a
  // person) that waits for that line and then signals can never hit the interrupt path instead.
  signalsEndTheWait();
  say('  Ctrl-C stops the services and etcd.');
  say();

  // Until Ctrl-C: report each of the two as it finishes, with the balances.
  stopWatchdog();
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
      if (!stopFollowing.signal.aborted && !interruptedBy()) note(`!! stopped following ${xid}: ${(err as Error).message}`);
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
