/**
 * Wraps TCC handlers and saga steps in a barrier: each handler gets the barrier's unit of work (an etcd Txn
 * builder, a SQL client in a transaction) and runs only when the rules say so. What both barriers
 * share; each store's barrier passes its own `run`.
 */
import type { PhaseTwoContext, SagaStep, StepContext, TccResource, TryContext } from '../resource.js';
import type { BarrierRefused } from './errors.js';
import { BarrierOp, type BarrierContext, type BarrierResult } from './rules.js';

export type BarrierRun<W> = <T>(ctx: BarrierContext, op: BarrierOp, fn: (work: W) => Promise<T> | T) => Promise<BarrierResult<T>>;

/**
 * TCC handlers that write through a barrier. `work` is the barrier's unit of work: write your data
 * through it, and the write lands together with the barrier record, or neither does.
 */
export interface BarrierTccHandlers<P, R, W> {
  /** Runs at most once per branch; not at all after the branch's cancel (then the Try fails with {@link BarrierRefused}). */
  try(ctx: TryContext<P>, work: W): Promise<R> | R;
  /** Runs at most once per branch (its effect, that is: a failed run writes nothing and is retried). */
  confirm(ctx: PhaseTwoContext<P>, work: W): Promise<void> | void;
  /** Runs at most once per branch, and never when its Try did not run (empty rollback: recorded, and the Try is then refused). */
  cancel(ctx: PhaseTwoContext<P>, work: W): Promise<void> | void;
}

/**
 * The resource to register with `service.resource(name, …)`. A Try already applied (a retried call
 * that runs the handler again) returns undefined instead of running twice.
 */
export function tccResource<P, R, W>(run: BarrierRun<W>, handlers: BarrierTccHandlers<P, R, W>): TccResource<P, R | undefined> {
  return {
    async try(ctx) {
      const done = await run(ctx, BarrierOp.TRY, (work) => handlers.try(ctx, work));
      return done.applied ? done.value : undefined;
    },
    async confirm(ctx) {
      await run(ctx, BarrierOp.CONFIRM, (work) => handlers.confirm(ctx, work));
    },
    async cancel(ctx) {
      await run(ctx, BarrierOp.CANCEL, (work) => handlers.cancel(ctx, work));
    },
  };
}

/**
 * Saga step handlers that write through a barrier: the action's effect and the compensation's each
 * land at most once, with the barrier record; a compensation whose action never applied is an empty
 * compensation (recorded, and the late action is then refused with {@link BarrierRefused}).
 */
export interface BarrierSagaHandlers<P, W> {
  action(ctx: StepContext<P>, work: W): Promise<void> | void;
  compensate(ctx: StepContext<P>, work: W): Promise<void> | void;
}

/** The saga step to register with `service.sagaStep(name, …)`. */
export function sagaStep<P, W>(run: BarrierRun<W>, handlers: BarrierSagaHandlers<P, W>): SagaStep<P> {
  return {
    async action(ctx) {
      await run(ctx, BarrierOp.ACTION, (work) => handlers.action(ctx, work));
    },
    async compensate(ctx) {
      await run(ctx, BarrierOp.COMPENSATE, (work) => handlers.compensate(ctx, work));
    },
  };
}
