/** Global transaction records: create, read (with their members, at one revision), complete. */
import { TransactionNotFound, WriteConflict } from '../errors.js';
import { cmp, op, type Fence } from '../etcd/index.js';
import { TryState } from '../states.js';
import { MalformedRecord } from '../errors.js';
import type { StoreEdge, Versioned } from './edge.js';
import { parseGlobal, parseMember } from './parse.js';
import type { GlobalRecord, MemberRecord } from './records.js';

/** A global and all its member records, read at one revision. */
export interface TransactionRead {
  global?: Versioned<GlobalRecord>;
  members: Versioned<MemberRecord>[];
  revision: string;
}

export class GlobalStore {
  constructor(private readonly edge: StoreEdge) {}

  async get(xid: string): Promise<Versioned<GlobalRecord> | undefined> {
    const key = this.edge.keys.global(xid);
    const kv = await this.edge.getRaw(key);
    return kv ? { key, record: parseGlobal(key, kv.value), modRevision: kv.mod_revision } : undefined;
  }

  /** Writes a new global; a replay of our own write (the client retried a lost response) is not a conflict. */
  async create(record: GlobalRecord): Promise<void> {
    const key = this.edge.keys.global(record.xid);
    const res = await this.edge.txn([cmp.absent(key)], [op.put(key, record)], [op.get(key)]);
    if (res.succeeded) return;
    const existing = res.responses[0]?.response_range.kvs[0];
    if (existing && parseGlobal(key, existing.value).createdAt === record.createdAt) return;
    throw new WriteConflict(key);
  }

  /** The global and all its members, read at one revision. */
  async read(xid: string): Promise<TransactionRead> {
    const gkey = this.edge.keys.global(xid);
    // Both member prefixes (today's and 0.1's, see Keys.members) in the one read.
    const res = await this.edge.txn([], [op.get(gkey), ...this.edge.keys.members(xid).map((p) => op.getPrefix(p))]);
    const gkv = res.responses[0]?.response_range.kvs[0];
    const global = gkv ? { key: gkey, record: parseGlobal(gkey, gkv.value), modRevision: gkv.mod_revision } : undefined;
    const memberKvs = res.responses.slice(1).flatMap((r) => r.response_range.kvs);
    return {
      ...(global ? { global } : {}),
      members: memberKvs.map((kv) => {
        const key = kv.key.toString();
        return { key, record: this.memberOrPlaceholder(key, kv.value), modRevision: kv.mod_revision };
      }),
      revision: res.header.revision,
    };
  }

  /** Like {@link read}, failing with TransactionNotFound when there is no global. */
  async readExisting(xid: string): Promise<TransactionRead & { global: Versioned<GlobalRecord> }> {
    const read = await this.read(xid);
    if (!read.global) throw new TransactionNotFound(xid);
    return read as TransactionRead & { global: Versioned<GlobalRecord> };
  }

  /**
   * Writes a decided global's completion (`next`, computed by its mode) once every member is done.
   * `membersRevision`: the newest mod revision among the members the caller saw done; a member
   * changed since (a late Try re-opening its cancel) fails the completion.
   */
  async complete(current: Versioned<GlobalRecord>, next: GlobalRecord, fence: Fence | undefined, membersRevision: string): Promise<GlobalRecord> {
    const compares = [cmp.mod(current.key, current.modRevision), ...this.edge.keys.members(current.record.xid).flatMap((p) => cmp.prefixUnchangedSince(p, membersRevision)), ...cmp.fenced(fence)];
    const res = await this.edge.txn(compares, [op.put(current.key, next)]);
    if (!res.succeeded) throw new WriteConflict(current.key);
    return next;
  }

  /**
   * A member as stored, or, when it is malformed, what its key still says (owner, branch id) with an
   * unknown Try: a rollback can still order its cancel and a commit refuses it, instead of every
   * decision of that transaction failing on the bad record.
   */
  private memberOrPlaceholder(key: string, value: Buffer): MemberRecord {
    try {
      return parseMember(key, value);
    } catch (err) {
      const parsed = this.edge.keys.parse(key);
      if (!(err instanceof MalformedRecord) || parsed?.kind !== 'member') throw err;
      return { v: 1, xid: parsed.xid, owner: parsed.owner, branchId: parsed.branchId, resource: '(malformed member)', tryState: TryState.PENDING, malformed: true };
    }
  }
}
