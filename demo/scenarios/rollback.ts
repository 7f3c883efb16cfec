/**
 * Scenario 2: A pays C 40 and B pays C 60, but B has only 50 left: B's Try fails, the transaction
 * rolls back and A's freeze is released → ROLLED_BACK, balances unchanged.
 */
import type { TransactionView } from '../../src/index.js';
import { expect } from '../checks.js';
import type { Cluster } from '../cluster.js';
import { note, say, showBalances, showTransaction } from '../print.js';
import { TryRejected, leg, transfer } from '../transfers.js';

export async function rollbackScenario({ transferSvc, store, bankA, bankB, bankC1 }: Cluster): Promise<TransactionView> {
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
  return v2;
}
