/**
 * Reconciles one branch this service owns (key `<xid>/<branchId>`): level-based, it re-reads the
 * branch and its phase-2 order from the informer cache and moves the branch one step on.
 *
 * Outcomes: done (nothing to do), requeue after a delay (waiting for a deadline or a retry time), or
 * throw (etcd trouble; the workqueue backs off). Handler failures are not thrown: they are recorded
 * in etcd (attempts, last error, next retry time) so the backoff and the dead threshold survive
 * restarts and leader changes.
 */
import type { Logger } from 'pino';
import { DeadlineExceeded, TransactionAlreadyDecided, TransactionNotFound, UnknownResource, errorMessage } from '../../errors.js';
import type { PhaseTwoContext, TccResource } from '../../resource.js';
import type { ReconcileResult } from '../../runtime/controller.js';
import type { CachedKv } from '../../cache/informer.js';
import type { ResolvedOptions } from '../../options.js';
import { Action, GlobalStatus, MalformedRecord, Phase2State, TryState, actionFor, attemptsInBudget, isOrphanOrder, parseBranch, parseOrder, withEvent, type BranchRecord, type GlobalRecord, type OrderRecord, type Phase2 } from '../../store/records.js';
import { LeadershipLost, type Fence, type Store, type Versioned } from '../../store/store.js';
import type { MalformedRecords } from '../../runtime/malformed.js';
import { itemBackoffMs } from '../../runtime/workqueue.js';

export interface ReconcileDeps {
  app: string;
  store: Store;
  cache: ReadonlyMap<string, CachedKv>;
  options: ResolvedOptions;
  logger: Logger;
  fence(): Fence | undefined;
  resources: ReadonlyMap<string, TccResource>;
  /** Where records this loop cannot use are reported (each logged once). */
  malformed: MalformedRecords;
  onPhase2(outcome: Phase2Outcome): void;
  /** This replica decided a global (deadline expiry, or a participant rolling back a stuck one). */
  onDecided(global: GlobalRecord): void;
  /**
   * Branch key → mod revision of this replica's last write to it (controller-runtime's
   * "expectations"): until the cache has caught up with it, the cache is stale and acting on it
   * would run a handler again for work already recorded.
   */
  written: Map<string, string>;
}

export interface Phase2Outcome {
  xid: string;
  branchId: string;
  resource: string;
  action: Action;
  result: 'succeeded' | 'failed' | 'parked';
  attempt: number;
  error?: string;
  durationMs: number;
}

export function branchQueueKey(xid: string, branchId: string): string {
  return `${xid}/${branchId}`;
}

export async function reconcileBranch(deps: ReconcileDeps, queueKey: string, signal: AbortSignal): Promise<ReconcileResult> {
  const { app, store, cache, options, logger } = deps;
  const [xid, branchId] = queueKey.split('/') as [string, string];
  const bkey = store.keys.branch(app, xid, branchId);
  const bkv = cache.get(bkey);
  const okey = store.keys.order(app, xid, branchId);
  const okv = cache.get(okey);
  if (!bkv) {
    deps.written.delete(bkey);
    // Orders are written for existing branches and deleted with them: one alone is debris.
    if (okv) deps.malformed.report(okey, 'order', 'phase-2 order without its branch record; nothing to confirm or cancel', okv.modRevision);
    return;
  }
  const expected = deps.written.get(bkey);
  if (expected !== undefined) {
    // Our own write is on its way through the watch, which will queue this key again.
    if (BigInt(bkv.modRevision) < BigInt(expected)) return;
    deps.written.delete(bkey);
  }
  let branch: BranchRecord;
  let order: OrderRecord | undefined;
  try {
    branch = parseBranch(bkey, bkv.value);
    if (okv) order = parseOrder(okey, okv.value);
  } catch (err) {
    if (err instanceof MalformedRecord) {
      // Nothing sensible to retry until someone rewrites the record; its next change re-queues it.
      deps.malformed.report(err.key, err.key === okey ? 'order' : 'branch', err.problem, err.key === okey ? okv!.modRevision : bkv.modRevision);
      return;
    }
    throw err;
  }
  const log = logger.child({ xid, branch: branchId, resource: branch.resource });
  const p = branch.phase2;
  if (p && p.state !== Phase2State.ACTIVE) {
    if (p.state === Phase2State.DONE && isOrphanOrder(order)) return collectOrphan(deps, { key: bkey, record: branch, modRevision: bkv.modRevision }, p);
    return;
  }
  const now = Date.now();

  if (!p && !order) return waitForDecision(deps, branch, log);

  const action = p?.action ?? order!.action;
  if (p?.nextRetryAt !== undefined && now < p.nextRetryAt) return { requeueAfterMs: p.nextRetryAt - now };

  const fence = requireFence(deps);
  let current = { key: bkey, record: branch, modRevision: bkv.modRevision };
  const attempt = (p?.attempts ?? 0) + 1;
  // Every progress write goes through here, so the expectation below always knows our last write.
  const record = async (next: BranchRecord): Promise<void> => {
    current = await store.recordProgress(fence, current, next);
    deps.written.set(bkey, current.modRevision);
  };
  const park = async (phase2: Phase2, message: string, attemptNo: number): Promise<void> => {
    await record(withEvent({ ...branch, phase2: { ...phase2, state: Phase2State.FAILED } }, 'Parked', message));
    log.error({ attempt: attemptNo }, message);
    deps.onPhase2({ xid, branchId, resource: branch.resource, action, result: 'parked', attempt: attemptNo, error: message, durationMs: 0 });
  };

  if (action === Action.CONFIRM && branch.tryState !== TryState.SUCCEEDED) {
    // Invariant 4: never confirm what was not tried. commit() refuses this, so only a hand-edited or
    // corrupt record gets here; park it for a human rather than guess.
    const message = `confirm ordered but the Try is ${branch.tryState}; refusing to confirm`;
    await park({ action, state: Phase2State.FAILED, attempts: p?.attempts ?? 0, lastError: message }, message, attempt);
    return;
  }
  if (action === Action.CANCEL && branch.tryState === TryState.PENDING) {
    // The Try may still be running somewhere; give it until the deadline plus grace to finish (its
    // signal aborts at the deadline) so the cancel knows whether there is anything to undo.
    const waitUntil = branch.deadline + options.graceMs;
    if (now < waitUntil) return { requeueAfterMs: waitUntil - now };
  }

  if (p && attemptsInBudget(p) >= options.deadThreshold) {
    // Every attempt is recorded before its handler runs, so an ACTIVE branch at the limit is one
    // whose last attempt never reported back: its replica died (or lost etcd) inside the handler.
    const message = `attempt ${p.attempts} never reported back (its replica died during the handler, or could not record the outcome); parked after ${attemptsInBudget(p)} attempts`;
    await park({ ...p, lastError: p.lastError ?? message }, message, p.attempts);
    return;
  }

  // Count the attempt before running it, on every path: a handler that kills its process is still
  // counted (the limit bounds it) and the next leader runs attempt n+1, not attempt n again.
  const inherited = inheritedFromEarlierTerm(bkv, okv, fence);
  const budget = p?.budgetFrom !== undefined ? { budgetFrom: p.budgetFrom } : {};
  const inBudget = attempt - (p?.budgetFrom ?? 0);
  const started: Phase2 = { action, state: Phase2State.ACTIVE, attempts: attempt, ...budget, lastAttemptAt: now, ...(p?.lastError ? { lastError: p.lastError } : {}) };
  const withAttempt = { ...branch, phase2: started };
  await record(inherited ? withEvent(withAttempt, 'AttemptStarted', `${action} attempt ${attempt} started by a new leader`, now) : withAttempt);
  log.debug({ attempt, action }, 'attempt recorded; starting the handler');

  const handler = deps.resources.get(branch.resource);
  const startedAt = Date.now();
  let error: string | undefined;
  if (!handler) {
    error = new UnknownResource(app, branch.resource).message;
  } else {
    try {
      await runHandler(handler, action, {
        xid,
        branchId,
        resource: branch.resource,
        payload: branch.payload,
        action,
        attempt,
        tryCompleted: branch.tryState === TryState.SUCCEEDED,
        tryState: branch.tryState,
        fencingToken: fence.createRevision,
      }, options.handlerTimeoutMs, signal, () => {
        // Leadership re-checked locally and fresh, with nothing between this and the call: a
        // replica frozen after its attempt write resumes here and must not start the handler.
        if (signal.aborted || requireFence(deps).createRevision !== fence.createRevision) throw new LeadershipLost(store.keys.leader(app));
      });
    } catch (err) {
      // Cut short because this replica stopped leading (or is shutting down): not the handler's
      // failure, so nothing is recorded; the next leader runs it again.
      if (err instanceof LeadershipLost) throw err;
      if (signal.aborted) throw new LeadershipLost(store.keys.leader(app));
      error = errorMessage(err) || 'handler failed without a message';
    }
  }
  // The outcome builds on the record as written just now (its attempt and event), not the one read.
  const base = current.record;
  const durationMs = Date.now() - startedAt;
  const doneAt = Date.now();
  let next: BranchRecord;
  let result: Phase2Outcome['result'];
  let requeueAfterMs: number | undefined;
  if (error === undefined) {
    const phase2: Phase2 = { action, state: Phase2State.DONE, attempts: attempt, ...budget, lastAttemptAt: startedAt, doneAt };
    next = withEvent({ ...base, phase2 }, action === Action.CONFIRM ? 'Confirmed' : 'Cancelled', `${action} succeeded on attempt ${attempt}${action === Action.CANCEL && branch.tryState !== TryState.SUCCEEDED ? ' (empty rollback)' : ''}`, doneAt);
    result = 'succeeded';
  } else if (inBudget >= options.deadThreshold) {
    const phase2: Phase2 = { action, state: Phase2State.FAILED, attempts: attempt, ...budget, lastAttemptAt: startedAt, lastError: error.slice(0, 2000) };
    next = withEvent({ ...base, phase2 }, 'Parked', `${action} failed ${inBudget} times; parked for a human: ${error}`, doneAt);
    result = 'parked';
    log.error({ attempt, err: error }, `${action} failed ${inBudget} times; branch parked as FAILED`);
  } else {
    requeueAfterMs = itemBackoffMs(inBudget - 1, options.retryBaseMs, options.retryMaxMs);
    const phase2: Phase2 = { action, state: Phase2State.ACTIVE, attempts: attempt, ...budget, lastAttemptAt: startedAt, lastError: error.slice(0, 2000), nextRetryAt: doneAt + requeueAfterMs };
    next = withEvent({ ...base, phase2 }, 'AttemptFailed', `${action} attempt ${attempt} failed: ${error}`, doneAt);
    result = 'failed';
    log.warn({ attempt, err: error, retryInMs: requeueAfterMs }, `${action} failed; will retry`);
  }
  await record(next);
  if (result === 'succeeded') log.info({ attempt, action, durationMs }, `${action} done`);
  deps.onPhase2({ xid, branchId, resource: branch.resource, action, result, attempt, ...(error !== undefined ? { error } : {}), durationMs });
  return requeueAfterMs !== undefined ? { requeueAfterMs } : undefined;
}

/** The owner collects an orphaned branch itself, once it is done and its retention has passed. */
async function collectOrphan(deps: ReconcileDeps, current: Versioned<BranchRecord>, p: Phase2): Promise<ReconcileResult> {
  const due = (p.doneAt ?? Date.now()) + deps.options.retentionMs;
  const now = Date.now();
  if (now < due) return { requeueAfterMs: due - now };
  if (await deps.store.deleteBranch(requireFence(deps), current)) deps.logger.info({ xid: current.record.xid, branch: current.record.branchId }, 'collected a branch whose global was gone');
  return;
}

/** This replica's fence, or LeadershipLost: only the current leader acts (invariant 5). */
export function requireFence(deps: Pick<ReconcileDeps, 'fence' | 'store' | 'app'>): Fence {
  const fence = deps.fence();
  if (!fence) throw new LeadershipLost(deps.store.keys.leader(deps.app));
  return fence;
}

/** Both the branch and its order were last written before this leader's term began. */
function inheritedFromEarlierTerm(branch: CachedKv, order: CachedKv | undefined, fence: Fence): boolean {
  const termStart = BigInt(fence.createRevision);
  return BigInt(branch.modRevision) < termStart && (!order || BigInt(order.modRevision) < termStart);
}

/**
 * No order yet. Normally the initiator decides; once the deadline plus grace has passed, this
 * participant looks at the global itself (invariant 10): it rolls back a global still TRYING, and
 * writes its own order for a decided one whose fan-out has not reached it.
 */
async function waitForDecision(deps: ReconcileDeps, branch: BranchRecord, log: Logger): Promise<ReconcileResult> {
  const { store, options, app } = deps;
  const due = branch.deadline + options.graceMs;
  const now = Date.now();
  if (now < due) return { requeueAfterMs: due - now };
  requireFence(deps);
  const global = await store.getGlobal(branch.xid);
  let action: Action | undefined;
  let by = `participant:${app}`;
  let at = now;
  let orphan = false;
  if (!global) {
    // A global is collected only after every branch is done, so a missing one was never committed.
    action = Action.CANCEL;
    orphan = true;
    log.warn('global record is gone while this branch waits for a decision; cancelling');
  } else if (global.record.status === GlobalStatus.TRYING) {
    // The branch's deadline came with the Try call; the global's own deadline is the one that counts.
    const globalDue = global.record.deadline + options.graceMs;
    if (now < globalDue) return { requeueAfterMs: globalDue - now };
    try {
      const decided = await store.decide(branch.xid, { outcome: 'rollback', by: `participant:${app}`, reason: `deadline + ${options.graceMs}ms grace passed and the initiator had not decided` });
      deps.onDecided(decided.global);
      log.warn({ deadline: new Date(branch.deadline).toISOString() }, 'rolled back a global stuck past its deadline');
      return { requeueAfterMs: 100 };
    } catch (err) {
      if (!(err instanceof TransactionAlreadyDecided) && !(err instanceof TransactionNotFound)) throw err;
      return { requeueAfterMs: 100 };
    }
  } else {
    action = actionFor(global.record.status);
    by = global.record.decision?.by ?? by;
    at = global.record.decision?.at ?? at;
  }
  if (action) await store.ensureOrder(branch, action, by, at, orphan);
  return undefined;
}

/**
 * Runs one confirm/cancel attempt, cut short by the handler timeout or by the leadership signal.
 * `mayStart` runs synchronously right before the handler is called and throws to stop it: a handler
 * is never started once this replica's term is over, nor with an already aborted signal.
 */
async function runHandler(handler: TccResource, action: Action, ctx: Omit<PhaseTwoContext, 'signal'>, timeoutMs: number, parent: AbortSignal, mayStart: () => void): Promise<void> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onParentAbort: (() => void) | undefined;
  // Settles when the attempt must end early: the handler timeout passed or leadership was lost.
  const cutoff = new Promise<never>((_, reject) => {
    const stop = (err: unknown): void => {
      controller.abort(err);
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    timer = setTimeout(() => stop(new DeadlineExceeded(ctx.xid, `${action} handler timed out after ${timeoutMs}ms`)), timeoutMs);
    onParentAbort = () => stop(parent.reason);
    parent.addEventListener('abort', onParentAbort, { once: true });
  });
  cutoff.catch(() => undefined);
  try {
    const fn = action === Action.CONFIRM ? handler.confirm : handler.cancel;
    mayStart();
    let running: Promise<void>;
    try {
      running = Promise.resolve(fn.call(handler, { ...ctx, signal: controller.signal }));
    } catch (err) {
      running = Promise.reject(err);
    }
    // A handler that ignores its signal keeps running, but the attempt is over for the queue.
    await Promise.race([running, cutoff]);
  } finally {
    clearTimeout(timer);
    if (onParentAbort) parent.removeEventListener('abort', onParentAbort);
  }
}
