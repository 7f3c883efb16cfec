/**
 * Names on the command line: a transaction is `XID` (or `gtx/XID`), a branch is `XID/BRANCHID` (or
 * `branch/XID/BRANCHID`, as `-o name` prints it). The branch's owner is looked up in the link index.
 */
import { BranchNotFound, TransactionNotFound } from '../errors.js';
import { validateBranchId, validateXid } from '../internal/keys.js';
import type { Store } from '../internal/store.js';
import { UsageError } from './errors.js';

export interface BranchRef {
  xid: string;
  branchId: string;
}

export type Ref = { kind: 'gtx'; xid: string } | ({ kind: 'branch' } & BranchRef);

const GTX_PREFIXES = ['gtx/', 'global/', 'globals/'];
const BRANCH_PREFIXES = ['branch/', 'branches/', 'br/'];

export function parseRef(arg: string): Ref {
  let s = arg.trim();
  let want: 'gtx' | 'branch' | undefined;
  for (const p of GTX_PREFIXES) if (s.startsWith(p)) ((s = s.slice(p.length)), (want = 'gtx'));
  for (const p of BRANCH_PREFIXES) if (s.startsWith(p)) ((s = s.slice(p.length)), (want = 'branch'));
  const parts = s.split('/');
  if (parts.length === 1 && want !== 'branch') return { kind: 'gtx', xid: xidArg(parts[0]!, arg) };
  if (parts.length === 2 && want !== 'gtx') return { kind: 'branch', xid: xidArg(parts[0]!, arg), branchId: branchArg(parts[1]!, arg) };
  throw new UsageError(`invalid name ${JSON.stringify(arg)}: expected a transaction XID or a branch XID/BRANCHID`);
}

export function parseXidArg(arg: string): string {
  const r = parseRef(arg);
  if (r.kind !== 'gtx') throw new UsageError(`invalid transaction ${JSON.stringify(arg)}: expected an XID like orders.m3x9k2a7f1c0q8wz, not a branch`);
  return r.xid;
}

export function parseBranchArg(arg: string): BranchRef {
  const r = parseRef(arg);
  if (r.kind !== 'branch') throw new UsageError(`invalid branch ${JSON.stringify(arg)}: expected XID/BRANCHID (see 'txloop get branches')`);
  return r;
}

function xidArg(s: string, arg: string): string {
  try {
    return validateXid(s);
  } catch {
    throw new UsageError(`invalid transaction id ${JSON.stringify(arg)}: expected "<app>.<id>", e.g. orders.m3x9k2a7f1c0q8wz`);
  }
}

function branchArg(s: string, arg: string): string {
  try {
    return validateBranchId(s);
  } catch {
    throw new UsageError(`invalid branch id in ${JSON.stringify(arg)}: expected XID/BRANCHID with a BRANCHID of 4-40 lowercase letters and digits`);
  }
}

/** The service that owns a branch, from the initiator's link index (keys only, values not parsed). */
export async function ownerOf(store: Store, ref: BranchRef): Promise<string> {
  const { kvs } = await store.range(store.keys.links(ref.xid));
  for (const kv of kvs) {
    const p = store.keys.parse(kv.key.toString());
    if (p?.kind === 'link' && p.branchId === ref.branchId) return p.owner;
  }
  if (!(await store.getRaw(store.keys.global(ref.xid)))) throw new TransactionNotFound(ref.xid);
  throw new BranchNotFound(ref.xid, ref.branchId);
}
