/** The mode-agnostic control loop: manager, leadership term, router, workqueues and controllers. */
export { Manager, type ManagerOptions } from './manager.js';
export { Term, type TermOptions } from './term.js';
export { Router, type RouterOptions } from './router.js';
export { Controller, type ControllerOptions, type ControllerLogger } from './controller.js';
export { Workqueue, type WorkqueueOptions, type WorkqueueObserver, type WorkqueueStats } from './workqueue.js';
export { Expectations } from './expectations.js';
export { TermHistory } from './term-history.js';
export { MalformedRecords, MALFORMED_KINDS, type MalformedKind } from './malformed.js';
export { BranchCounts, ServiceCounters, serviceStats, type StatsSource } from './stats.js';
export { requireFence, type ReconcileContext, type ReconcileResult, type TermEvents } from './reconcile.js';
