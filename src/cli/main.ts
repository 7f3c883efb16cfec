#!/usr/bin/env node
/**
 * txloop: kubectl-style CLI for txloop transactions; reads and repairs etcd directly.
 * Also installed as `kubectl-txloop`, so `kubectl txloop get gtx` works with the binary on PATH.
 *
 * Exit codes: 0 ok, 1 error (not found, refused, etcd unreachable), 2 usage (bad flag or argument).
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Command, CommanderError } from 'commander';
import { ENV } from './connection.js';
import { EXIT_USAGE, ReportedError, exitCodeOf, messageOf } from './errors.js';
import { describeCommand } from './commands/describe.js';
import { getCommand } from './commands/get.js';
import { abortCommand, resolveCommand, retryCommand } from './commands/repair.js';
import { topCommand } from './commands/top.js';
import { mirrorCommand } from './commands/mirror.js';
import { sidecarCommand } from './commands/sidecar.js';

// gRPC sets the TLS server name to the endpoint's IP address, which Node flags as deprecated (DEP0123)
// on stderr; a CLI's output is no place for that.
process.noDeprecation = true;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function buildProgram(name: string): Command {
  const program = new Command(name)
    .description('See and fix txloop distributed transactions (reads etcd directly)')
    .version(version(), '--version', 'print the version')
    .option('--endpoints <urls>', `etcd client URLs, comma-separated (env ${ENV.endpoints}; default http://127.0.0.1:2379)`)
    .option('--namespace <prefix>', `txloop key prefix in etcd (env ${ENV.namespace}; default txloop/)`)
    .option('--cacert <file>', `verify etcd's TLS certificate with this CA bundle (env ${ENV.cacert})`)
    .option('--cert <file>', `TLS client certificate (env ${ENV.cert})`)
    .option('--key <file>', `TLS client key (env ${ENV.key})`)
    .option('--user <name:password>', `etcd user, or name only with --password (env ${ENV.user})`)
    .option('--password <password>', `password for --user (env ${ENV.password})`)
    .option('--dial-timeout <duration>', 'give up connecting after this long (500ms, 3s, 1m30s, ...; at most 1h)', '2s')
    .option('--command-timeout <duration>', 'give up on one etcd request after this long (same format)', '5s')
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      `
Every command reads etcd directly; no service needs to be running. A branch is named XID/BRANCHID.
Exit codes: 0 ok, 1 error (not found, refused, etcd unreachable), 2 usage error.

Examples:
  ${name} get gtx                                   # transactions of every service
  ${name} get branches --status parked              # parked branches waiting for a human
  ${name} describe gtx orders.m3x9k2a7f1c0q8wz      # one transaction, its branches and events
  ${name} retry orders.m3x9k2a7f1c0q8wz             # re-queue its parked branches now
  ${name} top                                       # leaders and their queues`,
    );
  for (const cmd of [getCommand(name), describeCommand(name), topCommand(name), retryCommand(name), abortCommand(name), resolveCommand(name), sidecarCommand(name), mirrorCommand(name)]) {
    program.addCommand(cmd);
  }
  // Every subcommand: throw instead of exiting, and leave error printing to main(); its help also
  // lists the connection flags, which go before or after the command.
  const configure = (c: Command): void => {
    c.exitOverride()
      .configureOutput({ outputError: () => undefined })
      .configureHelp({ showGlobalOptions: true });
    c.commands.forEach(configure);
  };
  configure(program);
  return program;
}

/** The command name as the user typed it: `kubectl txloop` when run as a kubectl plugin. */
function programName(argv1: string | undefined): string {
  const base = basename(argv1 ?? 'txloop').replace(/\.(c|m)?js$/, '');
  return base === 'kubectl-txloop' ? 'kubectl txloop' : 'txloop';
}

export async function main(argv: string[]): Promise<number> {
  const name = programName(argv[1]);
  const program = buildProgram(name);
  const sub = argv.slice(2).find((a) => program.commands.some((c) => c.name() === a));
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0;
      if (err.code === 'commander.help' || err.code === 'commander.helpDisplayed') return EXIT_USAGE;
      process.stderr.write(`${err.message.replace(/\s*\n\s*/g, ' ').trim()} (see '${name}${sub ? ` ${sub}` : ''} --help')\n`);
      return EXIT_USAGE;
    }
    if (err instanceof ReportedError) return 1;
    if (process.env.TXLOOP_DEBUG && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`);
    const code = exitCodeOf(err);
    const message = messageOf(err);
    // One pointer is enough: a message may already say where to look.
    const hint = code === EXIT_USAGE && !/\(see '/.test(message) ? ` (see '${name}${sub ? ` ${sub}` : ''} --help')` : '';
    process.stderr.write(`error: ${message}${hint}\n`);
    return code;
  }
}

/**
 * Resolves once everything written to `stream` so far has been handed to the OS, with the error
 * that stopped it if any. A pipe to a slow reader (`| wc -l`, `| less`) takes what it takes.
 */
function drained(stream: NodeJS.WriteStream): Promise<NodeJS.ErrnoException | undefined> {
  if (stream.destroyed) return Promise.resolve((stream.errored as NodeJS.ErrnoException | null) ?? undefined);
  return new Promise((resolve) => stream.write('', (err) => resolve((err as NodeJS.ErrnoException | null | undefined) ?? undefined)));
}

let outputFailed = false;
/** stdout refused the output (a full disk, a closed descriptor): it is incomplete, so exit 1 at once, even under -w. */
function onOutputError(err: NodeJS.ErrnoException): void {
  // `txloop get gtx | head`: the reader went away; that is not an error.
  if (err.code === 'EPIPE') process.exit(0);
  if (outputFailed) return;
  outputFailed = true;
  process.stderr.write(`error: could not write the output: ${err.code ?? err.message}\n`);
  void drained(process.stderr).then(() => process.exit(1));
}
process.stdout.on('error', onOutputError);

const code = await main(process.argv);
const stdoutError = await drained(process.stdout);
if (stdoutError) onOutputError(stdoutError);
else {
  await drained(process.stderr);
  // Exit now rather than when the event loop empties: gRPC may hold it open for a moment after the client closed.
  process.exit(code);
}
