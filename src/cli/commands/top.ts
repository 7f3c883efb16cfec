/** `txloop top`: per service, its leader and the workqueue figures the leader publishes every few seconds. */
import { Command, Option } from 'commander';
import { renderRows } from '../../table.js';
import { document, serialize, tableCells } from '../format.js';
import { Keys } from '../../store/index.js';
import { action } from '../runtime.js';
import { Snapshot } from '../scan.js';
import { serviceJson, sorter, topColumns } from '../views.js';
import { listServices } from './get.js';
import { filterOf, leadersKind } from './kinds.js';

interface TopFlags {
  app?: string;
  output?: 'json' | 'yaml';
  sortBy?: string;
  headers?: boolean;
}

export function topCommand(name: string): Command {
  return new Command('top')
    .description("Each service's leader, queue depth, requeues, phase-2 failures and unusable records")
    .option('--app <app>', 'only this service')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json', 'yaml']))
    .option('--sort-by <column>', 'sort by a column (queue, requeues, failed, parked, malformed, ...)')
    .option('--no-headers', 'omit the header row')
    .addHelpText(
      'after',
      `
Columns: QUEUE, PROCESSING and WAITING are the leader's workqueues now (globals + branches);
REQUEUES is delayed re-adds to them since the leader started (a backoff after a failed attempt
or reconcile, or a scheduled recheck such as a deadline); SUCCEEDED / FAILED count phase-2
attempts; PARKED is branches parked for a human; MALFORMED is records the service could not use
(each is also named on stderr); UPDATED is how old the figures are (published every few seconds
by the leader, gone with its lease).

Example:
  ${name} top --sort-by queue`,
    )
    .action(
      action<TopFlags>(async (io, _args, flags) => {
        const filter = filterOf(leadersKind, { ...(flags.app !== undefined ? { app: flags.app } : {}) }, []);
        const sort = sorter(flags.sortBy, topColumns, serviceJson);
        // With --app, that service's prefix only (its leader and stats records); else every service's.
        const { client } = await io.connect();
        const { items } = await listServices(new Snapshot(client), new Keys(io.config.namespace), filter, io);
        if (sort) items.sort(sort);
        if (flags.output) return io.out(serialize(document(items.map(serviceJson), false), flags.output));
        if (items.length === 0) return io.warn(`No services found in namespace ${io.config.namespace}.`);
        for (const line of renderRows(tableCells(topColumns, items, true, flags.headers !== false))) io.out(line);
      }),
    );
}
