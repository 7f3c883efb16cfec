/**
 * A transaction as the service's informer cache holds it, in the shape of an etcd read: what the
 * decision and collection start from, so they need no read of their own. The cache may be behind
 * etcd; every write planned from it carries the same compares as one planned from an etcd read (the
 * global unchanged, the member prefixes unchanged since the newest revision seen), so a stale cache
 * makes the write fail its compares and the caller reads etcd — never a wrong write.
 */
import { MalformedRecord } from '../errors.js';
import type { TransactionRead } from './globals.js';
import type { Keys } from './keys.js';
import { parseGlobal, parseMember } from './parse.js';

/** The part of the informer's cache this reads (a map of key → value and revision). */
export interface KvCache {
  get(key: string): { value: Buffer; modRevision: string } | undefined;
}

/**
 * The global `xid` and its members from `cache`, or undefined when the cache does not hold the
 * global or holds a record that does not parse (the etcd read then decides what to do with it).
 */
export function readFromCache(keys: Keys, cache: KvCache, memberKeys: Iterable<string>, xid: string): (TransactionRead & { global: NonNullable<TransactionRead['global']> }) | undefined {
  const gkey = keys.global(xid);
  const gkv = cache.get(gkey);
  if (!gkv) return undefined;
  try {
    const global = { key: gkey, record: parseGlobal.ofEntry(gkey, gkv), modRevision: gkv.modRevision };
    let revision = BigInt(gkv.modRevision);
    const members = [];
    for (const key of memberKeys) {
      const kv = cache.get(key);
      if (!kv) continue;
      members.push({ key, record: parseMember.ofEntry(key, kv), modRevision: kv.modRevision });
      if (BigInt(kv.modRevision) > revision) revision = BigInt(kv.modRevision);
    }
    return { global, members, revision: revision.toString() };
  } catch (err) {
    if (err instanceof MalformedRecord) return undefined;
    throw err;
  }
}
