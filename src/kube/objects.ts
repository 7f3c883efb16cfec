/**
 * What the mirror wants the apiserver to hold, computed from the CLI's model of the etcd namespace:
 * a Transaction's status (only for a transaction that needs eyes), a Participant's status, and the
 * conditions of both. Pure functions of the model and the clock; the mirror compares their result
 * with what the apiserver holds and writes only a difference (docs/kubernetes.md: why only
 * transactions that need eyes are mirrored).
 */
import { isDeepStrictEqual } from 'node:util';
import { MALFORMED, type BranchItem, type GlobalItem, type ServiceItem } from '../cli/index.js';
import { isTerminal } from '../states.js';

export const GROUP = 'txloop.io';
export const VERSION = 'v1alpha1';
export const PLURAL = { transaction: 'transactions', participant: 'participants' } as const;
export const KIND = { transaction: 'Transaction', participant: 'Participant' } as const;
/** The field manager of every write the mirror makes (server-side apply). */
export const FIELD_MANAGER = 'txloop-mirror';
/** How many branches a Transaction's status lists (the CRD's maxItems): the ones that need eyes first. */
export const MAX_BRANCHES = 256;

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export interface TransactionBranch {
  branchId: string;
  owner: string;
  resource?: string;
  state: string;
  attempts: number;
  lastError?: string;
}

export interface TransactionStatus {
  xid: string;
  app: string;
  mode?: string;
  status: string;
  decidedBy?: string;
  heuristic?: boolean;
  branchesDone: string;
  parked: number;
  stuckSince?: string;
  branches: TransactionBranch[];
  conditions: Condition[];
}

export interface ParticipantStatus {
  leader?: { identity: string; since: string };
  replicasSeen: number;
  queueDepth: number;
  inFlight: number;
  parkedBranches: number;
  lastHeartbeat?: string;
  conditions: Condition[];
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** When an unfinished transaction starts to need eyes: its deadline plus the grace; undefined once finished. */
export function stuckAt(g: GlobalItem, graceMs: number): number | undefined {
  const r = g.entry.record;
  if (!r || isTerminal(r.status)) return undefined;
  return r.deadline + graceMs;
}

/**
 * Why a transaction needs eyes, or undefined when it does not (then it is not mirrored): a parked
 * branch, a heuristic outcome (kept until the transaction is collected), not finished past its
 * deadline + grace, or a global record nobody can read.
 */
export function needsEyes(g: GlobalItem, now: number, graceMs: number): { reason: string; message: string } | undefined {
  const r = g.entry.record;
  if (!r) return { reason: 'Malformed', message: `the global record at ${g.key} cannot be used: ${g.entry.problem ?? 'unreadable'}` };
  if (g.parked > 0) return { reason: 'BranchesParked', message: `${g.parked} branch(es) parked for a human: txloop retry ${g.xid}, or resolve them` };
  if (r.heuristic) return { reason: 'Heuristic', message: 'a branch was resolved against the decision: the outcome is heuristic' };
  const at = stuckAt(g, graceMs);
  if (at !== undefined && now >= at) return { reason: 'Stuck', message: `${r.status} past its deadline (${iso(r.deadline)}) and the grace` };
  return undefined;
}

function branchOf(b: BranchItem): TransactionBranch {
  const r = b.entry.record;
  const lastError = r ? (r.phase2?.lastError ?? r.tryError) : b.entry.problem;
  return {
    branchId: b.branchId,
    owner: b.owner,
    ...(r?.resource !== undefined ? { resource: r.resource } : {}),
    state: b.status,
    attempts: r?.phase2?.attempts ?? 0,
    ...(lastError !== undefined ? { lastError: lastError.slice(0, 2000) } : {}),
  };
}

/** Parked and malformed branches first, then the rest by id: those are the ones an operator looks for. */
function attentionFirst(a: TransactionBranch, b: TransactionBranch): number {
  const rank = (x: TransactionBranch): number => (x.state === 'PARKED' ? 0 : x.state === MALFORMED ? 1 : 2);
  return rank(a) - rank(b) || (a.branchId < b.branchId ? -1 : a.branchId > b.branchId ? 1 : 0);
}

/** A Transaction's status for a transaction that needs eyes (`why`), with `kept` conditions (a repair's outcome) carried on. */
export function transactionStatus(g: GlobalItem, why: { reason: string; message: string } | undefined, graceMs: number, kept: Condition[], now: number): TransactionStatus {
  const r = g.entry.record;
  const branches = g.branches.map(branchOf).sort(attentionFirst);
  const at = stuckAt(g, graceMs);
  const attention: Condition = why ? { type: 'NeedsAttention', status: 'True', reason: why.reason, message: why.message.slice(0, 1024) } : { type: 'NeedsAttention', status: 'False', reason: 'AsExpected', message: 'nothing parked, not past its deadline' };
  if (branches.length > MAX_BRANCHES) attention.message = `${attention.message!.slice(0, 900)} (status lists ${MAX_BRANCHES} of ${branches.length} branches: txloop get branches ${g.xid})`;
  const conditions = [attention, ...kept];
  return {
    xid: g.xid,
    app: g.app,
    ...(r ? { mode: r.mode } : {}),
    status: g.status,
    ...(r?.decision ? { decidedBy: r.decision.by } : {}),
    ...(r?.heuristic ? { heuristic: true } : {}),
    branchesDone: `${g.done}/${g.total}`,
    parked: g.parked,
    ...(at !== undefined && now >= at ? { stuckSince: iso(at) } : {}),
    branches: branches.slice(0, MAX_BRANCHES),
    conditions,
  };
}

export interface ParticipantInputs {
  service: ServiceItem;
  /** The app's replicas that announced themselves (presence records that parse). */
  replicas: number;
  now: number;
  /** When the mirror last saw the app with a leader (undefined: never, since it started). */
  leaderLastSeen: number | undefined;
  /** Since when the mirror has been watching (a leader missing since before that is missing since then). */
  watchingSince: number;
  /** How long an app may be without a leader before it is Degraded (the services' lease TTL). */
  leaderlessAfterMs: number;
  /** Figures older than this do not make the app Ready. */
  staleAfterMs: number;
}

/** A Participant's status: its leader, the leader's published figures, Ready and Degraded. */
export function participantStatus(p: ParticipantInputs): { status: ParticipantStatus; recheckAfterMs?: number } {
  const { service, now } = p;
  const leader = service.leader?.record;
  const stats = service.stats?.record;
  const parked = stats ? (stats.branches.PARKED ?? stats.branches.FAILED ?? 0) : 0;
  const q = stats?.queues;
  const fresh = stats !== undefined && now - stats.at < p.staleAfterMs;
  let recheckAfterMs: number | undefined;
  const soonest = (ms: number): void => {
    if (ms > 0 && (recheckAfterMs === undefined || ms < recheckAfterMs)) recheckAfterMs = ms;
  };

  const ready: Condition = leader
    ? fresh
      ? { type: 'Ready', status: 'True', reason: 'LeaderPublishing', message: `${leader.identity} leads and publishes its figures` }
      : { type: 'Ready', status: 'False', reason: 'FiguresStale', message: stats ? `the leader's figures are older than ${Math.round(p.staleAfterMs / 1000)}s` : 'the leader has published no figures yet' }
    : { type: 'Ready', status: 'False', reason: 'NoLeader', message: 'no replica holds the leadership' };
  if (fresh) soonest(stats.at + p.staleAfterMs - now);

  let degraded: Condition = { type: 'Degraded', status: 'False', reason: 'AsExpected' };
  if (!leader) {
    const since = p.leaderLastSeen ?? p.watchingSince;
    const leaderless = now - since;
    if (leaderless >= p.leaderlessAfterMs) degraded = { type: 'Degraded', status: 'True', reason: 'NoLeader', message: `no leader for longer than the lease TTL (${Math.round(p.leaderlessAfterMs / 1000)}s)` };
    else soonest(since + p.leaderlessAfterMs - now);
  }
  if (degraded.status === 'False' && parked > 0) degraded = { type: 'Degraded', status: 'True', reason: 'BranchesParked', message: `${parked} branch(es) parked for a human: txloop get branches --status parked` };

  return {
    status: {
      ...(leader ? { leader: { identity: leader.identity, since: iso(leader.since) } } : {}),
      replicasSeen: p.replicas,
      queueDepth: q ? q.globals.depth + q.branches.depth : 0,
      inFlight: q ? q.globals.processing + q.branches.processing : 0,
      parkedBranches: parked,
      ...(stats ? { lastHeartbeat: iso(stats.at) } : {}),
      conditions: [ready, degraded],
    },
    ...(recheckAfterMs !== undefined ? { recheckAfterMs } : {}),
  };
}

/** `desired`'s conditions with the observed transition time kept where the status did not change. */
export function keepTransitionTimes(desired: Condition[], observed: Condition[] | undefined, now: number): Condition[] {
  return desired.map((c) => {
    if (c.lastTransitionTime !== undefined) return c;
    const o = observed?.find((x) => x.type === c.type);
    return { ...c, lastTransitionTime: o && o.status === c.status && o.lastTransitionTime ? o.lastTransitionTime : iso(now) };
  });
}

/** Whether the apiserver already holds `desired` (JSON comparison: key order does not matter). */
export function sameStatus(desired: unknown, observed: unknown): boolean {
  return isDeepStrictEqual(JSON.parse(JSON.stringify(desired)), observed ?? null);
}
