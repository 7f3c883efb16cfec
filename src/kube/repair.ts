/**
 * Declarative repair: a Transaction's `spec.repair` (or the `txloop.io/repair*` annotations, which
 * the mirror first moves into spec.repair so the CRD validates them) asks the mirror to run exactly
 * the CLI's repair (cli/repairs.ts: the same Txn, the same refusals). Its outcome becomes a
 * `Repaired` or `RepairRefused` condition stamped with the request's generation, and the request is
 * cleared; a request whose generation already has an outcome is cleared without running again, so
 * a mirror that dies between the repair and the clear never repeats it.
 */
import { EtcdError, MalformedRecord, TxloopError, WriteConflict } from '../errors.js';
import { CliError, abortRepair, ownerOf, resolveRepair, retryRepair } from '../cli/index.js';
import { validateBranchId } from '../store/index.js';
import type { Resolution, Store } from '../store/index.js';
import type { KubeObject } from './api.js';
import type { Condition } from './objects.js';

export const ANNOTATION = {
  action: 'txloop.io/repair',
  reason: 'txloop.io/repair-reason',
  branch: 'txloop.io/repair-branch',
  as: 'txloop.io/repair-as',
} as const;

export interface RepairRequest {
  action: 'retry' | 'abort' | 'resolve';
  reason: string;
  branch?: string;
  as?: Resolution['as'];
}

const ACTIONS = new Set(['retry', 'abort', 'resolve']);
const RESOLUTIONS = new Set(['confirmed', 'cancelled', 'compensated', 'delivered']);

/** The repair asked for in spec.repair, validated again (the CRD's schema may be older than this mirror): a request, or why it cannot run. */
export function specRepair(obj: KubeObject): { request: RepairRequest } | { invalid: string } | undefined {
  const r = obj.spec?.repair;
  if (r === undefined || r === null) return undefined;
  if (typeof r !== 'object' || Array.isArray(r)) return { invalid: 'spec.repair must be an object' };
  const { action, reason, branch, as } = r as Record<string, unknown>;
  if (typeof action !== 'string' || !ACTIONS.has(action)) return { invalid: `spec.repair.action must be retry, abort or resolve, not ${JSON.stringify(action)}` };
  if (typeof reason !== 'string' || reason.trim().length === 0 || reason.length > 1000) return { invalid: 'spec.repair.reason must say why, in 1-1000 characters' };
  if (branch !== undefined) {
    if (typeof branch !== 'string') return { invalid: 'spec.repair.branch must be a branch id' };
    try {
      validateBranchId(branch);
    } catch (err) {
      return { invalid: `spec.repair.branch: ${(err as Error).message}` };
    }
  }
  if (as !== undefined && (typeof as !== 'string' || !RESOLUTIONS.has(as))) return { invalid: 'spec.repair.as must be confirmed, cancelled, compensated or delivered' };
  if (action === 'resolve' && (branch === undefined || as === undefined)) return { invalid: 'resolve needs a branch and as' };
  if (action === 'abort' && branch !== undefined) return { invalid: 'abort rolls back the whole transaction: it takes no branch' };
  return {
    request: {
      action: action as RepairRequest['action'],
      reason: reason.trim(),
      ...(branch !== undefined ? { branch: branch as string } : {}),
      ...(as !== undefined ? { as: as as Resolution['as'] } : {}),
    },
  };
}

/** The repair asked for with `kubectl annotate`, as the spec.repair it becomes (unvalidated: the CRD checks it). */
export function annotationRepair(obj: KubeObject): Record<string, string> | undefined {
  const a = obj.metadata.annotations;
  const action = a?.[ANNOTATION.action];
  if (action === undefined) return undefined;
  const out: Record<string, string> = { action };
  for (const f of ['reason', 'branch', 'as'] as const) {
    const v = a?.[ANNOTATION[f]];
    if (v !== undefined) out[f] = v;
  }
  return out;
}

/** Whether this generation's request already has its outcome in status (then it only needs clearing). */
export function outcomeRecorded(obj: KubeObject): Condition | undefined {
  const generation = obj.metadata.generation;
  const conditions = (obj.status?.conditions as Condition[] | undefined) ?? [];
  return conditions.find((c) => (c.type === 'Repaired' || c.type === 'RepairRefused') && c.status === 'True' && c.observedGeneration === generation);
}

/** Who set the annotations (kept across their move into spec.repair, where the mirror is the field's manager). */
export const REQUESTED_BY = 'txloop.io/repair-requested-by';

/** The field manager (kubectl-annotate, kubectl-patch, a GitOps tool, ...) that wrote `field` of the object. */
export function managerOf(obj: KubeObject, has: (fields: Record<string, unknown>) => boolean): string | undefined {
  for (const f of obj.metadata.managedFields ?? []) if (f.fieldsV1 && has(f.fieldsV1) && f.manager && f.manager !== 'txloop-mirror') return f.manager;
  return undefined;
}

/**
 * Who asked, as the repair records it (the CLI records `operator:<login>`): `kubernetes:<field
 * manager>`, stamped with the request (the object's uid and generation) so a repair run again after
 * a crash recognises its own earlier effect. Kubernetes tells the mirror the tool, not the person:
 * the apiserver's audit log has who.
 */
export function requester(obj: KubeObject): string {
  const setter = obj.metadata.managedFields?.find((f) => (f.fieldsV1?.['f:spec'] as Record<string, unknown> | undefined)?.['f:repair'] !== undefined)?.manager;
  // spec.repair set by the mirror itself is a moved annotation request: who annotated is kept beside it.
  const manager = setter === 'txloop-mirror' ? obj.metadata.annotations?.[REQUESTED_BY] : setter;
  return `kubernetes:${manager ?? 'unknown'}#${(obj.metadata.uid ?? '').slice(0, 8)}.${obj.metadata.generation ?? 0}`;
}

/**
 * Runs the request against etcd with the CLI's repair. A refusal (the invariants forbid it, no such
 * transaction or branch, a malformed record) is an outcome, returned; an etcd failure throws, so the
 * mirror retries it with backoff.
 */
export async function runRepair(store: Store, xid: string, request: RepairRequest, by: string): Promise<{ repaired: boolean; message: string }> {
  try {
    return await runOnce(store, xid, request, by);
  } catch (err) {
    // etcd failing, or a write racing another: not an answer to the request, so it is tried again.
    if (err instanceof EtcdError || err instanceof WriteConflict || !(err instanceof TxloopError || err instanceof CliError || err instanceof MalformedRecord)) throw err;
    // A mirror that died after the repair but before recording its outcome runs it again: the
    // record then already carries this request's stamp, and the refusal is this request's own success.
    if (await doneBy(store, xid, request, by)) return { repaired: true, message: `${request.action} already done by this request (${by})` };
    return { repaired: false, message: err.message.slice(0, 1024) };
  }
}

/** Whether the transaction's record shows `request` done with this very `by` stamp (abort: the decision; resolve: the branch's resolution). */
async function doneBy(store: Store, xid: string, request: RepairRequest, by: string): Promise<boolean> {
  try {
    if (request.action === 'abort') return (await store.globals.get(xid))?.record.decision?.by === by;
    if (request.branch === undefined) return false;
    const owner = await ownerOf(store, { xid, branchId: request.branch });
    const branch = (await store.branches.get(owner, xid, request.branch))?.record;
    if (request.action === 'resolve') return branch?.phase2?.resolution?.by === by;
    // A retry leaves its mark in the branch's timeline (store/repairs.ts).
    return branch?.events.some((e) => e.type === 'Retried' && e.message === `re-queued by ${by}`) ?? false;
  } catch (err) {
    if (err instanceof EtcdError) throw err;
    return false; // unreadable: not shown done
  }
}

async function runOnce(store: Store, xid: string, request: RepairRequest, by: string): Promise<{ repaired: boolean; message: string }> {
  {
    const result =
      request.action === 'retry'
        ? await retryRepair(store, { xid, ...(request.branch !== undefined ? { branchId: request.branch } : {}) }, by)
        : request.action === 'abort'
          ? await abortRepair(store, xid, { by, reason: request.reason, howToForce: 'use txloop abort --force' })
          : await resolveRepair(store, { xid, branchId: request.branch! }, { as: request.as!, reason: request.reason, by });
    const lines = [...result.lines, ...result.warnings];
    return { repaired: true, message: (lines.length > 0 ? lines.join('; ') : `${request.action}: nothing to do`).slice(0, 1024) };
  }
}

/** The condition a repair's outcome becomes. */
export function repairCondition(outcome: { repaired: boolean; message: string }, request: RepairRequest, generation: number | undefined, now: number): Condition {
  return {
    type: outcome.repaired ? 'Repaired' : 'RepairRefused',
    status: 'True',
    reason: outcome.repaired ? `${cap(request.action)}Done` : `${cap(request.action)}Refused`,
    message: outcome.message,
    lastTransitionTime: new Date(now).toISOString(),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
}

/** The condition of a request that cannot run as written. */
export function invalidCondition(message: string, generation: number | undefined, now: number): Condition {
  return { type: 'RepairRefused', status: 'True', reason: 'InvalidRequest', message: message.slice(0, 1024), lastTransitionTime: new Date(now).toISOString(), ...(generation !== undefined ? { observedGeneration: generation } : {}) };
}

const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
