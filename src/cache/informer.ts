/**
 * List-then-watch over one key prefix, keeping a local cache (client-go's reflector + store).
 *
 * Invariant 6, no missed events: list at revision R, watch from R + 1; when etcd reports the watch
 * revision compacted, or the watch reconnects, list again; and relist periodically as a safety net
 * (etcd3's watcher resumes from the last response header revision, not the last event it delivered).
 * Every key whose value changed, appeared or vanished is handed to `onChange`; level-based
 * reconcilers re-read the cache, so a redundant notification costs nothing but a queue add.
 *
 * At 100k keys, in time and memory linear in the keys and without stalling the event loop:
 * - a relist lists keys and revisions only (in sub-ranges of ~5k keys cut at cached keys, so no
 *   response is decoded in one piece for the whole prefix), compares them with the cache in
 *   slices, and reads the values of only the keys that are new or changed (etcd/range.ts, bounded
 *   ranges that walk only the keys they return). A relist that finds nothing changed reads no value and
 *   notifies nothing, so the periodic resync re-queues only what a watch missed, and a relist never
 *   holds a second copy of the cache;
 * - the changes a relist found are applied to the cache in one synchronous step of map updates (so
 *   a reconcile always sees the prefix at one revision: a global's members are all there or not),
 *   with `index` told of each; then `onChange` is called for them in slices, each with the key's
 *   entry at that moment;
 * - values are kept as one-byte strings, not as the Buffers etcd3 decodes: those are views into
 *   the gRPC message they came in (a whole list page, or a pool slab shared with other responses),
 *   so a cached one holds its message; a string of the same bytes costs its length and lives on
 *   the JS heap, where the GC compacts it. `value` hands out a Buffer copy;
 * - `compact` may replace a value by a smaller stand-in (a finished branch's summary).
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { RetryBackoff } from '../backoff.js';
import { cancelWatcher, listKeys, readValues, type ConnectionState } from '../etcd/index.js';
import { Slices, nextTurn } from '../slices.js';

export interface CachedKv {
  /** The value's bytes (a fresh copy on each read). */
  readonly value: Buffer;
  readonly modRevision: string;
  readonly createRevision: string;
}

/**
 * A cache entry: the value's bytes as a one-byte (latin1) string, so they round-trip exactly, and
 * the revisions as small integers where they fit (held in the entry itself, where a string each
 * would cost another 32 bytes twice over).
 */
class Entry implements CachedKv {
  private readonly mod: number | string;
  private readonly created: number | string;

  constructor(
    private readonly bytes: string,
    modRevision: string,
    createRevision: string,
  ) {
    this.mod = compactRevision(modRevision);
    this.created = compactRevision(createRevision);
  }

  get value(): Buffer {
    return Buffer.from(this.bytes, 'latin1');
  }

  /** The value's length in bytes, without copying it. */
  get size(): number {
    return this.bytes.length;
  }

  get modRevision(): string {
    return String(this.mod);
  }

  get createRevision(): string {
    return String(this.created);
  }
}

/** A revision as a small integer (stored unboxed) when it is one, else as it came. */
function compactRevision(revision: string): number | string {
  const n = Number(revision);
  return n <= 0x3fffffff && String(n) === revision ? n : revision;
}

export interface InformerOptions {
  client: Etcd3;
  prefix: string;
  /** Full relist interval. @default 300_000 */
  resyncMs?: number;
  logger: Logger;
  /**
   * A key's value changed, appeared (`kv` is its entry now) or vanished (`kv` undefined). From the
   * watch, at once; from a relist, in slices after the whole list was applied.
   */
  onChange: (key: string, kv: CachedKv | undefined) => void;
  /**
   * Called synchronously as each change is applied to the cache, before anything else can read it:
   * for indexes that must always agree with the cache (the member index). Must be cheap.
   */
  index?: (key: string, kv: CachedKv | undefined) => void;
  /**
   * A smaller value to cache in place of `value` (the key's revisions are kept), or undefined to
   * cache it as it is. Whoever reads the cache then sees the stand-in, not what etcd holds.
   */
  compact?: (key: string, value: Buffer) => Buffer | undefined;
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

/** Unchanged keys read between two changed ones rather than a second range sent: fewer round trips. */
const SPAN_GAP = 16;

/** Keys per sub-range of a relist's keys-only listing (about 10 ms of decoding each). */
const LIST_KEYS = 5_000;

export class Informer {
  /** Keys a relist applied to the cache and has not yet handed to onChange (see doRelist). */
  private readonly unnotified = new Set<string>();
  readonly cache = new Map<string, CachedKv>();
  private watcher: Watcher | undefined;
  private stopped = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private relisting: Promise<void> | undefined;
  private relistAgain: string | undefined;
  private readonly deadWatchers = new WeakSet<Watcher>();
  private lastRevision = '0';
  /** Times the prefix was listed and the cache brought up to that list (the first list included). */
  relists = 0;
  /** Why the last list failed, for a start() that gives up. */
  lastError: unknown;
  private readonly backoff = new RetryBackoff({ initialMs: 100, maxMs: 5_000 });

  constructor(private readonly options: InformerOptions) {}

  async start(): Promise<void> {
    const seed = this.options.seed;
    if (seed) {
      for (const kv of seed.kvs) {
        const key = kv.key.toString();
        this.apply(key, this.entry(key, kv));
      }
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
    const { prefix, logger, connection } = this.options;
    let compactedRestarts = 0;
    while (!this.stopped) {
      try {
        await this.closeWatcher();
        const found = await this.listChanges();
        if (this.stopped || !found) return;
        const { revision, listed, changed, gone } = found;
        // One synchronous step: a reconcile sees the cache before this list or after it, never half.
        for (const [key, entry] of changed) this.apply(key, entry);
        for (const key of gone) this.apply(key, undefined);
        // Handed on only once a watch follows the list: if opening it fails, the next list finds
        // these keys unchanged, so they must not be forgotten meanwhile.
        for (const [key] of changed) this.unnotified.add(key);
        for (const key of gone) this.unnotified.add(key);
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
        if (reason !== 'periodic resync' || changed.length + gone.length > 0) logger.debug({ prefix, revision, keys: listed, changed: changed.length, gone: gone.length, reason }, 'listed');
        const keys = [...this.unnotified];
        this.unnotified.clear();
        await this.notify(keys);
        return;
      } catch (err) {
        if (this.stopped) return;
        // Compacted between the keys-only listing and the values read at its revision: list again.
        if (err instanceof Error && /required revision has been compacted/.test(err.message) && compactedRestarts++ < 3) continue;
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

  /**
   * Lists the prefix's keys at a revision R and says what changed since the cache last saw each
   * key: the entries of keys new or changed (their values read at R), and the cached keys gone.
   * Compares in slices; undefined when the informer was stopped meanwhile.
   */
  private async listChanges(): Promise<{ revision: string; listed: number; changed: [string, Entry][]; gone: string[] } | undefined> {
    const splits = await this.splitKeys();
    if (this.stopped) return undefined;
    const { kvs: listing, revision } = await listKeys(this.options.client, this.options.prefix, undefined, splits);
    if (this.stopped) return undefined;
    const slices = new Slices();
    const keys: Buffer[] = new Array<Buffer>(listing.length);
    const listed = new Set<string>();
    const spans: [number, number][] = [];
    for (let i = 0; i < listing.length; i++) {
      const kv = listing[i]!;
      keys[i] = kv.key;
      const key = kv.key.toString();
      listed.add(key);
      if (this.cache.get(key)?.modRevision !== kv.mod_revision) {
        // Neighbouring changed keys are read in one range (up to a few unchanged ones between them).
        const last = spans[spans.length - 1];
        if (last && i - last[1] <= SPAN_GAP) last[1] = i + 1;
        else spans.push([i, i + 1]);
      }
      if (slices.full()) {
        await nextTurn();
        if (this.stopped) return undefined;
      }
    }
    const changed: [string, Entry][] = [];
    await readValues(this.options.client, this.options.prefix, keys, revision, spans, {
      onBatch: (_from, kvs) => {
        for (const kv of kvs) {
          const key = kv.key.toString();
          // An unchanged key read only because it sat between changed ones.
          if (this.cache.get(key)?.modRevision === kv.mod_revision) continue;
          changed.push([key, this.entry(key, kv)]);
        }
      },
    });
    if (this.stopped) return undefined;
    const gone: string[] = [];
    for (const key of this.cache.keys()) {
      if (!listed.has(key)) gone.push(key);
      if (slices.full()) {
        await nextTurn();
        if (this.stopped) return undefined;
      }
    }
    return { revision, listed: keys.length, changed, gone };
  }

  /**
   * Keys that cut the cached prefix into sub-ranges of about LIST_KEYS keys each, ascending, for a
   * relist's keys-only listing (none while the cache is smaller): every (size ÷ pages)-th cached key,
   * sorted. The cache holds keys mostly in key order (a list's, then the watch's newer ones), so the
   * sub-ranges come out of roughly even size; new keys fall into the sub-range they sort into.
   */
  private async splitKeys(): Promise<Buffer[]> {
    const pages = Math.ceil(this.cache.size / LIST_KEYS);
    if (pages <= 1) return [];
    const step = Math.floor(this.cache.size / pages);
    const picked: Buffer[] = [];
    const slices = new Slices();
    let i = 0;
    for (const key of this.cache.keys()) {
      if (++i % step === 0) picked.push(Buffer.from(key));
      if (slices.full()) await nextTurn();
    }
    picked.sort(Buffer.compare);
    return picked.filter((b, n) => n === 0 || !b.equals(picked[n - 1]!));
  }

  /**
   * Hands the keys a relist changed to `onChange`, in slices, each with its entry as it is now. One
   * that throws is logged and the others still get theirs: the cache already holds the list, so a
   * relist after it would find nothing left to hand on.
   */
  private async notify(keys: string[]): Promise<void> {
    const slices = new Slices();
    for (const key of keys) {
      if (this.stopped) return;
      try {
        this.options.onChange(key, this.cache.get(key));
      } catch (err) {
        this.options.logger.error({ key, err: (err as Error).message }, 'handling a listed change failed');
      }
      if (slices.full()) await nextTurn();
    }
  }

  /** The cache entry for what etcd returned (its value compacted when `compact` says so). */
  private entry(key: string, kv: IKeyValue): Entry {
    const value = this.options.compact?.(key, kv.value) ?? kv.value;
    return new Entry(value.toString('latin1'), kv.mod_revision, kv.create_revision);
  }

  /** Puts (or, for undefined, deletes) one key's entry, and tells the index; true when the cache changed. */
  private apply(key: string, entry: Entry | undefined): boolean {
    if (entry) this.cache.set(key, entry);
    else if (!this.cache.delete(key)) return false;
    this.options.index?.(key, entry);
    return true;
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
      const next = this.entry(key, kv);
      this.apply(key, next);
      this.bump(kv.mod_revision);
      this.options.onChange(key, next);
    });
    watcher.on('delete', (kv) => {
      if (watcher !== this.watcher) return;
      const key = kv.key.toString();
      this.bump(kv.mod_revision);
      if (this.apply(key, undefined)) this.options.onChange(key, undefined);
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
