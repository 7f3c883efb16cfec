/**
 * The figures a leader publishes for `txloop top` (`<ns><app>/stats`): its queues, what phase 2 did
 * on this replica, its branches by status, and the records it could not use.
 */
import type { Phase2Outcome, ServiceStats } from '../stats.js';
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

/**
 * This service's cached branches by status word (their mode's `branchStatus`, MALFORMED for a record
 * that does not parse or whose mode is not run here), kept as each branch key changes (the router
 * sets it), so publishing the figures is not a pass over every cached branch.
 */
export class BranchCounts {
  private readonly words = new Map<string, string>();
  private readonly counts = new Map<string, number>();

  /** `key` now holds a branch in status `word`, or no branch (undefined). */
  set(key: string, word: string | undefined): void {
    const prev = this.words.get(key);
    if (prev === word) return;
    if (prev !== undefined) {
      const n = this.counts.get(prev)! - 1;
      if (n === 0) this.counts.delete(prev);
      else this.counts.set(prev, n);
    }
    if (word === undefined) {
      this.words.delete(key);
      return;
    }
    this.words.set(key, word);
    this.counts.set(word, (this.counts.get(word) ?? 0) + 1);
  }

  /** Branches by status word; words with none are left out. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}

export interface StatsSource {
  identity: string;
  counters: ServiceCounters;
  /** The cached branches by status word. */
  branches: BranchCounts;
  malformed: MalformedRecords;
}

export function serviceStats(source: StatsSource, term: Term<unknown>): ServiceStats {
  return {
    identity: source.identity,
    at: Date.now(),
    queues: { globals: term.globals.stats(), branches: term.branches.stats() },
    phase2: { ...source.counters.phase2 },
    branches: source.branches.snapshot(),
    malformed: source.malformed.counts(),
  };
}
