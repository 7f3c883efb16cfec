/**
 * The manager (controller-runtime's): owns a service's informer and its leader election, and runs a
 * leadership term while this replica leads. It knows nothing of modes: the term it starts is built by
 * the caller.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { AbortError, ServiceClosed, TxloopError } from '../errors.js';
import { Informer, type CachedKv } from '../cache/index.js';
import { LeaderElector, toTxloopError, type ConnectionState, type Fence } from '../etcd/index.js';
import { raceAbort } from '../signals.js';
import type { Router } from './router.js';
import type { Term } from './term.js';

export interface ManagerOptions {
  client: Etcd3;
  /** The service's prefix (watched) and leader key. */
  prefix: string;
  leaderKey: string;
  /** The key of this replica's presence record while it holds lease `leaseId` (decimal). */
  replicaKey(leaseId: string): string;
  identity: string;
  leaseTtlSeconds: number;
  resyncMs: number;
  logger: Logger;
  connection: ConnectionState;
  endpoints: readonly string[];
  router: Router;
  /** Builds the term for a fence this replica just won. */
  newTerm(fence: Fence): Term<unknown>;
  /** This replica started or stopped leading. */
  onLeading(leading: boolean): void;
}

export class Manager {
  private informer: Informer | undefined;
  private elector: LeaderElector | undefined;
  private current: Term<unknown> | undefined;
  private stopped = false;
  /** Aborted when the service begins to close: no term starts after that, even before stop(). */
  private closing: AbortSignal | undefined;

  constructor(private readonly o: ManagerOptions) {}

  get cache(): ReadonlyMap<string, CachedKv> {
    return this.informer?.cache ?? new Map();
  }

  /** The running term, while this replica leads. */
  get term(): Term<unknown> | undefined {
    return this.current;
  }

  isLeader(): boolean {
    return this.elector?.isLeader() ?? false;
  }

  /** This replica's fence, or undefined when it must not write as leader. */
  fence(): Fence | undefined {
    return this.elector?.fence();
  }

  get leaseId(): string | undefined {
    return this.elector?.leaseId;
  }

  /**
   * Lists the prefix (within `timeoutMs`, unless `stop` aborts first), then joins the election.
   * Fails with EtcdUnavailable naming the endpoints when the first list does not succeed in time.
   */
  async start(options: { timeoutMs: number; signal?: AbortSignal; closed: AbortSignal }): Promise<void> {
    const { client, prefix, logger, connection, router } = this.o;
    this.closing = options.closed;
    const informer = new Informer({
      client,
      prefix,
      resyncMs: this.o.resyncMs,
      logger,
      connection,
      onChange: (key, kv) => router.onChange(key, kv),
      index: (key, kv) => router.index(key, kv),
      compact: (key, value) => router.compact(key, value),
    });
    this.informer = informer;
    const gaveUp = AbortSignal.any([options.closed, AbortSignal.timeout(options.timeoutMs), ...(options.signal ? [options.signal] : [])]);
    try {
      await raceAbort(informer.start(), gaveUp);
    } catch (err) {
      await informer.stop();
      this.informer = undefined;
      if (options.closed.aborted) throw options.closed.reason instanceof ServiceClosed ? options.closed.reason : new ServiceClosed('');
      if (options.signal?.aborted) throw new AbortError(undefined, options.signal.reason);
      if (gaveUp.aborted) {
        const cause = informer.lastError ?? new Error(`no answer within ${options.timeoutMs}ms`);
        throw cause instanceof TxloopError ? cause : toTxloopError(cause, this.o.endpoints, `start: the first list of ${prefix} within ${options.timeoutMs}ms`);
      }
      throw err;
    }
    const elector = new LeaderElector({ client, key: this.o.leaderKey, presenceKey: this.o.replicaKey, identity: this.o.identity, ttlSeconds: this.o.leaseTtlSeconds, logger, connection });
    this.elector = elector;
    elector.on('started', (fence) => this.lead(fence));
    elector.on('stopped', () => void this.stepDown());
    elector.start();
  }

  /** Stops leading (resigning, so a standby takes over at once) and watching. Safe to call twice. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.stepDown();
    await this.elector?.stop();
    await this.informer?.stop();
  }

  private lead(fence: Fence): void {
    // A replica winning the election while its service drains Trys in flight must not start
    // running handlers: it resigns when stop() comes.
    if (this.stopped || this.closing?.aborted) return;
    const term = this.o.newTerm(fence);
    this.current = term;
    term.start();
    // In slices, not one pass over the cache: the lease's keep-alives must go on meanwhile.
    void this.o.router.replay(this.cache, () => this.current === term).catch((err: unknown) => this.o.logger.error({ err: (err as Error).message }, 'replay of the cache for a new term failed'));
    this.o.onLeading(true);
  }

  private async stepDown(): Promise<void> {
    const term = this.current;
    if (!term) return;
    this.current = undefined;
    await term.stop();
    this.o.onLeading(false);
  }
}
