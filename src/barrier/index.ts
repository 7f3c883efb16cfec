/**
 * The branch barrier (seed 003's rules for a participant's handlers, atomic with its own data):
 * duplicates do nothing, an empty rollback succeeds and blocks its late Try, a stale term is
 * refused. This folder's etcd barrier is part of `txloop`; the PostgreSQL one is the subpath
 * `txloop/barrier/postgres` (barrier/postgres/), so that only its users load it.
 */
export { EtcdBarrier, BarrierTxn, DEFAULT_BARRIER_PREFIX, type EtcdBarrierOptions } from './etcd.js';
export { BarrierRefused, BarrierConditionFailed, BarrierDatabaseError } from './errors.js';
export { tccResource, sagaStep, type BarrierTccHandlers, type BarrierSagaHandlers, type BarrierRun } from './handlers.js';
export { BarrierOp, BarrierRefusal, barrierCall, decide, compareFences, type BarrierContext, type BarrierRecord, type BarrierResult, type BarrierDecision, type BarrierCall, type BarrierFence } from './rules.js';
