/**
 * Repairs: retry, abort, resolve. Each change is one etcd Txn from the store whose compares enforce the
 * invariants; when they forbid the change the command refuses (exit 1) and changes nothing.
 * --dry-run runs every check and prints what would change, without writing. The repairs themselves
 * are in ../repairs.ts, shared with the Kubernetes mirror's spec.repair.
 */
import { userInfo } from 'node:os';
import { Command, Option } from 'commander';
import type { Resolution } from '../../store/index.js';
import { UsageError } from '../errors.js';
import { parseBranchArg, parseRef, parseXidArg } from '../refs.js';
import { abortRepair, resolveRepair, retryRepair, type RepairResult } from '../repairs.js';
import { action, eachTarget, type Io } from '../runtime.js';

interface DryRun {
  dryRun?: boolean;
}

/** Who did a repair, as recorded by abort, retry and resolve alike: `operator:<login>`. */
function operator(): string {
  try {
    return `operator:${userInfo().username}`;
  } catch {
    return 'operator';
  }
}

function reasonArg(reason: string | undefined, required: boolean): string | undefined {
  if (reason === undefined) {
    if (required) throw new UsageError('--reason is required: say why, it is kept in the record and shown by describe');
    return undefined;
  }
  const r = reason.trim();
  if (r.length === 0 || r.length > 1000) throw new UsageError('--reason must be 1-1000 characters');
  return r;
}

// ---------------------------------------------------------------------------------------------

export function retryCommand(name: string): Command {
  return new Command('retry')
    .description('Re-queue parked branches now, with a fresh attempt budget')
    .argument('<targets...>', 'XID/BRANCHID for one branch, or XID for every parked branch of that transaction')
    .option('--dry-run', 'check and show what would be re-queued, change nothing')
    .addHelpText('after', `\nExamples:\n  ${name} retry orders.m3x9k2a7f1c0q8wz/k3j4h5g6f7d8\n  ${name} retry orders.m3x9k2a7f1c0q8wz --dry-run\n  ${name} retry $(${name} get branches --status parked -o name)`)
    .action(
      action<DryRun>(async (io, args, opts) => {
        const refs = (args[0] as string[]).map(parseRef);
        await eachTarget(io, refs, async (ref) => {
          const { store } = await io.connect();
          print(io, await retryRepair(store, ref.kind === 'branch' ? { xid: ref.xid, branchId: ref.branchId } : { xid: ref.xid }, operator(), opts.dryRun));
        });
      }),
    );
}

// ---------------------------------------------------------------------------------------------

interface AbortFlags extends DryRun {
  reason?: string;
  force?: boolean;
}

export function abortCommand(name: string): Command {
  return new Command('abort')
    .description('Roll back an undecided transaction: TCC TRYING (cancels), saga RUNNING (compensates the steps that ran), message PREPARED (discards it); the same compare-and-swap as rollback(), refused once decided')
    .argument('<xid>', 'the transaction to roll back')
    .option('--reason <text>', 'why; recorded with the decision and shown by describe')
    .option('--dry-run', 'check that the abort would be accepted, change nothing')
    .option('--force', "a PREPARED message: discard it without its producer's check-back (only when you know its local transaction did not commit)")
    .addHelpText('after', `\nExample:\n  ${name} abort orders.m3x9k2a7f1c0q8wz --reason "stuck Try on bank-b"`)
    .action(
      action<AbortFlags>(async (io, args, opts) => {
        const xid = parseXidArg(args[0] as string);
        const reason = reasonArg(opts.reason, false) ?? `aborted with ${name} abort`;
        const { store } = await io.connect();
        print(io, await abortRepair(store, xid, { by: operator(), reason, force: opts.force ?? false, howToForce: 'pass --force', dryRun: opts.dryRun ?? false }));
      }),
    );
}

// ---------------------------------------------------------------------------------------------

interface ResolveFlags extends DryRun {
  as: Resolution['as'];
  force?: boolean;
  reason?: string;
}

export function resolveCommand(name: string): Command {
  return new Command('resolve')
    .description("Record a human's decision for a parked branch: it counts as done and the transaction can complete")
    .argument('<branch>', 'XID/BRANCHID of a parked branch')
    .addOption(new Option('--as <outcome>', 'what you did by hand for this branch').choices(['confirmed', 'cancelled', 'compensated', 'delivered']).makeOptionMandatory())
    .option('--reason <text>', 'what was done and why (required; kept in the record, shown by describe)')
    .option('--dry-run', 'check that the resolution would be accepted, change nothing')
    .option('--force', 'also resolve a branch that is not parked: one whose service will never run it (retired, or misnamed in a saga); only when you know no handler of it is running')
    .addHelpText(
      'after',
      `
Resolving against the decision (e.g. --as cancelled when the transaction committed) is allowed: the
transaction completes as "heuristic", which describe shows. A saga step's parked compensation is
resolved --as compensated (the saga then compensates the steps before it); a message's parked
delivery --as delivered (you delivered it by hand: the message is DELIVERED once every other
consumer acknowledged).

Example:
  ${name} resolve orders.m3x9k2a7f1c0q8wz/k3j4h5g6f7d8 --as confirmed --reason "credited by hand, ticket OPS-42"`,
    )
    .action(
      action<ResolveFlags>(async (io, args, opts) => {
        const ref = parseBranchArg(args[0] as string);
        const reason = reasonArg(opts.reason, true)!;
        const { store } = await io.connect();
        print(io, await resolveRepair(store, ref, { as: opts.as, reason, by: operator(), dryRun: opts.dryRun ?? false, force: opts.force ?? false }));
      }),
    );
}

// ---------------------------------------------------------------------------------------------

function print(io: Io, result: RepairResult): void {
  for (const w of result.warnings) io.warn(w);
  for (const line of result.lines) io.out(line);
}
