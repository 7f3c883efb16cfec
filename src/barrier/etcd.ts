/**
 * The branch barrier for participants that keep their data in etcd: the barrier record of a branch
 * and the handler's own keys are written by ONE etcd Txn. The handler adds its compares and ops to
 * the barrier's Txn; the Txn commits them together with the barrier record, guarded by the record's
 * mod revision as read, or commits nothing.
 *
 *   read <prefix><xid>/<branchId> → rules.decide() → run the handler (it fills the Txn) →
 *   Txn( record unchanged since read ∧ handler's compares [∧ leader key of the token's term] )
 *     success: put record, handler's ops    failure: read back what failed
 *
 * A lost race on the record (another attempt of the same branch wrote it meanwhile) is decided
 * again from the new record, which is then usually a duplicate or a refusal.
 */
import type { Etcd3, ICompare, IKeyValue, IRequestOp } from 'etcd3';
import { AbortError, MalformedRecord, ValidationError, WriteConflict } from '../errors.js';
import { cmp, endpointsOf, op as ops, rangePrefix, toTxloopError } from '../etcd/index.js';
import type { SagaStep, TccResource } from '../resource.js';
import { BarrierConditionFailed, BarrierRefused } from './errors.js';
import { sagaStep, tccResource, type BarrierSagaHandlers, type BarrierTccHandlers } from './handlers.js';
import { BarrierRefusal, barrierCall, decide, type BarrierCall, type BarrierContext, type BarrierOp, type BarrierRecord, type BarrierResult } from './rules.js';

export const DEFAULT_BARRIER_PREFIX = 'txloop-barrier/';
const MAX_ROUNDS = 10;
const PRUNE_BATCH = 64;

export interface EtcdBarrierOptions {
  /**
   * Key prefix of the barrier records, ending in '/'. Keep it outside every txloop namespace's
   * `<namespace><app>/` (the services watch those), and near your own data if you like.
   * @default 'txloop-barrier/'
   */
  prefix?: string;
  /**
   * The service's leader key, `<namespace><app>/leader` (e.g. 'txloop/bank/leader'). When set, the
   * Txn of a phase-2 op also compares that key's create revision with `ctx.fencingToken`: a handler
   * of a term that is over writes nothing even before a newer term wrote this branch's barrier.
   */
  leaderKey?: string;
}

type Target = 'Value' | 'Version' | 'Create' | 'Mod' | 'Lease';
type Comparator = '==' | '!=' | '<' | '>';

const RESULT: Record<Comparator, ICompare['result']> = { '==': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' };
const FIELD: Record<Target, 'value' | 'version' | 'create_revision' | 'mod_revision' | 'lease'> = {
  Value: 'value',
  Version: 'version',
  Create: 'create_revision',
  Mod: 'mod_revision',
  Lease: 'lease',
};

const buf = (v: string | Buffer): Buffer => (typeof v === 'string' ? Buffer.from(v) : v);

/**
 * The handler's part of the barrier's Txn. Keys are absolute (an etcd3 namespace's prefix is not
 * applied). Everything added commits together with the barrier record, or nothing does.
 */
export class BarrierTxn {
  /** @internal */
  readonly compares: ICompare[] = [];
  /** @internal */
  readonly ops: IRequestOp[] = [];

  /** @internal */
  constructor(private readonly barrierPrefix: string) {}

  /**
   * The Txn commits only if this holds — etcd3's `if(key, column, cmp, value)` spelling:
   * `txn.compare('acct/a', 'Mod', '==', rev)`, `txn.compare('acct/a', 'Value', '==', '100')`,
   * `txn.compare('hold/x', 'Create', '==', 0)` (absent). A failed compare writes nothing and throws
   * {@link BarrierConditionFailed}.
   */
  compare(key: string | Buffer, target: Target, comparator: Comparator, value: string | number | Buffer): this {
    const field = FIELD[target];
    const result = RESULT[comparator];
    if (!field || !result) throw new ValidationError('compare', `use a target of ${Object.keys(FIELD).join(', ')} and a comparator of ${Object.keys(RESULT).join(' ')}`);
    const operand = field === 'value' ? buf(typeof value === 'number' ? String(value) : value) : typeof value === 'number' ? value : value.toString();
    this.compares.push({ key: buf(key), target, result, [field]: operand });
    return this;
  }

  put(key: string | Buffer, value: string | Buffer, options: { lease?: string } = {}): this {
    this.own(key);
    this.ops.push({ request_put: { key: buf(key), value: buf(value), ...(options.lease ? { lease: options.lease } : {}) } });
    return this;
  }

  delete(key: string | Buffer): this {
    this.own(key);
    this.ops.push({ request_delete_range: { key: buf(key) } });
    return this;
  }

  deletePrefix(prefix: string): this {
    if (prefix.startsWith(this.barrierPrefix) || this.barrierPrefix.startsWith(prefix)) {
      throw new ValidationError('deletePrefix', `${JSON.stringify(prefix)} overlaps the barrier's prefix ${JSON.stringify(this.barrierPrefix)}`);
    }
    this.ops.push(ops.delPrefix(prefix));
    return this;
  }

  /** etcd3's raw compares and request ops, for what the helpers above do not cover (nested Txns, ranges). */
  raw(parts: { compare?: readonly ICompare[]; success?: readonly IRequestOp[] }): this {
    this.compares.push(...(parts.compare ?? []));
    this.ops.push(...(parts.success ?? []));
    return this;
  }

  private own(key: string | Buffer): void {
    if (buf(key).toString().startsWith(this.barrierPrefix)) {
      throw new ValidationError('key', `${JSON.stringify(buf(key).toString())} is under the barrier's prefix ${JSON.stringify(this.barrierPrefix)}; keep your keys elsewhere`);
    }
  }
}

/**
 * The branch barrier over etcd. One per participant; pass the etcd3 client your handlers write
 * their own keys with.
 *
 * @example
 * ```ts
 * const barrier = new EtcdBarrier(client);
 * bank.resource('debit', {
 *   try: (ctx) => barrier.run(ctx, 'try', async (txn) => {
 *     const acct = await client.get(`acct/${ctx.payload.account}`).exec();   // read, then guard on it
 *     txn.compare(`acct/${ctx.payload.account}`, 'Mod', '==', acct.kvs[0]!.mod_revision)
 *        .put(`acct/${ctx.payload.account}`, JSON.stringify(frozen(acct, ctx.payload)));
 *   }),
 *   confirm: (ctx) => barrier.run(ctx, 'confirm', (txn) => { … }),
 *   cancel: (ctx) => barrier.run(ctx, 'cancel', (txn) => { … }),   // not called on an empty rollback
 * });
 * ```
 */
export class EtcdBarrier {
  readonly prefix: string;
  private readonly leaderKey: string | undefined;

  constructor(
    private readonly client: Etcd3,
    options: EtcdBarrierOptions = {},
  ) {
    const prefix = options.prefix ?? DEFAULT_BARRIER_PREFIX;
    if (typeof prefix !== 'string' || prefix.length === 0 || !prefix.endsWith('/') || /[\s\0]/.test(prefix)) {
      throw new ValidationError('prefix', `${JSON.stringify(prefix)} must be a non-empty key prefix ending in '/', e.g. "txloop-barrier/"`);
    }
    if (options.leaderKey !== undefined && (typeof options.leaderKey !== 'string' || !options.leaderKey.endsWith('/leader'))) {
      throw new ValidationError('leaderKey', `${JSON.stringify(options.leaderKey)} is not a service's leader key ("<namespace><app>/leader")`);
    }
    this.prefix = prefix;
    this.leaderKey = options.leaderKey;
  }

  /** The key of a branch's barrier record. */
  keyOf(xid: string, branchId: string): string {
    return `${this.prefix}${xid}/${branchId}`;
  }

  /**
   * Runs `fn` under the barrier for `op` (`'try' | 'confirm' | 'cancel'`, or a saga's
   * `'action' | 'compensate'`): `fn` adds its compares and ops to `txn`, and they commit in one etcd
   * Txn with the barrier record. `fn` is not called for a duplicate or an empty rollback (the
   * result says which), and may be called again if another attempt of the branch raced this one.
   * Refusals throw {@link BarrierRefused}; a failed compare of `fn`'s throws
   * {@link BarrierConditionFailed}; `fn`'s own errors are thrown as they are. Once the context's
   * signal has fired, nothing is written: a refusal or a duplicate is still reported as such, any
   * other call fails with AbortError.
   */
  async run<T>(ctx: BarrierContext, op: BarrierOp, fn: (txn: BarrierTxn) => Promise<T> | T): Promise<BarrierResult<T>> {
    const call = barrierCall(ctx, op);
    const key = this.keyOf(call.xid, call.branchId);
    for (let round = 1; ; round++) {
      const kv = await this.etcd(call, () => this.client.kv.range({ key: Buffer.from(key) })).then((r) => r.kvs[0]);
      const decision = decide(kv ? parseRecord(kv, key) : undefined, call, Date.now());
      if (decision.kind === 'refuse') throw new BarrierRefused(call.xid, call.branchId, call.op, decision.reason, decision.message);
      if (decision.kind === 'duplicate') return { outcome: 'duplicate', applied: false };

      // What the record says is answered whatever the signal; from here on, the handler's time being
      // up (timeout, deadline, leadership lost) means its effect must not land.
      if (ctx.signal?.aborted) throw new AbortError(call.xid, ctx.signal.reason);
      const txn = new BarrierTxn(this.prefix);
      let value: T | undefined;
      if (decision.kind === 'run') value = await fn(txn);
      if (ctx.signal?.aborted) throw new AbortError(call.xid, ctx.signal.reason);

      const fenced = this.leaderKey !== undefined && call.fence !== undefined;
      const res = await this.etcd(call, () =>
        this.client.kv.txn({
          compare: [kv ? cmp.mod(key, kv.mod_revision) : cmp.absent(key), ...(fenced ? [cmp.created(this.leaderKey!, call.fence!.token.toString())] : []), ...txn.compares],
          success: [ops.put(key, decision.next), ...txn.ops],
          failure: [ops.get(key), ...(fenced ? [ops.get(this.leaderKey!)] : [])],
        }),
      );
      if (res.succeeded) return decision.kind === 'run' ? { outcome: 'applied', applied: true, value: value as T } : { outcome: 'empty-rollback', applied: false };

      const now = res.responses[0]?.response_range?.kvs[0];
      if (now?.mod_revision !== kv?.mod_revision) {
        if (round >= MAX_ROUNDS) throw new WriteConflict(key);
        continue; // Another attempt of this branch wrote its record: decide again from what it wrote.
      }
      if (fenced) {
        const leader = res.responses[1]?.response_range?.kvs[0];
        if (leader?.create_revision !== call.fence!.token.toString()) {
          throw new BarrierRefused(
            call.xid,
            call.branchId,
            call.op,
            BarrierRefusal.STALE_TERM,
            `${call.op} of branch ${call.branchId} in ${call.xid} refused: the term of fencing token ${call.fence!.token} is over (${this.leaderKey} ${leader ? `was created at revision ${leader.create_revision}` : 'is absent'})`,
          );
        }
      }
      throw new BarrierConditionFailed(call.xid, call.branchId, call.op);
    }
  }

  /** Wraps TCC handlers: each gets the barrier's Txn; register the result with `service.resource(name, …)`. */
  tcc<P = unknown, R = unknown>(handlers: BarrierTccHandlers<P, R, BarrierTxn>): TccResource<P, R | undefined> {
    return tccResource<P, R, BarrierTxn>((ctx, op, fn) => this.run(ctx, op, fn), handlers);
  }

  /** A saga step whose action and compensation write through this barrier (`service.sagaStep(name, barrier.saga({…}))`). */
  saga<P = unknown>(handlers: BarrierSagaHandlers<P, BarrierTxn>): SagaStep<P> {
    return sagaStep<P, BarrierTxn>((ctx, op, fn) => this.run(ctx, op, fn), handlers);
  }

  /** A branch's barrier record, or undefined when nothing was recorded for it. */
  async get(xid: string, branchId: string): Promise<BarrierRecord | undefined> {
    const key = this.keyOf(xid, branchId);
    const res = await this.etcd({ xid, branchId, op: 'get' }, () => this.client.kv.range({ key: Buffer.from(key) }));
    const kv = res.kvs[0];
    return kv ? parseRecord(kv, key) : undefined;
  }

  /**
   * Deletes the records last written more than `olderThanMs` ago, and returns how many. A record
   * is what refuses a Try arriving after its cancel, so keep records well past the longest time a
   * Try may still be on its way (its transaction's timeout, plus the handler's own delays): a day
   * is a safe choice. Records it cannot read are left alone.
   */
  async prune(options: { olderThanMs: number }): Promise<number> {
    const { olderThanMs } = options;
    if (!Number.isFinite(olderThanMs) || olderThanMs < 0) throw new ValidationError('olderThanMs', `${JSON.stringify(olderThanMs)} is not a duration in ms`);
    const cutoff = Date.now() - olderThanMs;
    const what = { xid: '*', branchId: '*', op: 'prune' };
    const { kvs } = await this.etcd(what, () => rangePrefix(this.client, this.prefix));
    const old = kvs.filter((kv) => {
      try {
        return parseRecord(kv, kv.key.toString()).updatedAt < cutoff;
      } catch {
        return false;
      }
    });
    let deleted = 0;
    for (let i = 0; i < old.length; i += PRUNE_BATCH) {
      const batch = old.slice(i, i + PRUNE_BATCH);
      // One nested Txn per record: a record written again since it was listed stays.
      const res = await this.etcd(what, () =>
        this.client.kv.txn({
          compare: [],
          success: batch.map((kv) => ({ request_txn: { compare: [cmp.mod(kv.key.toString(), kv.mod_revision)], success: [ops.del(kv.key.toString())], failure: [] } })),
          failure: [],
        }),
      );
      deleted += res.responses.filter((r) => r.response_txn?.succeeded).length;
    }
    return deleted;
  }

  private async etcd<R>(call: Pick<BarrierCall, 'xid' | 'branchId'> & { op: string }, fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (err) {
      throw toTxloopError(err, endpointsOf(this.client), `barrier ${call.op} of ${call.xid}/${call.branchId}`);
    }
  }
}

// ---- the record's value -----------------------------------------------------------------------

const PHASE1 = ['try', 'action'];
const PHASE1_STATES = ['applied', 'blocked'];
const PHASE2 = ['confirm', 'cancel', 'compensate'];

/** A barrier record as stored: the record's JSON. Anything else is a MalformedRecord naming the key. */
export function parseRecord(kv: IKeyValue, key: string): BarrierRecord {
  let v: unknown;
  try {
    v = JSON.parse(kv.value.toString());
  } catch {
    throw new MalformedRecord(key, 'not JSON');
  }
  const r = v as Partial<Record<keyof BarrierRecord, unknown>>;
  const problem =
    typeof v !== 'object' || v === null
      ? 'not an object'
      : typeof r.xid !== 'string' || typeof r.branchId !== 'string'
        ? 'no xid or branchId'
        : r.phase1 !== undefined && !PHASE1.includes(r.phase1 as string)
          ? `phase1 ${JSON.stringify(r.phase1)}`
          : r.phase1State !== undefined && !PHASE1_STATES.includes(r.phase1State as string)
            ? `phase1State ${JSON.stringify(r.phase1State)}`
            : r.phase2 !== undefined && !PHASE2.includes(r.phase2 as string)
              ? `phase2 ${JSON.stringify(r.phase2)}`
              : typeof r.fencingToken !== 'string' || !/^[0-9]{1,20}$/.test(r.fencingToken)
                ? 'no fencingToken'
                : !Number.isSafeInteger(r.attempt) || typeof r.createdAt !== 'number' || typeof r.updatedAt !== 'number'
                  ? 'no attempt or times'
                  : undefined;
  if (problem) throw new MalformedRecord(key, `not a barrier record: ${problem}`);
  return r as BarrierRecord;
}
