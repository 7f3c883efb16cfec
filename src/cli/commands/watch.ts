/**
 * `get -w`: prints the current list, then one row per change, kubectl style, until SIGINT/SIGTERM.
 * Changes come from the same list+watch informer the services use (relists on compaction and on
 * reconnect), so no change is missed; a row is printed only when what it shows changed.
 */
import { pino } from 'pino';
import { Informer } from '../../internal/informer.js';
import { StreamingTable, serialize } from '../format.js';
import { loadModel } from '../read.js';
import type { Io } from '../runtime.js';
import type { GetFlags } from './get.js';
import type { Filter, Kind } from './kinds.js';

/** Columns whose text changes with the clock alone; a row is not reprinted for them. */
const LIVE = new Set(['AGE', 'DEADLINE', 'NEXT RETRY', 'UPDATED']);

export async function watch<R>(io: Io, kind: Kind<R>, filter: Filter, flags: GetFlags, sort: ((a: R, b: R) => number) | undefined): Promise<void> {
  const { client, store } = await io.connect();
  const { model } = await io.etcd(loadModel(client, io.config.namespace));
  const format = flags.output;
  const table = new StreamingTable(kind.columns, format === 'wide');
  const stableCols = kind.columns.filter((c) => !LIVE.has(c.header) && (format === 'wide' || !c.wide));
  const signature = (item: R): string => (format === 'json' || format === 'yaml' ? JSON.stringify(kind.json(item)) : stableCols.map((c) => c.value(item)).join('\u0000'));

  const printed = new Map<string, { item: R; sig: string }>();
  const emit = (id: string, item: R): void => {
    const sig = signature(item);
    if (printed.get(id)?.sig === sig) return;
    printed.set(id, { item, sig });
    io.malformed(kind.problems(item));
    if (format === 'json') io.out(serialize(kind.json(item), 'json'));
    else if (format === 'yaml') io.out(`---\n${serialize(kind.json(item), 'yaml')}`);
    else if (format === 'name') io.out(`${kind.name}/${kind.id(item)}`);
    else io.out(table.row(item));
  };

  const initial = kind.list(model, filter);
  if (sort) initial.sort(sort);
  table.fit(initial);
  if ((format === undefined || format === 'wide') && flags.headers !== false) io.out(table.header());
  for (const item of initial) emit(kind.rowId(item), item);

  const informer = new Informer({
    client,
    store,
    prefix: io.config.namespace,
    logger: pino({ level: 'silent' }),
    resyncMs: 60_000,
    onChange: (key, kv) => {
      const change = model.set(key, kv?.value);
      const hit = change && kind.affected(model, change);
      if (!hit) return;
      if (hit.item) {
        if (kind.matches(hit.item, filter)) emit(hit.id, hit.item);
        else if (printed.has(hit.id)) {
          // It left the selection (e.g. no longer FAILED): show where it went, once.
          emit(hit.id, hit.item);
          printed.delete(hit.id);
        }
        return;
      }
      const last = printed.get(hit.id);
      if (last) emit(hit.id, kind.gone(last.item));
    },
  });

  await new Promise<void>((resolve, reject) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      informer.stop().then(resolve, resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    informer.start().catch(reject);
  });
}
