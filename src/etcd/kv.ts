/**
 * The builders every etcd Txn of txloop is made of: request ops (put, delete, get, conditional put)
 * and compares (absent, version, mod/create revision, fenced on a leader key, prefix unchanged).
 * Keeping them in one place keeps every write's guard legible where the write is made.
 */
import type { ICompare, IRequestOp } from 'etcd3';

/** Proof of leadership for a fenced write: the leader key must still be the one this replica created. */
export interface Fence {
  key: string;
  /** The leader key's create revision: the term, and the fencing token handlers receive. */
  createRevision: string;
}

const enc = (s: string): Buffer => Buffer.from(s);
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** The key just past every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const buf = Buffer.from(prefix);
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      buf[i] = buf[i]! + 1;
      return buf.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export const op = {
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
  getPrefix(prefix: string): IRequestOp {
    return { request_range: { key: enc(prefix), range_end: prefixEnd(prefix) } };
  },
  /** Puts `value` only where `key` already exists (a nested Txn): updates never re-create a deleted key. */
  putIfPresent(key: string, value: unknown): IRequestOp {
    return { request_txn: { compare: [{ key: enc(key), target: 'Create', result: 'Greater', create_revision: 0 }], success: [op.put(key, value)], failure: [] } };
  },
};

export const cmp = {
  version(key: string, version: number): ICompare {
    return { key: enc(key), target: 'Version', result: 'Equal', version };
  },
  /** The key's value sorts after `bytes` (etcd compares values bytewise); false for an absent key. */
  valueAbove(key: string, bytes: string): ICompare {
    return { key: enc(key), target: 'Value', result: 'Greater', value: enc(bytes) };
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
  /** Every key under `prefix` was last modified at or before `revision` (so none was added or changed since). */
  prefixUnchangedSince(prefix: string, revision: string): [ICompare, ICompare] {
    return [cmp.prefixNotModifiedSince(prefix, revision), cmp.prefixNoneCreatedSince(prefix, revision)];
  },
  prefixNotModifiedSince(prefix: string, revision: string): ICompare {
    return { key: enc(prefix), range_end: prefixEnd(prefix), target: 'Mod', result: 'Less', mod_revision: (BigInt(revision) + 1n).toString() };
  },
  prefixNoneCreatedSince(prefix: string, revision: string): ICompare {
    return { key: enc(prefix), range_end: prefixEnd(prefix), target: 'Create', result: 'Less', create_revision: (BigInt(revision) + 1n).toString() };
  },
};
