/**
 * Counts the etcd requests the services make through the shared client (reads cost etcd too) and
 * the logical Txns inside them, through a hook of the gRPC client instead of wrapping etcd3's methods:
 * grpc-js's `callInvocationTransformer` client option, which etcd3 hands to the gRPC clients it builds
 * with the rest of `grpcOptions`. The client calls it for every call it starts, with the method, the
 * request and the callback that gets the response or the error: a KV `Txn` or `Range` is counted
 * there, a batch's nested Txns are read from its request, and how each logical Txn ended from its
 * response.
 *
 * (etcd3's own `defaultCallOptions` factory also sees every request, but not its response; a gRPC
 * interceptor it could return for that costs each call about 10 µs of CPU, measured, which on a
 * machine where this process is the limit lowers the TCC rate by one or two per cent.)
 *
 * Group commit sends concurrent store Txns as the nested Txns (`request_txn`) of one outer Txn with no
 * compares, which always "succeeds": each nested Txn is classified and counted on its own, and a
 * conflict is a nested `response_txn.succeeded === false`. A request etcd3 retries (after an
 * unavailable member) counts once per attempt. Leases and watches are not counted, and neither are
 * requests for keys outside txloop's namespace (the bench's raw Txns and revision probes).
 */
import type { CallProperties, ServiceError } from '@grpc/grpc-js';
import type { IRangeRequest, IRequestOp, ITxnRequest, ITxnResponse } from 'etcd3';
import type { Keys } from './internals.js';

const TXN = '/etcdserverpb.KV/Txn';
const RANGE = '/etcdserverpb.KV/Range';

/** Counts since the start, or (after `diff`) over one phase. */
export interface RpcCounts {
  /** Txn RPCs sent (outer requests: a batch of nested Txns counts once). */
  txnRpcs: number;
  /** Of those, outer Txns carrying nested Txns (group commit batches). */
  batchedRpcs: number;
  /** Txn RPCs that failed (the batcher then resends each nested Txn alone, counted again). */
  failedRpcs: number;
  /** Logical Txns that got an answer: nested ones counted one by one, plus unbatched ones. */
  logicalWrite: number;
  logicalReadOnly: number;
  /** Range RPCs (Store.range pages, getRaw). */
  range: number;
  /** Batch sizes seen: nested Txns per batched RPC → count. */
  batchSizes: Record<string, number>;
  /** Logical write Txns whose compares failed, by what they tried to write. */
  conflicts: Record<string, number>;
}

export class RequestCounter {
  private readonly counts: RpcCounts = { txnRpcs: 0, batchedRpcs: 0, failedRpcs: 0, logicalWrite: 0, logicalReadOnly: 0, range: 0, batchSizes: {}, conflicts: {} };
  private readonly ns: Buffer;

  constructor(private readonly keys: Keys) {
    this.ns = Buffer.from(keys.ns);
  }

  /** Pass as the counted client's `grpcOptions`: `new Etcd3({ hosts, grpcOptions: counter.grpcOptions })`. */
  readonly grpcOptions = {
    callInvocationTransformer: (call: CallProperties<unknown, unknown>): CallProperties<unknown, unknown> => this.started(call),
  };

  private started(call: CallProperties<unknown, unknown>): CallProperties<unknown, unknown> {
    const path = call.methodDefinition.path;
    if (path === RANGE) {
      if (this.ours((call.argument as IRangeRequest).key)) this.counts.range++;
      return call;
    }
    const req = call.argument as ITxnRequest;
    const callback = call.callback;
    if (path !== TXN || !callback || !this.ours(firstKey(req))) return call;
    const c = this.counts;
    c.txnRpcs++;
    const nested = nestedTxns(req);
    if (nested) {
      c.batchedRpcs++;
      c.batchSizes[nested.length] = (c.batchSizes[nested.length] ?? 0) + 1;
    }
    return {
      ...call,
      callback: (err: ServiceError | null, value?: unknown) => {
        const res = value as ITxnResponse | undefined;
        if (err) c.failedRpcs++;
        else if (res && nested) nested.forEach((n, i) => this.logical(n, res.responses[i]?.response_txn?.succeeded));
        else if (res) this.logical(req, res.succeeded);
        callback(err, value);
      },
    };
  }

  /**
   * Whether a request is txloop's: its first key is under the namespace. The bench's own raw Txns and
   * revision probes are not counted (they are never reported).
   */
  private ours(key: Buffer | undefined): boolean {
    if (key === undefined) return true;
    return Buffer.isBuffer(key) ? key.subarray(0, this.ns.length).equals(this.ns) : String(key).startsWith(this.keys.ns);
  }

  /** Throws unless the hook saw Txns since `from`: an etcd3 that no longer passed `grpcOptions` to its gRPC clients would count nothing. */
  assertCounting(from: RpcCounts): void {
    if (this.counts.txnRpcs === from.txnRpcs) throw new Error('request counting saw no Txn RPC: does etcd3 still pass grpcOptions.callInvocationTransformer to its gRPC clients?');
  }

  private logical(req: ITxnRequest, succeeded: boolean | undefined): void {
    const success = (req.success ?? []) as IRequestOp[];
    const writes = success.some((o) => o.request_put || o.request_delete_range || o.request_txn);
    if (!writes) {
      this.counts.logicalReadOnly++;
      return;
    }
    this.counts.logicalWrite++;
    if (succeeded === false) {
      const what = [
        ...new Set(success.map((o) => (o.request_put ? `put ${this.keys.parse(String(o.request_put.key ?? ''))?.kind ?? 'other'}` : o.request_delete_range ? 'delete' : 'txn'))),
      ].join('+');
      this.counts.conflicts[what] = (this.counts.conflicts[what] ?? 0) + 1;
    }
  }

  snapshot(): RpcCounts {
    return structuredClone(this.counts);
  }

  /** What happened between two snapshots. */
  static diff(a: RpcCounts, b: RpcCounts): RpcCounts {
    const sub = (x: Record<string, number>, y: Record<string, number>): Record<string, number> =>
      Object.fromEntries(Object.entries(y).map(([k, n]) => [k, n - (x[k] ?? 0)]).filter(([, n]) => Number(n) > 0));
    return {
      txnRpcs: b.txnRpcs - a.txnRpcs,
      batchedRpcs: b.batchedRpcs - a.batchedRpcs,
      failedRpcs: b.failedRpcs - a.failedRpcs,
      logicalWrite: b.logicalWrite - a.logicalWrite,
      logicalReadOnly: b.logicalReadOnly - a.logicalReadOnly,
      range: b.range - a.range,
      batchSizes: sub(a.batchSizes, b.batchSizes),
      conflicts: sub(a.conflicts, b.conflicts),
    };
  }
}

/** The first key a Txn compares or touches (a batch's: its first nested Txn's). */
function firstKey(req: ITxnRequest): Buffer | undefined {
  const compare = req.compare?.[0];
  if (compare) return compare.key;
  const op = req.success?.[0];
  if (!op) return undefined;
  return op.request_put?.key ?? op.request_range?.key ?? op.request_delete_range?.key ?? (op.request_txn ? firstKey(op.request_txn) : undefined);
}

/** The nested Txns of a group-commit batch (an outer Txn of only `request_txn` ops, no compares), or undefined. */
function nestedTxns(req: ITxnRequest): ITxnRequest[] | undefined {
  const success = req.success ?? [];
  if ((req.compare ?? []).length > 0 || (req.failure ?? []).length > 0 || success.length === 0) return undefined;
  if (!success.every((o) => o.request_txn)) return undefined;
  return success.map((o) => o.request_txn!);
}
