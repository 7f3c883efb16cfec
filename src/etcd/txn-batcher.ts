/**
 * Group commit for etcd Txns. While one request is in flight, Txns submitted meanwhile wait and then
 * go out together as the nested Txns of one outer Txn: each keeps its own compares (so each still
 * succeeds or fails on its own, fences included), all share one revision, and a busy service pays
 * one RPC and one raft entry for many writes. An idle service sends each Txn at once, alone.
 *
 * etcd evaluates every nested Txn against the state *before* the outer Txn, as if they ran at the
 * same instant. That is only equivalent to running them one after another when no Txn of a batch
 * writes a key another one compares, reads or writes; so a Txn joins a batch only if its footprint
 * is disjoint from the batch's in that sense (and etcd itself refuses two writes of one key).
 */
import type { Etcd3, ICompare, IRequestOp, ITxnRequest, ITxnResponse } from 'etcd3';
import { EtcdLeaseInvalidError, GRPCInvalidArgumentError } from 'etcd3';

/** A key, or a range [start, end) when `end` is set (byte order, like etcd). */
interface Span {
  start: Buffer;
  end?: Buffer;
}

interface Footprint {
  writes: Span[];
  /** Keys and ranges compared or read: their values must be the ones before the batch. */
  reads: Span[];
  bytes: number;
}

export interface SubmitOptions {
  /**
   * Epoch ms after which the client gives up on this Txn (gRPC deadline, retries included). A Txn
   * whose deadline is at least `callTimeoutMs` away joins a batch, which then waits until the
   * earliest deadline of its Txns (never shorter than the client's own timeout, so no other Txn of
   * the batch gets less time than it would alone); a Txn whose deadline is closer goes out alone.
   */
  deadline?: number;
}

interface Pending {
  request: ITxnRequest;
  deadline: number | undefined;
  footprint: Footprint;
  resolve(res: ITxnResponse): void;
  reject(err: unknown): void;
}

export interface TxnBatcherOptions {
  /** Nested Txns per outer Txn; etcd checks each level against --max-txn-ops. */
  maxBatch: number;
  /** Stay well under etcd's 1.5 MiB request limit. @default 1_000_000 */
  maxBytes?: number;
  /** A batch with a deadline waits at most this long (the client's own request timeout). @default 10_000 */
  callTimeoutMs?: number;
  /**
   * Batches in flight at once. A Txn joins a new batch only if it conflicts with no batch still in
   * flight, so Txns touching a common key still go out one after another, in the order they were
   * submitted. @default 1
   */
  maxInFlight?: number;
}

export class TxnBatcher {
  private queue: Pending[] = [];
  /** Footprints of the batches in flight. */
  private readonly inFlight = new Set<Footprint[]>();
  /** Outer requests sent, for tests and the benchmark. */
  rpcs = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly options: TxnBatcherOptions,
  ) {}

  submit(request: ITxnRequest, options: SubmitOptions = {}): Promise<ITxnResponse> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, deadline: options.deadline, footprint: footprintOf(request), resolve, reject });
      this.flush();
    });
  }

  /** Sends batches while there is room in flight and a queued Txn free of what is in flight. */
  private flush(): void {
    while (this.queue.length > 0 && this.inFlight.size < (this.options.maxInFlight ?? 1)) {
      const batch = this.takeBatch();
      if (!batch) return;
      const footprints = batch.map((p) => p.footprint);
      this.inFlight.add(footprints);
      void this.send(batch).finally(() => {
        this.inFlight.delete(footprints);
        this.flush();
      });
    }
  }

  /**
   * The next batch: the oldest Txn that conflicts with nothing in flight, and every later one that
   * conflicts with neither the batch, nor what is in flight, nor a Txn before it that stays queued
   * (conflict: one writes what the other compares, reads or writes). So Txns that touch a common
   * key go out in the order they came, one after the other. The first Txn of a batch goes out even
   * when it alone is larger than `maxBytes` (etcd then judges it).
   */
  private takeBatch(): Pending[] | undefined {
    const taken = new Footprints();
    for (const footprints of this.inFlight) for (const f of footprints) taken.add(f);
    /** Txns left queued: a later one touching what they touch must not overtake them. */
    const waiting = new Footprints();
    const batch: Pending[] = [];
    let bytes = 0;
    const maxBytes = this.options.maxBytes ?? 1_000_000;
    const rest: Pending[] = [];
    for (const p of this.queue) {
      const f = p.footprint;
      const free = !taken.conflictsWith(f) && !waiting.conflictsWith(f);
      // A deadline closer than the client's timeout would cut the others' time short: alone.
      const joins = batch.length === 0 || (batch.length < this.options.maxBatch && bytes + f.bytes <= maxBytes && !this.tight(p) && !this.tight(batch[0]!));
      if (free && joins) {
        batch.push(p);
        bytes += f.bytes;
        taken.add(f);
      } else {
        rest.push(p);
        waiting.add(f);
      }
    }
    this.queue = rest;
    return batch.length > 0 ? batch : undefined;
  }

  private async send(batch: Pending[]): Promise<void> {
    this.rpcs++;
    if (batch.length === 1) {
      const only = batch[0]!;
      await this.client.kv.txn(only.request, this.callOptions(batch)).then(only.resolve, only.reject);
      return;
    }
    let outer: ITxnResponse;
    try {
      outer = await this.client.kv.txn({ compare: [], success: batch.map((p) => ({ request_txn: p.request })), failure: [] }, this.callOptions(batch));
    } catch (err) {
      if (!refusedWhole(err)) {
        // Transport trouble: the batch may or may not have been applied, exactly as for a single
        // Txn; every caller sees the error and re-reads before acting.
        for (const p of batch) p.reject(err);
        return;
      }
      // etcd refused the request whole (something in one Txn is invalid): send each alone, so one
      // bad request fails only its own caller.
      await Promise.all(batch.map((p) => this.client.kv.txn(p.request, this.callOptions([p])).then(p.resolve, p.reject)));
      return;
    }
    batch.forEach((p, i) => {
      const inner = outer.responses[i]?.response_txn;
      if (!inner) p.reject(new Error('etcd returned no response for a batched Txn'));
      else p.resolve({ ...inner, header: outer.header });
    });
  }

  /** A deadline closer than the client's own timeout. */
  private tight(p: Pending): boolean {
    return p.deadline !== undefined && p.deadline - Date.now() < (this.options.callTimeoutMs ?? 10_000);
  }

  /** The batch's gRPC deadline: its earliest Txn deadline; none (the client's default) when no Txn has one. */
  private callOptions(batch: Pending[]): { deadline: number } | undefined {
    const deadlines = batch.flatMap((p) => (p.deadline !== undefined ? [p.deadline] : []));
    if (deadlines.length === 0) return undefined;
    return { deadline: Math.min(...deadlines, Date.now() + (this.options.callTimeoutMs ?? 10_000)) };
  }
}

/**
 * What a batch (and the batches in flight) write and touch, indexed so that checking a Txn costs a
 * hash lookup per single key — most Txns touch only single keys; ranges (member prefixes) are few.
 */
class Footprints {
  private readonly writeKeys = new Map<string, Buffer>();
  private readonly writeRanges: Span[] = [];
  private readonly touchedKeys = new Map<string, Buffer>();
  private readonly touchedRanges: Span[] = [];

  add(f: Footprint): void {
    for (const w of f.writes) {
      put(w, this.writeKeys, this.writeRanges);
      put(w, this.touchedKeys, this.touchedRanges);
    }
    for (const r of f.reads) put(r, this.touchedKeys, this.touchedRanges);
  }

  /** `f` writes what these touch, or reads what these write. */
  conflictsWith(f: Footprint): boolean {
    return f.writes.some((w) => hits(w, this.touchedKeys, this.touchedRanges)) || f.reads.some((r) => hits(r, this.writeKeys, this.writeRanges));
  }
}

function put(s: Span, keys: Map<string, Buffer>, ranges: Span[]): void {
  if (s.end) ranges.push(s);
  else keys.set(s.start.toString('latin1'), s.start);
}

function hits(s: Span, keys: Map<string, Buffer>, ranges: Span[]): boolean {
  if (!s.end) {
    if (keys.has(s.start.toString('latin1'))) return true;
    return ranges.some((r) => inRange(s.start, r));
  }
  for (const k of keys.values()) if (inRange(k, s)) return true;
  return ranges.some((r) => overlaps(s, r));
}

/** `key` ∈ [range.start, range.end) ("\0" as end: to the end of the keyspace). */
function inRange(key: Buffer, range: Span): boolean {
  if (Buffer.compare(key, range.start) < 0) return false;
  const end = range.end;
  return !end || (end.length === 1 && end[0] === 0) || Buffer.compare(key, end) < 0;
}

function footprintOf(request: ITxnRequest): Footprint {
  const writes: Span[] = [];
  const reads: Span[] = [];
  let bytes = 64;
  const span = (key: Buffer, end: Buffer | undefined): Span => (end && end.length > 0 ? { start: key, end } : { start: key });
  const visit = (ops: IRequestOp[] | undefined): void => {
    for (const op of ops ?? []) {
      if (op.request_put?.key) {
        writes.push(span(op.request_put.key, undefined));
        bytes += op.request_put.key.length + (op.request_put.value?.length ?? 0);
      } else if (op.request_delete_range?.key) {
        writes.push(span(op.request_delete_range.key, op.request_delete_range.range_end));
        bytes += op.request_delete_range.key.length;
      } else if (op.request_range?.key) {
        reads.push(span(op.request_range.key, op.request_range.range_end));
        bytes += op.request_range.key.length;
      } else if (op.request_txn) {
        const inner = footprintOf(op.request_txn);
        writes.push(...inner.writes);
        reads.push(...inner.reads);
        bytes += inner.bytes;
      }
    }
  };
  visit(request.success);
  visit(request.failure);
  for (const c of request.compare ?? []) {
    if (!c.key) continue;
    reads.push(span(c.key, (c as ICompare).range_end));
    bytes += c.key.length + (c.value?.length ?? 0) + 16;
  }
  return { writes, reads, bytes };
}

/** etcd rejected the request as a whole without applying any of it (so re-sending is safe). */
function refusedWhole(err: unknown): boolean {
  if (err instanceof GRPCInvalidArgumentError || err instanceof EtcdLeaseInvalidError) return true;
  return err instanceof Error && /too many operations|duplicate key|request is too large|lease not found/i.test(err.message);
}

/** Whether two keys/ranges share a key. A range end of "\0" means "to the end of the keyspace". */
export function overlaps(a: Span, b: Span): boolean {
  const endA = a.end && !(a.end.length === 1 && a.end[0] === 0) ? a.end : a.end ? undefined : next(a.start);
  const endB = b.end && !(b.end.length === 1 && b.end[0] === 0) ? b.end : b.end ? undefined : next(b.start);
  // [a.start, endA) ∩ [b.start, endB) ≠ ∅, with undefined end = +∞
  const aBeforeB = endA !== undefined && Buffer.compare(endA, b.start) <= 0;
  const bBeforeA = endB !== undefined && Buffer.compare(endB, a.start) <= 0;
  return !aBeforeB && !bBeforeA;
}

/** The smallest key after `key`: a single key is the range [key, key + "\0"). */
function next(key: Buffer): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}
