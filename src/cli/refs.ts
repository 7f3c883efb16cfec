/**
 * Names on the command line: a transaction is `XID` (or `gtx/XID`), a branch is `XID/BRANCHID` (or
 * `branch/XID/BRANCHID`), a service leader is `APP` (or `leader/APP`): the `TYPE/` forms are what
 * `-o name` prints. The branch's owner is looked up by lookup.ts.
 */
import { BRANCH_ID_RULE, validateBranchId, validateXid } from '../store/index.js';
import { UsageError } from './errors.js';

export interface BranchRef {
  xid: string;
  branchId: string;
}

export type Ref = { kind: 'gtx'; xid: string } | ({ kind: 'branch' } & BranchRef);

export type RefType = 'gtx' | 'branch' | 'leader';

/** The `TYPE/` a name may start with: what `-o name` prints (gtx/, branch/, leader/) and their aliases. */
const TYPES: Record<string, RefType> = {};
for (const t of ['gtx', 'gtxs', 'global', 'globals', 'transaction', 'transactions', 'tx']) TYPES[t] = 'gtx';
for (const t of ['branch', 'branches', 'br']) TYPES[t] = 'branch';
for (const t of ['leader', 'leaders', 'service', 'services', 'svc']) TYPES[t] = 'leader';

/**
 * `gtx/XID` → { type: 'gtx', name: 'XID' }; undefined when the name has no type prefix (an XID always
 * holds a `.`, so `orders.m3x9…/k3j4…` is a branch, not a type).
 */
export function typedName(arg: string): { type: RefType; name: string } | undefined {
  const s = arg.trim();
  const slash = s.indexOf('/');
  const type = slash > 0 ? TYPES[s.slice(0, slash).toLowerCase()] : undefined;
  return type ? { type, name: s.slice(slash + 1) } : undefined;
}

export function parseRef(arg: string): Ref {
  const typed = typedName(arg);
  if (typed?.type === 'leader') throw new UsageError(`${JSON.stringify(arg)} names a service leader, not a transaction or branch`);
  const want = typed?.type;
  const parts = (typed ? typed.name : arg.trim()).split('/');
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
  if (r.kind !== 'branch') throw new UsageError(`invalid branch ${JSON.stringify(arg)}: expected XID/BRANCHID, as get branches lists them`);
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
    throw new UsageError(`invalid branch id in ${JSON.stringify(arg)}: expected XID/BRANCHID with a BRANCHID of ${BRANCH_ID_RULE}`);
  }
}
