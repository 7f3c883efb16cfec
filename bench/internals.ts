/**
 * The only place the benchmark reaches into txloop's internals: the key layout, to tell a global
 * from a branch, a link or an order when it classifies writes (history.ts, requests.ts) and counts
 * what stays in etcd (figures.ts). Nothing public says which record a key is.
 */
export { DEFAULT_NAMESPACE, Keys, prefixEnd, type ParsedKey } from '../src/internal/keys.js';
