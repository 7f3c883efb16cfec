/**
 * TxloopService: the public facade of one service's engine. It composes the initiator (begin,
 * decide, read), the participant (TCC resources and their Try) and the manager that runs this
 * service's control loop while its replica leads. Design: docs/architecture.md.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { CallGuard } from './calls.js';
import { GlobalTransaction, Initiator, Messages, submitSaga, type InitiatorOptions, type MessageView, type PrepareMessageOptions, type PreparedMessage, type SagaOptions, type SubmittedSaga, type BeginOptions, type CallOptions, type DecideCallOptions, type ListOptions, type TransactionView, type WaitOptions } from './client/index.js';
import type { TxContext } from './context.js';
import { ServiceClosed, ValidationError } from './errors.js';
import { MemberIndex } from './cache/index.js';
import { ConnectionState, ETCD_DEFAULTS, createEtcdClient, defaultEndpoints, endpointsOf, type Fence } from './etcd/index.js';
import { defaultLogger } from './logger.js';
import { metricsFor, type TxloopMetrics } from './metrics.js';
import { termEvents } from './term-events.js';
import { builtInModes, decide } from './modes/index.js';
import { rejectUnknownOptions, resolveOptions, type ResolvedOptions, type ServiceOptions } from './options.js';
import { Participant, ResourceRegistry, type TryOptions, type TryResult } from './participant/index.js';
import type { CheckBack, MessageConsumer, PayloadOf, ResourceName, ResourceOptions, ResultOf, RegisteredResource, SagaStep, TccResource, TryContext, UntypedName, UntypedResources } from './resource.js';

import { MalformedRecords, Manager, Router, ServiceCounters, Term, TermHistory, serviceStats, type TermEvents } from './runtime/index.js';
import type { Phase2Outcome } from './stats.js';
import { boundedWait, throwIfAborted } from './signals.js';
import type { GlobalStatus, TryState } from './states.js';
import { Store, readFromCache, replicaIdOf, type GlobalRecord, type TransactionRead } from './store/index.js';

export interface ServiceEvents {
  /** This replica started or stopped leading its service. */
  leader: [{ leading: boolean }];
  /** A confirm/cancel attempt finished on this replica. */
  phase2: [Phase2Outcome];
  /** A global this service initiated finished: COMMITTED, ROLLED_BACK (TCC), SUCCEEDED, COMPENSATED (saga), DELIVERED (message), …. */
  completed: [{ xid: string; status: GlobalStatus; heuristic: boolean }];
  /** A finished global was deleted after its retention. */
  collected: [{ xid: string }];
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
  private readonly ownsClient: boolean;
  private readonly store: Store;
  private readonly identity: string;
  private readonly metrics: TxloopMetrics | undefined;
  private readonly malformed: MalformedRecords;
  private readonly counters = new ServiceCounters();
  private readonly modes = builtInModes();
  private readonly resources = new ResourceRegistry();
  /** What its terms report, into counters, metrics and events (one set for every term: a finished global is reported once). */
  private readonly events: TermEvents;
  private readonly calls: CallGuard;
  private readonly initiator: Initiator;
  private readonly messages: Messages;
  private readonly participant: Participant;
  private readonly manager: Manager;
  private readonly router: Router;
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  /** Aborted by close(): ends a start() still waiting for etcd. */
  private readonly closed = new AbortController();
  /** Aborted when close() stops waiting for Trys in flight: their handlers are told to stop. */
  private readonly triesCutOff = new AbortController();

  constructor(options: ServiceOptions) {
    super();
    this.options = resolveOptions(options);
    const o = this.options;
    this.app = o.app;
    // Every line this service logs names its app, whichever logger the user passed.
    this.logger = (o.logger ?? defaultLogger()).child({ app: this.app });
    this.identity = o.identity || `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
    this.ownsClient = !o.client;
    this.client = o.client ?? createEtcdClient(o.etcd);
    const endpoints = o.client ? endpointsOf(o.client) : (o.etcd?.endpoints ?? defaultEndpoints());
    this.store = new Store(this.client, o.namespace, o.maxTxnOps, o.etcd?.requestTimeoutMs ?? ETCD_DEFAULTS.requestTimeoutMs);
    this.metrics = o.metrics ? metricsFor(o.metrics) : undefined;
    this.events = termEvents({ app: this.app, counters: this.counters, metrics: this.metrics, emit: this.emit.bind(this) });
    this.malformed = new MalformedRecords(this.logger);
    this.metrics?.trackMalformed(this.app, this.malformed);
    this.calls = new CallGuard(this.app, endpoints, () => this.closing !== undefined);
    const members = new MemberIndex();
    const cached = (xid: string) => readFromCache(this.store.keys, this.manager.cache, members.keysOf(xid), xid);
    const initiating: InitiatorOptions = { app: this.app, identity: this.identity, store: this.store, modes: this.modes, calls: this.calls, logger: this.logger, defaultTimeoutMs: o.defaultTimeoutMs, malformed: (key, kind, problem, rev) => this.malformed.report(key, kind, problem, rev), decided: (g) => this.metrics?.recordDecision(this.app, g), cached };
    this.initiator = new Initiator(initiating);
    this.messages = new Messages({ ...initiating, maxPayloadBytes: o.maxPayloadBytes });
    this.participant = new Participant({ app: this.app, identity: this.identity, store: this.store, resources: this.resources, calls: this.calls, logger: this.logger, maxPayloadBytes: o.maxPayloadBytes, legacyLinks: o.legacyLinks, cutOff: this.triesCutOff.signal });
    const connection = new ConnectionState(endpoints, this.logger);
    const router = new Router({ keys: this.store.keys, app: this.app, malformed: this.malformed, members, term: () => this.manager.term, modeProblem: (mode) => this.modes.notRun(mode), branchStatus: (b) => this.modes.of(b.mode).branchStatus(b) });
    this.router = router;
    this.manager = new Manager({
      client: this.client,
      prefix: this.store.keys.app(this.app),
      leaderKey: this.store.keys.leader(this.app),
      replicaKey: (leaseId) => this.store.keys.replica(this.app, replicaIdOf(leaseId)),
      identity: this.identity,
      leaseTtlSeconds: o.leaseTtlSeconds,
      resyncMs: o.resyncMs,
      logger: this.logger,
      connection,
      endpoints,
      router,
      newTerm: (fence) => this.newTerm(fence, members, connection, cached),
      onLeading: (leading) => {
        this.metrics?.leader.set({ app: this.app }, leading ? 1 : 0);
        this.emit('leader', { leading });
      },
    });
  }

  // -------------------------------------------------------------------------------------------
  // Participant API

  /** Registers a TCC resource by name. Register every resource before start() so no branch waits on it. */
  resource<N extends ResourceName<Resources>>(name: N, handlers: TccResource<PayloadOf<Resources, N>, ResultOf<Resources, N>>, options?: ResourceOptions): this;
  /** Registers a TCC resource, typing its payload and result here (`resource<Payload, Result>(…)`). */
  resource<P, R = unknown>(name: UntypedName<Resources>, handlers: TccResource<P, R>, options?: ResourceOptions): this;
  resource(name: string, handlers: TccResource<never, unknown>, options?: ResourceOptions): this {
    this.resources.register(name, handlers, options);
    return this;
  }

  /**
   * Registers a saga step this service runs for sagas that name it (`{ service: <this app>,
   * resource: name }`): its action, and its compensation if the saga fails. An action throwing
   * NonRetryableError (or failing past its attempt limit) fails the saga; `options.retry` as for
   * resources.
   */
  sagaStep<P = unknown>(name: string, handlers: SagaStep<P>, options?: ResourceOptions): this {
    this.resources.register(name, handlers, options, 'saga');
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
  tryBranch(ctx: TxContext, resource: string, payload: unknown, options: TryOptions = {}): Promise<TryResult<unknown>> {
    return this.participant.tryBranch(ctx, resource, payload, options);
  }

  /** Joins a branch whose Try runs outside this process (a sidecar's service); then reportTry. */
  registerTry(ctx: TxContext, resource: string, payload: unknown, options: Pick<TryOptions, 'branchId'> = {}): Promise<{ branchId: string; existed: boolean; tryState: TryState }> {
    return this.participant.registerTry(ctx, resource, payload, options);
  }

  /** A Try whose handler is `call` instead of the resource's (the sidecar's proxied Try). */
  tryWith(ctx: TxContext, resource: string, payload: unknown, options: TryOptions, call: (ctx: TryContext) => Promise<unknown>): Promise<TryResult<unknown>> {
    return this.participant.tryWith(ctx, resource, payload, options, call);
  }

  /** Records the outcome of a Try joined with registerTry. */
  reportTry(xid: string, branchId: string, outcome: 'succeeded' | 'failed', error?: string): Promise<void> {
    return this.participant.reportTry(xid, branchId, outcome, error);
  }

  // -------------------------------------------------------------------------------------------
  // Initiator API

  /** Starts a global transaction (TRYING until commit, rollback or its deadline). */
  begin(options: BeginOptions): Promise<GlobalTransaction> {
    return this.initiator.begin(options);
  }

  /** Decides commit with one compare-and-swap and returns; the participants' control loops confirm. */
  commit(xid: string, options: DecideCallOptions = {}): Promise<void> {
    return this.initiator.commit(xid, options);
  }

  /** Decides rollback with one compare-and-swap; the participants' control loops cancel. */
  rollback(xid: string, options: DecideCallOptions = {}): Promise<void> {
    return this.initiator.rollback(xid, options);
  }

  /**
   * Submits a saga: writes it to etcd with its first step (or group) ordered, and returns its xid.
   * The steps' owners run it from there — forward in order, and on a step's failure for good, the
   * compensations in reverse — so it finishes even if this service goes away. Follow it with
   * `get(xid)` or `waitForCompletion(xid)` (SUCCEEDED or COMPENSATED).
   */
  saga(options: SagaOptions): Promise<SubmittedSaga> {
    return submitSaga({ app: this.app, identity: this.identity, store: this.store, calls: this.calls, logger: this.logger, defaultTimeoutMs: this.options.defaultTimeoutMs, maxPayloadBytes: this.options.maxPayloadBytes }, options);
  }

  /** Begins a transaction, runs `fn`, commits if it returns and rolls back if it throws (then rethrows). */
  transaction<T>(options: BeginOptions, fn: (tx: GlobalTransaction) => Promise<T>): Promise<{ xid: string; result: T }> {
    return this.initiator.transaction(options, fn);
  }

  /** Reads a transaction and its branches. */
  get(xid: string, options: CallOptions = {}): Promise<TransactionView> {
    return this.initiator.get(xid, options);
  }

  /** A service's transactions (this one by default), oldest first, optionally by status. */
  list(options: ListOptions = {}): Promise<TransactionView[]> {
    return this.initiator.list(options);
  }

  /** Resolves once the transaction is COMMITTED or ROLLED_BACK (DeadlineExceeded after `timeoutMs`). */
  waitForCompletion(xid: string, options: WaitOptions = {}): Promise<TransactionView> {
    return this.initiator.waitForCompletion(xid, options);
  }

  // -------------------------------------------------------------------------------------------
  // 2-phase messages (client/messages.ts)

  /** Registers a consumer of 2-phase messages: `deliver` runs at least once for each message submitted to it. */
  consumer<P = unknown>(name: string, handlers: MessageConsumer<P>, options?: ResourceOptions): this {
    this.resources.register(name, handlers, options, 'msg');
    return this;
  }

  /** Registers how this producer answers, from its own data, for its messages named `name` left prepared. */
  checkBack(name: string, fn: CheckBack): this {
    this.messages.registerCheckBack(name, fn);
    return this;
  }

  /** Prepares a message (PREPARED, nothing delivered); submit it once your local transaction committed. */
  prepareMessage(options: PrepareMessageOptions): Promise<PreparedMessage> {
    return this.messages.prepare(options);
  }

  submitMessage(xid: string, options: DecideCallOptions = {}): Promise<void> {
    return this.messages.submitMessage(xid, options);
  }

  discardMessage(xid: string, options: DecideCallOptions = {}): Promise<void> {
    return this.messages.discardMessage(xid, options);
  }

  /** Prepares a message, runs your local transaction `fn`, submits if it returns, discards if it throws. */
  message<T>(options: PrepareMessageOptions, fn: (message: PreparedMessage) => Promise<T>): Promise<{ xid: string; result: T }> {
    return this.messages.run(options, fn);
  }

  /** A message's status and each consumer's delivery state (any service may ask). */
  deliveries(xid: string, options: CallOptions = {}): Promise<MessageView> {
    return this.messages.deliveries(xid, options);
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle

  /**
   * Lists this service's keys, then joins the leader election and, while leading, reconciles its
   * globals and branches. Fails with EtcdUnavailable naming the endpoints when the first list has
   * not succeeded within `timeoutMs`, with AbortError when `signal` fires, with ServiceClosed when
   * close() is called meanwhile; start() may then be called again.
   */
  start(options: StartOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    try {
      this.calls.assertOpen();
      rejectUnknownOptions(options, ['timeoutMs', 'signal'], 'options.');
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new ValidationError('options.timeoutMs', `must be a positive whole number of milliseconds, got ${JSON.stringify(timeoutMs)}`);
      throwIfAborted(options.signal, undefined);
    } catch (err) {
      return Promise.reject(err);
    }
    this.starting ??= this.manager
      .start({ timeoutMs, ...(options.signal ? { signal: options.signal } : {}), closed: this.closed.signal })
      .catch((err: unknown) => {
        this.starting = undefined;
        throw this.calls.error(err, 'start');
      });
    return this.starting;
  }

  isLeader(): boolean {
    return this.manager.isLeader();
  }

  /**
   * Stops reconciling (resigning leadership so a standby takes over at once) and closes the etcd
   * client it created. Always finishes, etcd reachable or not. Safe to call twice.
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
    const tries = this.participant.inFlight;
    if (tries.size > 0) {
      const latest = Math.max(...tries.values());
      await boundedWait(Promise.allSettled([...tries.keys()]), Math.min(Math.max(0, latest - Date.now()) + 1_000, options.timeoutMs ?? 30_000), skip);
      this.triesCutOff.abort(new ServiceClosed(this.app));
      // A handler that stops on its signal still gets its FAILED outcome recorded.
      await boundedWait(Promise.allSettled([...tries.keys()]), 1_000, skip);
    }
    this.metrics?.untrackMalformed(this.malformed);
    await boundedWait(
      (async () => {
        await this.starting?.catch(() => undefined);
        await this.manager.stop();
      })(),
      5_000,
      skip,
    );
    if (this.ownsClient) this.client.close();
  }

  // -------------------------------------------------------------------------------------------
  // The control loop's term

  private newTerm(fence: Fence, members: MemberIndex, connection: ConnectionState, cached: (xid: string) => TransactionRead | undefined): Term<RegisteredResource> {
    const history = new TermHistory(this.store, this.store.keys.leader(this.app));
    return new Term<RegisteredResource>({
      fence,
      currentFence: () => this.manager.fence(),
      options: this.options,
      logger: this.logger,
      ...(this.metrics ? { metrics: this.metrics } : {}),
      context: {
        app: this.app,
        store: this.store,
        cache: this.manager.cache,
        options: this.options,
        logger: this.logger,
        handlers: this.resources.handlers,
        malformed: this.malformed,
        events: this.events,
        memberKeys: (xid) => members.keysOf(xid),
        decide: (xid, request) => decide(this.store, this.modes, xid, request, cached(xid)),
        cached,
        ledAt: (revision) => history.ledAt(revision),
        unrecorded: new Set(),
        retrySchedule: (resource) => this.resources.scheduleOf(resource),
        checkBack: (name) => this.messages.checkBackOf(name),
      },
      reconcileGlobal: (ctx, xid, signal) => this.modes.reconcileGlobal(ctx, xid, signal),
      reconcileBranch: (ctx, key, signal) => this.modes.reconcileBranch(ctx, key, signal),
      reportedElsewhere: (err, queue) => connection.failed(`reconcile (${queue})`, err),
      publishStats: (term) => this.publishStats(term),
    });
  }

  /** Queue figures for `txloop top` and `txloop get leaders`, bound to the leader's lease. */
  private async publishStats(term: Term<unknown>): Promise<void> {
    const fence = this.manager.fence();
    const lease = this.manager.leaseId;
    if (!fence || !lease || fence.createRevision !== term.fence.createRevision) return;
    const stats = serviceStats({ identity: this.identity, counters: this.counters, branches: this.router.branches, malformed: this.malformed }, term);
    await this.store.stats.publish(this.app, fence, lease, stats).catch((err: unknown) => this.logger.debug({ err: (err as Error).message }, 'could not publish stats'));
  }
}

export type { TryOptions, TryResult } from './participant/index.js';
