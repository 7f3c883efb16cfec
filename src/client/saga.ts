/**
 * Submitting a saga: the initiator declares every step up front and writes the saga with its first
 * group ordered, in one Txn; from then on the steps' owners drive it (modes/saga/), so the call
 * returns as soon as etcd holds the saga and nothing depends on the initiator staying up.
 */
import type { Logger } from 'pino';
import type { CallGuard } from '../calls.js';
import { ValidationError } from '../errors.js';
import { sagaRules } from '../modes/index.js';
import { rejectUnknownOptions } from '../options.js';
import { GlobalStatus, Mode } from '../states.js';
import { encodePayload, newXid, validateApp, validateBranchId, validateResource, withEvent, type GlobalRecord, type SagaStepPlan, type Store } from '../store/index.js';
import { validName, validTimeout } from './initiator.js';

/** One step of a saga: the service that owns it runs its `resource`'s action (and, if the saga fails, its compensation). */
export interface SagaStepOptions {
  /** The owning service (its app name); it registers the step with `service.sagaStep(resource, …)`. */
  service: string;
  resource: string;
  /** Handed to both the action and the compensation. @default null */
  payload?: unknown;
  /** The step's branch id (shown by the CLI, handed to its handlers). @default `step<N>`, N counting steps from 1 */
  branchId?: string;
}

export interface SagaOptions {
  /** What the saga does, for people reading `txloop get`. 1-128 characters. */
  name: string;
  /**
   * The steps in order. An array in place of a step is a group whose steps run concurrently; the
   * next step (or group) starts once every step of the group succeeded. E.g.
   * `[order, [inventory, shipping], payment]`.
   */
  steps: readonly (SagaStepOptions | readonly SagaStepOptions[])[];
  /** A saga still running this long after submission is compensated. @default ServiceOptions.defaultTimeoutMs */
  timeoutMs?: number;
  /** Aborted before the write: AbortError, nothing written. */
  signal?: AbortSignal;
}

/** A submitted saga. */
export interface SubmittedSaga {
  readonly xid: string;
  /** Epoch ms: a saga still running then is compensated. */
  readonly deadline: number;
}

export interface SagaSubmitter {
  app: string;
  identity: string;
  store: Store;
  calls: CallGuard;
  logger: Logger;
  defaultTimeoutMs: number;
  maxPayloadBytes: number;
}

/** The most bytes one of a saga's Txns may carry (etcd refuses requests over 1.5 MiB by default). */
const MAX_SAGA_BYTES = 1_000_000;

/**
 * Refuses a saga one of whose Txns etcd would refuse as too large: the submit (the saga's record
 * with every payload, and group 0's branches with theirs again), and each group's ordering (its
 * branches, with the largest branch of the group before it, whose finish carries them).
 */
function fitsEtcd(global: GlobalRecord, first: { payload: unknown }[], steps: SagaStepPlan[]): void {
  const bytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v) ?? 'null');
  const submit = bytes(global) + first.reduce((n, b) => n + 2 * bytes(b.payload) + 600, 0);
  if (submit > MAX_SAGA_BYTES) throw new ValidationError('options.steps', `the saga's submit would write about ${submit} bytes in one etcd Txn, over ${MAX_SAGA_BYTES}; keep large payloads in your own store and pass references`);
  const groups = Math.max(...steps.map((s) => s.group));
  for (let g = 1; g <= groups; g++) {
    const before = Math.max(...steps.filter((s) => s.group === g - 1).map((s) => bytes(s.payload)));
    const ordering = before + steps.filter((s) => s.group === g).reduce((n, s) => n + 2 * bytes(s.payload) + 600, 0);
    if (ordering > MAX_SAGA_BYTES) throw new ValidationError(`options.steps[${g}]`, `ordering this group would write about ${ordering} bytes in one etcd Txn, over ${MAX_SAGA_BYTES}; keep large payloads in your own store and pass references`);
  }
}

export function submitSaga(o: SagaSubmitter, options: SagaOptions): Promise<SubmittedSaga> {
  return o.calls.run('saga', undefined, options?.signal, true, async () => {
    if (typeof options !== 'object' || options === null) throw new ValidationError('options', 'must be { name, steps, timeoutMs? }');
    rejectUnknownOptions(options, ['name', 'steps', 'timeoutMs', 'signal'], 'options.');
    const name = validName(options.name);
    const timeoutMs = validTimeout(options.timeoutMs, o.defaultTimeoutMs);
    const steps = planSteps(options.steps, o.maxPayloadBytes, o.store.edge.maxTxnOps);
    const now = Date.now();
    const xid = newXid(o.app, now);
    const groups = steps.reduce((n, s) => Math.max(n, s.group + 1), 0);
    const global: GlobalRecord = withEvent(
      { mode: Mode.SAGA, v: 1, xid, app: o.app, name, status: GlobalStatus.RUNNING, createdAt: now, timeoutMs, deadline: now + timeoutMs, steps, events: [] },
      'Submitted',
      `submitted by ${o.identity}: ${steps.length} steps in ${groups} groups, timeout ${timeoutMs}ms`,
      now,
    );
    const first = steps.filter((s) => s.group === 0).map((s) => sagaRules.stepBranch(global, s, now));
    fitsEtcd(global, first, steps);
    await o.store.sagas.submit(global, first);
    o.logger.debug({ xid, name, steps: steps.length }, 'saga submitted');
    return { xid, deadline: global.deadline };
  });
}

/**
 * The declared steps, validated and numbered. A group is ordered (and compensated) in one Txn with
 * the write that finishes the group before it: three puts per step, besides that write's own four.
 */
function planSteps(steps: unknown, maxPayloadBytes: number, maxTxnOps: number): SagaStepPlan[] {
  if (!Array.isArray(steps) || steps.length === 0) throw new ValidationError('options.steps', 'must be a non-empty array of steps ({ service, resource, payload? }) or arrays of them (concurrent groups)');
  const maxGroup = Math.floor((maxTxnOps - 4) / 3);
  const plan: SagaStepPlan[] = [];
  const ids = new Set<string>();
  steps.forEach((entry: unknown, group) => {
    const members = Array.isArray(entry) ? entry : [entry];
    const where = `options.steps[${group}]`;
    if (members.length === 0) throw new ValidationError(where, 'is an empty group: a group needs at least one step');
    if (members.length > maxGroup) throw new ValidationError(where, `has ${members.length} concurrent steps; at most ${maxGroup} fit the one etcd Txn that orders a group (maxTxnOps ${maxTxnOps})`);
    members.forEach((step: unknown, j) => {
      const field = Array.isArray(entry) ? `${where}[${j}]` : where;
      if (typeof step !== 'object' || step === null) throw new ValidationError(field, 'must be a step { service, resource, payload?, branchId? }');
      rejectUnknownOptions(step as Record<string, unknown>, ['service', 'resource', 'payload', 'branchId'], `${field}.`);
      const s = step as SagaStepOptions;
      const branchId = s.branchId === undefined ? `step${plan.length + 1}` : validateBranchId(s.branchId, `${field}.branchId`);
      if (ids.has(branchId)) throw new ValidationError(`${field}.branchId`, `${JSON.stringify(branchId)} is used by another step of this saga; branch ids are unique within a saga`);
      ids.add(branchId);
      plan.push({ branchId, owner: validateApp(s.service, `${field}.service`), resource: validateResource(s.resource, `${field}.resource`), group, payload: encodePayload(s.payload, maxPayloadBytes, `${field}.payload`) });
    });
  });
  return plan;
}
