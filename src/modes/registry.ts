/**
 * The modes a service runs, by name, and the dispatch from a queue key to the mode of the record it
 * names: parsing, the malformed-record report and the expectations check are the same for every mode.
 * Records read whatever their mode (store/parse.ts); whether this service runs a record's mode is
 * decided here: one it does not run is reported like any record the engine cannot use.
 */
import { MalformedRecord, TerminalError } from '../errors.js';
import type { ReconcileContext, ReconcileResult } from '../runtime/index.js';
import { parseBranch, parseGlobal, parseOrder, type BranchRecord, type OrderRecord } from '../store/index.js';
import type { TransactionMode } from './mode.js';

export class ModeRegistry<Handlers = unknown> {
  private readonly modes = new Map<string, TransactionMode<Handlers>>();

  constructor(modes: TransactionMode<Handlers>[]) {
    for (const m of modes) this.modes.set(m.name, m);
  }

  /** The mode named `name`; a record of a mode this service does not run cannot be helped by retrying. */
  of(name: string): TransactionMode<Handlers> {
    const mode = this.modes.get(name);
    if (!mode) throw new TerminalError(this.notRun(name)!);
    return mode;
  }

  /** The mode named `name`, or undefined when this registry does not run it. */
  find(name: string): TransactionMode<Handlers> | undefined {
    return this.modes.get(name);
  }

  /** Every mode this registry runs, in the order it was given them. */
  all(): readonly TransactionMode<Handlers>[] {
    return [...this.modes.values()];
  }

  /** Why a record of mode `name` cannot be used here, or undefined when this registry runs that mode. */
  notRun(name: string): string | undefined {
    if (this.modes.has(name)) return undefined;
    return `this txloop runs no transaction mode ${JSON.stringify(name)} (it runs ${[...this.modes.keys()].join(', ')})`;
  }

  /** Reconciles the global `xid` of this service with its mode's step. */
  async reconcileGlobal(ctx: ReconcileContext<Handlers>, xid: string, signal: AbortSignal): Promise<ReconcileResult> {
    const key = ctx.store.keys.global(xid);
    const kv = ctx.cache.get(key);
    if (!kv) {
      // Members are written after their global and deleted with it: ones left alone are debris.
      for (const mkey of ctx.memberKeys(xid)) {
        const mkv = ctx.cache.get(mkey);
        if (mkv) ctx.malformed.report(mkey, 'member', 'member record without its global record', mkv.modRevision);
      }
      return;
    }
    let record;
    try {
      record = parseGlobal.ofEntry(key, kv);
    } catch (err) {
      if (!(err instanceof MalformedRecord)) throw err;
      ctx.malformed.report(key, 'gtx', err.problem, kv.modRevision);
      return;
    }
    const notRun = this.notRun(record.mode);
    if (notRun !== undefined) {
      ctx.malformed.report(key, 'gtx', notRun, kv.modRevision);
      return;
    }
    return this.of(record.mode).reconcileGlobal(ctx, { global: { key, record, modRevision: kv.modRevision } }, signal);
  }

  /** Reconciles this service's branch `<xid>/<branchId>` with its mode's step. */
  async reconcileBranch(ctx: ReconcileContext<Handlers>, queueKey: string, signal: AbortSignal): Promise<ReconcileResult> {
    const [xid, branchId] = queueKey.split('/') as [string, string];
    const bkey = ctx.store.keys.branch(ctx.app, xid, branchId);
    const okey = ctx.store.keys.order(ctx.app, xid, branchId);
    const bkv = ctx.cache.get(bkey);
    const okv = ctx.cache.get(okey);
    if (!bkv) {
      ctx.expectations.forget(bkey);
      // Orders are written for existing branches and deleted with them: one alone is debris.
      if (okv) ctx.malformed.report(okey, 'order', 'phase-2 order without its branch record; nothing to confirm or cancel', okv.modRevision);
      return;
    }
    // Our own write is on its way through the watch, which will queue this key again.
    if (ctx.expectations.stale(bkey, bkv.modRevision)) return;
    let branch: BranchRecord;
    let order: OrderRecord | undefined;
    try {
      branch = parseBranch.ofEntry(bkey, bkv);
      if (okv) order = parseOrder.ofEntry(okey, okv);
    } catch (err) {
      if (!(err instanceof MalformedRecord)) throw err;
      // Nothing sensible to retry until someone rewrites the record; its next change re-queues it.
      ctx.malformed.report(err.key, err.key === okey ? 'order' : 'branch', err.problem, err.key === okey ? okv!.modRevision : bkv.modRevision);
      return;
    }
    const branchNotRun = this.notRun(branch.mode);
    const orderNotRun = order ? this.notRun(order.mode) : undefined;
    if (branchNotRun !== undefined) {
      ctx.malformed.report(bkey, 'branch', branchNotRun, bkv.modRevision);
      return;
    }
    if (orderNotRun !== undefined) {
      ctx.malformed.report(okey, 'order', orderNotRun, okv!.modRevision);
      return;
    }
    return this.of(branch.mode).reconcileBranch(ctx, { branch: { key: bkey, record: branch, modRevision: bkv.modRevision }, ...(order ? { order } : {}), branchKv: bkv, ...(okv ? { orderKv: okv } : {}) }, signal);
  }

  /** The CLI word for a cached branch record, MALFORMED when it does not parse or its mode is not run here. */
  branchStatus(key: string, raw: Buffer): string {
    try {
      const b = parseBranch(key, raw);
      return this.of(b.mode).branchStatus(b);
    } catch {
      return 'MALFORMED';
    }
  }
}
