/**
 * Decisions: the one compare-and-swap that takes a global out of its undecided state, with the
 * phase-2 orders of as many members as fit in the same Txn, and the fan-out of the rest later.
 *
 * The store runs the read → decide → write loop and knows how to tell whether a write whose outcome
 * was lost landed; what to write (and what to refuse) is the mode's rule, computed from what was
 * read (modes/…/decision.ts).
 */
import type { ICompare, IRequestOp } from 'etcd3';
import type { SubmitOptions } from '../etcd/index.js';
import { cmp, op } from '../etcd/index.js';
import { retrying } from '../backoff.js';
import { TransactionNotFound, WriteConflict } from '../errors.js';
import type { StoreEdge } from './edge.js';
import type { GlobalStore, TransactionRead } from './globals.js';
import type { Keys } from './keys.js';
import type { GlobalRecord, MemberRecord, OrderRecord } from './records.js';

/** What a decision writes, as its mode's rule computed it. */
export interface DecisionPlan {
  /** The decided global. */
  next: GlobalRecord;
  /** Orders carried by the decision Txn itself (the rest are written by {@link DecisionStore.finishFanOut}). */
  orders: { owner: string; order: OrderRecord }[];
  /** Extra compares beyond "the global is unchanged since read": what the rule's refusal depended on. */
  compares: ICompare[];
  /**
   * Records the decision creates besides its orders, in the same Txn: a message's submit creates
   * its consumers' branches and their member records with it.
   */
  puts?: { key: string; value: unknown }[];
  options?: SubmitOptions;
}

/**
 * A mode's decision rule: from the transaction as read, a plan to write, or `settled` with the
 * global when this very decision is already recorded (a retry of our own write). It throws the
 * refusal (already decided, not prepared, deadline passed).
 */
export type DecisionRule = (read: TransactionRead & { global: NonNullable<TransactionRead['global']> }, limits: { keys: Keys; maxTxnOps: number }) => { plan: DecisionPlan } | { settled: GlobalRecord };

export interface DecisionWritten {
  global: GlobalRecord;
  /** Orders written by the decision itself; the rest are written by reconciliation. */
  ordered: number;
  total: number;
}

export class DecisionStore {
  constructor(
    private readonly edge: StoreEdge,
    private readonly globals: GlobalStore,
  ) {}

  /**
   * Reads the transaction (the first time from `cached`, the informer's copy, when given), applies
   * `rule` and writes its plan in one Txn guarded by the global's mod revision; a concurrent change
   * (another decision, a late registration, a cache that was behind) makes it read etcd and decide
   * again. When the outcome of the write is unknown, `landed` tells from the global read back
   * (undefined if that read failed too) whether it took effect; otherwise `unknown` may replace the
   * transport error.
   */
  async decide(
    xid: string,
    rule: DecisionRule,
    after: { landed(global: GlobalRecord | undefined): boolean; unknown?(back: GlobalRecord | undefined, err: unknown, read: GlobalRecord): Error | undefined },
    cached?: TransactionRead,
  ): Promise<DecisionWritten> {
    let fromCache = cached?.global ? cached : undefined;
    // Lost a race with another decision or a late registration: read etcd and decide again.
    return retrying(async () => {
      const read = fromCache ?? (await this.globals.read(xid));
      const planned = fromCache !== undefined;
      fromCache = undefined;
      if (!read.global) throw new TransactionNotFound(xid);
      const global = read.global;
      let step;
      try {
        step = rule({ ...read, global }, this.edge);
      } catch (err) {
        // A refusal computed from a cache that may be behind (a Try result not seen yet) is not
        // the answer: etcd's is.
        if (planned) throw new WriteConflict(global.key);
        throw err;
      }
      if ('settled' in step) return { global: step.settled, ordered: read.members.length, total: read.members.length };
      const { plan } = step;
      const ops: IRequestOp[] = [
        op.put(global.key, plan.next),
        ...plan.orders.map((o) => op.put(this.edge.keys.order(o.owner, xid, o.order.branchId), o.order)),
        ...(plan.puts ?? []).map((p) => op.put(p.key, p.value)),
      ];
      let res;
      try {
        res = await this.edge.txn([cmp.mod(global.key, global.modRevision), ...plan.compares], ops, [], plan.options ?? {});
      } catch (err) {
        // Outcome unknown (timeout, connection lost): the decision may have landed. Look.
        const back = (await this.globals.get(xid).catch(() => undefined))?.record;
        if (after.landed(back)) return { global: back!, ordered: plan.orders.length, total: read.members.length };
        throw after.unknown?.(back, err, global.record) ?? err;
      }
      if (res.succeeded) return { global: plan.next, ordered: plan.orders.length, total: read.members.length };
      throw new WriteConflict(global.key);
    }, { attempts: 20, retryOn: (err) => err instanceof WriteConflict });
  }

  /**
   * Writes the orders a decision could not carry (more members than one Txn allows), then marks the
   * global fanned out. Safe to repeat: orders are only created where missing. `orderOf` is the mode's
   * order for a member of the decided global.
   */
  async finishFanOut(xid: string, orderOf: (global: GlobalRecord, member: MemberRecord) => OrderRecord, fannedOut: (global: GlobalRecord, members: number) => GlobalRecord): Promise<void> {
    const { global, members } = await this.globals.read(xid);
    if (!global || global.record.fannedOut !== false) return;
    const missing: MemberRecord[] = [];
    for (const m of members) {
      if (!(await this.edge.getRaw(this.edge.keys.order(m.record.owner, xid, m.record.branchId)))) missing.push(m.record);
    }
    const chunk = Math.max(1, Math.floor(this.edge.maxTxnOps / 2));
    for (let i = 0; i < missing.length; i += chunk) {
      const part = missing.slice(i, i + chunk);
      const okeys = part.map((m) => this.edge.keys.order(m.owner, xid, m.branchId));
      // Only orders still absent: a branch might already have finished and been resolved.
      const res = await this.edge.txn(
        okeys.map((k) => cmp.absent(k)),
        part.map((m, j) => op.put(okeys[j]!, orderOf(global.record, m))),
      );
      if (!res.succeeded) {
        // Some appeared meanwhile (a participant wrote its own): create the rest one by one.
        await Promise.all(part.map((m, j) => this.edge.txn([cmp.absent(okeys[j]!)], [op.put(okeys[j]!, orderOf(global.record, m))])));
      }
    }
    await this.edge.txn([cmp.mod(global.key, global.modRevision)], [op.put(global.key, fannedOut(global.record, members.length))]);
  }
}
