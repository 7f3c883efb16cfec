/** The resource types `get` knows, each with its columns, filters, names and JSON shape. */
import { validateApp } from '../../store/index.js';
import { UsageError } from '../errors.js';
import { type BranchItem, type Change, type GlobalItem, type Model, type ServiceItem } from '../model.js';
import { parseRef, typedName } from '../refs.js';
import {
  BRANCH_STATUS_WORDS,
  GLOBAL_STATUS_WORDS,
  branchColumns,
  branchJson,
  byCreation,
  globalColumns,
  globalJson,
  leaderColumns,
  matchBranch,
  matchGlobal,
  parseStatuses,
  serviceJson,
  type Sortable,
} from '../views.js';

export interface Filter {
  app?: string;
  statuses: string[];
  /** Names given on the command line (xids, or xid/branch for branches). */
  names: string[];
}

export interface Kind<R> {
  /** Singular name used by `-o name` and messages. */
  name: string;
  plural: string;
  columns: Sortable<R>[];
  /** Every item of this kind in the model that passes the filter, in default order. */
  list(model: Model, filter: Filter): R[];
  /** The row a changed key affects: its id and current item (undefined when it was deleted). */
  affected(model: Model, change: Change): { id: string; item: R | undefined } | undefined;
  matches(item: R, filter: Filter): boolean;
  json(item: R): unknown;
  /** The name `-o name` prints after `<kind>/`. */
  id(item: R): string;
  /** The row's identity in `-w`, equal to the id `affected` returns. */
  rowId(item: R): string;
  /** A copy of the last item seen, shown as deleted. */
  gone(item: R): R;
  /** Names given on the command line that match nothing. */
  missing(model: Model, filter: Filter): string[];
}

export const globalsKind: Kind<GlobalItem> = {
  name: 'gtx',
  plural: 'transactions',
  columns: globalColumns,
  list: (model, f) =>
    model
      .globalXids()
      .map((x) => model.global(x)!)
      .filter((g) => globalsKind.matches(g, f))
      .sort(byCreation),
  affected: (model, c) => (c.kind === 'global' ? { id: c.xid, item: model.global(c.xid) } : undefined),
  matches: (g, f) => (!f.app || g.app === f.app) && matchGlobal(g, f.statuses) && (f.names.length === 0 || f.names.includes(g.xid)),
  json: globalJson,
  id: (g) => g.xid,
  rowId: (g) => g.xid,
  gone: (g) => ({ ...g, status: 'DELETED' }),
  missing: (model, f) => f.names.filter((n) => !model.global(n)),
};

export const branchesKind: Kind<BranchItem> = {
  name: 'branch',
  plural: 'branches',
  columns: branchColumns,
  list: (model, f) =>
    model
      .branchKeys()
      .map((k) => model.branch(k)!)
      .filter((b) => branchesKind.matches(b, f))
      .sort(byCreation),
  affected: (model, c) => (c.kind === 'branch' ? { id: c.key, item: model.branch(c.key) } : undefined),
  matches: (b, f) => (!f.app || b.owner === f.app) && matchBranch(b, f.statuses) && (f.names.length === 0 || f.names.includes(b.xid) || f.names.includes(`${b.xid}/${b.branchId}`)),
  json: branchJson,
  id: (b) => `${b.xid}/${b.branchId}`,
  rowId: (b) => b.key,
  gone: (b) => ({ ...b, status: 'DELETED' }),
  missing: (model, f) => f.names.filter((n) => !model.branchKeys().some((k) => branchesKind.matches(model.branch(k)!, { statuses: [], names: [n] }))),
};

export const leadersKind: Kind<ServiceItem> = {
  name: 'leader',
  plural: 'services',
  columns: leaderColumns,
  list: (model, f) =>
    model
      .apps()
      .filter((a) => (!f.app || a === f.app) && (f.names.length === 0 || f.names.includes(a)))
      .map((a) => model.service(a)),
  affected: (model, c) => (c.kind === 'service' ? { id: c.app, item: model.service(c.app) } : undefined),
  matches: (s, f) => (!f.app || s.app === f.app) && (f.names.length === 0 || f.names.includes(s.app)),
  json: serviceJson,
  id: (s) => s.app,
  rowId: (s) => s.app,
  gone: (s) => s,
  missing: (model, f) => f.names.filter((n) => !model.apps().includes(n)),
};

const ALIASES: Record<string, Kind<never>> = {};
for (const a of ['globals', 'global', 'gtx', 'gtxs', 'transactions', 'transaction', 'tx']) ALIASES[a] = globalsKind as Kind<never>;
for (const a of ['branches', 'branch', 'br']) ALIASES[a] = branchesKind as Kind<never>;
for (const a of ['leaders', 'leader', 'services', 'service', 'svc']) ALIASES[a] = leadersKind as Kind<never>;

export const RESOURCE_HELP = 'globals (gtx), branches (br), leaders';

/**
 * kubectl's `get TYPE/NAME…` form (`get gtx/XID`, `get $(txloop get leaders -o name)`): the first
 * argument holds a `/`, so every argument is a name of one type. Returns the resource type and the
 * names, or undefined for the `get TYPE [NAME…]` form.
 */
export function typedArgs(first: string, rest: string[]): { resource: string; names: string[] } | undefined {
  if (!first.includes('/')) return undefined;
  const all = [first, ...rest];
  const typed = all.map((a) => {
    const t = typedName(a);
    if (!t) throw new UsageError(`${JSON.stringify(a)} has no resource type: give the type first (get gtx XID) or name every object as TYPE/NAME (gtx/XID, branch/XID/BRANCHID, leader/APP)`);
    return t;
  });
  const types = new Set(typed.map((t) => t.type));
  if (types.size > 1) throw new UsageError(`names of different types (${[...types].join(', ')}) in one get: list one type at a time`);
  return { resource: typed[0]!.type, names: all };
}

export function kindOf(resource: string): Kind<unknown> {
  const k = ALIASES[resource.toLowerCase()];
  if (!k) throw new UsageError(`unknown resource type ${JSON.stringify(resource)}: use one of ${RESOURCE_HELP}`);
  return k as Kind<unknown>;
}

export interface FilterFlags {
  app?: string;
  allApps?: boolean;
  status?: string;
}

export function filterOf(kind: Kind<unknown>, flags: FilterFlags, names: string[]): Filter {
  if (flags.app !== undefined && flags.allApps) throw new UsageError('--app and -A/--all-apps cannot be combined');
  if (flags.app !== undefined) {
    try {
      validateApp(flags.app);
    } catch {
      throw new UsageError(`invalid --app ${JSON.stringify(flags.app)}: a service name is 1-63 lowercase letters, digits and '-'`);
    }
  }
  let statuses: string[] = [];
  if (kind === (globalsKind as Kind<unknown>)) statuses = parseStatuses(flags.status, GLOBAL_STATUS_WORDS);
  else if (kind === (branchesKind as Kind<unknown>)) statuses = parseStatuses(flags.status, BRANCH_STATUS_WORDS);
  else if (flags.status !== undefined) throw new UsageError(`--status does not apply to ${kind.plural}`);
  const parsed = names.map((n) => {
    if (kind === (leadersKind as Kind<unknown>)) {
      // `leader/APP`, as `-o name` prints it, or APP.
      const typed = typedName(n);
      if (typed && typed.type !== 'leader') throw new UsageError(`invalid service name ${JSON.stringify(n)}: that names a ${typed.type === 'gtx' ? 'transaction' : 'branch'}`);
      try {
        return validateApp(typed ? typed.name : n.trim());
      } catch {
        throw new UsageError(`invalid service name ${JSON.stringify(n)}`);
      }
    }
    const r = parseRef(n);
    if (kind === (globalsKind as Kind<unknown>) && r.kind !== 'gtx') throw new UsageError(`invalid transaction ${JSON.stringify(n)}: expected an XID`);
    return r.kind === 'gtx' ? r.xid : `${r.xid}/${r.branchId}`;
  });
  return { ...(flags.app !== undefined ? { app: flags.app } : {}), statuses, names: parsed };
}
