/**
 * Compiled (never run) by sdk-edges.test.ts: each `@ts-expect-error` must be an error, so a type
 * that lets a misspelt resource, a wrong payload or an unchecked replay result through fails the
 * build of this file.
 */
import { TxloopService, type TxContext } from '../../src/index.js';

type Bank = { debit: { payload: { account: string; amount: number }; result: { frozen: number } } };
declare const ctx: TxContext;

export async function typed(): Promise<number> {
  const bank = new TxloopService<Bank>({ app: 'bank' });
  bank.resource('debit', {
    try: ({ payload }) => ({ frozen: payload.amount }),
    confirm: ({ payload }) => void payload.account,
    cancel: () => undefined,
  });
  // @ts-expect-error a resource the map does not declare
  bank.resource('debt', { try: () => ({ frozen: 1 }), confirm: () => undefined, cancel: () => undefined });
  // @ts-expect-error a try that returns the wrong result type
  bank.resource('debit', { try: () => 'frozen', confirm: () => undefined, cancel: () => undefined });
  // @ts-expect-error a misspelt resource name
  await bank.tryBranch(ctx, 'debitt', { account: 'a', amount: 1 });
  // @ts-expect-error a payload of the wrong shape
  await bank.tryBranch(ctx, 'debit', { account: 'a', amount: '1' });
  const r = await bank.tryBranch(ctx, 'debit', { account: 'a', amount: 1 });
  // @ts-expect-error result is undefined on a replay: it must be checked first
  const unchecked: number = r.result.frozen;
  if (r.replayed) return unchecked;
  return r.result.frozen;
}

export async function untyped(): Promise<unknown> {
  // Without a resource map every name and payload is accepted, and results are unknown.
  const svc = new TxloopService({ app: 'svc' });
  svc.resource<{ n: number }>('anything', { try: ({ payload }) => payload.n, confirm: () => undefined, cancel: () => undefined });
  const r = await svc.tryBranch(ctx, 'anything', { whatever: true });
  // @ts-expect-error unknown result: not usable as a number without a check
  const n: number = r.result;
  return n;
}
