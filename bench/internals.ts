/**
 * The only place the benchmark reaches into txloop's internals: the key layout, to tell a global
 * from a branch, a member or an order when it classifies writes (history.ts, requests.ts) and counts
 * what stays in etcd (figures.ts). Nothing public says which record a key is.
 */
export { createEtcdClient, prefixEnd, rangePrefix } from '../src/etcd/index.js';
export { DEFAULT_NAMESPACE, Keys, type ParsedKey } from '../src/store/index.js';
