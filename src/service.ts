/**
 * A txloop service: the initiator API (begin/commit/rollback/get), the participant API (TCC
 * resources and their Try), and the control loop that drives this service's part of every
 * transaction to completion on the elected leader replica.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { injectHeaders, type TxContext } from './context.js';
import {
  AbortError,
  DeadlineExceeded,
  ServiceClosed,
  TxloopError,
  TransactionAlreadyDecided,
  WriteConflict,
  TransactionNotFound,
  TryFailed,
  UnknownResource,
  ValidationError,
  errorMessage,
} from './errors.js';
import type { PayloadOf, ResultOf, ResourceName, TccResource, UntypedName, UntypedResources } from './resource.js';
import { branchQueueKey, reconcileBranch, type Phase2Outcome } from './modes/tcc/branch-step.js';
import { Controller } from './runtime/controller.js';
import { ConnectionState } from './runtime/connection-state.js';
import { createEtcdClient } from './etcd/client.js';
import { endpointsOf, toTxloopError } from './etcd/errors.js';
import { reconcileGlobal } from './modes/tcc/global-step.js';
import { Informer, type CachedKv } from './cache/informer.js';
import { appOfXid, newBranchId, newWriteId, newXid, validateApp, validateBranchId, validateResource, validateXid } from './store/keys.js';
import { LeaderElector } from './etcd/election.js';
import { defaultLogger } from './logger.js';
import { MalformedRecords, type MalformedKind } from './runtime/malformed.js';
import { defaultEndpoints, rejectUnknownOptions, resolveOptions, type ResolvedOptions, type ServiceOptions } from './options.js';
import {
  GlobalStatus,
  TryState,
  actionFor,
  branchStatus,
  encodePayload,
  isTerminal,
  MalformedRecord,
  parseBranch,
  parseGlobal,
  parseLeaderRecord,
  parseLink,
  parseOrder,
  parseStatsRecord,
  withEvent,
  type BranchRecord,
  type GlobalRecord,
  type LinkRecord,
  type ServiceStats,
} from './store/records.js';
import { Store, cmp, op, type Fence } from './store/store.js';
import { Workqueue, type WorkqueueStats } from './runtime/workqueue.js';
import { cancelWatcher } from './etcd/watch.js';
import { metricsFor, type TxloopMetrics } from './metrics.js';

export interface BeginOptions {
  /** What the transaction does, for people reading `txloop get`. 1-128 characters. */
  name: string;
  /** Rolled back if not decided within this many ms. @default ServiceOptions.defaultTimeoutMs */
  timeoutMs?: number;
  /**
   * The caller's signal: aborted before the write, begin() throws AbortError and writes nothing;
   * aborted while the write is in flight, it throws AbortError with `maybeWritten`.
   */
  signal?: AbortSignal;
}

export interface DecideCallOptions {
  /** Recorded with the decision and shown by `txloop describe`. */
  reason?: string;
  /** Aborted before the decision is sent: AbortError, nothing written. While in flight: AbortError with `maybeWritten` (read the transaction to know). */
  signal?: AbortSignal;
}

/** For calls that only read: aborting the signal makes the call reject with AbortError at once. */
export interface CallOptions {
  signal?: AbortSignal;
}

export interface ListOptions extends CallOptions {
  /** Whose transactions. @default this service */
  app?: string;
  /** Only these statuses. @default every status */
  status?: GlobalStatus | GlobalStatus[];
}

export interface WaitOptions extends CallOptions {
  /** Give up (DeadlineExceeded) after this long. @default 60_000 */
  timeoutMs?: number;
}

export interface StartOptions extends CallOptions {
  /** Fail with EtcdUnavailable if the first list of this service's keys has not succeeded by then. @default 30_000 */
  timeoutMs?: number;
}

export interface CloseOptions extends CallOptions {
  /**
   * How long to wait for Trys in flight to finish and record their outcome (never past their own
   * deadline); when it passes, their handlers' signals are aborted. Resigning leadership and stopping
   * the loops then get at most 5 s more before the etcd client is closed regardless, so close()
   * finishes within `timeoutMs` + 5 s. Aborting `signal` skips every wait. @default 30_000
   */
  timeoutMs?: number;
}

export interface TryOptions {
  /**
   * The caller's signal, handed to the Try handler (which is also aborted at the transaction's
   * deadline). If it fires before the handler ran, or the handler fails after it fired, the branch
   * is recorded as failed (so commit refuses it) and tryBranch throws AbortError. A handler that
   * finishes its work anyway is recorded as succeeded, and its result returned.
   */
  signal?: AbortSignal;
  /**
   * Makes the Try idempotent across retries of the call (TCC's idempotency rule): the same id in the same
   * transaction registers one branch only. A Try that already succeeded is not run again
   * (`replayed: true`, `result` undefined); one that failed throws TryFailed again; one still
   * PENDING (its first call died) runs again. 1-64 letters, digits, '.', '_' or '-' (a UUID or ULID fits).
   * @default a new random id: every call is a new branch
   */
  branchId?: string;
}

/**
 * What tryBranch returns: the handler's result, or — when a retried call found the branch already
 * succeeded under its `branchId` — no result at all (the handler did not run again). Check
 * `replayed` before using `result`.
 */
export type TryResult<R> =
  | { readonly branchId: string; readonly replayed: false; readonly result: R }
  | { readonly branchId: string; readonly replayed: true; readonly result?: undefined };

/** A branch as the initiator sees it. */
export interface BranchView {
  branchId: string;
  owner: string;
  resource: string;
  tryState: LinkRecord['tryState'];
  action?: LinkRecord['action'];
  state?: LinkRecord['state'];
  attempts: number;
  lastError?: string;
  resolution?: LinkRecord['resolution'];
}

export interface TransactionView {
  xid: string;
  app: string;
  name: string;
  status: GlobalStatus;
  createdAt: Date;
  deadline: Date;
  decision?: GlobalRecord['decision'];
  completedAt?: Date;
  heuristic: boolean;
  branches: BranchView[];
}

export interface ServiceEvents {
  /** This replica started or stopped leading its service. */
  leader: [{ leading: boolean }];
  /** A confirm/cancel attempt finished on this replica. */
  phase2: [Phase2Outcome];
  /** A global this service initiated became COMMITTED or ROLLED_BACK. */
  completed: [{ xid: string; status: GlobalStatus; heuristic: boolean }];
  /** A finished global was deleted after its retention. */
  collected: [{ xid: string }];
}

/** Handle on a transaction this service began. Pass `context` (or `headers()`) along with Try calls. */
export class GlobalTransaction implements TxContext {
  /** Aborts at the deadline: hand it to fetch() and friends so Try calls stop when it passes. */
  readonly signal: AbortSignal;

  constructor(
    private readonly service: Pick<TxloopService<object>, 'commit' | 'rollback'>,
    readonly xid: string,
    readonly name: string,
    readonly deadline: number,
  ) {
    this.signal = AbortSignal.timeout(Math.max(0, deadline - Date.now()));
  }

  get context(): TxContext {
    return { xid: this.xid, deadline: this.deadline };
  }

  /** Headers that carry this transaction to a participant over HTTP. */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    return injectHeaders(this.context, extra);
  }

  commit(options?: DecideCallOptions): Promise<void> {
    return this.service.commit(this.xid, options);
  }

  rollback(options?: DecideCallOptions): Promise<void> {
    return this.service.rollback(this.xid, options);
  }
}

interface LeaderState {
  fence: Fence;
  globals: Workqueue;
  branches: Workqueue;
  controllers: Controller[];
  statsTimer: NodeJS.Timeout;
  /** Finished globals waiting out their retention: xid → when to collect. */
  retained: Map<string, number>;
  sweepTimer: NodeJS.Timeout;
}

/**
 * One service's txloop engine. `Resources` optionally types its TCC resources by name, so that a
 * misspelt resource or a wrong payload fails to compile:
 *
 * ```ts
 * type Bank = { debit: { payload: { account: string; amount: number }; result: { frozen: number } } };
 * const bank = new TxloopService<Bank>({ app: 'bank' });
 * bank.resource('debit', { try: ({ payload }) => freeze(payload), confirm, cancel });
 * const r = await bank.tryBranch(ctx, 'debit', { account: 'a', amount: 5 }); // r.result: { frozen: number }
 * ```
 *
 * Without it every name and payload is accepted (`unknown`).
 */
export class TxloopService<Resources extends object = UntypedResources> extends EventEmitter<ServiceEvents> {
  readonly app: string;
  readonly logger: Logger;
  private readonly options: ResolvedOptions;
  private readonly client: Etcd3;
  private readonly endpoints: readonly string[];
  private readonly connection: ConnectionState;
  private readonly malformed: MalformedRecords;
  private readonly ownsClient: boolean;
  private readonly store: Store;
  private readonly resources = new Map<string, TccResource>();
  private readonly identity: string;
  private informer: Informer | undefined;
  private elector: LeaderElector | undefined;
  private leader: LeaderState | undefined;
  /** xid → link keys in the cache, so completion checks don't scan the whole cache. */
  private readonly linkIndex = new Map<string, Set<string>>();
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  /** Aborted by close(): ends a start() still waiting for etcd and every wait in close itself. */
  private readonly closed = new AbortController();
  /** Aborted when close() stops waiting for Trys in flight: their handlers are told to stop. */
  private readonly triesCutOff = new AbortController();
  private readonly counters = { succeeded: 0, failed: 0, parked: 0, completed: 0, collected: 0 };
  private readonly metrics: TxloopMetrics | undefined;
  /** Trys in flight → their transaction's deadline. */
  private readonly triesInFlight = new Map<Promise<unknown>, number>();

  constructor(options: ServiceOptions) {
    super();
    this.options = resolveOptions(options);
    this.app = this.options.app;
    // Every line this service logs names its app, whichever logger the user passed.
    this.logger = (this.options.logger ?? defaultLogger()).child({ app: this.app });
    this.identity = this.options.identity || `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
    this.ownsClient = !this.options.client;
    this.client = this.options.client ?? createEtcdClient(this.options.etcd);
    this.endpoints = this.options.client ? endpointsOf(this.options.client) : (this.options.etcd?.endpoints ?? defaultEndpoints());
    this.connection = new ConnectionState(this.endpoints, this.logger);
    this.malformed = new MalformedRecords(this.logger);
    this.store = new Store(this.client, this.options.namespace, this.options.maxTxnOps);
    this.metrics = this.options.metrics ? metricsFor(this.options.metrics) : undefined;
    this.metrics?.trackMalformed(this.app, this.malformed);
  }

  // -------------------------------------------------------------------------------------------
  // Participant API

  /** Registers a TCC resource by name. Register every resource before start() so no branch waits on it. */
  resource<N extends ResourceName<Resources>>(name: N, handlers: TccResource<PayloadOf<Resources, N>, ResultOf<Resources, N>>): this;
  /** Registers a TCC resource, typing its payload and result here (`resource<Payload, Result>(…)`). */
  resource<P, R = unknown>(name: UntypedName<Resources>, handlers: TccResource<P, R>): this;
  resource(name: string, handlers: TccResource<never, unknown>): this {
    validateResource(name, 'name');
    if (typeof handlers !== 'object' || handlers === null) throw new ValidationError('handlers', 'must be an object with try, confirm and cancel functions');
    for (const fn of ['try', 'confirm', 'cancel'] as const) {
      if (typeof handlers[fn] !== 'function') throw new ValidationError(`handlers.${fn}`, `resource ${name} needs a ${fn} function`);
    }
    if (this.resources.has(name)) throw new ValidationError('name', `resource ${name} is already registered`);
    this.resources.set(name, handlers as unknown as TccResource);
    return this;
  }

  /**
   * Runs this service's Try for `resource` inside the initiator's transaction: registers the branch
   * first (refused once the global was decided: anti-hanging), then runs the handler, then records
   * whether it succeeded. Throws TryFailed if the handler threw.
   */
  tryBranch<N extends ResourceName<Resources>>(ctx: TxContext, resource: N, payload: PayloadOf<Resources, N>, options?: TryOptions): Promise<TryResult<ResultOf<Resources, N>>>;
  /** tryBranch with the handler's result type given here (`tryBranch<Result>(…)`). */
  tryBranch<R>(ctx: TxContext, resource: UntypedName<Resources>, payload: unknown, options?: TryOptions): Promise<TryResult<R>>;
  async tryBranch(ctx: TxContext, resource: string, payload: unknown, options: TryOptions = {}): Promise<TryResult<unknown>> {
    this.assertOpen();
    if (typeof ctx !== 'object' || ctx === null) throw new ValidationError('ctx', 'must be a transaction context { xid, deadline }');
    const xid = validateXid(ctx.xid, 'ctx.xid');
    if (typeof ctx.deadline !== 'number' || !Number.isSafeInteger(ctx.deadline) || ctx.deadline <= 0) {
      throw new ValidationError('ctx.deadline', 'must be epoch milliseconds');
    }
    rejectUnknownOptions(options, ['signal', 'branchId'], 'options.');
    validateResource(resource);
    const handler = this.resources.get(resource);
    if (!handler) throw new UnknownResource(this.app, resource);
    const data = encodePayload(payload, this.options.maxPayloadBytes);
    const branchId = options.branchId === undefined ? newBranchId() : validateBranchId(options.branchId, 'options.branchId');
    throwIfAborted(options.signal, xid);
    if (Date.now() >= ctx.deadline) throw new DeadlineExceeded(xid, `transaction ${xid} passed its deadline; Try not started`);
    const running = this.runTry(xid, ctx.deadline, branchId, resource, handler, data, options.signal).catch((err: unknown) => {
      throw this.publicError(err, `try of ${resource} in ${xid}`);
    });
    // close() waits for Trys in flight: a Try whose result is never recorded leaves its cancel unsure.
    this.triesInFlight.set(running, ctx.deadline);
    try {
      return await running;
    } finally {
      this.triesInFlight.delete(running);
    }
  }

  private async runTry(xid: string, deadline: number, branchId: string, resource: string, handler: TccResource, data: unknown, callerSignal: AbortSignal | undefined): Promise<TryResult<unknown>> {
    const now = Date.now();
    const record: BranchRecord = withEvent(
      { v: 1, xid, app: appOfXid(xid), branchId, owner: this.app, resource, payload: data, createdAt: now, deadline, tryState: TryState.PENDING, updatedAt: now, writeId: newWriteId(), events: [] },
      'Registered',
      `branch joined by ${this.identity}`,
      now,
    );
    const log = this.logger.child({ xid, branch: branchId, resource });
    const registered = await this.store.registerBranch(record);
    if (registered.existed) {
      const existing = registered.record;
      if (existing.resource !== resource || JSON.stringify(existing.payload) !== JSON.stringify(data)) {
        throw new ValidationError('options.branchId', `branch ${branchId} of ${xid} already exists for ${existing.resource} with another payload; use a new branch id for a different Try`);
      }
      if (existing.tryState === TryState.SUCCEEDED) return { branchId, replayed: true };
      if (existing.tryState === TryState.FAILED) throw new TryFailed(xid, branchId, resource, new Error(existing.tryError ?? 'try failed'));
      log.info('try of an existing branch still PENDING (an earlier call died or is running): running it again');
    }
    const signals = [AbortSignal.timeout(Math.max(0, deadline - Date.now())), this.triesCutOff.signal];
    if (callerSignal) signals.push(callerSignal);
    const signal = AbortSignal.any(signals);
    let result: unknown;
    try {
      // Aborted while the branch was being registered: the Try never runs, and says so.
      if (callerSignal?.aborted) throw new AbortError(xid, callerSignal.reason);
      result = await handler.try({ xid, branchId, resource, payload: data, deadline, signal });
    } catch (err) {
      log.info({ err: errorMessage(err) }, 'try failed');
      await this.withRetries(() => this.store.recordTryResult(registered, TryState.FAILED, errorMessage(err)));
      // The caller gave up: that is what it should hear, not the handler's reaction to it.
      if (callerSignal?.aborted) throw new AbortError(xid, callerSignal.reason);
      throw new TryFailed(xid, branchId, resource, err);
    }
    let recorded = await this.withRetries(() => this.store.recordTryResult(registered, TryState.SUCCEEDED));
    if (!recorded) {
      // The transaction rolled back and was collected while this Try ran: nobody would release what
      // it reserved, so the branch comes back with a cancel of its own.
      if (await this.withRetries(() => this.store.compensateCollectedTry(registered.record))) {
        log.warn('try succeeded after its transaction was rolled back and collected; its cancel is ordered');
        throw new TransactionAlreadyDecided(xid, 'rollback', 'ROLLED_BACK', 'unknown (collected before the Try finished)');
      }
      recorded = await this.withRetries(() => this.store.recordTryResult(registered, TryState.SUCCEEDED));
      if (!recorded) throw new WriteConflict(registered.key);
    }
    log.debug('try succeeded');
    return { branchId, result, replayed: false };
  }

  // -------------------------------------------------------------------------------------------
  // Initiator API

  /** Starts a global transaction (TRYING until commit, rollback or its deadline). */
  begin(options: BeginOptions): Promise<GlobalTransaction> {
    return this.call('begin', undefined, options?.signal, true, () => this.doBegin(options));
  }

  private async doBegin(options: BeginOptions): Promise<GlobalTransaction> {
    if (typeof options === 'object' && options !== null) rejectUnknownOptions(options, ['name', 'timeoutMs', 'signal'], 'options.');
    if (typeof options !== 'object' || options === null) throw new ValidationError('options', 'must be { name, timeoutMs? }');
    const { name } = options;
    if (typeof name !== 'string' || name.trim().length === 0 || name.length > 128 || /[\n\r\t\0]/.test(name)) {
      throw new ValidationError('name', 'must be 1-128 printable characters describing the transaction, e.g. "transfer"');
    }
    const timeoutMs = options.timeoutMs ?? this.options.defaultTimeoutMs;
    if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > 7 * 24 * 3_600_000) {
      throw new ValidationError('timeoutMs', `must be a whole number of milliseconds from 1 to 604800000 (7 days), got ${JSON.stringify(timeoutMs)}`);
    }
    const now = Date.now();
    const xid = newXid(this.app, now);
    const record: GlobalRecord = withEvent(
      { v: 1, xid, app: this.app, name, mode: 'tcc', status: GlobalStatus.TRYING, createdAt: now, timeoutMs, deadline: now + timeoutMs, events: [] },
      'Began',
      `began by ${this.identity} with timeout ${timeoutMs}ms`,
      now,
    );
    await this.store.createGlobal(record);
    this.logger.debug({ xid, name, timeoutMs }, 'began');
    return new GlobalTransaction(this, xid, name, record.deadline);
  }

  /**
   * Decides commit with one compare-and-swap and returns; the participants' control loops confirm.
   * Throws TransactionAlreadyDecided if rollback or the deadline won, BranchesNotPrepared if some
   * Try has not succeeded.
   */
  async commit(xid: string, options: DecideCallOptions = {}): Promise<void> {
    await this.decide(xid, 'commit', options);
  }

  /** Decides rollback with one compare-and-swap; the participants' control loops cancel. */
  async rollback(xid: string, options: DecideCallOptions = {}): Promise<void> {
    await this.decide(xid, 'rollback', options);
  }

  private decide(xid: string, outcome: 'commit' | 'rollback', options: DecideCallOptions): Promise<void> {
    return this.call(outcome, typeof xid === 'string' ? xid : undefined, options?.signal, true, async () => {
      rejectUnknownOptions(options, ['reason', 'signal'], 'options.');
      validateXid(xid);
      if (options.reason !== undefined && (typeof options.reason !== 'string' || options.reason.length > 1000)) {
        throw new ValidationError('reason', 'must be a string of at most 1000 characters');
      }
      const result = await this.store.decide(xid, { outcome, by: outcome, ...(options.reason ? { reason: options.reason } : {}) });
      this.recordDecision(result.global);
      this.logger.info({ xid, outcome, branches: result.total }, `decided ${outcome}`);
    });
  }

  private recordDecision(g: GlobalRecord): void {
    const d = g.decision;
    if (!this.metrics || !d) return;
    const by = d.by.startsWith('participant:') ? 'participant' : d.by;
    this.metrics.decisions.inc({ app: this.app, outcome: d.outcome, by });
    this.metrics.decisionLatency.observe({ app: this.app, outcome: d.outcome }, Math.max(0, d.at - g.createdAt) / 1000);
  }

  /**
   * Begins a transaction, runs `fn`, commits if it returns and rolls back if it throws (then rethrows).
   * `fn` makes the Try calls, passing `tx.context` or `tx.headers()` to the participants.
   */
  async transaction<T>(options: BeginOptions, fn: (tx: GlobalTransaction) => Promise<T>): Promise<{ xid: string; result: T }> {
    const tx = await this.begin(options);
    let result: T;
    try {
      result = await fn(tx);
    } catch (err) {
      await tx.rollback({ reason: `aborted: ${errorMessage(err)}`.slice(0, 1000) }).catch((rollbackErr: unknown) => {
        if (!(rollbackErr instanceof TransactionAlreadyDecided)) this.logger.warn({ xid: tx.xid, err: errorMessage(rollbackErr) }, 'rollback after failure did not go through; the deadline will roll it back');
      });
      throw err;
    }
    try {
      await tx.commit();
    } catch (err) {
      // Not committed (a Try not prepared, etcd trouble): roll back rather than leave it to the
      // deadline. If the commit did land after all, the rollback loses the CAS and changes nothing.
      if (!(err instanceof TransactionAlreadyDecided)) {
        await tx.rollback({ reason: `commit failed: ${errorMessage(err)}`.slice(0, 1000) }).catch(() => undefined);
      }
      throw err;
    }
    return { xid: tx.xid, result };
  }

  /** Reads a transaction and its branches. */
  get(xid: string, options: CallOptions = {}): Promise<TransactionView> {
    return this.call('get', typeof xid === 'string' ? xid : undefined, options.signal, false, async () => {
      rejectUnknownOptions(options, ['signal'], 'options.');
      validateXid(xid);
      const { global, links } = await this.store.readTransaction(xid);
      if (!global) throw new TransactionNotFound(xid);
      return toView(global.record, links.map((l) => l.record));
    });
  }

  /**
   * Lists the transactions a service initiated (this one by default), oldest first, for admin
   * views and alerting: e.g. `{ status: ['COMMITTING', 'ROLLING_BACK'] }` for unfinished ones, and
   * `branches[].state === 'FAILED'` for parked work. Malformed records are skipped (and logged).
   */
  list(options: ListOptions = {}): Promise<TransactionView[]> {
    return this.call('list', undefined, options.signal, false, () => this.doList(options));
  }

  private async doList(options: ListOptions): Promise<TransactionView[]> {
    rejectUnknownOptions(options, ['app', 'status', 'signal'], 'options.');
    const app = options.app === undefined ? this.app : validateApp(options.app, 'options.app');
    const wanted = options.status === undefined ? undefined : new Set(Array.isArray(options.status) ? options.status : [options.status]);
    for (const st of wanted ?? []) {
      if (!Object.values(GlobalStatus).includes(st)) throw new ValidationError('options.status', `${JSON.stringify(st)} is not one of ${Object.values(GlobalStatus).join(', ')}`);
    }
    const { kvs, revision } = await this.store.range(this.store.keys.globalsOf(app));
    // Links read at the same revision, so every view is one consistent snapshot.
    const { kvs: linkKvs } = await this.store.range(this.store.keys.linksOf(app), revision);
    const links = new Map<string, LinkRecord[]>();
    for (const kv of linkKvs) {
      const key = kv.key.toString();
      try {
        const l = parseLink(key, kv.value);
        links.set(l.xid, [...(links.get(l.xid) ?? []), l]);
      } catch (err) {
        if (!(err instanceof MalformedRecord)) throw err;
        this.malformed.report(key, 'link', err.problem, kv.mod_revision);
      }
    }
    const views: TransactionView[] = [];
    for (const kv of kvs) {
      const key = kv.key.toString();
      try {
        const g = parseGlobal(key, kv.value);
        if (!wanted || wanted.has(g.status)) views.push(toView(g, links.get(g.xid) ?? []));
      } catch (err) {
        if (!(err instanceof MalformedRecord)) throw err;
        this.malformed.report(key, 'gtx', err.problem, kv.mod_revision);
      }
    }
    return views;
  }

  /**
   * Resolves once the transaction is COMMITTED or ROLLED_BACK; rejects with DeadlineExceeded after
   * `timeoutMs`, with AbortError when `signal` fires.
   */
  waitForCompletion(xid: string, options: WaitOptions = {}): Promise<TransactionView> {
    return this.call('waitForCompletion', typeof xid === 'string' ? xid : undefined, options.signal, false, async () => {
      rejectUnknownOptions(options, ['timeoutMs', 'signal'], 'options.');
      validateXid(xid);
      const timeoutMs = options.timeoutMs ?? 60_000;
      const deadline = Date.now() + timeoutMs;
      const watcher = await this.client.watch().key(this.store.keys.global(xid)).create();
      try {
        let wake: (() => void) | undefined;
        watcher.on('put', () => wake?.());
        watcher.on('delete', () => wake?.());
        for (;;) {
          const view = await this.get(xid);
          if (isTerminal(view.status)) return view;
          const left = deadline - Date.now();
          if (left <= 0) throw new DeadlineExceeded(xid, `transaction ${xid} still ${view.status} after waiting ${timeoutMs}ms`);
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => wake?.(), Math.min(left, 1000));
            wake = () => {
              clearTimeout(t);
              options.signal?.removeEventListener('abort', wake!);
              resolve();
            };
            // An abort ends the wait here too, so the watcher is cancelled at once.
            options.signal?.addEventListener('abort', wake, { once: true });
          });
          throwIfAborted(options.signal, xid);
        }
      } finally {
        await cancelWatcher(watcher);
      }
    });
  }

  // -------------------------------------------------------------------------------------------
  // Control loop

  /**
   * Lists this service's keys, then joins the leader election and, while leading, reconciles its
   * globals and branches. Fails with EtcdUnavailable naming the endpoints when the first list has
   * not succeeded within `timeoutMs`, with AbortError when `signal` fires, with ServiceClosed when
   * close() is called meanwhile; start() may then be called again.
   */
  start(options: StartOptions = {}): Promise<void> {
    try {
      this.assertOpen();
      rejectUnknownOptions(options, ['timeoutMs', 'signal'], 'options.');
    } catch (err) {
      return Promise.reject(err);
    }
    this.starting ??= this.doStart(options).catch((err: unknown) => {
      this.starting = undefined;
      throw this.publicError(err, 'start');
    });
    return this.starting;
  }

  isLeader(): boolean {
    return this.elector?.isLeader() ?? false;
  }

  private async doStart(options: StartOptions): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new ValidationError('options.timeoutMs', `must be a positive whole number of milliseconds, got ${JSON.stringify(timeoutMs)}`);
    throwIfAborted(options.signal, undefined);
    const prefix = this.store.keys.app(this.app);
    const informer = new Informer({
      client: this.client,
      store: this.store,
      prefix,
      resyncMs: this.options.resyncMs,
      logger: this.logger,
      connection: this.connection,
      onChange: (key, kv) => this.onChange(key, kv),
    });
    this.informer = informer;
    const stops = [this.closed.signal, AbortSignal.timeout(timeoutMs), ...(options.signal ? [options.signal] : [])];
    const gaveUp = AbortSignal.any(stops);
    try {
      await raceAbort(informer.start(), gaveUp);
    } catch (err) {
      await informer.stop();
      this.informer = undefined;
      if (this.closed.signal.aborted) throw new ServiceClosed(this.app);
      if (options.signal?.aborted) throw new AbortError(undefined, options.signal.reason);
      if (gaveUp.aborted) {
        const cause = informer.lastError ?? new Error(`no answer within ${timeoutMs}ms`);
        throw toTxloopError(cause, this.endpoints, `start: the first list of ${prefix} within ${timeoutMs}ms`);
      }
      throw err;
    }
    const elector = new LeaderElector({
      client: this.client,
      key: this.store.keys.leader(this.app),
      identity: this.identity,
      ttlSeconds: this.options.leaseTtlSeconds,
      logger: this.logger,
      connection: this.connection,
    });
    this.elector = elector;
    elector.on('started', (fence) => this.startLeading(fence));
    elector.on('stopped', () => void this.stopLeading());
    elector.start();
  }

  private onChange(key: string, kv: CachedKv | undefined): void {
    this.malformed.seen(key, kv?.modRevision);
    const parsed = this.store.keys.parse(key);
    if (!parsed || parsed.app !== this.app) {
      if (kv) this.malformed.report(key, 'unknown', `not a txloop key: expected ${this.store.keys.app(this.app)}gtx/<xid>, link/<xid>/<owner>/<branch>, branch/<xid>/<branch>, order/<xid>/<branch>, leader or stats`, kv.modRevision);
      return;
    }
    if (kv) this.validate(key, parsed.kind, kv);
    if (parsed.kind === 'link') {
      let set = this.linkIndex.get(parsed.xid);
      if (kv) {
        if (!set) this.linkIndex.set(parsed.xid, (set = new Set()));
        set.add(key);
      } else if (set) {
        set.delete(key);
        if (set.size === 0) this.linkIndex.delete(parsed.xid);
      }
    }
    const leader = this.leader;
    if (!leader) return;
    if (parsed.kind === 'global' && !kv) leader.retained.delete(parsed.xid);
    if (parsed.kind === 'global' || parsed.kind === 'link') leader.globals.add(parsed.xid);
    else if (parsed.kind === 'branch' || parsed.kind === 'order') leader.branches.add(branchQueueKey(parsed.xid, parsed.branchId));
  }

  /** Every record is checked as it arrives, so a bad one is reported once, on every replica. */
  private validate(key: string, kind: 'global' | 'link' | 'branch' | 'order' | 'leader' | 'stats', kv: CachedKv): void {
    const parse = { global: parseGlobal, link: parseLink, branch: parseBranch, order: parseOrder, leader: parseLeaderRecord, stats: parseStatsRecord }[kind];
    try {
      parse(key, kv.value);
    } catch (err) {
      if (!(err instanceof MalformedRecord)) throw err;
      this.malformed.report(key, (kind === 'global' ? 'gtx' : kind) satisfies MalformedKind, err.problem, kv.modRevision);
    }
  }

  private startLeading(fence: Fence): void {
    if (this.closing) return;
    const { logger, options } = this;
    const informer = this.informer!;
    const observer = this.metrics?.observer();
    // Reconcile errors (etcd trouble, conflicts) back off like handler failures do.
    const backoff = { baseDelayMs: options.retryBaseMs, maxDelayMs: options.retryMaxMs, ...(observer ? { observer } : {}) };
    const globals = new Workqueue({ name: `${this.app}-globals`, ...backoff });
    const branches = new Workqueue({ name: `${this.app}-branches`, ...backoff });
    this.metrics?.track(globals);
    this.metrics?.track(branches);
    const deps = {
      app: this.app,
      store: this.store,
      cache: informer.cache,
      options,
      logger,
      fence: () => {
        const f = this.elector?.fence();
        return f && f.createRevision === fence.createRevision ? f : undefined;
      },
      resources: this.resources,
      malformed: this.malformed,
      onPhase2: (o: Phase2Outcome) => {
        this.counters[o.result === 'succeeded' ? 'succeeded' : o.result === 'parked' ? 'parked' : 'failed']++;
        this.metrics?.phase2Attempts.inc({ app: this.app, resource: o.resource, action: o.action, result: o.result });
        if (o.durationMs > 0) this.metrics?.phase2Duration.observe({ app: this.app, action: o.action }, o.durationMs / 1000);
        this.emit('phase2', o);
      },
      onDecided: (g: GlobalRecord) => this.recordDecision(g),
      onCompleted: (g: GlobalRecord) => {
        this.counters.completed++;
        this.metrics?.completions.inc({ app: this.app, status: g.status });
        if (g.decision && g.completedAt) this.metrics?.completionLatency.observe({ app: this.app, status: g.status }, Math.max(0, g.completedAt - g.decision.at) / 1000);
        this.emit('completed', { xid: g.xid, status: g.status, heuristic: g.heuristic ?? false });
      },
      onCollected: (xid: string) => {
        this.counters.collected++;
        this.emit('collected', { xid });
      },
      linkKeys: (xid: string) => this.linkIndex.get(xid) ?? [],
      written: new Map<string, string>(),
      collectAt: (xid: string, due: number) => retained.set(xid, due),
    };
    const onError = (kind: string) => (key: string, err: unknown) => {
      // An outage is said once (ConnectionState), not once per key per retry.
      if (this.connection.failed(`reconcile (${kind})`, err)) return;
      const xid = key.split('/')[0];
      logger.warn({ xid, key, queue: kind, err: errorMessage(err) }, 'reconcile failed; retrying with backoff');
    };
    const controllers = [
      new Controller({ name: globals.name, queue: globals, concurrency: Math.max(2, Math.ceil(options.concurrency / 2)), reconcile: (xid) => reconcileGlobal(deps, xid), onError: onError('globals') }),
      new Controller({ name: branches.name, queue: branches, concurrency: options.concurrency, reconcile: (key, signal) => reconcileBranch(deps, key, signal), onError: onError('branches') }),
    ];
    const statsTimer = setInterval(() => void this.publishStats(), options.statsIntervalMs);
    statsTimer.unref();
    const retained = new Map<string, number>();
    const sweepTimer = setInterval(() => {
      const now = Date.now();
      for (const [xid, due] of retained) {
        if (due <= now) {
          retained.delete(xid);
          globals.add(xid);
        }
      }
    }, Math.min(30_000, Math.max(100, Math.floor(options.retentionMs / 4))));
    sweepTimer.unref();
    this.leader = { fence, globals, branches, controllers, statsTimer, retained, sweepTimer };
    for (const c of controllers) c.start();
    // A new term reconciles everything it can see, exactly as if each key had just changed.
    for (const [key, kv] of informer.cache) this.onChange(key, kv);
    void this.publishStats();
    this.metrics?.leader.set({ app: this.app }, 1);
    this.emit('leader', { leading: true });
  }

  private async stopLeading(): Promise<void> {
    const leader = this.leader;
    if (!leader) return;
    this.leader = undefined;
    clearInterval(leader.statsTimer);
    clearInterval(leader.sweepTimer);
    this.metrics?.leader.set({ app: this.app }, 0);
    await Promise.all(leader.controllers.map((c) => c.stop()));
    this.metrics?.untrack(leader.globals);
    this.metrics?.untrack(leader.branches);
    this.emit('leader', { leading: false });
  }

  /** Queue figures for `txloop top` and `txloop get leaders`, bound to the leader's lease. */
  private async publishStats(): Promise<void> {
    const leader = this.leader;
    const fence = this.elector?.fence();
    const lease = this.elector?.leaseId;
    if (!leader || !fence || !lease) return;
    const stats: ServiceStats = {
      identity: this.identity,
      at: Date.now(),
      queues: { globals: leader.globals.stats(), branches: leader.branches.stats() },
      phase2: { ...this.counters },
      branches: this.countBranches(),
      malformed: this.malformed.counts(),
    };
    await this.client.kv
      .txn({ compare: cmp.fenced(fence), success: [op.put(this.store.keys.stats(this.app), stats, lease)], failure: [] })
      .catch((err: unknown) => this.logger.debug({ err: errorMessage(err) }, 'could not publish stats'));
  }

  private countBranches(): Record<string, number> {
    const counts: Record<string, number> = {};
    const cache = this.informer?.cache;
    if (!cache) return counts;
    for (const [key, kv] of cache) {
      const parsed = this.store.keys.parse(key);
      if (parsed?.kind !== 'branch') continue;
      try {
        const s = branchStatus(parseBranch(key, kv.value));
        counts[s] = (counts[s] ?? 0) + 1;
      } catch {
        counts.MALFORMED = (counts.MALFORMED ?? 0) + 1;
      }
    }
    return counts;
  }

  /**
   * Stops reconciling (resigning leadership so a standby takes over at once) and closes the etcd
   * client it created. Always finishes, etcd reachable or not: Trys in flight are waited for up to
   * their deadline, the rest up to `timeoutMs`, then the client is closed. Safe to call twice.
   */
  close(options: CloseOptions = {}): Promise<void> {
    try {
      rejectUnknownOptions(options, ['timeoutMs', 'signal'], 'options.');
    } catch (err) {
      return Promise.reject(err);
    }
    this.closing ??= this.doClose(options);
    return this.closing;
  }

  private async doClose(options: CloseOptions): Promise<void> {
    this.closed.abort(new ServiceClosed(this.app));
    const skip = options.signal ?? new AbortController().signal;
    // Let Trys in flight record their outcome; a handler ignoring its signal past the deadline is
    // not waited for beyond it, nor any past the close timeout.
    if (this.triesInFlight.size > 0) {
      const latest = Math.max(...this.triesInFlight.values());
      const waitMs = Math.min(Math.max(0, latest - Date.now()) + 1_000, options.timeoutMs ?? 30_000);
      await boundedWait(Promise.allSettled([...this.triesInFlight.keys()]), waitMs, skip);
      this.triesCutOff.abort(new ServiceClosed(this.app));
      // A handler that stops on its signal still gets its FAILED outcome recorded.
      await boundedWait(Promise.allSettled([...this.triesInFlight.keys()]), 1_000, skip);
    }
    this.metrics?.untrackMalformed(this.malformed);
    await boundedWait(
      (async () => {
        await this.starting?.catch(() => undefined);
        await this.stopLeading();
        await this.elector?.stop();
        await this.informer?.stop();
      })(),
      5_000,
      skip,
    );
    if (this.ownsClient) this.client.close();
  }

  /** Runs a public call: refused once closed, raced with the caller's signal, its errors in txloop's classes. */
  private async call<T>(what: string, xid: string | undefined, signal: AbortSignal | undefined, writes: boolean, fn: () => Promise<T>): Promise<T> {
    this.assertOpen();
    throwIfAborted(signal, xid);
    try {
      const work = fn();
      return await (signal ? raceAbort(work, signal, () => new AbortError(xid, signal.reason, writes)) : work);
    } catch (err) {
      throw this.publicError(err, xid ? `${what} ${xid}` : what);
    }
  }

  private publicError(err: unknown, what: string): TxloopError {
    if (err instanceof TxloopError) return err;
    // The client was closed under the call by close().
    if (this.closing) return new ServiceClosed(this.app);
    return toTxloopError(err, this.endpoints, what);
  }

  private assertOpen(): void {
    if (this.closing) throw new ServiceClosed(this.app);
  }

  private async withRetries<T>(fn: () => Promise<T>): Promise<T> {
    let last: unknown;
    for (let i = 0; i < 5; i++) {
      try {
        return await fn();
      } catch (err) {
        last = err;
        await new Promise((r) => setTimeout(r, 50 * 2 ** i));
      }
    }
    throw last;
  }
}

export type { ServiceStats } from './store/records.js';

function throwIfAborted(signal: AbortSignal | undefined, xid: string | undefined): void {
  if (signal?.aborted) throw new AbortError(xid, signal.reason);
}

/** `p`, or a rejection as soon as `signal` aborts (`p` itself goes on; its outcome is ignored). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal, error: () => unknown = () => signal.reason): Promise<T> {
  if (signal.aborted) return Promise.reject(error());
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(error());
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([p, aborted]).finally(() => signal.removeEventListener('abort', onAbort!));
}

/** Waits for `p` at most `ms`, or until `skip` aborts; never rejects. */
async function boundedWait(p: Promise<unknown>, ms: number, skip: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      if (skip.aborted) resolve();
      else skip.addEventListener('abort', () => resolve(), { once: true });
    }),
  ]);
  clearTimeout(timer);
}

function toView(g: GlobalRecord, links: LinkRecord[]): TransactionView {
  return {
    xid: g.xid,
    app: g.app,
    name: g.name,
    status: g.status,
    createdAt: new Date(g.createdAt),
    deadline: new Date(g.deadline),
    ...(g.decision ? { decision: g.decision } : {}),
    ...(g.completedAt !== undefined ? { completedAt: new Date(g.completedAt) } : {}),
    heuristic: g.heuristic ?? false,
    branches: links.map((l) => ({
      branchId: l.branchId,
      owner: l.owner,
      resource: l.resource,
      tryState: l.tryState,
      // A decided global has ordered every branch, even before its owner recorded any progress.
      ...((l.action ?? actionFor(g.status)) ? { action: l.action ?? actionFor(g.status) } : {}),
      ...(l.state ? { state: l.state } : {}),
      attempts: l.attempts ?? 0,
      ...(l.lastError ? { lastError: l.lastError } : {}),
      ...(l.resolution ? { resolution: l.resolution } : {}),
    })),
  };
}

