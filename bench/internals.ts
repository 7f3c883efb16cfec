/**
 * The only place the benchmark reaches into txloop's internals: the key layout, to tell a global
 * from a branch, a member or an order when it classifies writes (history.ts, requests.ts) and counts
 * what stays in etcd (figures.ts); and, for `--scale` (scale.ts), the record builders, so the
 * pending branches it bulk-writes are exactly what a participant's Try leaves (and parse as such).
 * Nothing public says which record a key is.
 */
export { createEtcdClient, op, prefixEnd, rangePrefix } from '../src/etcd/index.js';
export { DEFAULT_NAMESPACE, Keys, memberOf, newBranchId, newWriteId, newXid, orderFor, parseBranch, parseGlobal, parseMember, parseOrder, withEvent, type BranchRecord, type GlobalRecord, type ParsedKey } from '../src/store/index.js';
export { tccRules } from '../src/modes/index.js';
