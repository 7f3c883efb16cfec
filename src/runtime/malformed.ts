/**
 * The records under a service's prefix that the engine cannot use (bad JSON, missing fields, keys
 * that are not txloop keys, orders without their branch, links without their global). Each one is
 * logged once, naming its key and the problem, when it is first seen; a resync delivering the same
 * record again logs nothing more. The counts per key prefix feed a gauge and the leader's stats, so
 * `txloop top` and alerts see them without anyone reading logs. Past `limit` records only their
 * keys are kept, not their problems, and they are not logged.
 */
import type { Logger } from 'pino';

export const MALFORMED_KINDS = ['gtx', 'member', 'branch', 'order', 'leader', 'stats', 'replica', 'unknown'] as const;
export type MalformedKind = (typeof MALFORMED_KINDS)[number];

interface Known {
  kind: MalformedKind;
  problem: string;
  /** The revision of the value that was reported; a new value is judged again. */
  modRevision: string;
}

export class MalformedRecords {
  private readonly known = new Map<string, Known>();
  /** Keys past the limit: only the key is kept, so a resync reporting them again counts nothing new. */
  private readonly untracked = new Set<string>();
  private warnedFull = false;

  constructor(
    private readonly logger: Logger,
    private readonly limit = 10_000,
  ) {}

  /** `key` at `modRevision` cannot be used because of `problem`. Logged the first time only. */
  report(key: string, kind: MalformedKind, problem: string, modRevision: string): void {
    const prev = this.known.get(key);
    // One line per value: a record both unreadable and orphaned is reported for the first problem.
    if (prev && prev.modRevision === modRevision) return;
    if (!prev && this.known.size >= this.limit) {
      this.untracked.add(key);
      if (!this.warnedFull) {
        this.warnedFull = true;
        this.logger.error({ limit: this.limit }, `more than ${this.limit} malformed records; further ones are counted, not logged`);
      }
      return;
    }
    this.known.set(key, { kind, problem, modRevision });
    this.logger.error({ key, kind, problem }, 'malformed record skipped; it is ignored until it is repaired or deleted');
  }

  /**
   * The key now holds `modRevision` (or was deleted: undefined). A reported record that changed or
   * vanished is forgotten, and judged again if it is still bad.
   */
  seen(key: string, modRevision: string | undefined): void {
    if (modRevision === undefined) this.untracked.delete(key);
    const prev = this.known.get(key);
    if (!prev || prev.modRevision === modRevision) return;
    this.known.delete(key);
    if (modRevision === undefined) this.logger.info({ key, kind: prev.kind }, 'malformed record deleted');
  }

  /** Reported records by key prefix; records past the limit count as `unknown`. */
  counts(): Record<MalformedKind, number> {
    const counts = Object.fromEntries(MALFORMED_KINDS.map((k) => [k, 0])) as Record<MalformedKind, number>;
    for (const { kind } of this.known.values()) counts[kind]++;
    counts.unknown += this.untracked.size;
    return counts;
  }

  get size(): number {
    return this.known.size + this.untracked.size;
  }
}
