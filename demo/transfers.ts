/**
 * The initiator's side of a transfer: begin, call each leg's Try on its account service over HTTP
 * with the transaction's headers, commit; a refused Try rolls the transaction back.
 */
import type { GlobalTransaction, TxloopService } from '../src/index.js';
import type { Account, TransferLeg } from './accounts.js';
import { nameLeg, note } from './print.js';

/** A service that serves `POST /try/<debit|credit>` for one account (demo/account-service.ts, demo/go-bank). */
export interface TryTarget {
  readonly name: string;
  readonly account: string;
  url(path: string): string;
}

/** One Try call of a transfer: `resource` on the account `via` serves. */
export interface Leg {
  via: TryTarget;
  resource: 'debit' | 'credit';
  body: TransferLeg;
  label: string;
}

export function leg(via: TryTarget, resource: 'debit' | 'credit', amount: number, counterparty: string, extra: Partial<TransferLeg> = {}): Leg {
  return {
    via,
    resource,
    body: { amount, counterparty, ...extra },
    label: resource === 'debit' ? `${via.account} −${amount} → ${counterparty}` : `${via.account} +${amount} ← ${counterparty}`,
  };
}

/** A Try the account service refused (its HTTP status: 409 for a business refusal such as insufficient funds). */
export class TryRejected extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type AccountSnapshot = Pick<Account, 'name' | 'balance' | 'frozen' | 'incoming'>;

export async function callTry(tx: GlobalTransaction, leg: Leg): Promise<{ branchId: string; account?: AccountSnapshot }> {
  const res = await fetch(leg.via.url(`/try/${leg.resource}`), {
    method: 'POST',
    headers: tx.headers({ 'content-type': 'application/json' }),
    body: JSON.stringify(leg.body),
    signal: tx.signal,
  });
  const body = (await res.json().catch(() => ({}))) as { branchId?: string; error?: string; account?: AccountSnapshot };
  if (body.branchId) nameLeg(body.branchId, leg.label);
  if (!res.ok) throw new TryRejected(res.status, `${leg.via.name} answered ${res.status}: ${body.error ?? res.statusText}`);
  if (!body.branchId) throw new Error(`${leg.via.name} answered without a branchId`);
  return { branchId: body.branchId, ...(body.account ? { account: body.account } : {}) };
}

/** The note printed for a Try that went through. */
export function noteTry(l: Leg, r: { branchId: string; account?: AccountSnapshot }): void {
  const a = r.account;
  note(`Try ${l.resource.padEnd(6)} ${l.label.padEnd(14)} via ${l.via.name}: ok, branch ${r.branchId}${a ? `  (${a.name}: balance ${a.balance}, frozen ${a.frozen}, incoming ${a.incoming})` : ''}`);
}

/** begin → Try every leg over HTTP → commit; a failed Try rolls back. Returns the xid either way. */
export async function transfer(svc: TxloopService, name: string, legs: Leg[]): Promise<{ xid: string; error?: Error }> {
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
        noteTry(leg, r);
      }
      note('all Trys succeeded → commit (one etcd compare-and-swap; the services\' leaders confirm their own branches)');
    });
    return { xid };
  } catch (err) {
    if (xid) note(`transaction() rolled back ${xid} (one etcd compare-and-swap; the services' leaders cancel their own branches)`);
    return { xid, error: err as Error };
  }
}
