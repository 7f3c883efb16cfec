/**
 * What every command action gets: resolved connection settings, a lazy etcd connection, and output.
 * Each etcd request of the connection is bounded by --command-timeout (connection.ts), however many
 * requests a command makes and however long it takes to print them.
 */
import type { Command } from 'commander';
import { TxloopError } from '../errors.js';
import { MalformedRecord } from '../errors.js';
import { CliError, ReportedError, UnreachableError, UsageError, messageOf } from './errors.js';
import { connect, resolveConnection, withDeadline, type Connection, type ConnectionConfig, type GlobalOptions } from './connection.js';

export interface Io {
  readonly config: ConnectionConfig;
  /** Opens the etcd connection on first use, checking that etcd answers within --dial-timeout. */
  connect(): Promise<Connection>;
  /** `text` and a newline on stdout. */
  out(text: string): void;
  /**
   * `text` as it is on stdout; resolves once stdout takes more, so a listing printed as it is read
   * waits for a slow reader (`| less`) instead of piling the output up in memory.
   */
  write(text: string): Promise<void>;
  warn(text: string): void;
  /** `warning: malformed record at <key>: <problem>` on stderr, once per record and problem. */
  malformed(problems: string[]): void;
  close(): void;
}

export function createIo(opts: GlobalOptions): Io {
  const config = resolveConnection(opts);
  let conn: Connection | undefined;
  let ready: Promise<Connection> | undefined;
  const warned = new Set<string>();
  return {
    config,
    connect: () =>
      (ready ??= (async () => {
        conn = connect(config);
        // A tiny request first: an etcd that does not answer it within the dial timeout is unreachable.
        await withDeadline(conn.client.maintenance.status(), config.dialTimeoutMs, config.endpoints);
        return conn;
      })()),
    out: (text) => void process.stdout.write(`${text}\n`),
    write: (text) => (process.stdout.write(text) ? Promise.resolve() : new Promise<void>((resolve) => process.stdout.once('drain', resolve))),
    warn: (text) => void process.stderr.write(`${text}\n`),
    malformed: (problems) => {
      for (const p of problems) {
        if (warned.has(p)) continue;
        warned.add(p);
        process.stderr.write(`warning: malformed record at ${p}\n`);
      }
    },
    close: () => {
      conn?.close();
      conn = undefined;
      ready = undefined;
    },
  };
}

/**
 * Adapts `fn` to a commander action: `args` are the command's positional arguments, `opts` its own
 * options; connection flags are read from the program with optsWithGlobals().
 */
export function action<O>(fn: (io: Io, args: unknown[], opts: O, cmd: Command) => Promise<void>): (...params: unknown[]) => Promise<void> {
  return async (...params: unknown[]) => {
    const cmd = params[params.length - 1] as Command;
    const io = createIo(cmd.optsWithGlobals<GlobalOptions>());
    try {
      await fn(io, cmd.processedArgs as unknown[], cmd.opts() as O, cmd);
    } catch (err) {
      if (err instanceof UsageError || err instanceof CliError || err instanceof TxloopError || err instanceof MalformedRecord) throw err;
      // etcd/gRPC errors: one line naming the endpoints.
      throw new CliError(messageOf(err, io.config.endpoints));
    } finally {
      io.close();
    }
  };
}

/**
 * Runs `fn` for every target, in order: a failure of one (not found, refused, malformed) is printed
 * as `error: …` and the others still run; exit 1 at the end if any failed. A single target, or etcd
 * failing, fails as any command does.
 */
export async function eachTarget<T>(io: Io, targets: T[], fn: (t: T) => Promise<void>): Promise<void> {
  if (targets.length === 1) return fn(targets[0]!);
  let failed = 0;
  for (const t of targets) {
    try {
      await fn(t);
    } catch (err) {
      // etcd itself failing (unreachable, credentials, ...) would fail every target alike: say it once.
      if (err instanceof UnreachableError || !(err instanceof CliError || err instanceof TxloopError || err instanceof MalformedRecord)) throw err;
      failed++;
      io.warn(`error: ${messageOf(err, io.config.endpoints)}`);
    }
  }
  if (failed > 0) throw new ReportedError();
}
