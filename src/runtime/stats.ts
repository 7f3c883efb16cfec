/**
 * The figures a leader publishes for `txloop top` (`<ns><app>/stats`): its queues, what phase 2 did
 * on this replica, its branches by status, and the records it could not use.
 */
import type { CachedKv } from '../cache/index.js';
import type { Phase2Outcome, ServiceStats } from '../stats.js';
import type { Keys } from '../store/index.js';
import type { MalformedRecords } from './malformed.js';
import type { Term } from './term.js';

/** What phase 2 and completion did on this replica since it started. */
export class ServiceCounters {
  readonly phase2 = { succeeded: 0, failed: 0, parked: 0, completed: 0, collected: 0 };

  attempted(o: Phase2Outcome): void {
    this.phase2[o.result]++;
  }

  completed(): void {
    this.phase2.completed++;
  }

  collected(): void {
    this.phase2.collected++;
  }
}

export interface StatsSource {
  identity: string;
  keys: Keys;
  counters: ServiceCounters;
  cache: ReadonlyMap<string, CachedKv>;
  malformed: MalformedRecords;
  /** The status word of a cached branch record (its mode's), or MALFORMED. */
  branchStatus(key: string, kv: CachedKv): string;
}

export function serviceStats(source: StatsSource, term: Term<unknown>): ServiceStats {
  const branches: Record<string, number> = {};
  for (const [key, kv] of source.cache) {
    if (source.keys.parse(key)?.kind !== 'branch') continue;
    const s = source.branchStatus(key, kv);
    branches[s] = (branches[s] ?? 0) + 1;
  }
  return {
    identity: source.identity,
    at: Date.now(),
    queues: { globals: term.globals.stats(), branches: term.branches.stats() },
    phase2: { ...source.counters.phase2 },
    branches,
    malformed: source.malformed.counts(),
  };
}
