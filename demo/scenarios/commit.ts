/** Scenario 1: A pays C 30 and B pays C 50 in one transaction; Try freezes, Confirm moves → COMMITTED. */
import type { TransactionView } from '../../src/index.js';
import { expect } from '../checks.js';
import type { Cluster } from '../cluster.js';
import { note, say, showBalances, showTransaction } from '../print.js';
import { leg, transfer } from '../transfers.js';

export async function commitScenario({ transferSvc, store, bankA, bankB, bankC1 }: Cluster): Promise<TransactionView> {
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
  return v1;
}
