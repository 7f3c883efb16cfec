/**
 * Streaming reads for the CLI: every key of a key range at one revision, in batches, in key order,
 * holding a bounded amount of it at a time, so `get` over 100k records prints as it reads instead of
 * holding the namespace.
 *
 * A range is read as pages of keys (keys only, `limit`, the page size growing to PAGE_KEYS), and the
 * values of each page in sub-ranges [k_i, k_j) of it without a `limit` (as src/etcd/range.ts does
 * for a whole prefix), a few at a time, each sized from the bytes per key of the last one read; a
 * response still too large is read again in halves. etcd 3.4 walks every key from a limited range's
 * start to its end, so a page costs the keys after it: the CLI reads narrow ranges (one record type
 * of one service: `<ns><app>/branch/`), in pages large enough that a range of 100k keys takes ten.
 *
 * Every read of one Snapshot is at the revision of its first one, so a listing is one consistent
 * view, as when it was read whole.
 */
import type { Etcd3, IKeyValue, IRangeResponse } from 'etcd3';
import { isTooLarge, prefixEnd } from '../etcd/index.js';

/** Value bytes aimed at per response: PARALLEL_READS of them are what a scan holds ahead. */
const TARGET_BATCH_BYTES = 1024 * 1024;
/** At most this many values per response: 128 of the largest values etcd accepts fit the client's limit. */
const MAX_BATCH_KEYS = 128;
/** Values in the first batch of a range, before any value size is known. */
const FIRST_BATCH_KEYS = 16;
/** Value batches read at once, ahead of the one being printed. */
const PARALLEL_READS = 4;
/** Keys in the first page (a small listing is one page), doubling up to PAGE_KEYS. */
const FIRST_PAGE_KEYS = 1_000;
const PAGE_KEYS = 10_000;

/** The key range [key, end). */
export interface Span {
  key: Buffer;
  end: Buffer;
}

export function prefixSpan(prefix: string): Span {
  return { key: Buffer.from(prefix), end: prefixEnd(prefix) };
}

export interface ScanOptions {
  /** Keys (and revisions) only. */
  keysOnly?: boolean;
  /** A key whose value alone is larger than the client accepts: it is left out and the scan goes on. Without it, such a key fails the scan. */
  onTooLarge?: (key: Buffer) => void;
}

/** Reads at one revision: the first response fixes it, every later read asks for it. */
export class Snapshot {
  revision: string | undefined;

  constructor(readonly client: Etcd3) {}

  /** Fixes the revision now (one point read), before reads that run side by side. */
  async pin(anyKey: string): Promise<void> {
    if (this.revision === undefined) await this.range({ key: Buffer.from(anyKey) });
  }

  async range(r: { key: Buffer; end?: Buffer; keysOnly?: boolean; limit?: number }): Promise<IRangeResponse> {
    const res = await this.client.kv.range({
      key: r.key,
      ...(r.end ? { range_end: r.end } : {}),
      ...(r.keysOnly ? { keys_only: true } : {}),
      ...(r.limit !== undefined ? { limit: r.limit } : {}),
      ...(this.revision !== undefined ? { revision: this.revision } : {}),
    });
    this.revision ??= res.header.revision;
    return res;
  }

  /** The values of a prefix (or span) read whole: for ranges known to be small (one transaction's members). */
  async all(span: Span, options: ScanOptions = {}): Promise<IKeyValue[]> {
    const out: IKeyValue[] = [];
    for await (const batch of this.scan(span, options)) out.push(...batch);
    return out;
  }

  /** Every key of `span`, in key order, in batches; at most a page of keys and PARALLEL_READS value batches held ahead. */
  async *scan(span: Span, options: ScanOptions = {}): AsyncGenerator<IKeyValue[]> {
    let limit = FIRST_PAGE_KEYS;
    let page: Promise<IRangeResponse> | undefined = this.range({ key: span.key, end: span.end, keysOnly: true, limit });
    while (page) {
      const res: IRangeResponse = await page;
      const keys = res.kvs.map((kv) => kv.key);
      if (keys.length === 0) return;
      // The next page is asked for while this one's values are read.
      const after: Buffer | undefined = res.more ? Buffer.concat([keys[keys.length - 1]!, Buffer.from([0])]) : undefined;
      limit = Math.min(PAGE_KEYS, limit * 2);
      page = after ? quiet(this.range({ key: after, end: span.end, keysOnly: true, limit })) : undefined;
      if (options.keysOnly) yield res.kvs;
      else yield* this.values(keys, after ?? span.end, options);
    }
  }

  /** The values of `keys` (one page, listed at this revision), ending before `end`, in batches in key order. */
  private async *values(keys: Buffer[], end: Buffer, options: ScanOptions): AsyncGenerator<IKeyValue[]> {
    let next = 0;
    let perKey: number | undefined;
    let ceiling = MAX_BATCH_KEYS;
    const read = async (from: number, to: number): Promise<IKeyValue[]> => {
      try {
        // [keys[from], keys[to]) at this revision holds exactly keys[from..to-1]: the page was listed at it.
        const res = await this.range({ key: keys[from]!, end: to < keys.length ? keys[to]! : end });
        const bytes = res.kvs.reduce((n, kv) => n + kv.key.length + kv.value.length, 0);
        perKey = Math.max(1, bytes / Math.max(1, res.kvs.length));
        return res.kvs;
      } catch (err) {
        if (!isTooLarge(err)) throw err;
        if (to - from === 1) {
          if (!options.onTooLarge) throw err;
          options.onTooLarge(keys[from]!);
          return [];
        }
        const half = Math.floor((to - from) / 2);
        ceiling = Math.min(ceiling, half);
        return [...(await read(from, from + half)), ...(await read(from + half, to))];
      }
    };
    const inFlight: Promise<IKeyValue[]>[] = [];
    while (next < keys.length || inFlight.length > 0) {
      while (inFlight.length < PARALLEL_READS && next < keys.length) {
        const size = perKey === undefined ? FIRST_BATCH_KEYS : Math.floor(TARGET_BATCH_BYTES / perKey);
        const to = Math.min(keys.length, next + Math.max(1, Math.min(ceiling, size)));
        inFlight.push(quiet(read(next, to)));
        next = to;
      }
      yield await inFlight.shift()!;
    }
  }
}

/** `p`, marked handled: a read started ahead whose result is never awaited (an earlier one failed) is no unhandled rejection. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** One key at a time over a scan, for merging scans of parallel ranges. */
export class KvCursor {
  private batch: IKeyValue[] = [];
  private at = 0;
  private done = false;

  constructor(private readonly source: AsyncIterator<IKeyValue[]>) {}

  /** The next key, or undefined at the end. */
  async head(): Promise<IKeyValue | undefined> {
    while (this.at >= this.batch.length) {
      if (this.done) return undefined;
      const r = await this.source.next();
      if (r.done) {
        this.done = true;
        return undefined;
      }
      this.batch = r.value;
      this.at = 0;
    }
    return this.batch[this.at];
  }

  /** Moves past the head (call after head() returned one). */
  take(): IKeyValue {
    return this.batch[this.at++]!;
  }
}

/**
 * Merges scans of parallel ranges into groups of keys that belong together (a global and its member
 * records; a branch and its order), in order. `groupOf` names a key's group; each scan must come in
 * the order of those names (key order does, for the layouts here: see the callers).
 */
export async function* mergeGroups(sources: { scan: AsyncIterable<IKeyValue[]>; groupOf: (key: string) => string }[]): AsyncGenerator<IKeyValue[]> {
  const cursors = sources.map((s) => ({ cursor: new KvCursor(s.scan[Symbol.asyncIterator]()), groupOf: s.groupOf }));
  for (;;) {
    const heads = await Promise.all(cursors.map((c) => c.cursor.head()));
    let min: string | undefined;
    heads.forEach((h, i) => {
      if (!h) return;
      const g = cursors[i]!.groupOf(h.key.toString());
      if (min === undefined || g < min) min = g;
    });
    if (min === undefined) return;
    const group: IKeyValue[] = [];
    for (const { cursor, groupOf } of cursors) {
      for (let h = await cursor.head(); h && groupOf(h.key.toString()) === min; h = await cursor.head()) group.push(cursor.take());
    }
    yield group;
  }
}
