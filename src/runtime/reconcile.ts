/**
 * What a reconcile returns and throws (controller-runtime's contract), and the context a leadership
 * term hands every reconcile step:
 *
 * - resolves `undefined`            → done (the key's failures are forgotten);
 * - resolves `{ requeueAfterMs }`   → look again after that long (waiting for a deadline, a retry time);
 * - throws {@link TerminalError}    → retrying cannot help: logged, forgotten, not retried;
 * - throws anything else            → retry with per-key exponential backoff.
 */
import type { Logger } from 'pino';
import { LeadershipLost } from '../errors.js';
import type { Fence } from '../etcd/index.js';
import type { ResolvedOptions } from '../options.js';
import type { CheckBack } from '../resource.js';
import type { Outcome } from '../states.js';
import type { Phase2Outcome } from '../stats.js';
import type { DecisionWritten, GlobalRecord, Store, TransactionRead } from '../store/index.js';
import type { CachedKv } from '../cache/index.js';
import type { Expectations } from './expectations.js';
import type { MalformedRecords } from './malformed.js';

export type ReconcileResult = void | { requeueAfterMs: number };

// Defined with the other errors (public); re-exported for the runtime's files, which import it from here.

/** What the term reports to the service (events, metrics, counters). */
export interface TermEvents {
  phase2(outcome: Phase2Outcome): void;
  /** This replica decided a global (deadline expiry, or a participant rolling back a stuck one). */
  decided(global: GlobalRecord): void;
  completed(global: GlobalRecord): void;
  collected(xid: string): void;
}

/** Everything one leadership term gives its reconcile steps. */
export interface ReconcileContext<Handlers = unknown> {
  app: string;
  store: Store;
  /** The informer's cache of this service's prefix. */
  cache: ReadonlyMap<string, CachedKv>;
  options: ResolvedOptions;
  logger: Logger;
  /** This term's fence, or undefined once the term is over (checked fresh, locally, on each call). */
  fence(): Fence | undefined;
  /** The participant's handlers by resource name. */
  handlers: ReadonlyMap<string, Handlers>;
  malformed: MalformedRecords;
  expectations: Expectations;
  events: TermEvents;
  /** Keys of a global's members currently in the cache. */
  memberKeys(xid: string): Iterable<string>;
  /** Look at this finished global again at `due` (for collection). */
  collectAt(xid: string, due: number): void;
  /** Decides a global with the rule of its mode (deadline expiry, a participant's rollback). */
  decide(xid: string, request: { outcome: Outcome; by: string; reason?: string }): Promise<DecisionWritten>;
  /** The transaction `xid` as the cache holds it, in the shape of an etcd read (undefined: not cached or malformed). */
  cached(xid: string): TransactionRead | undefined;
  /** Some term of this service led at `revision` (yes when etcd no longer keeps it): see term-history.ts. */
  ledAt(revision: string): Promise<boolean>;
  /** Branch keys with an attempt this term ran but could not write (counted before the next one). */
  unrecorded: Set<string>;
  /** A resource's stepped retry delays in ms (ResourceOptions.retry), or undefined: exponential. */
  retrySchedule(resource: string): readonly number[] | undefined;
  /** The check-back this service registered for messages named `name` (2-phase messages), if any. */
  checkBack?(name: string): CheckBack | undefined;
}

/** This term's fence, or LeadershipLost: only the current leader acts (invariant 5). */
export function requireFence(ctx: Pick<ReconcileContext, 'fence' | 'store' | 'app'>): Fence {
  const fence = ctx.fence();
  if (!fence) throw new LeadershipLost(ctx.store.keys.leader(ctx.app));
  return fence;
}
