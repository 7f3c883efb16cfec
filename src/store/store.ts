/**
 * The storage edge: every state change is one etcd Txn whose compares make the invariants hold.
 *
 * - One decision (invariant 1): a global is TRYING exactly while its key's version is 1. Deciding is
 *   a Txn on `version == 1`, so commit, rollback and deadline expiry race safely and one wins.
 * - No branch after the decision (invariant 2): registering a branch compares the same `version == 1`.
 * - Fencing (invariant 5): phase-2 progress compares the writer's leader key create_revision.
 *
 * etcd3's connection pool may retry a Txn whose outcome it never saw, so every write carries a
 * writeId; when a Txn "fails" we re-read and treat our own earlier write as success.
 */
import type { Etcd3, IKeyValue, IRequestOp, ICompare, ITxnResponse } from 'etcd3';
import {
  BranchRegistrationRefused,
  BranchesNotPrepared,
  TransactionAlreadyDecided,
  TransactionNotFound,
  BranchNotFound,
  DeadlineExceeded,
  OperationRefused,
  errorMessage,
  LeadershipLost,
  WriteConflict,
} from '../errors.js';
import { Keys, newWriteId, prefixEnd } from './keys.js';
import { rangePrefix } from '../etcd/range.js';
import { TxnBatcher, type SubmitOptions } from '../etcd/txn-batcher.js';
import {
  Action,
  GlobalStatus,
  Phase2State,
  TryState,
  MalformedRecord,
  branchStatus,
  freshBudget,
  linkOf,
  parseBranch,
  parseGlobal,
  parseLink,
  parseOrder,
  withEvent,
  type BranchRecord,
  type GlobalRecord,
  type LinkRecord,
  type OrderRecord,
} from './records.js';

export interface Versioned<T> {
  record: T;
  modRevision: string;
  key: string;
}

/** Proof of leadership for a fenced write: the leader key must still be the one this replica created. */
export interface Fence {
  key: string;
  createRevision: string;
}

export { WriteConflict, LeadershipLost } from '../errors.js';

/** The error for a call that found `global` already decided. */
export function alreadyDecided(global: GlobalRecord): TransactionAlreadyDecided {
  return new TransactionAlreadyDecided(global.xid, global.decision?.outcome ?? 'rollback', global.status, global.decision?.by ?? 'unknown');
}

export interface DecideOptions {
  outcome: 'commit' | 'rollback';
  by: string;
  reason?: string;
}

export interface DecideResult {
  global: GlobalRecord;
  /** Orders written by the decision itself; the rest are written by reconciliation. */
  ordered: number;
  total: number;
}

const enc = (s: string): Buffer => Buffer.from(s);
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

export const op: {
  put(key: string, value: unknown, lease?: string): IRequestOp;
  del(key: string): IRequestOp;
  delPrefix(prefix: string): IRequestOp;
  get(key: string): IRequestOp;
  getPrefix(prefix: string): IRequestOp;
  putIfPresent(key: string, value: unknown): IRequestOp;
} = {
  put(key: string, value: unknown, lease?: string): IRequestOp {
    return { request_put: { key: enc(key), value: typeof value === 'string' ? enc(value) : json(value), ...(lease ? { lease } : {}) } };
  },
  del(key: string): IRequestOp {
    return { request_delete_range: { key: enc(key) } };
  },
  delPrefix(prefix: string): IRequestOp {
    return { request_delete_range: { key: enc(prefix), range_end: prefixEnd(prefix) } };
  },
  get(key: string): IRequestOp {
    return { request_range: { key: enc(key) } };
  },
  /** Puts `value` only where `key` already exists (a nested Txn): updates never re-create a deleted key. */
  putIfPresent(key: string, value: unknown): IRequestOp {
    return { request_txn: { compare: [{ key: enc(key), target: 'Create', result: 'Greater', create_revision: 0 }], success: [op.put(key, value)], failure: [] } };
  },
  getPrefix(prefix: string): IRequestOp {
    return { request_range: { key: enc(prefix), range_end: prefixEnd(prefix) } };
  },
};

export const cmp = {
  version(key: string, version: number): ICompare {
    return { key: enc(key), target: 'Version', result: 'Equal', version };
  },
  absent(key: string): ICompare {
    return { key: enc(key), target: 'Create', result: 'Equal', create_revision: 0 };
  },
  mod(key: string, modRevision: string): ICompare {
    return { key: enc(key), target: 'Mod', result: 'Equal', mod_revision: modRevision };
  },
  created(key: string, createRevision: string): ICompare {
    return { key: enc(key), target: 'Create', result: 'Equal', create_revision: createRevision };
  },
  /** The writer still holds the leadership it was granted (no compare for unfenced operator writes). */
  fenced(fence: Fence | undefined): ICompare[] {
    return fence ? [cmp.created(fence.key, fence.createRevision)] : [];
  },
  /** Every key under `prefix` was last modified before `revision` (so none was added or changed since). */
  prefixUnchangedSince(prefix: string, revision: string): [ICompare, ICompare] {
    const next = (BigInt(revision) + 1n).toString();
    return [
      { key: enc(prefix), range_end: prefixEnd(prefix), target: 'Mod', result: 'Less', mod_revision: next },
      { key: enc(prefix), range_end: prefixEnd(prefix), target: 'Create', result: 'Less', create_revision: next },
    ];
  },
};

export class Store {
  readonly keys: Keys;

  readonly batcher: TxnBatcher;

  constructor(
    readonly client: Etcd3,
    namespace: string,
    readonly maxTxnOps = 128,
  ) {
    this.keys = new Keys(namespace);
    this.batcher = new TxnBatcher(client, { maxBatch: maxTxnOps });
  }

  /** One Txn; concurrent ones share an RPC and a revision through group commit (txn-batcher.ts). */
  async txn(compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = [], options: SubmitOptions = {}): Promise<ITxnResponse> {
    return this.batcher.submit({ compare, success, failure }, options);
  }

  /** Every key under `prefix` at one revision, in bounded responses, linear in the key count (range.ts). */
  range(prefix: string, revision?: string): Promise<{ kvs: IKeyValue[]; revision: string }> {
    return rangePrefix(this.client, prefix, revision !== undefined ? { revision } : {});
  }

  async getRaw(key: string): Promise<IKeyValue | undefined> {
    const res = await this.client.kv.range({ key: enc(key) });
    return res.kvs[0];
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  async getGlobal(xid: string): Promise<Versioned<GlobalRecord> | undefined> {
    const key = this.keys.global(xid);
    const kv = await this.getRaw(key);
    return kv ? { key, record: parseGlobal(key, kv.value), modRevision: kv.mod_revision } : undefined;
  }

  async getBranch(owner: string, xid: string, branchId: string): Promise<Versioned<BranchRecord> | undefined> {
    const key = this.keys.branch(owner, xid, branchId);
    const kv = await this.getRaw(key);
    return kv ? { key, record: parseBranch(key, kv.value), modRevision: kv.mod_revision } : undefined;
  }

  async getOrder(owner: string, xid: string, branchId: string): Promise<OrderRecord | undefined> {
    const key = this.keys.order(owner, xid, branchId);
    const kv = await this.getRaw(key);
    return kv ? parseOrder(key, kv.value) : undefined;
  }

  /** The global and all its links, read at one revision. */
  async readTransaction(xid: string): Promise<{ global?: Versioned<GlobalRecord>; links: Versioned<LinkRecord>[]; revision: string }> {
    const gkey = this.keys.global(xid);
    const res = await this.txn([], [op.get(gkey), op.getPrefix(this.keys.links(xid))]);
    const gkv = res.responses[0]?.response_range.kvs[0];
    const linkKvs = res.responses[1]?.response_range.kvs ?? [];
    return {
      ...(gkv ? { global: { key: gkey, record: parseGlobal(gkey, gkv.value), modRevision: gkv.mod_revision } } : {}),
      links: linkKvs.map((kv) => {
        const key = kv.key.toString();
        return { key, record: this.linkOrPlaceholder(key, kv.value), modRevision: kv.mod_revision };
      }),
      revision: res.header.revision,
    };
  }

  /**
   * A link as stored, or, when it is malformed, what its key still says (owner, branch id) with an
   * unknown Try: a rollback can still order its cancel and a commit refuses it, instead of every
   * decision of that transaction failing on the bad record.
   */
  private linkOrPlaceholder(key: string, value: Buffer): LinkRecord {
    try {
      return parseLink(key, value);
    } catch (err) {
      const parsed = this.keys.parse(key);
      if (!(err instanceof MalformedRecord) || parsed?.kind !== 'link') throw err;
      return { v: 1, xid: parsed.xid, owner: parsed.owner, branchId: parsed.branchId, resource: '(malformed link)', tryState: TryState.PENDING };
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Writes: each one Txn

  async createGlobal(record: GlobalRecord): Promise<void> {
    const key = this.keys.global(record.xid);
    const res = await this.txn([cmp.absent(key)], [op.put(key, record)], [op.get(key)]);
    if (res.succeeded) return;
    const existing = res.responses[0]?.response_range.kvs[0];
    // Our own write, replayed by the client after a lost response.
    if (existing && parseGlobal(key, existing.value).createdAt === record.createdAt) return;
    throw new WriteConflict(key);
  }

  /**
   * Joins a branch to a global that is still TRYING; refused once it was decided (anti-hanging).
   * A branch id that already exists (a retried Try with a caller-chosen id) returns the existing
   * branch with `existed: true` instead of registering twice.
   */
  async registerBranch(branch: BranchRecord): Promise<Versioned<BranchRecord> & { existed: boolean }> {
    const gkey = this.keys.global(branch.xid);
    const bkey = this.keys.branch(branch.owner, branch.xid, branch.branchId);
    const res = await this.txn(
      [cmp.version(gkey, 1), cmp.absent(bkey)],
      [op.put(bkey, branch), op.put(this.keys.link(branch.xid, branch.owner, branch.branchId), linkOf(branch))],
      [op.get(gkey), op.get(bkey)],
    );
    if (res.succeeded) return { key: bkey, record: branch, modRevision: res.header.revision, existed: false };
    const bkv = res.responses[1]?.response_range.kvs[0];
    if (bkv) {
      const existing = parseBranch(bkey, bkv.value);
      // Our own write replayed by the client after a lost response is not a second registration.
      return { key: bkey, record: existing, modRevision: bkv.mod_revision, existed: existing.writeId !== branch.writeId };
    }
    const gkv = res.responses[0]?.response_range.kvs[0];
    if (!gkv) throw new TransactionNotFound(branch.xid);
    const global = parseGlobal(gkey, gkv.value);
    throw new BranchRegistrationRefused(branch.xid, global.status);
  }

  /**
   * Records the outcome of a branch's Try. If the branch was already cancelled as an empty rollback
   * (the Try outlived its deadline), a successful late Try re-opens the cancel so its effects are
   * compensated too. Undefined when the branch is gone (collected with its transaction).
   */
  async recordTryResult(current: Versioned<BranchRecord>, tryState: TryState, tryError?: string): Promise<Versioned<BranchRecord> | undefined> {
    let cur = current;
    for (let i = 0; i < 10; i++) {
      let next: BranchRecord = { ...cur.record, tryState, updatedAt: Date.now(), writeId: newWriteId() };
      if (tryError !== undefined) next.tryError = tryError.slice(0, 2000);
      next = withEvent(next, tryState === TryState.SUCCEEDED ? 'TrySucceeded' : 'TryFailed', tryError ?? 'try succeeded');
      const p = cur.record.phase2;
      if (tryState === TryState.SUCCEEDED && p?.action === Action.CANCEL && p.state === Phase2State.DONE && !p.resolution) {
        next.phase2 = freshBudget(p, Action.CANCEL);
        next = withEvent(next, 'LateTry', 'try finished after its empty rollback; cancelling again to compensate it');
      }
      const res = await this.txn(
        [cmp.mod(cur.key, cur.modRevision)],
        [op.put(cur.key, next), op.putIfPresent(this.keys.link(next.xid, next.owner, next.branchId), linkOf(next))],
        [op.get(cur.key)],
      );
      if (res.succeeded) return { key: cur.key, record: next, modRevision: res.header.revision };
      const kv = res.responses[0]?.response_range.kvs[0];
      // Collected: its transaction finished (rolled back: a PENDING branch cannot be committed).
      if (!kv) return undefined;
      cur = { key: cur.key, record: parseBranch(cur.key, kv.value), modRevision: kv.mod_revision };
      if (cur.record.tryState === tryState) return cur;
    }
    throw new WriteConflict(current.key);
  }

  /**
   * A Try that succeeded after its branch was collected (its transaction rolled back and finished
   * meanwhile) reserved something nobody will release: put the branch back with a cancel order of its
   * own, so its owner's leader cancels it (and later collects it) like any orphaned branch.
   */
  async compensateCollectedTry(branch: BranchRecord): Promise<boolean> {
    const bkey = this.keys.branch(branch.owner, branch.xid, branch.branchId);
    const now = Date.now();
    const { phase2: _dropped, ...rest } = branch;
    const record = withEvent({ ...rest, tryState: TryState.SUCCEEDED, updatedAt: now, writeId: newWriteId() }, 'LateTry', 'try succeeded after its transaction was rolled back and collected; cancelling to compensate it', now);
    const order = this.order(branch, Action.CANCEL, `participant:${branch.owner}`, now, true);
    const res = await this.txn([cmp.absent(bkey)], [op.put(bkey, record), op.put(this.keys.order(branch.owner, branch.xid, branch.branchId), order)]);
    // false: the branch exists again (a retried call of the same Try re-registered it meanwhile).
    return res.succeeded;
  }

  /**
   * Decides a TRYING global with one compare-and-swap, and in the same Txn orders phase 2 for as many
   * branches as fit. The compare also pins the set of links read, so a commit never confirms a branch
   * whose Try it did not see succeed.
   */
  async decide(xid: string, options: DecideOptions): Promise<DecideResult> {
    const writeId = newWriteId();
    for (let attempt = 0; attempt < 20; attempt++) {
      const { global, links, revision } = await this.readTransaction(xid);
      if (!global) throw new TransactionNotFound(xid);
      const g = global.record;
      if (g.status !== GlobalStatus.TRYING) {
        if (g.decision?.writeId === writeId) {
          return { global: g, ordered: links.length, total: links.length };
        }
        throw alreadyDecided(g);
      }
      if (options.outcome === 'commit') {
        // Participants may already have let their reservations expire at the deadline (REST-TCC
        // participants must): a commit past it would confirm what is gone. Rollback stays allowed.
        const late = Date.now() - g.deadline;
        if (late >= 0) {
          throw new DeadlineExceeded(xid, `transaction ${xid} passed its deadline ${late}ms before the commit (deadline ${new Date(g.deadline).toISOString()}); not committed, roll it back`);
        }
        const unprepared = links.filter((l) => l.record.tryState !== TryState.SUCCEEDED).map((l) => l.record.branchId);
        if (unprepared.length > 0) throw new BranchesNotPrepared(xid, unprepared);
      }
      const now = Date.now();
      const action = options.outcome === 'commit' ? Action.CONFIRM : Action.CANCEL;
      const room = this.maxTxnOps - 1;
      const inTxn = links.slice(0, room);
      let next: GlobalRecord = {
        ...g,
        status: options.outcome === 'commit' ? GlobalStatus.COMMITTING : GlobalStatus.ROLLING_BACK,
        decision: { outcome: options.outcome, by: options.by, at: now, writeId, ...(options.reason ? { reason: options.reason } : {}) },
        fannedOut: inTxn.length === links.length,
      };
      next = withEvent(next, 'Decided', `${options.outcome} by ${options.by}${options.reason ? `: ${options.reason}` : ''} (${links.length} branches)`, now);
      // Commit pins the links as read (none added, none changed: every Try it saw succeed is still
      // the Try it confirms). Rollback only needs none added, so Try results landing meanwhile don't
      // make it retry.
      const [linksUnmodified, noLinkAdded] = cmp.prefixUnchangedSince(this.keys.links(xid), revision);
      const pinned = options.outcome === 'commit' ? [linksUnmodified, noLinkAdded] : [noLinkAdded];
      let res: ITxnResponse;
      try {
        res = await this.txn(
          [cmp.version(global.key, 1), cmp.mod(global.key, global.modRevision), ...pinned],
          [op.put(global.key, next), ...inTxn.map((l) => op.put(this.keys.order(l.record.owner, xid, l.record.branchId), this.order(l.record, action, options.by, now)))],
          [],
          // A commit gives up at the deadline rather than land after it (queue and client retries
          // included); a rollback may land whenever it can.
          options.outcome === 'commit' ? { deadline: g.deadline } : {},
        );
      } catch (err) {
        // Outcome unknown (timeout, connection lost): the decision may have landed. Look.
        const after = await this.getGlobal(xid).catch(() => undefined);
        if (after?.record.decision?.writeId === writeId) return { global: after.record, ordered: inTxn.length, total: links.length };
        if (after && after.record.status !== GlobalStatus.TRYING) {
          throw alreadyDecided(after.record);
        }
        if (options.outcome === 'commit' && Date.now() >= g.deadline) {
          throw new DeadlineExceeded(xid, `transaction ${xid} reached its deadline before its commit could be written (${errorMessage(err)}); not committed, roll it back`);
        }
        throw err;
      }
      if (res.succeeded) return { global: next, ordered: inTxn.length, total: links.length };
      // Lost a race with another decision or a late registration: re-read and look again.
    }
    throw new WriteConflict(this.keys.global(xid));
  }

  /** `orphan`: the order's own branch has no global any more, so its owner collects it (not the initiator). */
  private order(link: Pick<LinkRecord, 'xid' | 'branchId'>, action: Action, by: string, at: number, orphan = false): OrderRecord {
    return { v: 1, xid: link.xid, branchId: link.branchId, action, decidedAt: at, by, ...(orphan ? { orphan: true } : {}) };
  }

  /**
   * Writes the orders a decision could not carry (more branches than one Txn allows), then marks the
   * global fanned out. Safe to repeat: orders are only created where missing.
   */
  async finishFanOut(xid: string): Promise<void> {
    const { global, links } = await this.readTransaction(xid);
    if (!global || global.record.fannedOut !== false) return;
    const action = global.record.status === GlobalStatus.COMMITTING ? Action.CONFIRM : Action.CANCEL;
    const by = global.record.decision?.by ?? 'unknown';
    const at = global.record.decision?.at ?? Date.now();
    const missing: LinkRecord[] = [];
    for (const l of links) {
      const okey = this.keys.order(l.record.owner, xid, l.record.branchId);
      if (!(await this.getRaw(okey))) missing.push(l.record);
    }
    const chunk = Math.max(1, Math.floor(this.maxTxnOps / 2));
    for (let i = 0; i < missing.length; i += chunk) {
      const part = missing.slice(i, i + chunk);
      const okeys = part.map((l) => this.keys.order(l.owner, xid, l.branchId));
      // Only create orders that are still absent: a branch might already have finished and been resolved.
      const res = await this.txn(
        okeys.map((k) => cmp.absent(k)),
        part.map((l, j) => op.put(okeys[j]!, this.order(l, action, by, at))),
      );
      if (!res.succeeded) {
        // Some appeared meanwhile (a participant wrote its own): create the rest one by one.
        await Promise.all(part.map((l) => this.ensureOrder(l, action, by, at)));
      }
    }
    const next = withEvent({ ...global.record, fannedOut: true }, 'FannedOut', `phase-2 orders written for all ${links.length} branches`);
    await this.txn([cmp.mod(global.key, global.modRevision)], [op.put(global.key, next)]);
  }

  /** A participant writes the order for its own branch of a decided global (no single service blocks recovery). */
  async ensureOrder(link: Pick<LinkRecord, 'xid' | 'owner' | 'branchId'>, action: Action, by: string, at: number, orphan = false): Promise<void> {
    const okey = this.keys.order(link.owner, link.xid, link.branchId);
    await this.txn([cmp.absent(okey)], [op.put(okey, this.order(link, action, by, at, orphan))]);
  }

  /**
   * Records phase-2 progress of a branch (an attempt's failure, success, or parking), fenced on the
   * writer's leadership and on the branch not having changed since it was read.
   */
  async recordProgress(fence: Fence | undefined, current: Versioned<BranchRecord>, next: BranchRecord): Promise<Versioned<BranchRecord>> {
    const compares = [cmp.mod(current.key, current.modRevision), ...cmp.fenced(fence)];
    const written = { ...next, updatedAt: Date.now(), writeId: newWriteId() };
    const res = await this.txn(
      compares,
      // A branch whose global (and link) is gone, such as an orphan's cancel, must not grow a link again.
      [op.put(current.key, written), op.putIfPresent(this.keys.link(next.xid, next.owner, next.branchId), linkOf(written))],
      [op.get(current.key), ...(fence ? [op.get(fence.key)] : [])],
    );
    if (res.succeeded) return { key: current.key, record: written, modRevision: res.header.revision };
    if (fence) {
      const leader = res.responses[1]?.response_range.kvs[0];
      if (!leader || leader.create_revision !== fence.createRevision) throw new LeadershipLost(fence.key, true);
    }
    throw new WriteConflict(current.key);
  }

  /**
   * Marks a decided global COMMITTED/ROLLED_BACK once every branch is done. `linksRevision`: the newest mod revision among the links the caller saw all DONE; a link changed
   * since (a late Try re-opening its cancel) fails the completion.
   */
  async complete(global: Versioned<GlobalRecord>, fence: Fence | undefined, heuristic: boolean, linksRevision: string): Promise<GlobalRecord> {
    const g = global.record;
    const status = g.status === GlobalStatus.COMMITTING ? GlobalStatus.COMMITTED : GlobalStatus.ROLLED_BACK;
    const now = Date.now();
    const next = withEvent({ ...g, status, completedAt: now, ...(heuristic ? { heuristic: true } : {}) }, 'Completed', `all branches done: ${status}${heuristic ? ' (heuristic: a branch was resolved by hand against the decision)' : ''}`, now);
    const compares = [cmp.mod(global.key, global.modRevision), ...cmp.prefixUnchangedSince(this.keys.links(g.xid), linksRevision), ...cmp.fenced(fence)];
    const res = await this.txn(compares, [op.put(global.key, next)]);
    if (!res.succeeded) throw new WriteConflict(global.key);
    return next;
  }

  /**
   * Deletes a finished global and everything of it (orders, branches, links), global last. Returns
   * false, deleting nothing more, when a branch is not done (a late Try re-opened its cancel) or
   * changed meanwhile: it stays visible until it is.
   */
  async collect(xid: string, fence: Fence | undefined): Promise<boolean> {
    const { global, links } = await this.readTransaction(xid);
    if (!global) return false;
    const g = global.record;
    if (g.status !== GlobalStatus.COMMITTED && g.status !== GlobalStatus.ROLLED_BACK) {
      throw new OperationRefused(xid, `transaction ${xid} is ${g.status}; only finished transactions are collected`);
    }
    if (links.some((l) => l.record.state !== Phase2State.DONE)) return false;
    const fenceCmp = cmp.fenced(fence);
    // A link is written in the same Txn as its branch, so an unchanged link means an unchanged branch.
    const perChunk = Math.max(1, Math.floor((this.maxTxnOps - 1) / 2));
    for (let i = 0; i < links.length; i += perChunk) {
      const part = links.slice(i, i + perChunk);
      const res = await this.txn(
        [...part.map((l) => cmp.mod(l.key, l.modRevision)), ...fenceCmp],
        part.flatMap((l) => [op.del(this.keys.order(l.record.owner, xid, l.record.branchId)), op.del(this.keys.branch(l.record.owner, xid, l.record.branchId))]),
      );
      if (!res.succeeded) return false;
    }
    const res = await this.txn([cmp.mod(global.key, global.modRevision), ...fenceCmp], [op.delPrefix(this.keys.links(xid)), op.del(global.key)]);
    return res.succeeded;
  }

  // ---------------------------------------------------------------------------------------------
  // Operator repairs (CLI); each refuses what the invariants forbid

  /** Puts a parked (FAILED) branch back into the queue with a fresh attempt budget. */
  async retryBranch(owner: string, xid: string, branchId: string, by: string, dryRun = false): Promise<BranchRecord> {
    const cur = await this.getBranch(owner, xid, branchId);
    if (!cur) throw new BranchNotFound(xid, branchId);
    const p = cur.record.phase2;
    if (!p || p.state !== Phase2State.FAILED) {
      // The status tables show (CONFIRMING, CONFIRMED, PREPARED, ...); before its owner acts on an order, the order says which.
      const status = branchStatus(cur.record, p ? undefined : await this.getOrder(owner, xid, branchId).catch(() => undefined));
      throw new OperationRefused(xid, `branch ${branchId} of ${xid} is not parked as FAILED (it is ${status}); only parked branches can be retried`, branchId);
    }
    const next = withEvent({ ...cur.record, phase2: freshBudget(p) }, 'Retried', `re-queued by ${by}`);
    if (dryRun) return next;
    return (await this.recordProgress(undefined, cur, next)).record;
  }

  /**
   * Re-queues every parked (FAILED) branch of a transaction in one Txn: all of them or none (the Txn
   * compares each branch's mod revision, so a branch that changed meanwhile fails the whole retry).
   */
  async retryParkedBranches(xid: string, by: string, dryRun = false): Promise<BranchRecord[]> {
    const { global, links } = await this.readTransaction(xid);
    if (!global && links.length === 0) throw new TransactionNotFound(xid);
    const parked = links.filter((l) => l.record.state === Phase2State.FAILED);
    if (parked.length === 0) throw new OperationRefused(xid, `transaction ${xid}${global ? ` (${global.record.status})` : ''} has no parked (FAILED) branch; only parked branches can be retried`);
    if (parked.length * 2 > this.maxTxnOps) throw new OperationRefused(xid, `transaction ${xid} has ${parked.length} parked branches, more than one Txn can re-queue; retry them one by one (XID/BRANCH)`);
    const current: Versioned<BranchRecord>[] = [];
    const next: BranchRecord[] = [];
    for (const l of parked) {
      const cur = await this.getBranch(l.record.owner, xid, l.record.branchId);
      const p = cur?.record.phase2;
      if (!cur || !p || p.state !== Phase2State.FAILED) throw new WriteConflict(l.key);
      current.push(cur);
      next.push({
        ...withEvent({ ...cur.record, phase2: freshBudget(p) }, 'Retried', `re-queued by ${by}`),
        updatedAt: Date.now(),
        writeId: newWriteId(),
      });
    }
    if (dryRun) return next;
    const res = await this.txn(
      current.map((c) => cmp.mod(c.key, c.modRevision)),
      next.flatMap((b, i) => [op.put(current[i]!.key, b), op.put(this.keys.link(xid, b.owner, b.branchId), linkOf(b))]),
    );
    if (!res.succeeded) throw new WriteConflict(this.keys.links(xid));
    return next;
  }

  /** Records a human's heuristic decision for a branch: it counts as done and completion can proceed. */
  async resolveBranch(owner: string, xid: string, branchId: string, as: 'confirmed' | 'cancelled', reason: string, by: string, dryRun = false): Promise<BranchRecord> {
    const cur = await this.getBranch(owner, xid, branchId);
    if (!cur) throw new BranchNotFound(xid, branchId);
    const b = cur.record;
    const order = await this.getOrder(owner, xid, branchId);
    const p = b.phase2;
    if (!order && !p) {
      throw new OperationRefused(xid, `branch ${branchId} of ${xid} has no decision yet; abort or commit the transaction first`, branchId);
    }
    if (p?.state === Phase2State.DONE) {
      throw new OperationRefused(xid, `branch ${branchId} of ${xid} is already done (${p.resolution ? `resolved as ${p.resolution.as}` : p.action}); nothing to resolve`, branchId);
    }
    if (p?.state !== Phase2State.FAILED) {
      throw new OperationRefused(xid, `branch ${branchId} of ${xid} is still being retried by its service; resolve only parked (FAILED) branches`, branchId);
    }
    const now = Date.now();
    const next = withEvent(
      { ...b, phase2: { ...p, state: Phase2State.DONE, doneAt: now, resolution: { as, reason, at: now, by } } },
      'Resolved',
      `resolved as ${as} by ${by}: ${reason}`,
      now,
    );
    if (dryRun) return next;
    return (await this.recordProgress(undefined, cur, next)).record;
  }

  /** Deletes one branch with its order and link if it is unchanged since read (fenced). */
  async deleteBranch(fence: Fence, current: Versioned<BranchRecord>): Promise<boolean> {
    const b = current.record;
    const res = await this.txn(
      [cmp.mod(current.key, current.modRevision), ...cmp.fenced(fence)],
      [op.del(current.key), op.del(this.keys.order(b.owner, b.xid, b.branchId)), op.del(this.keys.link(b.xid, b.owner, b.branchId))],
    );
    return res.succeeded;
  }
}
