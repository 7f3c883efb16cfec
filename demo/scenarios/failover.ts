/**
 * Scenario 3: A pays C 25 while bank-c runs two replicas: the leader replica is killed with SIGKILL
 * in the middle of its confirm, the standby takes over the lease and confirms → COMMITTED after
 * failover.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { TransactionView } from '../../src/index.js';
import { expect } from '../checks.js';
import { waitForLeader, type AccountService, type Cluster } from '../cluster.js';
import { note, say, showTransaction } from '../print.js';
import { leg, transfer } from '../transfers.js';

/** The confirm on C in scenario 3 takes this long, so the kill lands in the middle of it. */
const SETTLE_DELAY_MS = 2_500;

/** Returns the transaction and the replica of bank-c still running (now its leader). */
export async function failoverScenario({ client, transferSvc, bankA, bankC1, bankC2 }: Cluster): Promise<{ view: TransactionView; survivor: AccountService }> {
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
  const startEvent = await victim.waitForEvent((e) => e.event === 'phase2-start' && e.xid === s3.xid && e.action === 'confirm', `confirm of ${s3.xid} to start`, { timeoutMs: 10_000 });
  note(`${victim.name} started confirm attempt ${String(startEvent.attempt)} of its branch ${String(startEvent.branchId)}`);
  await sleep(300);
  const during = await transferSvc.get(s3.xid);
  showTransaction(during);
  const standbyMark = standby.events.length;
  const killedAt = Date.now();
  victim.kill('SIGKILL');
  const exit = await victim.exit;
  note(`SIGKILL → ${victim.name} (pid ${victim.pid}) died (${exit.signal ?? `code ${exit.code}`}) with its confirm unfinished`);
  expect(exit.signal === 'SIGKILL', `scenario 3: ${victim.name} exited with ${exit.signal ?? exit.code}, expected SIGKILL`);
  await standby.waitForEvent((e) => e.event === 'leader' && e.leading === true, 'leadership', { timeoutMs: 15_000, from: standbyMark });
  const newLeader = await waitForLeader(client, 'bank-c', 5_000);
  note(`${standby.name} became bank-c's leader ${Date.now() - killedAt} ms after the kill (the dead leader's lease expired); leader key now: ${newLeader.identity}`);
  expect(newLeader.pid === standby.pid, `scenario 3: bank-c's leader is ${newLeader.identity}, expected the standby ${standby.name}`);
  const done = await standby.waitForEvent((e) => e.event === 'phase2' && e.xid === s3.xid && e.result === 'succeeded', `confirm of ${s3.xid}`, { timeoutMs: 20_000, from: standbyMark });
  note(`${standby.name} ran the confirm again and recorded it (${String(done.durationMs)} ms; recorded as attempt ${String(done.attempt)}: the killed attempt never got to record itself)`);
  const v3 = await transferSvc.waitForCompletion(s3.xid, { timeoutMs: 20_000 });
  note(`transaction ${v3.status} after failover (${Date.now() - killedAt} ms after the kill)`);
  showTransaction(v3);
  expect(v3.status === 'COMMITTED', `scenario 3 ended ${v3.status}, expected COMMITTED`);
  return { view: v3, survivor: standby };
}
