/**
 * Leader election on an etcd lease: one replica of a service holds `<ns><app>/leader`, bound to its
 * lease. Only the leader reconciles; its writes are fenced on the key's create_revision (store.ts).
 *
 * Two pitfalls of etcd3's own Election shape this module:
 * - its `lost` event can fire about two TTLs late, so leadership is also dropped locally once the last
 *   confirmed keep-alive is older than the TTL minus a safety margin;
 * - a campaign can "win" after its lease already expired; here the put carries the lease, so etcd
 *   itself refuses a put on an expired lease, and a stale lease is revoked and discarded.
 *
 * Every replica, leader or standby, also announces itself: each lease it is granted gets one presence
 * record (`presenceKey`), bound to that lease, so the record lives exactly as long as the lease.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { RetryBackoff } from '../backoff.js';
import type { LeaderRecord, ReplicaRecord } from '../leader.js';
import type { ConnectionState } from './connection-state.js';
import { cmp, op, type Fence } from './kv.js';
import { cancelWatcher } from './watch.js';

export interface LeaderElectorOptions {
  client: Etcd3;
  key: string;
  identity: string;
  ttlSeconds: number;
  logger: Logger;
  /** Where election failures go (one line per outage); without it each failure is logged. */
  connection?: ConnectionState;
  /** The key of this replica's presence record for a lease (decimal id); without it, none is written. */
  presenceKey?(leaseId: string): string;
}

export interface LeaderElectorEvents {
  started: [fence: Fence, signal: AbortSignal];
  stopped: [reason: string];
}

export class LeaderElector extends EventEmitter<LeaderElectorEvents> {
  private stopped = false;
  private lease: Lease | undefined;
  private grantedLease: string | undefined;
  private leading: { fence: Fence; abort: AbortController } | undefined;
  /** Send time of the newest keep-alive etcd acknowledged: the lease lives at least TTL past it. */
  private confirmedAt = 0;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private watcher: Watcher | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private readonly backoff: RetryBackoff;
  /** Aborted by stop(): a presence put waiting to retry gives up at once. */
  private readonly closed = new AbortController();

  constructor(private readonly options: LeaderElectorOptions) {
    super();
    // Retries start fast (a lost race is not an outage) and spread out, jittered, while etcd is down.
    this.backoff = this.newBackoff();
  }

  private newBackoff(): RetryBackoff {
    const ttlMs = this.options.ttlSeconds * 1000;
    return new RetryBackoff({ initialMs: Math.min(200, ttlMs / 10), maxMs: Math.max(1_000, ttlMs) });
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
  }

  /** The lease of the current term, for keys that must vanish with this leader. */
  get leaseId(): string | undefined {
    return this.leading ? this.grantedLease : undefined;
  }

  isLeader(): boolean {
    return this.leading !== undefined && this.leaseFresh();
  }

  /** The fence for writes, or undefined when this replica must not write as leader. */
  fence(): Fence | undefined {
    return this.isLeader() ? this.leading?.fence : undefined;
  }

  async stop(): Promise<void> {
    if (this.stopped) return this.loop;
    this.stopped = true;
    const fence = this.leading?.fence;
    this.stepDown('service stopping');
    this.wake?.();
    if (fence) {
      // Resign so a standby takes over now rather than after the TTL.
      await this.options.client.kv
        .txn({ compare: [cmp.created(fence.key, fence.createRevision)], success: [op.del(fence.key)], failure: [] })
        .catch(() => undefined);
    }
    await this.dropLease();
    this.closed.abort();
    await this.loop;
  }

  private leaseFresh(): boolean {
    const ttlMs = this.options.ttlSeconds * 1000;
    const margin = Math.min(1000, ttlMs / 5);
    return Date.now() < this.confirmedAt + ttlMs - margin;
  }

  private async run(): Promise<void> {
    const { logger } = this.options;
    while (!this.stopped) {
      try {
        if (!this.lease || !this.leaseFresh()) await this.newLease();
        const won = await this.campaign();
        this.options.connection?.ok();
        this.backoff.reset();
        if (this.stopped) break;
        if (won) {
          await this.holdLeadership();
        } else {
          await this.waitForVacancy();
        }
      } catch (err) {
        if (this.stopped) break;
        if (!this.options.connection?.failed('leader election', err)) logger.warn({ err: (err as Error).message }, 'leader election: retrying after error');
        this.stepDown('election error');
        await this.dropLease();
        await this.sleep(this.backoff.nextMs());
      }
    }
  }

  private async newLease(): Promise<void> {
    await this.dropLease();
    const lease = this.options.client.lease(this.options.ttlSeconds, { autoKeepAlive: true });
    let leaseId: string | undefined;
    // Keep-alives fire every TTL/3 whether or not the last one was answered, and answers come back
    // in order: an answer proves the lease was alive when *its* request was sent, the oldest unanswered.
    const sent: number[] = [];
    lease.on('keepaliveFired', () => {
      sent.push(Date.now());
    });
    lease.on('keepaliveSucceeded', () => {
      const at = sent.shift();
      if (at !== undefined) this.confirmedAt = Math.max(this.confirmedAt, at);
    });
    lease.on('keepaliveFailed', () => {
      // The stream is torn down and re-created: nothing sent on it will be answered.
      sent.length = 0;
    });
    lease.on('lost', () => {
      // etcd3's own message for this is garbled ("Lease We lost connection … is expired or revoked").
      // A lease whose grant failed "is lost" too; that failure is the election's to report.
      if (leaseId !== undefined) this.options.logger.warn({ lease: leaseId }, `leader election: lease ${leaseId} lost (etcd did not confirm a keep-alive within its ${this.options.ttlSeconds}s TTL)`);
      if (this.lease === lease) {
        this.lease = undefined;
        this.stepDown('lease lost');
        this.wake?.();
      }
    });
    const sentAt = Date.now();
    leaseId = await lease.grant();
    this.grantedLease = leaseId;
    this.confirmedAt = sentAt;
    this.lease = lease;
    // Not awaited: the campaign goes ahead at once, leadership is won no later for it. Nor by stop():
    // a put still in flight then is refused or deleted with the revoked lease, and ends silently.
    if (this.options.presenceKey) void this.announce(lease, leaseId, this.options.presenceKey(leaseId));
  }

  /**
   * Puts this replica's presence record for `lease`, bound to it: one put per lease, retried with
   * backoff while `lease` is still this replica's and the put fails. The retry is here, not in the
   * election loop, because a leader holding its term turns that loop no more, and a replica that
   * holds a live lease must be seen. A new lease announces itself anew; a revoked or expired one takes
   * its record with it (a put that reaches etcd after the revoke is refused: the lease is gone).
   */
  private async announce(lease: Lease, leaseId: string, key: string): Promise<void> {
    const { client, identity, logger } = this.options;
    const record: ReplicaRecord = { identity, host: hostname(), pid: process.pid, since: Date.now(), lease: leaseId };
    const value = Buffer.from(JSON.stringify(record));
    const backoff = this.newBackoff();
    for (let failures = 0; ; failures++) {
      if (this.stopped || this.lease !== lease) return;
      try {
        await client.kv.put({ key: Buffer.from(key), value, lease: leaseId });
        if (failures > 0) logger.info({ key, failures }, 'replica presence record written');
        return;
      } catch (err) {
        if (this.stopped || this.lease !== lease) return;
        // One line per lease, however long it takes: the election reports an outage itself.
        if (failures === 0) logger.warn({ key, err: (err as Error).message }, 'replica presence record not written; retrying while its lease lives');
      }
      await this.pause(backoff.nextMs());
    }
  }

  /** Waits `ms`, or less once stop() was called. */
  private pause(ms: number): Promise<void> {
    const signal = this.closed.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      signal.addEventListener('abort', done);
    });
  }

  private async dropLease(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    this.grantedLease = undefined;
    if (lease) await lease.revoke().catch(() => undefined);
  }

  private async campaign(): Promise<boolean> {
    const { client, key, identity, logger } = this.options;
    const leaseId = this.grantedLease;
    if (!leaseId) return false;
    const record: LeaderRecord = { identity, host: hostname(), pid: process.pid, since: Date.now(), lease: leaseId };
    const res = await client.kv.txn({ compare: [cmp.absent(key)], success: [op.put(key, record, leaseId)], failure: [] });
    if (!res.succeeded) return false;
    if (!this.leaseFresh() || this.stopped) {
      // Won on a lease that may already be gone: give it back rather than lead without a lease.
      await client.kv.txn({ compare: [cmp.created(key, res.header.revision)], success: [op.del(key)], failure: [] }).catch(() => undefined);
      return false;
    }
    const abort = new AbortController();
    this.leading = { fence: { key, createRevision: res.header.revision }, abort };
    logger.info({ leaderKey: key, identity }, 'became leader');
    this.emit('started', this.leading.fence, abort.signal);
    return true;
  }

  /** Holds until the lease goes stale, the key changes hands, or stop(). */
  private async holdLeadership(): Promise<void> {
    const { client, key } = this.options;
    const fence = this.leading!.fence;
    // From just after our campaign: a takeover or delete in between is seen, not skipped.
    const watcher = await client.watch().key(key).startRevision((BigInt(fence.createRevision) + 1n).toString()).create();
    this.watcher = watcher;
    const ttlMs = this.options.ttlSeconds * 1000;
    try {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        watcher.on('delete', () => {
          this.stepDown('leader key deleted');
          resolve();
        });
        watcher.on('put', (kv) => {
          if (kv.create_revision !== fence.createRevision) {
            this.stepDown('leader key taken over');
            resolve();
          }
        });
        this.checkTimer = setInterval(() => {
          if (!this.leading || !this.leaseFresh()) {
            this.stepDown('lease keep-alive is stale');
            resolve();
          }
        }, Math.max(50, Math.min(500, ttlMs / 10)));
        if (!this.leading) resolve();
      });
    } finally {
      clearInterval(this.checkTimer);
      this.wake = undefined;
      this.watcher = undefined;
      await cancelWatcher(watcher);
    }
    if (!this.stopped) {
      // A new lease for the next campaign: the old one may be what failed.
      await this.dropLease();
    }
  }

  /** Waits until the leader key is deleted (resignation or lease expiry), or a safety re-check time. */
  private async waitForVacancy(): Promise<void> {
    const { client, key } = this.options;
    const watcher = await client.watch().key(key).create();
    this.watcher = watcher;
    try {
      const current = (await client.kv.range({ key: Buffer.from(key) })).kvs[0];
      if (!current) return;
      if (current.lease === '0') {
        // Every campaign binds the key to a lease, so one without a lease was written by hand (or
        // corrupted) and would block every election forever: remove it, unless it changed meanwhile.
        this.options.logger.error({ key, value: current.value.toString().slice(0, 200) }, 'leader key has no lease (not written by an election); deleting it so an election can happen');
        await client.kv.txn({ compare: [cmp.mod(key, current.mod_revision)], success: [op.del(key)], failure: [] });
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        watcher.on('delete', () => resolve());
        const t = setTimeout(resolve, Math.max(200, (this.options.ttlSeconds * 1000) / 2));
        t.unref();
      });
    } finally {
      this.wake = undefined;
      this.watcher = undefined;
      await cancelWatcher(watcher);
    }
  }

  private stepDown(reason: string): void {
    const leading = this.leading;
    if (!leading) return;
    this.leading = undefined;
    leading.abort.abort(new Error(`leadership lost: ${reason}`));
    const level = this.stopped ? 'info' : 'warn';
    this.options.logger[level]({ leaderKey: this.options.key, reason }, 'stopped leading');
    this.emit('stopped', reason);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
