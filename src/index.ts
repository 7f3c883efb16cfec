/**
 * txloop: distributed transactions (TCC, sagas, 2-phase messages) with no central coordinator. etcd
 * is the only shared part; every service runs a control loop that drives its own branches to
 * completion.
 *
 * @example
 * ```ts
 * import { TxloopService, extractContext } from 'txloop';
 *
 * // A participant: registers its TCC resource and runs the control loop (leader-elected).
 * const accounts = new TxloopService({ app: 'accounts', etcd: { endpoints: ['http://127.0.0.1:2379'] } });
 * accounts.resource<{ account: string; amount: number }>('debit', {
 *   try: async ({ payload }) => freeze(payload.account, payload.amount),
 *   confirm: async ({ payload }) => applyFrozen(payload.account, payload.amount),
 *   // tryState FAILED: empty rollback; PENDING: unknown, so check your own data for this branchId
 *   cancel: async ({ payload, branchId, tryState }) => { if (tryState !== 'FAILED') await unfreezeIfFrozen(branchId, payload); },
 * });
 * await accounts.start();
 * // in its HTTP handler for POST /try:
 * //   await accounts.tryBranch(extractContext(req.headers)!, 'debit', body, { branchId: body.requestId });
 *
 * // An initiator: begins, calls the participants' Try with the xid in headers, then decides.
 * const orders = new TxloopService({ app: 'orders' });
 * await orders.start();
 * await orders.transaction({ name: 'pay order 42', timeoutMs: 10_000 }, async (tx) => {
 *   await fetch('http://127.0.0.1:8081/try', { method: 'POST', headers: tx.headers(), body: '{"account":"a","amount":30}', signal: tx.signal });
 * }); // commit: the accounts service's leader confirms; a throw above rolls back and it cancels
 *
 * // A saga: each owner registers its step; the initiator declares the steps and submits.
 * accounts.sagaStep('refund', { action: ({ payload }) => refund(payload), compensate: ({ payload }) => rebill(payload) });
 * const { xid } = await orders.saga({ name: 'return order 42', steps: [{ service: 'accounts', resource: 'refund', payload: { order: 42 } }] });
 * ```
 */
export { TxloopService, type ServiceEvents, type StartOptions, type CloseOptions } from './service.js';
export { GlobalTransaction, type SagaOptions, type SagaStepOptions, type SubmittedSaga, type BeginOptions, type CallOptions, type DecideCallOptions, type ListOptions, type WaitOptions, type TransactionView, type BranchView, type SagaStepView } from './client/index.js';
export { PreparedMessage, DEFAULT_CHECK_AFTER_MS, type PrepareMessageOptions, type MessageDestination, type MessageView, type DeliveryView } from './client/index.js';
export type { TryOptions, TryResult } from './participant/index.js';
export { DEFAULTS, type ServiceOptions } from './options.js';
export type { EtcdConnectionOptions } from './connection.js';
export type { TccResource, TryContext, PhaseTwoContext, ResourceOptions, ResourceType, UntypedResources, SagaStep, StepContext, MessageConsumer, DeliveryContext, CheckBack, CheckBackAnswer, CheckBackContext } from './resource.js';
export { XID_HEADER, DEADLINE_HEADER, injectHeaders, extractContext, type TxContext } from './context.js';
export { Mode, MODE_NAME_RULE, GlobalStatus, TryState, Action, Phase2State, Outcome, type ModeName } from './states.js';
export {
  TxloopError,
  ValidationError,
  PayloadError,
  TransactionNotFound,
  TransactionAlreadyDecided,
  DeadlineExceeded,
  BranchesNotPrepared,
  BranchRegistrationRefused,
  TryFailed,
  UnknownResource,
  NonRetryableError,
  TryOutcomeUnknown,
  ResolvedByParticipant,
  BranchNotFound,
  OperationRefused,
  RefusalReason,
  ServiceClosed,
  AbortError,
  EtcdUnavailable,
  EtcdError,
  WriteConflict,
  LeadershipLost,
  MalformedRecord,
  TerminalError,
  EtcdNotInstalledError,
  EtcdStartError,
} from './errors.js';
export {
  EtcdBarrier,
  BarrierTxn,
  BarrierOp,
  BarrierRefusal,
  BarrierRefused,
  BarrierConditionFailed,
  BarrierDatabaseError,
  DEFAULT_BARRIER_PREFIX,
  type EtcdBarrierOptions,
  type BarrierContext,
  type BarrierRecord,
  type BarrierResult,
  type BarrierTccHandlers,
  type BarrierSagaHandlers,
} from './barrier/index.js';
export {
  RestTccCoordinator,
  RestTccParticipant,
  MemoryReservations,
  RestTccClient,
  RestTccTransaction,
  RestTccTooLate,
  RestTccHeuristic,
  RestTccPending,
  RestTccTryFailed,
  RestTccCoordinatorError,
  LINK_RESOURCE,
  restTccRoutes,
  restTccPlugin,
  type RestTccRoutesOptions,
  type ParticipantLink,
  type LinkOutcome,
  type ConfirmOutcome,
  type ConfirmResult,
  type CancelResult,
  type RestTccCoordinatorOptions,
  type RestTccCallOptions,
  type RestTccParticipantOptions,
  type Reservation,
  type ReservationState,
  type ReservationStore,
  type RestTccTryRequest,
  type RestTccClientOptions,
  type RestTccRequestOptions,
} from './resttcc/index.js';
export type { Phase2Outcome, ServiceStats, QueueStats } from './stats.js';
export type { LeaderRecord, ReplicaRecord } from './leader.js';
export { TxloopMetrics, metricsFor, serveMetrics, Registry, type MetricsServerOptions } from './metrics.js';
