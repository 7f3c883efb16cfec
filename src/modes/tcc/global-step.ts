/**
 * Reconciles one global transaction this service initiated (key: xid), on the leader only:
 * expires its deadline, finishes a fan-out that did not fit the decision Txn, completes it once
 * every branch is done, and collects it after the retention.
 */
import { TransactionAlreadyDecided, TransactionNotFound } from '../../errors.js';
import type { ReconcileResult } from '../../runtime/controller.js';
import { requireFence, type ReconcileDeps } from './branch-step.js';
import { GlobalStatus, MalformedRecord, Phase2State, TryState, parseGlobal, parseLink, type GlobalRecord, type LinkRecord } from '../../store/records.js';
import { WriteConflict } from '../../store/store.js';

export interface GlobalReconcileDeps extends ReconcileDeps {
  onCompleted(global: GlobalRecord): void;
  onCollected(xid: string): void;
  /** Keys of the global's links currently in the cache. */
  linkKeys(xid: string): Iterable<string>;
  /** Queue this finished global again at `due` for collection. */
  collectAt(xid: string, due: number): void;
}

export async function reconcileGlobal(deps: GlobalReconcileDeps, xid: string): Promise<ReconcileResult> {
  const { store, cache, options, logger } = deps;
  const gkey = store.keys.global(xid);
  const gkv = cache.get(gkey);
  if (!gkv) {
    // Links are written after their global and deleted with it: ones left alone are debris.
    for (const key of deps.linkKeys(xid)) {
      const kv = cache.get(key);
      if (kv) deps.malformed.report(key, 'link', 'branch link without its global record', kv.modRevision);
    }
    return;
  }
  let global: GlobalRecord;
  try {
    global = parseGlobal(gkey, gkv.value);
  } catch (err) {
    if (err instanceof MalformedRecord) {
      deps.malformed.report(gkey, 'gtx', err.problem, gkv.modRevision);
      return;
    }
    throw err;
  }
  const log = logger.child({ xid });
  const fence = requireFence(deps);
  const now = Date.now();

  switch (global.status) {
    case GlobalStatus.TRYING: {
      if (now < global.deadline) return { requeueAfterMs: global.deadline - now };
      try {
        const decided = await store.decide(xid, { outcome: 'rollback', by: 'deadline', reason: `timeout of ${global.timeoutMs}ms passed` });
        deps.onDecided(decided.global);
        log.warn({ timeoutMs: global.timeoutMs }, 'deadline passed; rolled back');
      } catch (err) {
        if (!(err instanceof TransactionAlreadyDecided) && !(err instanceof TransactionNotFound)) throw err;
      }
      return;
    }
    case GlobalStatus.COMMITTING:
    case GlobalStatus.ROLLING_BACK: {
      if (global.fannedOut === false) {
        await store.finishFanOut(xid);
        return;
      }
      const seen = linksOf(deps, xid);
      if (seen === undefined) return;
      const { links, revision } = seen;
      if (!links.every((l) => l.state === Phase2State.DONE)) return;
      const wanted = global.status === GlobalStatus.COMMITTING ? 'confirmed' : 'cancelled';
      const heuristic = links.some((l) => l.resolution !== undefined && l.resolution !== wanted);
      let done: GlobalRecord;
      try {
        done = await store.complete({ key: gkey, record: global, modRevision: gkv.modRevision }, fence, heuristic, revision);
      } catch (err) {
        // The cache was behind (e.g. our own completion not yet seen): the watch event re-queues it.
        if (err instanceof WriteConflict) return;
        throw err;
      }
      log.info({ status: done.status, branches: links.length, heuristic }, `transaction ${done.status}`);
      deps.onCompleted(done);
      return;
    }
    case GlobalStatus.COMMITTED:
    case GlobalStatus.ROLLED_BACK: {
      let due = (global.completedAt ?? now) + options.retentionMs;
      // A branch still PENDING may have a Try running somewhere (its handler ignoring the signal
      // that aborted at the deadline): collecting it now would leave that Try nothing to record
      // into. Keep it until the Try's deadline plus the handler timeout.
      const seen = linksOf(deps, xid);
      if (seen?.links.some((l) => l.tryState === TryState.PENDING)) due = Math.max(due, global.deadline + options.handlerTimeoutMs);
      if (now < due) {
        // One sweep timer for all retained transactions rather than a timer each.
        deps.collectAt(xid, due);
        return;
      }
      if (await store.collect(xid, fence)) {
        log.debug('collected after retention');
        deps.onCollected(xid);
      } else {
        // Re-queued by the branch's next change; until then it stays for inspection.
        log.warn('finished transaction has a branch that is not done (a late Try re-opened its cancel); not collected');
      }
      return;
    }
  }
}

/**
 * The global's links from the cache and the newest revision among them; undefined when one is
 * malformed (completion must not guess).
 */
function linksOf(deps: GlobalReconcileDeps, xid: string): { links: LinkRecord[]; revision: string } | undefined {
  const links: LinkRecord[] = [];
  let revision = 0n;
  for (const key of deps.linkKeys(xid)) {
    const kv = deps.cache.get(key);
    if (!kv) continue;
    try {
      links.push(parseLink(key, kv.value));
    } catch (err) {
      if (!(err instanceof MalformedRecord)) throw err;
      // Completion waits until it is repaired.
      deps.malformed.report(key, 'link', err.problem, kv.modRevision);
      return undefined;
    }
    if (BigInt(kv.modRevision) > revision) revision = BigInt(kv.modRevision);
  }
  return { links, revision: revision.toString() };
}
