/** `txloop get globals|branches|leaders [NAME…]`: tables, -o wide|json|yaml|name, --sort-by, -w. */
import { Command, Option } from 'commander';
import { CliError } from '../errors.js';
import { renderRows } from '../../table.js';
import { OUTPUT_FORMATS, document, serialize, tableCells } from '../format.js';
import { loadModel } from '../read.js';
import { action, type Io } from '../runtime.js';
import { sorter } from '../views.js';
import { RESOURCE_HELP, filterOf, kindOf, typedArgs, type FilterFlags, type Kind } from './kinds.js';
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
    .option('--sort-by <column>', 'sort by a column (age, status, attempts, next-retry, ...) or a JSON path like .createdAt')
    .option('--no-headers', 'omit the header row')
    .addHelpText(
      'after',
      `
Statuses:
  globals:  trying, committing, rolling_back, committed, rolled_back, malformed,
            active (not finished), done (finished), parked (has a parked branch)
  branches: trying, prepared, try_failed, confirming, cancelling, confirmed, cancelled,
            resolved_confirmed, resolved_cancelled, parked, malformed,
            pending (still in progress), done, resolved

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
  const sort = sorter(flags.sortBy, kind.columns, kind.json);
  const { client } = await io.connect();
  const { model, kvs, revision } = await loadModel(client, io.config.namespace);
  // Every record in the namespace that cannot be used, not only those behind the rows asked for:
  // nothing in etcd is silently ignored.
  io.malformed(model.problems());
  const missing = kind.missing(model, filter);
  const notFound = (): CliError => new CliError(`${kind.name} ${missing.join(', ')} not found in namespace ${io.config.namespace}`);
  if (flags.watch) {
    // kubectl too: a name that does not exist is an error, not something to wait for.
    if (missing.length > 0) throw notFound();
    return watch(io, { model, kvs, revision }, kind, filter, flags, sort);
  }
  const items = kind.list(model, filter);
  if (sort) items.sort(sort);
  print(io, kind, items, flags, names.length > 0);
  if (missing.length > 0) throw notFound();
}

export function print<R>(io: Io, kind: Kind<R>, items: R[], flags: GetFlags, named: boolean): void {
  const format = flags.output;
  if (format === 'json' || format === 'yaml') {
    io.out(serialize(document(items.map(kind.json), named), format));
    return;
  }
  if (format === 'name') {
    for (const item of items) io.out(`${kind.name}/${kind.id(item)}`);
    return;
  }
  if (items.length === 0) {
    if (!named) io.warn(`No ${kind.plural} found in namespace ${io.config.namespace}.`);
    return;
  }
  for (const line of renderRows(tableCells(kind.columns, items, format === 'wide', flags.headers !== false))) io.out(line);
}
