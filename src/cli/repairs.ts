/**
 * The repairs themselves — retry, abort, resolve — apart from how they are asked for: `txloop retry
 * / abort / resolve` (commands/repair.ts) and a Transaction's spec.repair (kube/repair.ts) run these
 * same functions, so both make the same Txn and meet the same refusals. Each returns the lines that
 * say what was done; a refusal throws (OperationRefused, TransactionAlreadyDecided, CliError, ...)
 * and changes nothing. `dryRun` runs every check and writes nothing.
 */
import { OperationRefused, RefusalReason, TransactionAlreadyDecided, TransactionNotFound } from '../errors.js';
import { alreadyDecided, builtInModes, decide, sagaRules } from '../modes/index.js';
import { GlobalStatus, Mode, isOpen } from '../states.js';
import type { BranchRecord, Resolution, Store } from '../store/index.js';
import { CliError } from './errors.js';
import { explainNotFound, ownerOf } from './lookup.js';
import type { BranchRef } from './refs.js';

export interface RepairResult {
  /** What was done (or would be, in a dry run), a line each. */
  lines: string[];
  /** What the operator should know, e.g. a resolution against the decision. */
  warnings: string[];
}

const suffix = (dryRun: boolean | undefined): string => (dryRun ? ' (dry run)' : '');

function branchName(b: BranchRecord): string {
  return `branch/${b.xid}/${b.branchId}`;
}

function requeued(b: BranchRecord, dryRun: boolean | undefined): string {
  return `${branchName(b)} ${dryRun ? 'would be re-queued' : 're-queued'} for ${b.phase2?.action ?? 'phase 2'}${suffix(dryRun)}`;
}

/** Re-queues one parked branch, or (without `branchId`) every parked branch of the transaction. */
export async function retryRepair(store: Store, target: { xid: string; branchId?: string }, by: string, dryRun?: boolean): Promise<RepairResult> {
  if (target.branchId !== undefined) {
    const ref = { xid: target.xid, branchId: target.branchId };
    const owner = await ownerOf(store, ref);
    const b = await store.repairs.retryBranch(owner, ref.xid, ref.branchId, by, dryRun).catch(async (err: unknown) => {
      throw await inTableWords(store, owner, err);
    });
    return { lines: [requeued(b, dryRun)], warnings: [] };
  }
  const branches = await store.repairs.retryParkedBranches(target.xid, by, dryRun).catch(async (err: unknown) => {
    throw await explainNotFound(store, err);
  });
  return { lines: branches.map((b) => requeued(b, dryRun)), warnings: [] };
}

export interface AbortRepair {
  by: string;
  reason: string;
  /** A PREPARED message: discard it without its producer's check-back. */
  force?: boolean;
  /** How this caller forces it, for the refusal's message (`pass --force`). */
  howToForce: string;
  dryRun?: boolean;
}

/** Rolls back an undecided transaction (the same compare-and-swap as rollback()); refused once decided. */
export async function abortRepair(store: Store, xid: string, o: AbortRepair): Promise<RepairResult> {
  try {
    const { global, members } = await store.globals.read(xid);
    if (!global) throw new TransactionNotFound(xid);
    const g = global.record;
    if (!isOpen(g.status)) throw alreadyDecided(g);
    // Its producer's check-back answers from the producer's own data; a discard here while
    // its local transaction may still commit would lose a committed message.
    if (g.mode === Mode.MESSAGE && !o.force) {
      throw new CliError(`cannot abort ${xid}: it is a PREPARED message, which its producer's check-back decides from its own data (at ${new Date(g.deadline).toISOString()}); discarding it now loses the message if its local transaction commits — ${o.howToForce} only when you know it did not`);
    }
    if (o.dryRun) {
      if (g.mode === Mode.MESSAGE) return { lines: [`gtx/${xid} would be discarded: nothing is delivered to its ${g.consumers?.length ?? 0} consumer(s)${suffix(true)}`], warnings: [] };
      return { lines: [`gtx/${xid} would be rolled back (${g.mode}): ${members.length} branch(es) so far${suffix(true)}`], warnings: [] };
    }
    const res = await decide(store, builtInModes(), xid, { outcome: 'rollback', by: o.by, reason: o.reason });
    if (res.global.mode === Mode.MESSAGE) return { lines: [`gtx/${xid} aborted: ${res.global.status}, nothing is delivered`], warnings: [] };
    return { lines: [`gtx/${xid} aborted: ${res.global.status}, ${res.global.mode === Mode.SAGA ? 'compensation' : 'cancel'} ordered for ${res.ordered}/${res.total} branch(es)`], warnings: [] };
  } catch (err) {
    // The error's own message names the xid again: say it once.
    if (err instanceof TransactionAlreadyDecided) throw new CliError(abortRefused(xid, err));
    throw await explainNotFound(store, err);
  }
}

/** Why an abort was refused, in the words of the global's mode: a submitted message is never taken back. */
function abortRefused(xid: string, err: TransactionAlreadyDecided): string {
  if (err.status === GlobalStatus.SUBMITTED || err.status === GlobalStatus.DELIVERED) {
    return `cannot abort ${xid}: it is a 2-phase message already submitted (by ${err.decidedBy}, now ${err.status}); a submitted message is delivered, never rolled back: retry or resolve its parked deliveries instead`;
  }
  if (err.status === GlobalStatus.DISCARDED) return `cannot abort ${xid}: the message was already discarded (by ${err.decidedBy}); nothing is delivered`;
  return `cannot abort ${xid}: it was already decided: ${err.outcome} (by ${err.decidedBy}, now ${err.status}); only an undecided transaction (TRYING, RUNNING, PREPARED) can be aborted`;
}

export interface ResolveRepair {
  as: Resolution['as'];
  reason: string;
  by: string;
  dryRun?: boolean;
  /** Also a branch that is not parked: one whose service will never run it. */
  force?: boolean;
}

/** Records a human's decision for a parked branch: it counts as done and the transaction can complete. */
export async function resolveRepair(store: Store, ref: BranchRef, o: ResolveRepair): Promise<RepairResult> {
  const owner = await ownerOf(store, ref);
  const mode = (await store.branches.get(owner, ref.xid, ref.branchId))?.record.mode;
  // A saga step's resolution moves the saga on in the same Txn, as its own compensation would.
  const move = mode === Mode.SAGA ? sagaRules.sagaMoveBy(o.by) : undefined;
  const b = await store.repairs.resolveBranch(owner, ref.xid, ref.branchId, o.as, o.reason, o.by, { dryRun: o.dryRun ?? false, force: o.force ?? false, ...(move ? { move } : {}) });
  const wanted = { confirm: 'confirmed', cancel: 'cancelled', action: 'compensated', compensate: 'compensated', deliver: 'delivered' }[b.phase2?.action ?? 'cancel'];
  const warnings = wanted !== o.as ? [`warning: the decision ordered ${b.phase2?.action ?? 'nothing'} for this branch; resolving it as ${o.as} makes the transaction heuristic`] : [];
  return { lines: [`${branchName(b)} ${o.dryRun ? 'would be resolved' : 'resolved'} as ${o.as}${suffix(o.dryRun)}`], warnings };
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
