/**
 * Finding a transaction's records when its index is incomplete. The owner of a branch is normally
 * read from the initiator's member records; but a branch whose member or global record is gone (deleted by
 * hand, lost in a restore) is still listed by `get branches`, so the CLI finds it by its own key,
 * and says what is left of a transaction whose global record is missing instead of "does not exist".
 */
import { BranchNotFound, TransactionNotFound } from '../errors.js';
import { rangePrefix } from '../etcd/index.js';
import type { Store } from '../store/index.js';
import { CliError } from './errors.js';
import { Snapshot, prefixSpan } from './scan.js';
import type { BranchRef } from './refs.js';

/** The service that owns a branch: from the initiator's member records, else from the branch record's key. */
export async function ownerOf(store: Store, ref: BranchRef): Promise<string> {
  for (const prefix of store.keys.members(ref.xid)) {
    const { kvs } = await rangePrefix(store.client, prefix, { keysOnly: true });
    for (const kv of kvs) {
      const p = store.keys.parse(kv.key.toString());
      if (p?.kind === 'member' && p.branchId === ref.branchId) return p.owner;
    }
  }
  const { branches } = await remainsOf(store, ref.xid);
  const unlinked = branches.find((b) => b.branchId === ref.branchId);
  if (unlinked) return unlinked.owner;
  if (await store.globals.get(ref.xid).catch(() => true)) throw new BranchNotFound(ref.xid, ref.branchId);
  throw await missingTransaction(store, ref.xid);
}

/**
 * Branch records and member records of `xid`, wherever their owners keep them. Branches live under each
 * owner's prefix, so this scans the namespace's keys (keys only); it runs only when a lookup failed.
 */
async function remainsOf(store: Store, xid: string): Promise<{ branches: { owner: string; branchId: string }[]; members: number }> {
  const branches: { owner: string; branchId: string }[] = [];
  let members = 0;
  // Keys only, a page at a time: a namespace of 100k records is never held.
  for await (const batch of new Snapshot(store.client).scan(prefixSpan(store.keys.ns), { keysOnly: true })) {
    for (const kv of batch) {
      const p = store.keys.parse(kv.key.toString());
      if (p?.kind === 'branch' && p.xid === xid) branches.push({ owner: p.owner, branchId: p.branchId });
      if (p?.kind === 'member' && p.xid === xid) members++;
    }
  }
  return { branches, members };
}

/** The error for an xid without a global record: TransactionNotFound if nothing of it is left, else what is. */
export async function missingTransaction(store: Store, xid: string): Promise<Error> {
  const { branches, members } = await remainsOf(store, xid);
  if (branches.length === 0 && members === 0) return new TransactionNotFound(xid);
  const left = [...(branches.length > 0 ? [count(branches.length, 'branch record')] : []), ...(members > 0 ? [count(members, 'member record')] : [])].join(' and ');
  const hint = branches.length > 0 ? ` (get branches ${xid} lists ${branches.length === 1 ? 'it' : 'them'})` : '';
  return new CliError(`transaction ${xid} has no global record, yet ${left} of it ${branches.length + members === 1 ? 'remains' : 'remain'}${hint}`);
}

/** `err`, or for a TransactionNotFound, what is left of that transaction. */
export async function explainNotFound(store: Store, err: unknown): Promise<unknown> {
  return err instanceof TransactionNotFound ? missingTransaction(store, err.xid) : err;
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}
