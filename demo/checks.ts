/**
 * What the demo checks: each scenario's expectations (`expect`, collected in `problems`), and that
 * money is conserved — at the end of the scenarios (`finalCheck`) and, with --keep, for what was
 * decided while transfers are still open (`moneyCheck`).
 */
import type { TxloopService } from '../src/index.js';
import { OPENING_BALANCES, type AccountStore } from './accounts.js';
import { elapsed, note, say, showBalances, type AccountReader } from './print.js';

/** The balances after the three TCC scenarios. */
const EXPECTED_FINAL: Readonly<Record<string, number>> = { A: 45, B: 50, C: 105 };

/** Every expectation that failed so far. */
export const problems: string[] = [];

export function expect(ok: boolean, what: string): void {
  if (!ok) {
    problems.push(what);
    note(`!! ${what}`);
  }
}

const openingTotal = (): number => Object.values(OPENING_BALANCES).reduce((s, n) => s + n, 0);

/** After the scenarios: the expected balances, nothing frozen or pending; prints the verdict. Returns the exit code. */
export async function finalCheck(store: AccountReader, outcomes: string, expected: Readonly<Record<string, number>> = EXPECTED_FINAL): Promise<number> {
  say();
  say('== Final check ==');
  const final = await showBalances(store, 'final balances');
  const accts = Object.values(final);
  const total = accts.reduce((s, a) => s + a.balance, 0);
  const initialTotal = openingTotal();
  expect(total === initialTotal, `money not conserved: total ${total}, started with ${initialTotal}`);
  for (const a of accts) {
    expect(a.frozen === 0, `account ${a.name} still has ${a.frozen} frozen`);
    expect(a.incoming === 0, `account ${a.name} still has ${a.incoming} incoming`);
    expect(a.balance === expected[a.name], `account ${a.name} ends with ${a.balance}, expected ${expected[a.name]}`);
    const open = Object.entries(a.branches).filter(([, b]) => b.phase === 'tried');
    expect(open.length === 0, `account ${a.name} has branches neither confirmed nor cancelled: ${open.map(([id]) => id).join(', ')}`);
  }
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

/**
 * Money is conserved for what was decided: what is on the accounts plus what a committed transfer
 * has taken from its payer but not yet credited (its credit confirm is pending or parked) is the
 * opening total; frozen and incoming amounts are exactly the open Trys, and only of unfinished
 * transfers.
 */
export async function moneyCheck(store: AccountStore, svc: TxloopService, title: string): Promise<boolean> {
  const accts = Object.values(await showBalances(store, title));
  const initialTotal = openingTotal();
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
