/** The shape of a TCC resource a participant registers, and the contexts its handlers receive. */

export interface TryContext<P = unknown> {
  readonly xid: string;
  readonly branchId: string;
  readonly resource: string;
  readonly payload: P;
  /** Epoch ms: the global is rolled back after this, so work past it is wasted. */
  readonly deadline: number;
  /** Aborted at the deadline or when the caller's signal fires. */
  readonly signal: AbortSignal;
}

export interface PhaseTwoContext<P = unknown> {
  readonly xid: string;
  readonly branchId: string;
  readonly resource: string;
  readonly payload: P;
  readonly action: 'confirm' | 'cancel';
  /**
   * 1 for the first attempt; grows with every attempt of this branch, across retries, restarts,
   * leader changes and operator retries (each attempt is recorded in etcd before its handler starts,
   * so no two attempts share a number).
   */
  readonly attempt: number;
  /**
   * Whether this branch's Try is recorded as succeeded. false in a cancel is an empty rollback
   * (see `tryState` for why): release nothing that the Try did not reserve.
   */
  readonly tryCompleted: boolean;
  /**
   * The Try's recorded outcome. FAILED: it threw, nothing to release. PENDING: unknown — it never
   * ran, or its process died after running it and before recording; if your Try may have reserved
   * something, look in your own data (keyed by branchId) rather than assume nothing happened.
   */
  readonly tryState: 'SUCCEEDED' | 'FAILED' | 'PENDING';
  /**
   * The fencing token of the leader term running this attempt: the leader key's etcd create revision,
   * a decimal integer that only grows from one term to the next. Phase 2 is at-least-once, and an
   * older attempt may still be running (its replica froze or lost its lease, or it ignored its signal
   * past the handler timeout): make your own write conditional on (fencingToken, attempt) so a stale
   * attempt cannot apply its effect after a newer one — in SQL, e.g. `… WHERE id = $branchId AND
   * (term, attempt) <= ($token, $attempt)` (compare the token as a number: `BigInt(token)` or a
   * `bigint` column); in etcd, compare the create revision of `<namespace><app>/leader` with it in
   * the same Txn.
   */
  readonly fencingToken: string;
  /** Aborted when the handler timeout passes or this replica stops leading. */
  readonly signal: AbortSignal;
}

/**
 * A TCC resource. `confirm` and `cancel` must be idempotent: they run at least once and may run again
 * after a crash, a timeout or a leader change. A replica never starts them once it knows it is not
 * the leader; `fencingToken` covers the handler already running when it stops being one.
 */
export interface TccResource<P = unknown, R = unknown> {
  try(ctx: TryContext<P>): Promise<R> | R;
  confirm(ctx: PhaseTwoContext<P>): Promise<void> | void;
  cancel(ctx: PhaseTwoContext<P>): Promise<void> | void;
}

/** The payload and result types of one resource, for a typed service (`TxloopService<{ name: ResourceType<P, R> }>`). */
export interface ResourceType<P = unknown, R = unknown> {
  payload: P;
  result: R;
}

/** A service whose resources are not declared: any name, `unknown` payloads and results. */
export type UntypedResources = Record<string, ResourceType>;

/** Names for the explicitly typed forms (`resource<P, R>`, `tryBranch<R>`): only on an untyped service. */
export type UntypedName<Resources> = string extends keyof Resources ? string : never;

/** The resource names a service accepts. */
export type ResourceName<Resources> = Extract<keyof Resources, string>;
export type PayloadOf<Resources, N extends keyof Resources> = Resources[N] extends { payload: infer P } ? P : unknown;
export type ResultOf<Resources, N extends keyof Resources> = Resources[N] extends { result: infer R } ? R : unknown;

/** How a resource's confirms and cancels are retried. */
export interface ResourceOptions {
  /**
   * `'exponential'`: the service's backoff (`retryBaseMs` doubling up to `retryMaxMs`, parked after
   * `maxAttempts`). Or a stepped schedule, the delay after each failed attempt — e.g.
   * `['5m', '10m', '30m', '1h', '24h']` (units ms, s, m, h, d, or numbers of ms): the branch is
   * parked when the attempt after the last delay fails (here the sixth), and the next attempt's
   * time is persisted, so the schedule survives restarts and leader changes.
   * @default 'exponential'
   */
  retry?: 'exponential' | readonly (string | number)[];
}

/** What a saga step's action and compensation receive. */
export interface StepContext<P = unknown> {
  readonly xid: string;
  readonly branchId: string;
  readonly resource: string;
  readonly payload: P;
  readonly action: 'action' | 'compensate';
  /** 1 for the first attempt; grows with every attempt of this step (action and compensation), as in PhaseTwoContext. */
  readonly attempt: number;
  /**
   * In a compensation: the action's recorded outcome. SUCCEEDED: undo it. FAILED: it failed for
   * good (it may still have done part of its work). PENDING: unknown — it never ran, or its process
   * died before recording; look in your own data (or use the branch barrier: an empty compensation
   * then does nothing and a late action is refused). In an action: PENDING.
   */
  readonly actionState: 'SUCCEEDED' | 'FAILED' | 'PENDING';
  /** The leader term running this attempt (PhaseTwoContext.fencingToken). */
  readonly fencingToken: string;
  /** Aborted when the handler timeout passes or this replica stops leading. */
  readonly signal: AbortSignal;
}

/**
 * A saga step a service runs for other services' sagas: `action` moves the saga forward, and
 * `compensate` undoes it when the saga fails. Both run at least once (idempotent, like confirm and
 * cancel). An action that throws NonRetryableError — or fails past its attempt limit — fails the
 * saga; any other error is retried. A compensation is retried until it succeeds, or parked for a
 * human (`txloop retry` / `resolve`).
 */
export interface SagaStep<P = unknown> {
  action(ctx: StepContext<P>): Promise<void> | void;
  compensate(ctx: StepContext<P>): Promise<void> | void;
}

/** What a message consumer's handler receives. */
export interface DeliveryContext<P = unknown> {
  readonly xid: string;
  readonly branchId: string;
  readonly resource: string;
  readonly payload: P;
  /** 1 for the first delivery attempt; grows with every attempt (PhaseTwoContext.attempt). */
  readonly attempt: number;
  /** The leader term running this attempt (PhaseTwoContext.fencingToken). */
  readonly fencingToken: string;
  readonly signal: AbortSignal;
}

/**
 * A consumer of 2-phase messages: `deliver` runs at least once per message after its producer
 * submitted it (deduplicate by `xid`/`branchId`, or with the branch barrier), retried with backoff
 * or by the consumer's stepped schedule until it succeeds, then parked for a human. Its failure
 * never rolls the producer back.
 */
export interface MessageConsumer<P = unknown> {
  deliver(ctx: DeliveryContext<P>): Promise<void> | void;
}

/** A registered resource: which mode's handlers it has. */
export type RegisteredResource = { kind: 'tcc'; handlers: TccResource } | { kind: 'saga'; handlers: SagaStep } | { kind: 'msg'; handlers: MessageConsumer };

/**
 * A check-back's answer about a prepared message whose producer never submitted nor discarded it:
 * `committed` (its local transaction committed: deliver it), `rolled-back` (it did not and never
 * will: discard it), or `unknown` (cannot tell yet: ask again later).
 */
export type CheckBackAnswer = 'committed' | 'rolled-back' | 'unknown';

/** What a check-back receives. */
export interface CheckBackContext {
  readonly xid: string;
  /** The message's name, as given to prepareMessage (the check-back was registered for it). */
  readonly name: string;
  /** Epoch ms when the message was prepared. */
  readonly preparedAt: number;
  /** Aborted when the handler timeout passes or this replica stops leading. */
  readonly signal: AbortSignal;
}

/**
 * Answers, from the producer's own data, whether the local transaction of a prepared message
 * committed. It must never guess: answer `unknown` when the data cannot tell yet. With the
 * PostgreSQL barrier, `PgBarrier.checkBack(xid)` answers definitively.
 */
export type CheckBack = (ctx: CheckBackContext) => Promise<CheckBackAnswer> | CheckBackAnswer;
