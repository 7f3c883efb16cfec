/** `txloop get globals|branches|leaders [NAME…]`: tables, -o wide|json|yaml|name, --sort-by, -w. */
import { Command, Option } from 'commander';
import { Keys } from '../../store/index.js';
import { CliError } from '../errors.js';
import { OUTPUT_FORMATS } from '../format.js';
import { branchChunks, coverage, discoverApps, globalChunks, hasKeys, namedBranches, namedGlobals, readGaps, readServices } from '../listing.js';
import { Model, type ServiceItem } from '../model.js';
import { ListPrinter } from '../printer.js';
import { loadModel } from '../read.js';
import { action, type Io } from '../runtime.js';
import { Snapshot } from '../scan.js';
import { sortKeyOf, sorter } from '../views.js';
import { RESOURCE_HELP, filterOf, globalsKind, kindOf, leadersKind, typedArgs, type Filter, type FilterFlags, type Kind } from './kinds.js';
import { watch } from './watch.js';

export interface GetFlags extends FilterFlags {
  output?: 'wide' | 'json' | 'yaml' | 'name';
  watch?: boolean;
  sortBy?: string;
  headers?: boolean;
}

export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS);
}

export function getCommand(name: string): Command {
  return new Command('get')
    .description('List transactions, branches or service leaders in a table')
    .argument('<resource>', `what to list: ${RESOURCE_HELP}; or TYPE/NAME as -o name prints it (gtx/XID, branch/XID/BRANCHID, leader/APP)`)
    .argument('[names...]', 'only these: XIDs for globals, XID or XID/BRANCHID for branches, app names for leaders')
    .option('--app <app>', 'only this service: the initiator for globals, the owner for branches')
    .option('-A, --all-apps', 'every service in the namespace (the default)')
    .option('--status <status>', 'only these statuses, comma-separated (see below)')
    .addOption(outputOption())
    .option('-w, --watch', 'after listing, print a row whenever one changes (until Ctrl-C)')
    .option('--sort-by <column>', 'sort by a column (age, status, attempts, next-retry, ...) or a JSON path like .createdAt; holds every row until all are read (see below)')
    .option('--no-headers', 'omit the header row')
    .addHelpText(
      'after',
      `
Statuses:
  globals:  trying, committing, rolling_back, committed, rolled_back, malformed,
            sagas: running, compensating, succeeded, compensated,
            2-phase messages: prepared, submitted, delivered, discarded,
            active (not finished), done (finished), parked (has a parked branch)
  branches: trying, prepared, try_failed, confirming, cancelling, confirmed, cancelled,
            resolved_confirmed, resolved_cancelled, parked, malformed,
            saga steps: running, succeeded, action_failed, compensating, compensated,
            resolved_compensated,
            message consumers: delivering, delivered, resolved_delivered,
            pending (still in progress), done, resolved

Reading: only the prefixes of the services listed (with --app or a transaction's XID, that
service's), and only the record types shown. Rows are printed as they are read, 500 at a time,
oldest first within each 500 (a listing of up to 500 rows is sorted whole); a table's columns are
sized from the first 500 and widen if a later row needs it. --sort-by needs every row first: it
holds what it prints (cells, names, or JSON/YAML text), not the records. -w holds what it lists.

Examples:
  ${name} get gtx                              # every transaction in every service
  ${name} get gtx --status active -o wide      # unfinished ones, with deadline and decision
  ${name} get branches --status parked         # parked branches waiting for a human
  ${name} get gtx orders.m3x9k2a7f1c0q8wz -o yaml
  ${name} get gtx/orders.m3x9k2a7f1c0q8wz          # the same, as -o name prints it
  ${name} get gtx -w                           # stream changes
  ${name} get leaders`,
    )
    .action(
      action<GetFlags>(async (io, args, flags) => {
        const first = args[0] as string;
        const rest = (args[1] as string[] | undefined) ?? [];
        const typed = typedArgs(first, rest);
        return get(io, typed?.resource ?? first, typed?.names ?? rest, flags);
      }),
    );
}

async function get(io: Io, resource: string, names: string[], flags: GetFlags): Promise<void> {
  const kind = kindOf(resource);
  const filter = filterOf(kind, flags, names);
  const { client } = await io.connect();
  const notFound = (missing: string[]): CliError => new CliError(`${kind.name} ${missing.join(', ')} not found in namespace ${io.config.namespace}`);
  if (flags.watch) {
    const sort = sorter(flags.sortBy, kind.columns, kind.json);
    const prefix = watchPrefix(io.config.namespace, kind, filter, flags);
    const listed = await loadModel(client, io.config.namespace, prefix);
    io.malformed(listed.model.problems());
    const missing = kind.missing(listed.model, filter);
    // kubectl too: a name that does not exist is an error, not something to wait for.
    if (missing.length > 0) throw notFound(missing);
    return watch(io, { ...listed, prefix }, kind, filter, flags, sort);
  }
  const printer = new ListPrinter(io, kind, flags, names.length > 0, sortKeyOf(flags.sortBy, kind.columns, kind.json));
  const snap = new Snapshot(client);
  const keys = new Keys(io.config.namespace);
  if (kind === (leadersKind as Kind<unknown>)) {
    const { items, missing } = await listServices(snap, keys, filter, io);
    await printer.add(items);
    await printer.end();
    if (missing.length > 0) throw notFound(missing);
    return;
  }
  const present = new Set<string>();
  for await (const model of chunksOf(kind, snap, keys, filter, flags)) {
    // Every record read that cannot be used, not only those behind the rows asked for.
    io.malformed(model.problems());
    if (filter.names.length > 0) {
      const absent = new Set(kind.missing(model, filter));
      for (const n of filter.names) if (!absent.has(n)) present.add(n);
    }
    await printer.add(kind.list(model, filter));
  }
  await printer.end();
  const missing = filter.names.filter((n) => !present.has(n));
  if (missing.length > 0) throw notFound(missing);
}

/** The models a listing is read into, chunk by chunk: only the prefixes of the services it covers, and of the record types it shows. */
async function* chunksOf(kind: Kind<unknown>, snap: Snapshot, keys: Keys, filter: Filter, flags: GetFlags): AsyncGenerator<Model> {
  const detail = flags.output === 'json' || flags.output === 'yaml';
  if (kind === (globalsKind as Kind<unknown>)) {
    // A transaction's name says its service: only its records are read.
    if (filter.names.length > 0) yield await namedGlobals(snap, keys, filter.names, detail);
    else yield* globalChunks(snap, keys, await coverage(snap, keys, filter.app), detail);
    return;
  }
  if (filter.names.length > 0) {
    // A branch's name does not say its owner: each service's prefix of that transaction is read.
    await snap.pin(keys.ns);
    const apps = filter.app !== undefined ? [filter.app] : await discoverApps(snap, keys, new Model(keys.ns));
    yield await namedBranches(snap, keys, apps, filter.names);
  } else yield* branchChunks(snap, keys, await coverage(snap, keys, filter.app));
}

/**
 * `get leaders` and `top`: the services asked for (`--app`, names; each only if it has a key) or
 * every service of the namespace, with their leader and stats records.
 */
export async function listServices(snap: Snapshot, keys: Keys, filter: Filter, io: Io): Promise<{ items: ServiceItem[]; missing: string[] }> {
  // Names and --app together: the names that exist are listed if they are --app's (matches() below).
  const asked = filter.names.length > 0 ? [...new Set(filter.names)] : filter.app !== undefined ? [filter.app] : undefined;
  let model: Model;
  let apps: string[];
  if (asked === undefined) {
    const cover = await coverage(snap, keys, undefined);
    ({ apps, strays: model } = cover);
  } else {
    await snap.pin(keys.ns);
    const found = await Promise.all(asked.map((a) => hasKeys(snap, keys, a)));
    apps = asked.filter((_, i) => found[i]).sort();
    model = new Model(keys.ns);
    // One service whole (`--app`): the keys of no record type under its prefix are named too.
    if (filter.app !== undefined && filter.names.length === 0) for (const a of apps) await readGaps(snap, keys, a, model);
  }
  await readServices(snap, keys, apps, model);
  io.malformed(model.problems());
  const items = apps.map((a) => model.service(a)).filter((s) => leadersKind.matches(s, filter));
  return { items, missing: filter.names.filter((n) => !apps.includes(n)) };
}

/**
 * What `-w` lists and watches: one service's prefix with `--app` (its transactions and members, or
 * the branches it owns with their orders, or its leader), else the namespace; also the namespace for
 * transactions as JSON/YAML, which hold their branch records, kept under each owner's prefix.
 */
function watchPrefix(namespace: string, kind: Kind<unknown>, filter: Filter, flags: GetFlags): string {
  if (filter.app === undefined) return namespace;
  if (kind === (globalsKind as Kind<unknown>) && (flags.output === 'json' || flags.output === 'yaml')) return namespace;
  return new Keys(namespace).app(filter.app);
}
