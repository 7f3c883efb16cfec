/**
 * Reads every key under a prefix at one revision, in responses of bounded size, in time linear in
 * the number of keys.
 *
 * Why not `limit` pages: etcd 3.4 answers a limited range by walking every key from the start key
 * to the end of the range (to report `count` and `more`), so paging a prefix costs O(n²) key visits.
 * And why not one range: its response grows with the values (payloads up to maxPayloadBytes each)
 * and fails whole once it passes the client's gRPC receive limit.
 *
 * So: one keys-only range of the prefix fixes revision R and lists its keys (no values: small).
 * Then the values are read at R in sub-ranges [k_i, k_j) of that list without a `limit`, so etcd
 * walks only the keys it returns. A batch is sized from the bytes per key of the last batch read;
 * one whose response is still too large is read again as two halves. The two steps are also
 * exported (`listKeys`, `readValues`), so a relist can read only the values that changed since its
 * cache last saw them (cache/informer.ts).
 */
import { GRPCResourceExhastedError, type Etcd3, type IKeyValue } from 'etcd3';
import { prefixEnd } from './kv.js';

/**
 * The gRPC receive limit every etcd client of txloop sets (`grpc.max_receive_message_length`):
 * gRPC's default, 4 MiB, is passed by a handful of transactions with large payloads.
 */
export const MAX_RECEIVE_MESSAGE_BYTES = 256 * 1024 * 1024;

/** Value bytes aimed at per response: large enough to amortise a round trip, small next to the limit. */
const TARGET_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * At most this many keys per response. etcd refuses requests over --max-request-bytes (1.5 MiB by
 * default), so no value is larger, and 128 of the largest still fit in MAX_RECEIVE_MESSAGE_BYTES
 * even when the batch before them held only small records.
 */
const MAX_BATCH_KEYS = 128;

/** Keys in the first batch, before any value size is known. */
const FIRST_BATCH_KEYS = 16;

/** Batches read at once: a batch costs about a round trip beyond its bytes. */
const PARALLEL_READS = 4;

/** A read at a revision etcd compacted away while it ran is started over this many times. */
const COMPACTION_RESTARTS = 3;

export interface RangeOptions {
  /** Read at this revision (it fails if etcd compacted it); the current revision when absent. */
  revision?: string;
  /** Only keys and their revisions, no values: one range. */
  keysOnly?: boolean;
  /**
   * Called for a key whose value alone is larger than the client accepts; the key is then left out
   * and the read goes on. Without it, such a key fails the whole read.
   */
  onTooLarge?: (key: Buffer, error: Error) => void;
}

export interface RangeResult {
  kvs: IKeyValue[];
  /** The revision every key was read at. */
  revision: string;
}

export async function rangePrefix(client: Etcd3, prefix: string, options: RangeOptions = {}): Promise<RangeResult> {
  for (let restart = 0; ; restart++) {
    try {
      return await rangeAt(client, prefix, options);
    } catch (err) {
      // A revision we picked ourselves may be compacted under us; a caller's revision is the caller's.
      if (options.revision !== undefined || restart >= COMPACTION_RESTARTS || !isCompacted(err)) throw err;
    }
  }
}

async function rangeAt(client: Etcd3, prefix: string, options: RangeOptions): Promise<RangeResult> {
  const listing = await listKeys(client, prefix, options.revision);
  if (options.keysOnly) return listing;
  const { revision } = listing;
  const keys = listing.kvs.map((kv) => kv.key);
  /** Values read, by the index in `keys` of the first key of their batch. */
  const batches = new Map<number, IKeyValue[]>();
  await readValues(client, prefix, keys, revision, [[0, keys.length]], { ...(options.onTooLarge ? { onTooLarge: options.onTooLarge } : {}), onBatch: (from, kvs) => batches.set(from, kvs) });
  const kvs: IKeyValue[] = [];
  for (const from of [...batches.keys()].sort((a, b) => a - b)) kvs.push(...batches.get(from)!);
  return { kvs, revision };
}

/**
 * A keys-only listing of the prefix: its keys and their revisions (no values), at `revision` or
 * now, in key order. With `splits` (keys under the prefix, ascending), it is read as the sub-ranges
 * between them, all at the revision of the first: each walks only its own keys, and no response has
 * to be decoded in one piece for the whole prefix (100k keys take ~0.2 s of the event loop).
 */
export async function listKeys(client: Etcd3, prefix: string, revision?: string, splits: readonly Buffer[] = []): Promise<RangeResult> {
  const bounds = [Buffer.from(prefix), ...splits, prefixEnd(prefix)];
  const range = (i: number, at: string | undefined) => client.kv.range({ key: bounds[i]!, range_end: bounds[i + 1]!, keys_only: true, ...(at !== undefined ? { revision: at } : {}) });
  const first = await range(0, revision);
  const at = revision ?? first.header.revision;
  const pages: IKeyValue[][] = [first.kvs];
  let next = 1;
  const worker = async (): Promise<void> => {
    while (next < bounds.length - 1) {
      const i = next++;
      pages[i] = (await range(i, at)).kvs;
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_READS }, worker));
  return { kvs: pages.length === 1 ? first.kvs : pages.flat(), revision: at };
}

export interface ReadValuesOptions {
  /** Each batch as it arrives (in any order): the index in `keys` of its first key, and its keys with their values. */
  onBatch: (from: number, kvs: IKeyValue[]) => void;
  onTooLarge?: RangeOptions['onTooLarge'];
}

/**
 * Reads at `revision` the values of the keys `keys[from..to-1]` of each span, where `keys` is a
 * keys-only listing of `prefix` at that same revision (in key order). Each response is bounded
 * (sized from the bytes per key of the last one, halved when still too large) and covers only the
 * keys it returns, so etcd walks each key once: the read is linear in the keys asked for.
 */
export async function readValues(client: Etcd3, prefix: string, keys: readonly Buffer[], revision: string, spans: readonly (readonly [number, number])[], options: ReadValuesOptions): Promise<void> {
  const end = prefixEnd(prefix);
  /** Batches that came back too large, to be read again in halves; taken before new batches. */
  const split: [number, number][] = [];
  let span = 0;
  let next = spans[0]?.[0] ?? 0;
  let perKey: number | undefined;
  let ceiling = MAX_BATCH_KEYS;

  const read = async (from: number, to: number): Promise<void> => {
    try {
      // [keys[from], keys[to]) at R holds exactly keys[from..to-1]: the listing was taken at R too.
      const res = await client.kv.range({ key: keys[from]!, range_end: to < keys.length ? keys[to]! : end, revision });
      const bytes = res.kvs.reduce((n, kv) => n + kv.key.length + kv.value.length, 0);
      perKey = Math.max(1, bytes / Math.max(1, res.kvs.length));
      options.onBatch(from, res.kvs);
    } catch (err) {
      if (!isTooLarge(err)) throw err;
      if (to - from === 1) {
        if (!options.onTooLarge) throw err;
        options.onTooLarge(keys[from]!, err as Error);
        return;
      }
      const half = Math.floor((to - from) / 2);
      ceiling = Math.min(ceiling, half);
      split.push([from + half, to], [from, from + half]);
    }
  };
  const worker = async (): Promise<void> => {
    for (;;) {
      let batch = split.pop();
      if (!batch) {
        while (span < spans.length && next >= spans[span]![1]) {
          span++;
          next = spans[span]?.[0] ?? next;
        }
        if (span >= spans.length) return;
        const size = perKey === undefined ? FIRST_BATCH_KEYS : Math.floor(TARGET_BATCH_BYTES / perKey);
        batch = [next, Math.min(spans[span]![1], next + Math.max(1, Math.min(ceiling, size)))];
        next = batch[1];
      }
      await read(...batch);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_READS }, worker));
}

/** gRPC refused a response over its receive limit (RESOURCE_EXHAUSTED, "Received message larger than max"). */
export function isTooLarge(err: unknown): boolean {
  return err instanceof GRPCResourceExhastedError || (err instanceof Error && /larger than max|RESOURCE_EXHAUSTED/i.test(err.message));
}

function isCompacted(err: unknown): boolean {
  return err instanceof Error && /required revision has been compacted/.test(err.message);
}
