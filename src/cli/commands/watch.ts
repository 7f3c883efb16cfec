/**
 * `get -w`: prints the current list, then one row per change, kubectl style, until SIGINT/SIGTERM.
 * Changes come from the same list+watch informer the services use (relists on compaction and on
 * reconnect), so no change is missed; a row is printed only when what it shows changed.
 *
 * The informer retries quietly for as long as etcd is away, so a health check (a tiny request every
 * --dial-timeout, at least every second) ends the watch with exit 1 once etcd has not answered
 * HEALTH_FAILURES checks in a row: about 3 × --dial-timeout. A shorter outage is ridden out.
 */
import type { IKeyValue } from 'etcd3';
import { pino } from 'pino';
import { Informer } from '../../cache/index.js';
import { probe, type Probe } from '../connection.js';
import { CliError, UnreachableError, shortReason } from '../errors.js';
import { StreamingTable, serialize } from '../format.js';
import type { Model } from '../model.js';
import type { Io } from '../runtime.js';
import type { GetFlags } from './get.js';
import type { Filter, Kind } from './kinds.js';

/** Columns whose text changes with the clock alone; a row is not reprinted for them. */
const LIVE = new Set(['AGE', 'DEADLINE', 'NEXT RETRY', 'UPDATED']);

/** Consecutive failed health checks after which the watch gives up. */
export const HEALTH_FAILURES = 3;

/** Prints the list just read (`listed`, all of `listed.prefix`), then watches that prefix from its revision. */
export async function watch<R>(
  io: Io,
  listed: { model: Model; kvs: IKeyValue[]; revision: string; prefix: string },
  kind: Kind<R>,
  filter: Filter,
  flags: GetFlags,
  sort: ((a: R, b: R) => number) | undefined,
): Promise<void> {
  const { model } = listed;
  // A Ctrl-C as soon as the first rows show must end the watch, not kill the process by signal.
  const interrupted = new AbortController();
  const interrupt = (): void => interrupted.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    await watchListed(io, listed, model, kind, filter, flags, sort, interrupted.signal);
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}

async function watchListed<R>(
  io: Io,
  listed: { kvs: IKeyValue[]; revision: string; prefix: string },
  model: Model,
  kind: Kind<R>,
  filter: Filter,
  flags: GetFlags,
  sort: ((a: R, b: R) => number) | undefined,
  interrupted: AbortSignal,
): Promise<void> {
  const { client } = await io.connect();
  const format = flags.output;
  const table = new StreamingTable(kind.columns, format === 'wide');
  const stableCols = kind.columns.filter((c) => !LIVE.has(c.header) && (format === 'wide' || !c.wide));
  const signature = (item: R): string => (format === 'json' || format === 'yaml' ? JSON.stringify(kind.json(item)) : stableCols.map((c) => c.value(item)).join('\u0000'));

  const printed = new Map<string, { item: R; sig: string }>();
  const emit = (id: string, item: R): void => {
    const sig = signature(item);
    if (printed.get(id)?.sig === sig) return;
    printed.set(id, { item, sig });
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
    prefix: listed.prefix,
    logger: pino({ level: 'silent' }),
    resyncMs: 60_000,
    seed: { kvs: listed.kvs, revision: listed.revision },
    onChange: (key, kv) => {
      const change = model.set(key, kv?.value);
      io.malformed(model.problemAt(key));
      const hit = change && kind.affected(model, change);
      if (!hit) return;
      if (hit.item) {
        if (kind.matches(hit.item, filter)) emit(hit.id, hit.item);
        else if (printed.has(hit.id)) {
          // It left the selection (e.g. no longer PARKED): show where it went, once.
          emit(hit.id, hit.item);
          printed.delete(hit.id);
        }
        return;
      }
      const last = printed.get(hit.id);
      if (last) emit(hit.id, kind.gone(last.item));
    },
  });

  const health = probe(io.config);
  try {
    await untilStopped(informer, health, io.config.endpoints, io.config.dialTimeoutMs, interrupted);
  } finally {
    health.close();
  }
}

/**
 * Runs the informer until `interrupted` (SIGINT/SIGTERM; resolves) or until etcd has not answered HEALTH_FAILURES
 * health checks in a row (rejects with one line naming the endpoints).
 */
function untilStopped(informer: Informer, health: Probe, endpoints: string[], dialTimeoutMs: number, interrupted: AbortSignal): Promise<void> {
  const interval = Math.max(1000, dialTimeoutMs);
  return new Promise<void>((resolve, reject) => {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      interrupted.removeEventListener('abort', stop);
      const stopped = informer.stop().catch(() => undefined);
      if (err !== undefined) return reject(err);
      // Ctrl-C while etcd is away: don't wait for the informer's calls to time out.
      const bound = setTimeout(resolve, 2000);
      void stopped.then(() => {
        clearTimeout(bound);
        resolve();
      });
    };
    const stop = (): void => finish();
    if (interrupted.aborted) return finish();
    interrupted.addEventListener('abort', stop, { once: true });

    // This timer is what keeps the process alive while etcd is away (the informer's retry timers are
    // unref'd and it logs nothing), so it stays referenced.
    let failures = 0;
    let firstFailure = 0;
    const check = async (): Promise<void> => {
      const started = Date.now();
      try {
        await health.check();
        failures = 0;
      } catch (err) {
        if (failures++ === 0) firstFailure = started;
        if (failures >= HEALTH_FAILURES) {
          const why = err instanceof UnreachableError ? `no answer within ${dialTimeoutMs / 1000}s` : shortReason(err);
          const secs = Math.max(1, Math.round((Date.now() - firstFailure) / 1000));
          return finish(new CliError(`lost connection to etcd at ${endpoints.join(',')}: ${failures} health checks failed over ${secs}s (last error: ${why})`));
        }
      }
      if (!done) timer = setTimeout(() => void check(), Math.max(0, started + interval - Date.now()));
    };
    timer = setTimeout(() => void check(), interval);
    informer.start().catch(finish);
  });
}
