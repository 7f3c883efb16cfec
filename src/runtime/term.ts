/**
 * One leadership term: what a replica runs while it leads its service, and stops when the term ends.
 * Two workqueues (globals by xid, branches by xid/branchId), their controllers, the expectations of
 * this term's own writes, and the timers (retention sweep, stats). Sharding later means one term per
 * shard; nothing here assumes it is the only one.
 */
import type { Logger } from 'pino';
import type { Fence } from '../etcd/index.js';
import type { TxloopMetrics } from '../metrics.js';
import type { ResolvedOptions } from '../options.js';
import { errorMessage } from '../errors.js';
import { Controller } from './controller.js';
import { Expectations } from './expectations.js';
import { TerminalError } from '../errors.js';
import type { ReconcileContext, ReconcileResult } from './reconcile.js';
import { Workqueue } from './workqueue.js';

export interface TermOptions<Handlers> {
  /** The context every reconcile step gets, less what the term itself provides. */
  context: Omit<ReconcileContext<Handlers>, 'fence' | 'expectations' | 'collectAt'>;
  fence: Fence;
  /** This replica's current fence (undefined once it no longer leads); the term matches it against its own. */
  currentFence(): Fence | undefined;
  options: ResolvedOptions;
  logger: Logger;
  metrics?: TxloopMetrics;
  reconcileGlobal(ctx: ReconcileContext<Handlers>, xid: string, signal: AbortSignal): Promise<ReconcileResult>;
  reconcileBranch(ctx: ReconcileContext<Handlers>, key: string, signal: AbortSignal): Promise<ReconcileResult>;
  /** Called for a reconcile error; true when it was reported elsewhere (an etcd outage) and needs no line. */
  reportedElsewhere(err: unknown, queue: string): boolean;
  /** Publishes this term's figures; called every statsIntervalMs and at the start. */
  publishStats(term: Term<Handlers>): Promise<void>;
}

export class Term<Handlers = unknown> {
  readonly fence: Fence;
  readonly globals: Workqueue;
  readonly branches: Workqueue;
  readonly expectations = new Expectations();
  private readonly controllers: Controller[];
  /** Finished globals waiting out their retention: xid → when to collect. */
  private readonly retained = new Map<string, number>();
  private readonly timers: NodeJS.Timeout[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly o: TermOptions<Handlers>) {
    this.fence = o.fence;
    const { app } = o.context;
    const observer = o.metrics?.observer();
    // Reconcile errors (etcd trouble, conflicts) back off like handler failures do.
    const backoff = { baseDelayMs: o.options.retryBaseMs, maxDelayMs: o.options.retryMaxMs, ...(observer ? { observer } : {}) };
    this.globals = new Workqueue({ name: `${app}-globals`, ...backoff });
    this.branches = new Workqueue({ name: `${app}-branches`, ...backoff });
    const ctx: ReconcileContext<Handlers> = {
      ...o.context,
      fence: () => {
        const f = o.currentFence();
        return f && f.createRevision === this.fence.createRevision ? f : undefined;
      },
      expectations: this.expectations,
      collectAt: (xid, due) => this.retained.set(xid, due),
    };
    const onError = (queue: string) => (key: string, err: unknown) => {
      if (o.reportedElsewhere(err, queue)) return;
      const at = { xid: key.split('/')[0], key, queue, err: errorMessage(err) };
      // A terminal error is dropped until the key changes again: said once, as an error.
      if (!(err instanceof TerminalError)) o.logger.warn(at, 'reconcile failed; retrying with backoff');
      else o.logger.error(at, `reconcile of ${key} failed for good; not retried until its records change`);
    };
    this.controllers = [
      new Controller({ name: this.globals.name, queue: this.globals, concurrency: Math.max(2, Math.ceil(o.options.concurrency / 2)), reconcile: (xid, signal) => o.reconcileGlobal(ctx, xid, signal), onError: onError('globals') }),
      new Controller({ name: this.branches.name, queue: this.branches, concurrency: o.options.concurrency, reconcile: (key, signal) => o.reconcileBranch(ctx, key, signal), onError: onError('branches') }),
    ];
  }

  start(): void {
    const { options, metrics } = this.o;
    metrics?.track(this.globals);
    metrics?.track(this.branches);
    for (const c of this.controllers) c.start();
    const stats = setInterval(() => void this.o.publishStats(this), options.statsIntervalMs);
    // One sweep timer for all retained transactions rather than a timer each.
    const sweep = setInterval(() => this.sweep(), Math.min(30_000, Math.max(100, Math.floor(options.retentionMs / 4))));
    for (const t of [stats, sweep]) {
      t.unref();
      this.timers.push(t);
    }
    void this.o.publishStats(this);
  }

  /** Stops the controllers (their reconciles see an aborted signal) and the timers. Safe to call twice. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      await Promise.all(this.controllers.map((c) => c.stop()));
      this.o.metrics?.untrack(this.globals);
      this.o.metrics?.untrack(this.branches);
    })();
    return this.stopping;
  }

  /** A global (or one of its members) changed: look at it. */
  globalChanged(xid: string, deleted: boolean): void {
    if (deleted) this.retained.delete(xid);
    this.globals.add(xid);
  }

  /** A branch (or its order) changed: look at it. */
  branchChanged(xid: string, branchId: string): void {
    this.branches.add(`${xid}/${branchId}`);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [xid, due] of this.retained) {
      if (due <= now) {
        this.retained.delete(xid);
        this.globals.add(xid);
      }
    }
  }
}
