/**
 * Group commit for etcd Txns. While one request is in flight, Txns submitted meanwhile wait and then
 * go out together as the nested Txns of one outer Txn: each keeps its own compares (so each still
 * succeeds or fails on its own, fences included), all share one revision, and a busy service pays
 * one RPC and one raft entry for many writes. An idle service sends each Txn at once, alone.
 *
 * etcd rejects a whole request in which two nested Txns write the same key, so Txns that touch a
 * common key go to different batches, and range deletes are never batched.
 */
import type { Etcd3, IRequestOp, ITxnRequest, ITxnResponse } from 'etcd3';

interface Pending {
  request: ITxnRequest;
  keys: Set<string> | undefined; // undefined: must go alone
  bytes: number;
  resolve(res: ITxnResponse): void;
  reject(err: unknown): void;
}

export interface TxnBatcherOptions {
  /** Nested Txns per outer Txn; etcd checks each level against --max-txn-ops. */
  maxBatch: number;
  /** Stay well under etcd's 1.5 MiB request limit. @default 1_000_000 */
  maxBytes?: number;
}

export class TxnBatcher {
  private queue: Pending[] = [];
  private flushing = false;
  /** Outer requests sent, for tests and the benchmark. */
  rpcs = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly options: TxnBatcherOptions,
  ) {}

  submit(request: ITxnRequest): Promise<ITxnResponse> {
    return new Promise((resolve, reject) => {
      const { keys, bytes } = footprint(request);
      this.queue.push({ request, keys, bytes, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.takeBatch();
        await this.send(batch);
      }
    } finally {
      this.flushing = false;
    }
  }

  private takeBatch(): Pending[] {
    const first = this.queue.shift()!;
    if (!first.keys) return [first];
    const batch = [first];
    const used = new Set(first.keys);
    let bytes = first.bytes;
    const maxBytes = this.options.maxBytes ?? 1_000_000;
    const rest: Pending[] = [];
    for (const p of this.queue) {
      const fits =
        batch.length < this.options.maxBatch && p.keys !== undefined && bytes + p.bytes <= maxBytes && ![...p.keys].some((k) => used.has(k));
      if (fits) {
        batch.push(p);
        bytes += p.bytes;
        for (const k of p.keys!) used.add(k);
      } else {
        rest.push(p);
      }
    }
    this.queue = rest;
    return batch;
  }

  private async send(batch: Pending[]): Promise<void> {
    this.rpcs++;
    if (batch.length === 1) {
      const only = batch[0]!;
      await this.client.kv.txn(only.request).then(only.resolve, only.reject);
      return;
    }
    let outer: ITxnResponse;
    try {
      outer = await this.client.kv.txn({ compare: [], success: batch.map((p) => ({ request_txn: p.request })), failure: [] });
    } catch {
      // Something in the batch made etcd refuse it whole (or the call failed): send each alone,
      // so one bad request fails only its own caller. Callers already treat a Txn's outcome as
      // unknown after an error and re-read before acting, so a replay is safe.
      await Promise.all(batch.map((p) => this.client.kv.txn(p.request).then(p.resolve, p.reject)));
      return;
    }
    batch.forEach((p, i) => {
      const inner = outer.responses[i]?.response_txn;
      if (!inner) p.reject(new Error('etcd returned no response for a batched Txn'));
      else p.resolve({ ...inner, header: outer.header });
    });
  }
}

function footprint(request: ITxnRequest): { keys: Set<string> | undefined; bytes: number } {
  const keys = new Set<string>();
  let bytes = 0;
  let alone = false;
  const visit = (ops: IRequestOp[] | undefined): void => {
    for (const op of ops ?? []) {
      if (op.request_put?.key) {
        keys.add(op.request_put.key.toString('latin1'));
        bytes += op.request_put.key.length + (op.request_put.value?.length ?? 0);
      } else if (op.request_delete_range?.key) {
        if (op.request_delete_range.range_end) alone = true;
        keys.add(op.request_delete_range.key.toString('latin1'));
        bytes += op.request_delete_range.key.length;
      } else if (op.request_txn) {
        alone = true;
      } else if (op.request_range?.key) {
        bytes += op.request_range.key.length;
      }
    }
  };
  visit(request.success);
  visit(request.failure);
  for (const c of request.compare ?? []) bytes += (c.key?.length ?? 0) + (c.value?.length ?? 0) + 16;
  return { keys: alone ? undefined : keys, bytes: bytes + 64 };
}
