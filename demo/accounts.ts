/**
 * The demo's bank accounts, kept in etcd (not in a service's memory) so that every replica of a
 * service sees the same account and nothing is lost when a replica is killed.
 *
 * One key per account, `txloop-demo/accounts/<name>`, changed only by compare-and-swap on its
 * mod_revision. Each account also records what every TCC branch did to it (`branches`), which makes
 * confirm and cancel idempotent, turns a cancel that arrives before its Try into an empty rollback,
 * and refuses a Try that arrives after its cancel (the rules a TCC "branch barrier" enforces: idempotency, empty rollback, anti-hanging).
 */
import type { Etcd3 } from 'etcd3';

export const ACCOUNT_PREFIX = 'txloop-demo/accounts/';

/** The accounts the demo opens, with their opening balances. */
export const OPENING_BALANCES: Readonly<Record<string, number>> = { A: 100, B: 100, C: 0 };

export type BranchKind = 'debit' | 'credit';

/** What the initiator sends to a Try; txloop stores it as the branch payload, so confirm/cancel see it too. */
export interface TransferLeg {
  amount: number;
  /** The other account of the transfer, for people reading the records. */
  counterparty?: string;
  /** Confirm/cancel wait this long before touching the account (to show a crash in the middle of phase 2). */
  settleDelayMs?: number;
  /** The Go bank (demo/go-bank) only: its first confirm of the branch waits this long, or until its caller hangs up. */
  holdConfirmMs?: number;
}

/** What a TCC branch did to an account. */
export interface AppliedBranch {
  kind: BranchKind;
  amount: number;
  /** tried: amount reserved; confirmed: moved; cancelled: released (or nothing, for an empty rollback). */
  phase: 'tried' | 'confirmed' | 'cancelled';
  xid: string;
  /** A cancel that found no Try: nothing was released, and a late Try of this branch is refused. */
  empty?: boolean;
}

export interface Account {
  name: string;
  /** Money on the account. */
  balance: number;
  /** Reserved by debit Trys that are not yet confirmed or cancelled ("冻结金额", frozen amount). */
  frozen: number;
  /** Announced by credit Trys that are not yet confirmed or cancelled. */
  incoming: number;
  branches: Record<string, AppliedBranch>;
  /** Set while the ledger is locked (e.g. "audit"): every confirm on it fails until it is unlocked. */
  lockedFor?: string;
}

export function available(a: Account): number {
  return a.balance - a.frozen;
}

export function accountKey(name: string): string {
  return `${ACCOUNT_PREFIX}${name}`;
}

/** A business rule refused the operation (e.g. not enough money): the Try fails, it is not retried. */
export class AccountRefusal extends Error {
  override readonly name = 'AccountRefusal';
}

export class AccountStore {
  constructor(private readonly client: Etcd3) {}

  /** Creates or overwrites an account (demo setup only). */
  async open(name: string, balance: number): Promise<void> {
    const account: Account = { name, balance, frozen: 0, incoming: 0, branches: {} };
    await this.client.put(accountKey(name)).value(JSON.stringify(account));
  }

  async read(name: string): Promise<Account | undefined> {
    const kv = (await this.client.get(accountKey(name)).exec()).kvs[0];
    return kv ? parseAccount(name, kv.value.toString()) : undefined;
  }

  /**
   * Read-modify-write with compare-and-swap: `change` gets the current account and returns the new
   * one, or undefined when there is nothing to change (an idempotent repeat). It may throw to refuse.
   * Retried on a concurrent change; etcd applies each write once.
   */
  async update(name: string, change: (current: Account) => Account | undefined, signal?: AbortSignal): Promise<Account> {
    const key = accountKey(name);
    for (let attempt = 0; attempt < 100; attempt++) {
      signal?.throwIfAborted();
      const kv = (await this.client.get(key).exec()).kvs[0];
      if (!kv) throw new AccountRefusal(`account ${name} does not exist`);
      const current = parseAccount(name, kv.value.toString());
      const next = change(structuredClone(current));
      if (next === undefined) return current;
      const res = await this.client
        .if(key, 'Mod', '==', kv.mod_revision)
        .then(this.client.put(key).value(JSON.stringify(next)))
        .commit();
      if (res.succeeded) return next;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
    }
    throw new Error(`account ${name}: too many concurrent changes, giving up this attempt`);
  }
}

function parseAccount(name: string, raw: string): Account {
  const a = JSON.parse(raw) as Account;
  if (typeof a !== 'object' || a === null || typeof a.balance !== 'number' || typeof a.frozen !== 'number' || typeof a.incoming !== 'number') {
    throw new Error(`account ${name} in etcd is malformed: ${raw.slice(0, 200)}`);
  }
  a.branches ??= {};
  return a;
}

// -----------------------------------------------------------------------------------------------
// The TCC operations on one account. Each returns the changed account, or undefined when the
// branch already reached that phase (idempotent repeat).

/** Try of a debit: checks the available balance and freezes `amount`. */
export function tryDebit(a: Account, xid: string, branchId: string, amount: number): Account | undefined {
  const b = a.branches[branchId];
  if (b?.phase === 'tried') return undefined;
  if (b) throw new AccountRefusal(`branch ${branchId} was already ${b.phase} on account ${a.name}; a late Try is refused`);
  if (available(a) < amount) {
    throw new AccountRefusal(`insufficient funds: account ${a.name} has ${available(a)} available (balance ${a.balance}, frozen ${a.frozen}), needs ${amount}`);
  }
  a.frozen += amount;
  a.branches[branchId] = { kind: 'debit', amount, phase: 'tried', xid };
  return a;
}

/** Try of a credit: records the incoming amount (the money arrives at confirm). */
export function tryCredit(a: Account, xid: string, branchId: string, amount: number): Account | undefined {
  const b = a.branches[branchId];
  if (b?.phase === 'tried') return undefined;
  if (b) throw new AccountRefusal(`branch ${branchId} was already ${b.phase} on account ${a.name}; a late Try is refused`);
  a.incoming += amount;
  a.branches[branchId] = { kind: 'credit', amount, phase: 'tried', xid };
  return a;
}

/** Confirm: uses only what the Try reserved, with no business checks. */
export function confirmBranch(a: Account, branchId: string): Account | undefined {
  const b = a.branches[branchId];
  if (b?.phase === 'confirmed') return undefined;
  // A locked ledger moves no money: the attempt fails and txloop retries it, then parks the branch.
  if (a.lockedFor) throw new Error(`ledger ${a.name} locked for ${a.lockedFor}`);
  // txloop never confirms a branch whose Try did not succeed, so this is a real inconsistency: fail
  // the attempt loudly (txloop retries, then parks the branch for a human) rather than invent money.
  if (!b || b.phase !== 'tried') throw new Error(`cannot confirm branch ${branchId} on account ${a.name}: its Try is ${b ? b.phase : 'not recorded'}`);
  if (b.kind === 'debit') {
    a.frozen -= b.amount;
    a.balance -= b.amount;
  } else {
    a.incoming -= b.amount;
    a.balance += b.amount;
  }
  b.phase = 'confirmed';
  return a;
}

/** Locks the ledger (`npm run demo -- --keep`): confirms fail until unlockLedger. */
export function lockLedger(a: Account, reason: string): Account | undefined {
  if (a.lockedFor === reason) return undefined;
  a.lockedFor = reason;
  return a;
}

export function unlockLedger(a: Account): Account | undefined {
  if (a.lockedFor === undefined) return undefined;
  delete a.lockedFor;
  return a;
}

/**
 * Cancel: releases what the Try reserved. With no recorded Try it is an empty rollback: nothing is
 * released, and the branch is marked cancelled so a Try that arrives later is refused (anti-hanging).
 */
export function cancelBranch(a: Account, xid: string, branchId: string, kind: BranchKind): Account | undefined {
  const b = a.branches[branchId];
  if (b?.phase === 'cancelled') return undefined;
  if (b?.phase === 'confirmed') throw new Error(`cannot cancel branch ${branchId} on account ${a.name}: it was already confirmed`);
  if (!b) {
    a.branches[branchId] = { kind, amount: 0, phase: 'cancelled', xid, empty: true };
    return a;
  }
  if (b.kind === 'debit') a.frozen -= b.amount;
  else a.incoming -= b.amount;
  b.phase = 'cancelled';
  return a;
}
