/** The records txloop keeps in etcd and every Txn that changes them. */
export { Store } from './store.js';
export type { Versioned } from './edge.js';
export type { TransactionRead } from './globals.js';
export { readFromCache, type KvCache } from './cached-read.js';
export type { Registration } from './branches.js';
export type { DecisionPlan, DecisionRule, DecisionWritten } from './decisions.js';
export type { SagaWrite } from './sagas.js';
export { Keys, DEFAULT_NAMESPACE, BRANCH_ID_RULE, appOfXid, replicaIdOf, validateApp, validateBranchId, validateNamespace, validateReplicaId, validateResource, validateXid, type ParsedKey } from './keys.js';
export { newBranchId, newWriteId, newXid } from './ids.js';
export {
  MAX_EVENTS,
  attemptsInBudget,
  finishedSummary,
  freshBudget,
  isOrphanOrder,
  memberOf,
  orderFor,
  withEvent,
  type BranchRecord,
  type Decision,
  type GlobalRecord,
  type MemberRecord,
  type MessageConsumerEntry,
  type OrderRecord,
  type Phase2,
  type Resolution,
  type SagaStepPlan,
  type TimelineEvent,
} from './records.js';
export { parseBranch, parseGlobal, parseJsonObject, parseLeaderRecord, parseMember, parseOrder, parseReplicaRecord, parseStatsRecord } from './parse.js';
export { encodePayload } from './payload.js';
