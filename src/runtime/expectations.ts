/**
 * controller-runtime's "expectations": the mod revision of this replica's last write to a key.
 * Until the cache has caught up with it, the cache is stale for that key, and acting on it would
 * run a handler again for work already recorded; the watch event of the write queues the key again.
 */
export class Expectations {
  private readonly written = new Map<string, string>();

  /** This replica wrote `key` at `modRevision`. */
  wrote(key: string, modRevision: string): void {
    this.written.set(key, modRevision);
  }

  /** Whether the cache entry for `key` (at `cachedRevision`) is older than this replica's last write. */
  stale(key: string, cachedRevision: string): boolean {
    const expected = this.written.get(key);
    if (expected === undefined) return false;
    if (BigInt(cachedRevision) < BigInt(expected)) return true;
    this.written.delete(key);
    return false;
  }

  forget(key: string): void {
    this.written.delete(key);
  }
}
