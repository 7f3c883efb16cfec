/**
 * The Transaction reconciler, for one object name (a transaction's xid): level-based, it re-reads the
 * etcd model and the apiserver's copy each time. In order:
 * 1. a repair asked with annotations is moved into spec.repair (the CRD validates it there);
 * 2. a spec.repair is run once per generation (kube/repair.ts) and cleared;
 * 3. the object is created, its status applied when it differs, or it is deleted: when the
 *    transaction is gone, or (for an object the mirror created) no longer needs eyes — kept, though,
 *    while it shows a repair's outcome and its transaction has not finished.
 * An unfinished transaction is looked at again when its deadline + grace comes.
 */
import { apiMessage, statusOf, type KubeObject } from './api.js';
import { MANAGED_BY, cacheLags, forget, remember, type MirrorContext } from './context.js';
import { keepTransitionTimes, needsEyes, sameStatus, stuckAt, transactionStatus, type Condition } from './objects.js';
import { ANNOTATION, REQUESTED_BY, annotationRepair, invalidCondition, managerOf, outcomeRecorded, repairCondition, requester, runRepair, specRepair } from './repair.js';
import type { ReconcileResult } from '../runtime/index.js';
import { isTerminal } from '../states.js';

const REPAIR_TYPES = new Set(['Repaired', 'RepairRefused']);

export async function reconcileTransaction(ctx: MirrorContext, name: string): Promise<ReconcileResult> {
  if (!ctx.leading()) return;
  const { api } = ctx;
  let obj = ctx.transactions.get(name, api.namespace) as KubeObject | undefined;
  const key = `txn/${name}`;
  // The cache from before the mirror's own last write: acting on it could run a repair again.
  if (cacheLags(ctx, key, obj)) return { requeueAfterMs: 100 };
  const now = ctx.now();

  if (obj && annotationRepair(obj)) {
    await moveAnnotationsToSpec(ctx, obj);
    return; // the watch brings the object back with its spec.repair
  }
  const xid = obj && typeof obj.spec?.xid === 'string' ? obj.spec.xid : name;
  const g = ctx.model.global(xid);

  // An outcome answers one object: a Transaction deleted and made again starts with none.
  const held = ctx.outcomes.get(name);
  let outcome = held && obj && held.uid === obj.metadata.uid ? held.condition : undefined;
  const asked = obj ? specRepair(obj) : undefined;
  if (obj && asked) {
    const generation = obj.metadata.generation;
    if (!outcomeRecorded(obj) && !(outcome && outcome.observedGeneration === generation)) {
      if (xid !== name) outcome = invalidCondition(`this Transaction is named ${name} but its spec.xid is ${xid}: the mirror keeps each Transaction under its xid`, generation, now);
      else if ('invalid' in asked) outcome = invalidCondition(asked.invalid, generation, now);
      else {
        const result = await runRepair(ctx.store, xid, asked.request, requester(obj));
        outcome = repairCondition(result, asked.request, generation, now);
        ctx.logger.info({ xid, action: asked.request.action, reason: asked.request.reason, by: requester(obj), repaired: result.repaired, message: result.message }, 'declarative repair');
      }
      ctx.metrics.repairs.inc({ action: 'request' in asked ? asked.request.action : 'invalid', result: outcome.type === 'Repaired' ? 'repaired' : 'invalid' in asked ? 'invalid' : 'refused' });
      ctx.outcomes.set(name, { uid: obj.metadata.uid, condition: outcome });
    }
  }
  const kept = keptConditions(obj, outcome);

  const why = g ? needsEyes(g, now, ctx.graceMs) : undefined;
  const mirrored = obj?.metadata.labels?.[MANAGED_BY.key] === MANAGED_BY.value;
  const recordPending = asked !== undefined && !outcomeRecorded(obj!);
  // A repair's outcome stays in view until its transaction finishes (a retried branch may park again).
  const showsOutcome = kept.length > 0 && !(g?.entry.record && isTerminal(g.entry.record.status));
  if (!g || (!why && !recordPending && (!obj || (mirrored && !showsOutcome)))) {
    if (obj) {
      if (!ctx.leading()) return;
      await api.delete('transaction', name, obj.metadata);
      forget(ctx, key);
    }
    ctx.outcomes.delete(name);
    return recheck(g ? stuckAt(g, ctx.graceMs) : undefined, now);
  }

  if (!obj) {
    if (!ctx.leading()) return;
    obj = remember(ctx, key, await api.applyObject('transaction', name, { [MANAGED_BY.key]: MANAGED_BY.value, 'txloop.io/app': g.app }, { xid }));
  }
  const desired = transactionStatus(g, why, ctx.graceMs, kept, now);
  desired.conditions = keepTransitionTimes(desired.conditions, obj.status?.conditions as Condition[] | undefined, now);
  if (!sameStatus(desired, obj.status)) {
    if (!ctx.leading()) return;
    obj = remember(ctx, key, await api.applyStatus('transaction', name, desired, obj.metadata.resourceVersion));
  }
  if (asked) await clearRepair(ctx, obj);
  else ctx.outcomes.delete(name);
  return recheck(stuckAt(g, ctx.graceMs), now);
}

/** The repair outcome to keep in status: the newest of what the apiserver holds and what was just run. */
function keptConditions(obj: KubeObject | undefined, outcome: Condition | undefined): Condition[] {
  const held = ((obj?.status?.conditions as Condition[] | undefined) ?? []).filter((c) => REPAIR_TYPES.has(c.type));
  const newest = [...held, ...(outcome ? [outcome] : [])].sort((a, b) => (a.observedGeneration ?? 0) - (b.observedGeneration ?? 0) || String(a.lastTransitionTime).localeCompare(String(b.lastTransitionTime))).pop();
  return newest ? [newest] : [];
}

function recheck(at: number | undefined, now: number): ReconcileResult {
  return at !== undefined && at > now ? { requeueAfterMs: at - now + 50 } : undefined;
}

/** Clears spec.repair once its outcome is in status, unless a newer request replaced it meanwhile. */
async function clearRepair(ctx: MirrorContext, obj: KubeObject): Promise<void> {
  if (!outcomeRecorded(obj) || !ctx.leading()) return;
  const requestedBy = obj.metadata.annotations?.[REQUESTED_BY] !== undefined ? [{ op: 'remove', path: `/metadata/annotations/${pointer(REQUESTED_BY)}` }] : [];
  try {
    remember(ctx, `txn/${obj.metadata.name}`, await ctx.api.patch('transaction', obj.metadata.name, [{ op: 'test', path: '/metadata/generation', value: obj.metadata.generation }, { op: 'remove', path: '/spec/repair' }, ...requestedBy]));
  } catch (err) {
    // 422: the generation moved on (a newer request) or the request is gone: the watch re-queues it.
    if (statusOf(err) !== 422 && statusOf(err) !== 404) throw err;
  }
  // The outcome stays in ctx.outcomes until the cache shows the request cleared (see reconcile).
}

/** A JSON pointer segment (RFC 6901). */
const pointer = (segment: string): string => segment.replace(/~/g, '~0').replace(/\//g, '~1');

/** `kubectl annotate … txloop.io/repair=retry txloop.io/repair-reason=…` becomes spec.repair, in one patch that removes the annotations. */
async function moveAnnotationsToSpec(ctx: MirrorContext, obj: KubeObject): Promise<void> {
  if (!ctx.leading()) return;
  const repair = annotationRepair(obj)!;
  const annotations = obj.metadata.annotations ?? {};
  const remove = Object.values(ANNOTATION)
    .filter((a) => a in annotations)
    .map((a) => ({ op: 'remove', path: `/metadata/annotations/${pointer(a)}` }));
  // Over the version read (else 409: read again). A failed `test` op would be a 422 with no detail,
  // the same answer as the CRD refusing the request.
  const guard = { op: 'replace', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion };
  // Once moved, spec.repair's manager is the mirror: who annotated is kept beside it until it is cleared.
  const by = managerOf(obj, (f) => ((f['f:metadata'] as Record<string, unknown> | undefined)?.['f:annotations'] as Record<string, unknown> | undefined)?.[`f:${ANNOTATION.action}`] !== undefined);
  const keepBy = by !== undefined ? [{ op: 'add', path: `/metadata/annotations/${pointer(REQUESTED_BY)}`, value: by }] : [];
  try {
    remember(ctx, `txn/${obj.metadata.name}`, await ctx.api.patch('transaction', obj.metadata.name, [guard, ...remove, ...keepBy, { op: 'add', path: '/spec/repair', value: repair }]));
  } catch (err) {
    if (statusOf(err) !== 422) throw err;
    // The request does not pass the CRD's validation (or the object changed: then the watch re-queues it).
    const now = ctx.now();
    ctx.outcomes.set(obj.metadata.name, { uid: obj.metadata.uid, condition: invalidCondition(`the txloop.io/repair annotations are not a valid repair: ${apiMessage(err as { body?: unknown })}`, obj.metadata.generation, now) });
    ctx.metrics.repairs.inc({ action: 'invalid', result: 'invalid' });
    if (ctx.leading()) remember(ctx, `txn/${obj.metadata.name}`, await ctx.api.patch('transaction', obj.metadata.name, [guard, ...remove]));
  }
}
