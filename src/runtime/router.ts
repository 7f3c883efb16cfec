/**
 * From a key change in the informer's cache to the work it causes: every record is checked as it
 * arrives (a bad one is reported once, on every replica), the member index and the branch counts
 * are kept, and the leader's term is told which global or branch to look at.
 */
import { MalformedRecord } from '../errors.js';
import type { CachedKv, MemberIndex } from '../cache/index.js';
import { Slices, nextTurn } from '../slices.js';
import { finishedSummary, parseBranch, parseGlobal, parseLeaderRecord, parseMember, parseOrder, parseReplicaRecord, parseStatsRecord, type BranchRecord, type Keys, type ParsedKey } from '../store/index.js';
import type { MalformedKind, MalformedRecords } from './malformed.js';
import { BranchCounts } from './stats.js';
import type { Term } from './term.js';

/** Each kind's parser, reading a cache entry (records are parsed once per entry: store/parse.ts). */
const PARSERS: Record<ParsedKey['kind'], (key: string, entry: CachedKv) => unknown> = {
  global: (key, e) => parseGlobal.ofEntry(key, e),
  member: (key, e) => parseMember.ofEntry(key, e),
  branch: (key, e) => parseBranch.ofEntry(key, e),
  order: (key, e) => parseOrder.ofEntry(key, e),
  leader: (key, e) => parseLeaderRecord(key, e.value),
  stats: (key, e) => parseStatsRecord(key, e.value),
  // Other replicas' presence: checked like every record, and nothing else (no work follows from it).
  replica: (key, e) => parseReplicaRecord(key, e.value),
};

const KIND: Record<ParsedKey['kind'], MalformedKind> = { global: 'gtx', member: 'member', branch: 'branch', order: 'order', leader: 'leader', stats: 'stats', replica: 'replica' };

/** The word counted for a branch record that does not parse, or whose mode this service does not run. */
const MALFORMED = 'MALFORMED';

export interface RouterOptions {
  keys: Keys;
  app: string;
  malformed: MalformedRecords;
  members: MemberIndex;
  /** The current leadership term, if this replica leads. */
  term(): Term<unknown> | undefined;
  /** Why this service cannot run records of `mode` (the mode registry's `notRun`), or undefined when it runs it. */
  modeProblem?(mode: string): string | undefined;
  /** The status word of a branch record of a mode this service runs (its mode's `branchStatus`), for the published counts. */
  branchStatus?(branch: BranchRecord): string;
}

export class Router {
  /** This service's branches by status word, kept as they change (the leader publishes them). */
  readonly branches = new BranchCounts();

  constructor(private readonly o: RouterOptions) {}

  /**
   * Called as each change is applied to the cache, before any reconcile can read it: keeps the
   * member index equal to the cache (completion reads a global's members through it).
   */
  index(key: string, kv: CachedKv | undefined): void {
    if (!key.includes('/member/') && !key.includes('/link/')) return;
    const parsed = this.o.keys.parse(key);
    if (parsed?.kind === 'member' && parsed.app === this.o.app) this.o.members.update(parsed.xid, key, kv !== undefined);
  }

  onChange(key: string, kv: CachedKv | undefined): void {
    const { keys, app, malformed } = this.o;
    malformed.seen(key, kv?.modRevision);
    const parsed = keys.parse(key);
    if (!parsed || parsed.app !== app) {
      if (kv) malformed.report(key, 'unknown', `not a txloop key: expected ${keys.app(app)}gtx/<xid>, member/<xid>/<owner>/<branch>, branch/<xid>/<branch>, order/<xid>/<branch>, leader, stats or replica/<replica-id>`, kv.modRevision);
      return;
    }
    if (kv) {
      let word = MALFORMED;
      try {
        const record = PARSERS[parsed.kind](key, kv);
        const mode = parsed.kind === 'global' || parsed.kind === 'branch' || parsed.kind === 'order' ? (record as { mode: string }).mode : undefined;
        const problem = mode === undefined ? undefined : this.o.modeProblem?.(mode);
        if (problem !== undefined) malformed.report(key, KIND[parsed.kind], problem, kv.modRevision);
        else if (parsed.kind === 'branch' && this.o.branchStatus) word = this.o.branchStatus(record as BranchRecord);
      } catch (err) {
        if (!(err instanceof MalformedRecord)) throw err;
        malformed.report(key, KIND[parsed.kind], err.problem, kv.modRevision);
      }
      if (parsed.kind === 'branch' && this.o.branchStatus) this.branches.set(key, word);
    } else if (parsed.kind === 'branch') {
      this.branches.set(key, undefined);
    }
    this.queue(parsed, kv === undefined);
  }

  /**
   * The value the cache keeps for a key in place of `raw`, or undefined to keep `raw`: a branch
   * whose phase 2 is DONE is kept as its summary (no payload, no timeline). The owner still
   * collects it when it is an orphan, and counts it, from the summary.
   */
  compact(key: string, raw: Buffer): Buffer | undefined {
    if (!key.includes('/branch/') || raw.indexOf('"DONE"') < 0) return undefined;
    const parsed = this.o.keys.parse(key);
    if (parsed?.kind !== 'branch' || parsed.app !== this.o.app) return undefined;
    let summary: BranchRecord | undefined;
    try {
      summary = finishedSummary(parseBranch(key, raw));
    } catch {
      return undefined; // kept as it is, and reported by onChange
    }
    return summary ? Buffer.from(JSON.stringify(summary)) : undefined;
  }

  /**
   * A new term looks at everything it can see, exactly as if each key had just changed (the records
   * were checked as they arrived: this only queues them). In slices, so the lease's keep-alives go
   * on; it stops when `current()` says the term is over. Keys that change meanwhile are queued by
   * their change as well.
   */
  async replay(cache: ReadonlyMap<string, CachedKv>, current: () => boolean): Promise<void> {
    const slices = new Slices();
    for (const key of cache.keys()) {
      if (!current()) return;
      const parsed = this.o.keys.parse(key);
      if (parsed && parsed.app === this.o.app) this.queue(parsed, false);
      if (slices.full()) await nextTurn();
    }
  }

  private queue(parsed: ParsedKey, deleted: boolean): void {
    const term = this.o.term();
    if (!term) return;
    if (parsed.kind === 'global' || parsed.kind === 'member') term.globalChanged(parsed.xid, parsed.kind === 'global' && deleted);
    else if (parsed.kind === 'branch' || parsed.kind === 'order') term.branchChanged(parsed.xid, parsed.branchId);
  }
}
