/**
 * Repairs: retry, abort, resolve. Each change is one etcd Txn from the store whose compares enforce the
 * invariants; when they forbid the change the command refuses (exit 1) and changes nothing.
 * --dry-run runs every check and prints what would change, without writing.
 */
import { userInfo } from 'node:os';
import { Command, Option } from 'commander';
import { OperationRefused, RefusalReason, TransactionAlreadyDecided, TransactionNotFound } from '../../errors.js';
import { alreadyDecided, builtInModes, decide, sagaRules } from '../../modes/index.js';
import { GlobalStatus, Mode, isOpen } from '../../states.js';
import type { BranchRecord, Resolution, Store } from '../../store/index.js';
import { CliError, UsageError } from '../errors.js';
import { explainNotFound, ownerOf } from '../lookup.js';
import { parseBranchArg, parseRef, parseXidArg } from '../refs.js';
import { action, eachTarget } from '../runtime.js';

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

const suffix = (dryRun: boolean | undefined): string => (dryRun ? ' (dry run)' : '');

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
          if (ref.kind === 'branch') {
            const owner = await ownerOf(store, ref);
            const b = await store.repairs.retryBranch(owner, ref.xid, ref.branchId, operator(), opts.dryRun).catch(async (err: unknown) => {
              throw await inTableWords(store, owner, err);
            });
            io.out(`${branchName(b)} ${opts.dryRun ? 'would be re-queued' : 're-queued'} for ${b.phase2?.action ?? 'phase 2'}${suffix(opts.dryRun)}`);
            return;
          }
          const branches = await store.repairs.retryParkedBranches(ref.xid, operator(), opts.dryRun).catch(async (err: unknown) => {
            throw await explainNotFound(store, err);
          });
          for (const b of branches) io.out(`${branchName(b)} ${opts.dryRun ? 'would be re-queued' : 're-queued'} for ${b.phase2?.action ?? 'phase 2'}${suffix(opts.dryRun)}`);
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
        const by = operator();
        const reason = reasonArg(opts.reason, false) ?? `aborted with ${name} abort`;
        const { store } = await io.connect();
        try {
          const { global, members } = await store.globals.read(xid);
          if (!global) throw new TransactionNotFound(xid);
          const g = global.record;
          if (!isOpen(g.status)) throw alreadyDecided(g);
          // Its producer's check-back answers from the producer's own data; a discard here while
          // its local transaction may still commit would lose a committed message.
          if (g.mode === Mode.MESSAGE && !opts.force) {
            throw new CliError(`cannot abort ${xid}: it is a PREPARED message, which its producer's check-back decides from its own data (at ${new Date(g.deadline).toISOString()}); discarding it now loses the message if its local transaction commits — pass --force only when you know it did not`);
          }
          if (opts.dryRun) {
            if (g.mode === Mode.MESSAGE) io.out(`gtx/${xid} would be discarded: nothing is delivered to its ${g.consumers?.length ?? 0} consumer(s)${suffix(true)}`);
            else io.out(`gtx/${xid} would be rolled back (${g.mode}): ${members.length} branch(es) so far${suffix(true)}`);
            return;
          }
          const res = await decide(store, builtInModes(), xid, { outcome: 'rollback', by, reason });
          if (res.global.mode === Mode.MESSAGE) io.out(`gtx/${xid} aborted: ${res.global.status}, nothing is delivered`);
          else io.out(`gtx/${xid} aborted: ${res.global.status}, ${res.global.mode === Mode.SAGA ? 'compensation' : 'cancel'} ordered for ${res.ordered}/${res.total} branch(es)`);
        } catch (err) {
          // The error's own message names the xid again: say it once.
          if (err instanceof TransactionAlreadyDecided) throw new CliError(abortRefused(xid, err));
          throw await explainNotFound(store, err);
        }
      }),
    );
}

/** Why an abort was refused, in the words of the global's mode: a submitted message is never taken back. */
function abortRefused(xid: string, err: TransactionAlreadyDecided): string {
  if (err.status === GlobalStatus.SUBMITTED || err.status === GlobalStatus.DELIVERED) {
    return `cannot abort ${xid}: it is a 2-phase message already submitted (by ${err.decidedBy}, now ${err.status}); a submitted message is delivered, never rolled back: retry or resolve its parked deliveries instead`;
  }
  if (err.status === GlobalStatus.DISCARDED) return `cannot abort ${xid}: the message was already discarded (by ${err.decidedBy}); nothing is delivered`;
  return `cannot abort ${xid}: it was already decided: ${err.outcome} (by ${err.decidedBy}, now ${err.status}); only an undecided transaction (TRYING, RUNNING, PREPARED) can be aborted`;
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
        const owner = await ownerOf(store, ref);
        const by = operator();
        const mode = (await store.branches.get(owner, ref.xid, ref.branchId))?.record.mode;
        // A saga step's resolution moves the saga on in the same Txn, as its own compensation would.
        const move = mode === Mode.SAGA ? sagaRules.sagaMoveBy(by) : undefined;
        const b = await store.repairs.resolveBranch(owner, ref.xid, ref.branchId, opts.as, reason, by, { dryRun: opts.dryRun ?? false, force: opts.force ?? false, ...(move ? { move } : {}) });
        const wanted = { confirm: 'confirmed', cancel: 'cancelled', action: 'compensated', compensate: 'compensated', deliver: 'delivered' }[b.phase2?.action ?? 'cancel'];
        if (wanted !== opts.as) io.warn(`warning: the decision ordered ${b.phase2?.action ?? 'nothing'} for this branch; resolving it as ${opts.as} makes the transaction heuristic`);
        io.out(`${branchName(b)} ${opts.dryRun ? 'would be resolved' : 'resolved'} as ${opts.as}${suffix(opts.dryRun)}`);
      }),
    );
}

// ---------------------------------------------------------------------------------------------

function branchName(b: BranchRecord): string {
  return `branch/${b.xid}/${b.branchId}`;
}

/** A retry refused because the branch is not parked, saying what the tables show it is instead. */
async function inTableWords(store: Store, owner: string, err: unknown): Promise<unknown> {
  if (!(err instanceof OperationRefused) || err.reason !== RefusalReason.NOT_PARKED || !err.branchId) return err;
  const current = await store.branches.get(owner, err.xid, err.branchId).catch(() => undefined);
  if (!current) return err;
  // Before its owner acts on an order, the order says which action it is waiting for.
  const order = current.record.phase2 ? undefined : await store.branches.getOrder(owner, err.xid, err.branchId).catch(() => undefined);
  const word = builtInModes().of(current.record.mode).branchStatus(current.record, order);
  return new OperationRefused(err.xid, err.reason, `branch ${err.branchId} of ${err.xid} is not parked (it is ${word}); only parked branches can be retried`, err.branchId);
}
