/**
 * What other folders use of the CLI (the status mirror, src/kube/): its model of a namespace read
 * from etcd, record validation included, and its repairs, so `txloop retry/abort/resolve` and a
 * Transaction's spec.repair make the same Txn and meet the same refusals.
 */
export { MALFORMED, Model, type BranchItem, type GlobalItem, type ServiceItem } from './model.js';
export { abortRepair, resolveRepair, retryRepair, type RepairResult } from './repairs.js';
export { CliError } from './errors.js';
export { ownerOf } from './lookup.js';
export { replicaCount } from './views.js';
