/** Transactions as an initiator sees them: plain objects built from the records, for callers. */
import { builtInModes, type ModeRegistry } from '../modes/index.js';
import type { GlobalStatus, ModeName } from '../states.js';
import type { GlobalRecord, MemberRecord } from '../store/index.js';

/** A branch as the initiator sees it. */
export interface BranchView {
  branchId: string;
  owner: string;
  resource: string;
  tryState: MemberRecord['tryState'];
  action?: MemberRecord['action'];
  state?: MemberRecord['state'];
  attempts: number;
  lastError?: string;
  resolution?: MemberRecord['resolution'];
  /** A saga step's group (groups run in order, the steps of one group concurrently). */
  group?: number;
}

/** A saga's step as declared (its branch exists once its group is ordered). */
export interface SagaStepView {
  branchId: string;
  owner: string;
  resource: string;
  group: number;
}

export interface TransactionView {
  xid: string;
  app: string;
  mode: ModeName;
  name: string;
  status: GlobalStatus;
  createdAt: Date;
  deadline: Date;
  decision?: GlobalRecord['decision'];
  completedAt?: Date;
  heuristic: boolean;
  /** The branches that exist: in a saga, the steps whose group was ordered. */
  branches: BranchView[];
  /** A saga's declared steps, in order, every one of them (those not started have no branch yet). */
  steps?: SagaStepView[];
}

const BUILT_IN = builtInModes();

/** `modes`: the service's registry (the modes txloop ships by default), asked what the global's mode has ordered. */
export function toView(g: GlobalRecord, members: MemberRecord[], modes: Pick<ModeRegistry, 'find'> = BUILT_IN): TransactionView {
  // A decided global has ordered every branch, even before its owner recorded any progress; a mode
  // this service does not run leaves that unsaid.
  const ordered = modes.find(g.mode)?.orderedAction(g.status);
  return {
    xid: g.xid,
    app: g.app,
    mode: g.mode,
    name: g.name,
    status: g.status,
    createdAt: new Date(g.createdAt),
    deadline: new Date(g.deadline),
    ...(g.decision ? { decision: g.decision } : {}),
    ...(g.completedAt !== undefined ? { completedAt: new Date(g.completedAt) } : {}),
    heuristic: g.heuristic ?? false,
    branches: members.map((m) => ({
      branchId: m.branchId,
      owner: m.owner,
      resource: m.resource,
      tryState: m.tryState,
      ...((m.action ?? ordered) ? { action: m.action ?? ordered } : {}),
      ...(m.state ? { state: m.state } : {}),
      attempts: m.attempts ?? 0,
      ...(m.lastError ? { lastError: m.lastError } : {}),
      ...(m.resolution ? { resolution: m.resolution } : {}),
      ...(m.group !== undefined ? { group: m.group } : {}),
    })),
    ...(g.steps ? { steps: g.steps.map((s) => ({ branchId: s.branchId, owner: s.owner, resource: s.resource, group: s.group })) } : {}),
  };
}
