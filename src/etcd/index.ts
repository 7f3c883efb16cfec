/** The etcd edge: the client, the Txn builders, bounded listing, group commit, elections, and a local etcd for tests. */
export { createEtcdClient, validateEndpoints, defaultEndpoints, ETCD_DEFAULTS, type ClientTuning } from './client.js';
// Defined at the top level (public); re-exported for options.ts, which imports it from here.
export { ConnectionState } from './connection-state.js';
export { LeaderElector, type LeaderElectorOptions, type LeaderElectorEvents } from './election.js';
export { isUnavailable, toTxloopError, endpointsOf } from './errors.js';
export { etcdFaultHandling } from './fault-handling.js';
export { op, cmp, prefixEnd, type Fence } from './kv.js';
export { rangePrefix, listKeys, readValues, isTooLarge, MAX_RECEIVE_MESSAGE_BYTES, type RangeOptions, type RangeResult, type ReadValuesOptions } from './range.js';
export { TxnBatcher, overlaps, type SubmitOptions, type TxnBatcherOptions } from './txn-batcher.js';
export { cancelWatcher } from './watch.js';
export * from './launcher.js';
