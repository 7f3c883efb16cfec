/**
 * Whether some term of this service led at a given revision, looked up in etcd's history of the
 * leader key. A branch whose order was written while a term led may have had its first attempt run
 * by that term without a record (a first attempt is not written before it runs: see
 * modes/tcc/attempts.ts), so the next term counts that attempt.
 *
 * Asked once per distinct revision and term; past `limit` lookups (a large backlog inherited at
 * once) and for a revision etcd no longer keeps, the answer is yes: counting an attempt that did
 * not run costs one attempt of budget, never a missed count.
 */
import type { Store } from '../store/index.js';

export class TermHistory {
  private readonly answers = new Map<string, Promise<boolean>>();

  constructor(
    private readonly store: Store,
    private readonly leaderKey: string,
    private readonly limit = 1_000,
  ) {}

  ledAt(revision: string): Promise<boolean> {
    let answer = this.answers.get(revision);
    if (answer) return answer;
    if (this.answers.size >= this.limit) return Promise.resolve(true);
    answer = this.store.edge.getRaw(this.leaderKey, revision).then(
      (kv) => kv !== undefined,
      (err: unknown) => {
        // Compacted away: assume a term led. Anything else (etcd unreachable): the reconcile fails
        // and is retried, asking again.
        if (err instanceof Error && /compacted/.test(err.message)) return true;
        this.answers.delete(revision);
        throw err;
      },
    );
    this.answers.set(revision, answer);
    return answer;
  }
}
