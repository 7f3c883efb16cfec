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
