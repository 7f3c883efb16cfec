/**
 * The status mirror (`txloop mirror`): keeps Participants and the Transactions that need eyes in
 * step with the txloop namespace in etcd, and runs the repairs asked for in spec.repair.
 *
 * - etcd side: the services' own informer (list, then watch; relists on compaction and reconnect)
 *   feeding the CLI's model of the namespace (record validation included: a malformed record is
 *   logged once, naming its key, and never stops the loop);
 * - apiserver side: list+watch caches of both kinds, restarted with backoff when the apiserver goes
 *   away, relisted at each resync;
 * - one workqueue of object keys (`txn/<xid>`, `txp/<app>`) with per-key backoff for API errors,
 *   worked by level-based reconcilers (transactions.ts, participants.ts) that write nothing when
 *   the apiserver already holds what they would write;
 * - its own leader election on an etcd lease (`<ns>txloop-mirror/leader`): every replica keeps its
 *   caches warm, only the leader reconciles, and each write is preceded by a fresh leadership check.
 */
import { hostname } from 'node:os';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { RetryBackoff } from '../backoff.js';
import { Informer } from '../cache/index.js';
import { Model } from '../cli/index.js';
import { ConnectionState, LeaderElector } from '../etcd/index.js';
import { Controller, Workqueue, type ReconcileResult } from '../runtime/index.js';
import { Store } from '../store/index.js';
import type { KubernetesObject, ListWatch } from '@kubernetes/client-node';
import { KubeApi, messageOf, type KindName, type KubeObject } from './api.js';
import type { MirrorContext } from './context.js';
import { MirrorMetrics } from './metrics.js';
import { needsEyes } from './objects.js';
import { reconcileParticipant } from './participants.js';
import { reconcileTransaction } from './transactions.js';

/** The app name of the mirror's own election key: reserved, never shown as a Participant. */
export const MIRROR_APP = 'txloop-mirror';

export interface MirrorOptions {
  client: Etcd3;
  /** The txloop key prefix in etcd (`txloop/`). */
  namespace: string;
  endpoints: readonly string[];
  /** Where the objects live. */
  kubeNamespace: string;
  kubeconfig?: string;
  logger: Logger;
  /** This replica's name in the election (the pod's name). @default host/pid */
  identity?: string;
  /** @default 10 */
  leaseTtlSeconds?: number;
  /** A transaction not finished this long past its deadline is mirrored. @default 60_000 */
  graceMs?: number;
  /** Full relist of both sides and a look at every object. @default 300_000 */
  resyncMs?: number;
  /** An app without a leader for longer is Degraded (the services' lease TTL). @default 10_000 */
  leaderlessAfterMs?: number;
  /** A leader's figures older than this leave its app not Ready. @default 30_000 */
  staleAfterMs?: number;
  /** A heartbeat-only change of a Participant is written at most this often. @default 30_000 */
  heartbeatEveryMs?: number;
  /** Each apiserver call's bound. @default 10_000 */
  apiTimeoutMs?: number;
}

export const MIRROR_DEFAULTS = {
  leaseTtlSeconds: 10,
  graceMs: 60_000,
  resyncMs: 300_000,
  leaderlessAfterMs: 10_000,
  staleAfterMs: 30_000,
  heartbeatEveryMs: 30_000,
  apiTimeoutMs: 10_000,
} as const;

export class Mirror {
  readonly metrics: MirrorMetrics;
  readonly api: KubeApi;
  private readonly ctx: MirrorContext;
  private readonly informer: Informer;
  private readonly elector: LeaderElector;
  private readonly queue: Workqueue;
  private readonly controller: Controller;
  private readonly reported = new Set<string>();
  private readonly synced = { etcd: false, transaction: false, participant: false };
  private readonly restarts = new Map<KindName, NodeJS.Timeout>();
  private readonly resyncMs: number;
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly o: MirrorOptions) {
    const d = { ...MIRROR_DEFAULTS, ...definedOf(o) };
    const counts = (kind: KindName): number => (kind === 'transaction' ? this.ctx.transactions : this.ctx.participants).list(o.kubeNamespace).length;
    this.metrics = new MirrorMetrics(counts);
    this.api = new KubeApi({ ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}), namespace: o.kubeNamespace, timeoutMs: d.apiTimeoutMs, onWrite: (kind, verb) => this.metrics.wrote(kind, verb) });
    const store = new Store(o.client, o.namespace);
    const model = new Model(o.namespace);
    const connection = new ConnectionState(o.endpoints, o.logger);
    this.elector = new LeaderElector({ client: o.client, key: store.keys.leader(MIRROR_APP), identity: o.identity ?? `${hostname()}/${process.pid}`, ttlSeconds: d.leaseTtlSeconds, logger: o.logger, connection });
    this.ctx = {
      api: this.api,
      model,
      store,
      transactions: this.api.listWatch('transaction', () => false),
      participants: this.api.listWatch('participant', () => false),
      leading: () => this.elector.isLeader(),
      graceMs: d.graceMs,
      leaderlessAfterMs: d.leaderlessAfterMs,
      staleAfterMs: d.staleAfterMs,
      heartbeatEveryMs: d.heartbeatEveryMs,
      mirrorApp: MIRROR_APP,
      leaderSeen: new Map(),
      watchingSince: Date.now(),
      outcomes: new Map(),
      written: new Map(),
      metrics: this.metrics,
      logger: o.logger,
      now: () => Date.now(),
    };
    this.informer = new Informer({ client: o.client, prefix: o.namespace, logger: o.logger, resyncMs: d.resyncMs, connection, onChange: (key, kv) => this.onEtcdChange(key, kv?.value) });
    this.queue = new Workqueue({ name: 'mirror', baseDelayMs: 200, maxDelayMs: 30_000, observer: this.metrics.base.observer() });
    this.metrics.base.track(this.queue);
    this.controller = new Controller({
      name: 'mirror',
      queue: this.queue,
      concurrency: 4,
      reconcile: (key) => this.reconcile(key),
      onError: (key) => this.metrics.reconcileErrors.inc({ kind: key.startsWith('txn/') ? 'transaction' : 'participant' }),
      logger: { error: (obj, msg) => o.logger.warn(obj, msg), warn: (obj, msg) => o.logger.warn(obj, msg) },
    });
    this.resyncMs = d.resyncMs;
  }

  /** Lists etcd (rejects if the first list fails), starts the apiserver caches and joins the election. */
  async start(): Promise<void> {
    await this.informer.start();
    this.synced.etcd = true;
    this.reportProblems(this.ctx.model.problems());
    for (const kind of ['transaction', 'participant'] as const) this.startWatch(kind);
    this.controller.start();
    this.elector.on('started', () => {
      // What an earlier term remembered of its own writes says nothing of what happened since.
      this.ctx.outcomes.clear();
      this.ctx.written.clear();
      this.metrics.leading.set(1);
      this.o.logger.info({ identity: this.o.identity }, 'mirror leads: reconciling every object');
      this.enqueueAll();
    });
    this.elector.on('stopped', (reason) => {
      this.metrics.leading.set(0);
      this.o.logger.info({ reason }, 'mirror stopped leading');
    });
    this.elector.start();
    this.resyncTimer = setInterval(() => this.resync(), this.resyncMs);
    this.resyncTimer.unref();
  }

  isLeader(): boolean {
    return this.elector.isLeader();
  }

  /** Both sides listed at least once. */
  ready(): boolean {
    return this.synced.etcd && this.synced.transaction && this.synced.participant;
  }

  /** Resigns (a standby takes over at once), stops the caches and the workers. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopped = true;
      clearInterval(this.resyncTimer);
      for (const t of this.restarts.values()) clearTimeout(t);
      await this.elector.stop();
      this.metrics.leading.set(0);
      await this.controller.stop();
      await Promise.all([this.ctx.transactions.stop(), this.ctx.participants.stop(), ...[...this.pending.values()].map((lw) => lw.stop()), this.informer.stop()]);
      this.metrics.base.untrack(this.queue);
    })();
    return this.closing;
  }

  private reconcile(key: string): Promise<ReconcileResult> {
    // Before both apiserver caches are listed, every object would look missing: wait for them.
    if (!this.ready()) return Promise.resolve({ requeueAfterMs: 500 });
    if (key.startsWith('txn/')) return reconcileTransaction(this.ctx, key.slice(4));
    return reconcileParticipant(this.ctx, key.slice(4));
  }

  private onEtcdChange(key: string, value: Buffer | undefined): void {
    this.metrics.etcdChanges.inc();
    const { model } = this.ctx;
    const change = model.set(key, value);
    this.reportProblems(model.problemAt(key));
    if (!change) return;
    if (change.kind === 'service') {
      // A leader key's delete: the app had a leader until now.
      if (value === undefined && key.endsWith('/leader')) this.ctx.leaderSeen.set(change.app, Date.now());
      return this.enqueue(`txp/${change.app}`);
    }
    // A global, member, branch or order key: it names its transaction and its app.
    const parsed = model.keys.parse(key);
    if (!parsed || !('xid' in parsed)) return;
    this.enqueue(`txn/${parsed.xid}`);
    // A new app shows up with its first key of any kind.
    if (!this.ctx.participants.get(parsed.app, this.o.kubeNamespace)) this.enqueue(`txp/${parsed.app}`);
  }

  private enqueue(key: string): void {
    if (this.elector.isLeader() && !this.stopped) this.queue.add(key);
  }

  /** Every object held, every app, every transaction (each looks again at its own deadline). */
  private enqueueAll(): void {
    const { model } = this.ctx;
    for (const o of this.ctx.transactions.list(this.o.kubeNamespace)) this.enqueue(`txn/${o.metadata.name}`);
    for (const o of this.ctx.participants.list(this.o.kubeNamespace)) this.enqueue(`txp/${o.metadata.name}`);
    for (const app of model.apps()) this.enqueue(`txp/${app}`);
    const now = Date.now();
    for (const xid of model.globalXids()) {
      const g = model.global(xid);
      // Open transactions also come back at their deadline: a look now schedules that.
      if (g && (needsEyes(g, now, this.ctx.graceMs) || g.entry.record?.completedAt === undefined)) this.enqueue(`txn/${xid}`);
    }
  }

  private resync(): void {
    // Relist the apiserver side (the etcd informer relists on its own schedule), then look at everything.
    this.metrics.resyncs.inc();
    for (const kind of ['transaction', 'participant'] as const) if (!this.down.has(kind)) this.startWatch(kind);
    this.enqueueAll();
  }

  private readonly backoffs: Record<KindName, RetryBackoff> = { transaction: new RetryBackoff({ initialMs: 200, maxMs: 10_000 }), participant: new RetryBackoff({ initialMs: 200, maxMs: 10_000 }) };
  private readonly down = new Set<KindName>();

  /** A list+watch still making its first list, by kind: it replaces the one serving once listed. */
  private readonly pending = new Map<KindName, ListWatch<KubeObject & KubernetesObject>>();

  /**
   * A fresh list+watch of `kind` to replace the one serving: at each resync, and after the apiserver
   * went away (client-node's ListWatch stops on an error). The one serving keeps answering the
   * reconcilers until the new one has listed — a cache that has not listed yet would show every
   * object as missing — and is stopped then.
   */
  private startWatch(kind: KindName): void {
    if (this.stopped) return;
    const field = kind === 'transaction' ? 'transactions' : 'participants';
    void this.pending.get(kind)?.stop();
    const lw = this.api.listWatch(kind, () => this.pending.get(kind) === lw && !this.stopped, () => {
      if (this.pending.get(kind) !== lw || this.stopped) return;
      this.pending.delete(kind);
      const previous = this.ctx[field];
      this.ctx[field] = lw;
      if (previous !== lw) void previous.stop();
      this.synced[kind] = true;
      this.backoffs[kind].reset();
      if (this.down.delete(kind)) {
        this.o.logger.info({ kind }, 'apiserver watch back: looking at every object again');
        this.enqueueAll();
      }
    });
    this.pending.set(kind, lw);
    const key = (o: KubeObject): string => `${kind === 'transaction' ? 'txn' : 'txp'}/${o.metadata.name}`;
    for (const event of ['add', 'update', 'delete'] as const) lw.on(event, (o) => this.enqueue(key(o)));
    lw.on('error', (err) => {
      // A watch that was replaced reports its own abort: only the serving or pending one's failures count.
      if ((this.ctx[field] !== lw && this.pending.get(kind) !== lw) || this.stopped) return;
      if (!this.down.has(kind)) this.o.logger.warn({ kind, server: this.api.server, err: messageOf(err) }, 'lost the apiserver watch; retrying with backoff');
      this.down.add(kind);
      clearTimeout(this.restarts.get(kind));
      this.restarts.set(kind, setTimeout(() => this.startWatch(kind), this.backoffs[kind].nextMs()));
    });
    void lw.start().catch((err: unknown) => this.pending.get(kind) === lw && this.o.logger.warn({ kind, err: messageOf(err) }, 'apiserver watch failed to start'));
  }

  private reportProblems(problems: string[]): void {
    for (const p of problems) {
      if (this.reported.has(p)) continue;
      this.reported.add(p);
      this.o.logger.warn({ problem: p }, 'malformed record in etcd: skipped (fix or delete it)');
    }
  }
}

function definedOf<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
