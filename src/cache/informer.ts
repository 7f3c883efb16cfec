/**
 * List-then-watch over one key prefix, keeping a local cache (client-go's reflector + store).
 *
 * Invariant 6, no missed events: list at revision R, watch from R + 1; when etcd reports the watch
 * revision compacted, or the watch reconnects, list again; and relist periodically as a safety net
 * (etcd3's watcher resumes from the last response header revision, not the last event it delivered).
 * Every key whose value changed, appeared or vanished is handed to `onChange`; level-based
 * reconcilers re-read the cache, so a redundant notification costs nothing but a queue add.
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { RetryBackoff } from '../backoff.js';
import { cancelWatcher, rangePrefix, type ConnectionState } from '../etcd/index.js';

export interface CachedKv {
  value: Buffer;
  modRevision: string;
  createRevision: string;
}

export interface InformerOptions {
  client: Etcd3;
  prefix: string;
  /** Full relist interval. @default 300_000 */
  resyncMs?: number;
  logger: Logger;
  onChange: (key: string, kv: CachedKv | undefined) => void;
  /** Runs between a list and the watch that follows it; lets tests make etcd compact in that gap. */
  afterList?: (revision: string) => Promise<void>;
  /** Where list failures go (one line per outage); without it each failure is logged. */
  connection?: ConnectionState;
  /**
   * A list the caller already read (and showed): the cache starts from it and the watch from its
   * revision + 1, so a key deleted since is reported as deleted rather than never seen.
   */
  seed?: { kvs: IKeyValue[]; revision: string };
}

export class Informer {
  readonly cache = new Map<string, CachedKv>();
  private watcher: Watcher | undefined;
  private stopped = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private relisting: Promise<void> | undefined;
  private relistAgain: string | undefined;
  private readonly deadWatchers = new WeakSet<Watcher>();
  private lastRevision = '0';
  /** Times the cache was rebuilt from a full list (first list included). */
  relists = 0;
  /** Why the last list failed, for a start() that gives up. */
  lastError: unknown;
  private readonly backoff = new RetryBackoff({ initialMs: 100, maxMs: 5_000 });

  constructor(private readonly options: InformerOptions) {}

  async start(): Promise<void> {
    const seed = this.options.seed;
    if (seed) {
      for (const kv of seed.kvs) this.cache.set(kv.key.toString(), { value: kv.value, modRevision: kv.mod_revision, createRevision: kv.create_revision });
      this.lastRevision = seed.revision;
      try {
        await this.openWatcher(seed.revision);
      } catch {
        // Compacted past the seed already (or the watch failed): a relist compares with the seed.
        await this.relist('seed revision unavailable');
      }
    } else {
      await this.relist('initial list');
    }
    const every = this.options.resyncMs ?? 300_000;
    this.resyncTimer = setInterval(() => void this.relist('periodic resync'), every);
    this.resyncTimer.unref();
  }

  /**
   * Stops watching. A list still waiting on etcd is not waited for (it may hang until its request
   * deadline while etcd is down); it sees `stopped` when it returns and opens nothing.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.resyncTimer);
    this.wakeRetry?.();
    await this.closeWatcher();
  }

  private wakeRetry: (() => void) | undefined;

  get revision(): string {
    return this.lastRevision;
  }

  /** Lists the prefix and restarts the watch just after the list's revision; concurrent calls share one run. */
  relist(reason: string): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.relisting) {
      // The running relist may already be past its list (e.g. the new watch was cancelled as
      // compacted before the relist returned): run once more after it.
      this.relistAgain = reason;
      return this.relisting;
    }
    this.relisting = (async () => {
      let why: string | undefined = reason;
      while (why !== undefined && !this.stopped) {
        this.relistAgain = undefined;
        await this.doRelist(why);
        why = this.relistAgain;
      }
    })().finally(() => {
      this.relisting = undefined;
    });
    return this.relisting;
  }

  private async doRelist(reason: string): Promise<void> {
    const { client, prefix, logger, connection } = this.options;
    while (!this.stopped) {
      try {
        await this.closeWatcher();
        const { kvs, revision } = await rangePrefix(client, prefix);
        if (this.stopped) return;
        this.replace(kvs);
        this.lastRevision = revision;
        this.relists++;
        await this.options.afterList?.(revision);
        if (this.stopped) return;
        await this.openWatcher(revision);
        if (this.stopped) {
          await this.closeWatcher();
          return;
        }
        connection?.ok();
        this.backoff.reset();
        this.lastError = undefined;
        if (reason !== 'periodic resync') logger.debug({ prefix, revision, keys: kvs.length, reason }, 'listed');
        return;
      } catch (err) {
        if (this.stopped) return;
        this.lastError = err;
        if (!connection?.failed(`list of ${prefix}`, err)) logger.warn({ prefix, err: (err as Error).message, reason }, 'list failed; retrying');
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.backoff.nextMs());
          t.unref();
          this.wakeRetry = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wakeRetry = undefined;
      }
    }
  }

  private replace(kvs: IKeyValue[]): void {
    const seen = new Set<string>();
    for (const kv of kvs) {
      const key = kv.key.toString();
      seen.add(key);
      const next = { value: kv.value, modRevision: kv.mod_revision, createRevision: kv.create_revision };
      this.cache.set(key, next);
      // Resync delivers every key, changed or not: reconcilers are level-based and the queue dedups.
      this.options.onChange(key, next);
    }
    for (const key of [...this.cache.keys()]) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.options.onChange(key, undefined);
      }
    }
  }

  private async openWatcher(listRevision: string): Promise<void> {
    const { client, prefix, logger } = this.options;
    const start = (BigInt(listRevision) + 1n).toString();
    const watcher = client.watch().prefix(prefix).startRevision(start).watcher();
    this.watcher = watcher;
    let disconnected = false;
    watcher.on('put', (kv) => {
      if (watcher !== this.watcher) return;
      const key = kv.key.toString();
      const prev = this.cache.get(key);
      if (prev && BigInt(prev.modRevision) >= BigInt(kv.mod_revision)) return;
      const next = { value: kv.value, modRevision: kv.mod_revision, createRevision: kv.create_revision };
      this.cache.set(key, next);
      this.bump(kv.mod_revision);
      this.options.onChange(key, next);
    });
    watcher.on('delete', (kv) => {
      if (watcher !== this.watcher) return;
      const key = kv.key.toString();
      this.bump(kv.mod_revision);
      if (this.cache.delete(key)) this.options.onChange(key, undefined);
    });
    watcher.on('disconnected', () => {
      disconnected = true;
    });
    watcher.on('connected', () => {
      if (disconnected && watcher === this.watcher) {
        disconnected = false;
        void this.relist('watch reconnected');
      }
    });
    watcher.on('error', (err) => {
      // etcd3 has already dropped a watcher it reports as cancelled (compaction arrives as
      // "Watcher canceled: " with an empty reason); cancelling it again would never settle.
      this.deadWatchers.add(watcher);
      if (watcher !== this.watcher) return;
      const compacted = /compact|canceled:\s*$/i.test(err.message);
      logger.warn({ prefix, err: err.message, compacted }, compacted ? 'watch revision compacted; relisting' : 'watch error; relisting');
      void this.relist(compacted ? 'compacted' : 'watch error');
    });
    await new Promise<void>((resolve, reject) => {
      const onConnected = (): void => {
        watcher.off('error', onError);
        resolve();
      };
      const onError = (err: Error): void => {
        watcher.off('connected', onConnected);
        reject(err);
      };
      watcher.once('connected', onConnected);
      watcher.once('error', onError);
    });
  }

  private bump(revision: string): void {
    if (BigInt(revision) > BigInt(this.lastRevision)) this.lastRevision = revision;
  }

  private async closeWatcher(): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    if (!w || this.deadWatchers.delete(w)) return;
    await cancelWatcher(w);
  }
}
