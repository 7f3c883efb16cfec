/**
 * The etcd key layout. Everything a service reconciles lives under its own prefix `<ns><app>/`, so one
 * list + one watch per service sees its globals (as initiator), the member records of their branches,
 * the branches it owns (as participant), the phase-2 orders for them and its leader key.
 *
 *   <ns><app>/gtx/<xid>                        global transaction record (initiator)
 *   <ns><app>/member/<xid>/<owner>/<branchId>  the initiator's summary of one member branch
 *   <ns><owner>/branch/<xid>/<branchId>      branch record (participant; payload, try state, phase-2 progress)
 *   <ns><owner>/order/<xid>/<branchId>       phase-2 order written by the decision: confirm | cancel
 *   <ns><app>/leader                         leader election (lease-bound)
 *   <ns><app>/stats                          leader's workqueue figures for `txloop top` (lease-bound)
 *   <ns><app>/replica/<replicaId>            one record per live replica, leader or standby (lease-bound)
 *
 * Every prefix ends in `/`, so app `pay` never matches `payments`. Versions before 0.2 kept member
 * records under `<ns><app>/link/…`: those are read, kept up to date and collected like members, so a
 * transaction begun by an older version finishes under a newer one (new members are written under
 * `member/` only).
 */
import { ValidationError } from '../errors.js';

export const DEFAULT_NAMESPACE = 'txloop/';

const APP_RE = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const XID_RE = /^([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)\.([0-9a-z]{8,40})$/;
// Caller-chosen ids are whatever a request already carries: UUIDs, ULIDs, KSUIDs, numeric ids.
const BRANCH_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const BRANCH_ID_RULE = '1-64 letters, digits, ".", "_" or "-", starting with a letter or digit (a UUID or ULID fits)';
const RESOURCE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** A replica's id is its election lease's id in hex (replicaIdOf): a positive int64, so 1-16 hex digits. */
const REPLICA_ID_RE = /^[0-9a-f]{1,16}$/;

export function validateApp(app: unknown, field = 'app'): string {
  if (typeof app !== 'string' || !APP_RE.test(app)) {
    throw new ValidationError(
      field,
      `${JSON.stringify(app)} is not a valid service name: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit (like a Kubernetes name)`,
    );
  }
  return app;
}

export function validateNamespace(ns: unknown): string {
  if (typeof ns !== 'string' || ns.length === 0 || ns.length > 200 || !ns.endsWith('/') || /[\s\0]/.test(ns)) {
    throw new ValidationError('namespace', `${JSON.stringify(ns)} must be a non-empty key prefix ending in '/', e.g. "txloop/"`);
  }
  return ns;
}

export function validateXid(xid: unknown, field = 'xid'): string {
  if (typeof xid !== 'string' || !XID_RE.test(xid)) {
    throw new ValidationError(field, `${JSON.stringify(xid)} is not a txloop transaction id (expected "<app>.<id>", e.g. "bank-a.m3x9k2a7f1c0q8wz")`);
  }
  return xid;
}

export function validateBranchId(branchId: unknown, field = 'branchId'): string {
  if (typeof branchId !== 'string' || !BRANCH_ID_RE.test(branchId)) {
    throw new ValidationError(field, `${JSON.stringify(branchId)} is not a branch id: use ${BRANCH_ID_RULE}`);
  }
  return branchId;
}

export function validateResource(resource: unknown, field = 'resource'): string {
  if (typeof resource !== 'string' || !RESOURCE_RE.test(resource)) {
    throw new ValidationError(field, `${JSON.stringify(resource)} is not a valid resource name: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return resource;
}

export function validateReplicaId(replicaId: unknown, field = 'replicaId'): string {
  if (typeof replicaId !== 'string' || !REPLICA_ID_RE.test(replicaId)) {
    throw new ValidationError(field, `${JSON.stringify(replicaId)} is not a replica id (the replica's lease id in lowercase hex, 1-16 digits)`);
  }
  return replicaId;
}

/**
 * The id of the replica holding lease `leaseId` (decimal, as etcd3 returns it and records keep it):
 * the lease id in hex. A lease id is unique in the cluster for as long as the lease lives and the
 * record is bound to it, so it names one replica's life without any sanitising of hostnames or
 * identities (which may hold anything); each new lease of a replica is a new id, and the old record
 * goes with the old lease. Hex, because that is how etcdctl prints lease ids (`etcdctl lease
 * timetolive 694d9a3c…`) and how `txloop get leaders -o wide` shows the leader's lease.
 */
export function replicaIdOf(leaseId: string): string {
  return BigInt(leaseId).toString(16);
}

/** The initiator app is encoded in the xid, so any service can find the global from the xid alone. */
export function appOfXid(xid: string): string {
  const m = XID_RE.exec(xid);
  if (!m?.[1]) throw new ValidationError('xid', `${JSON.stringify(xid)} is not a txloop transaction id`);
  return m[1];
}

export class Keys {
  constructor(readonly ns: string) {}

  app(app: string): string {
    return `${this.ns}${app}/`;
  }
  global(xid: string): string {
    return `${this.ns}${appOfXid(xid)}/gtx/${xid}`;
  }
  globalsOf(app: string): string {
    return `${this.ns}${app}/gtx/`;
  }
  /** Every member prefix of every global of `app` (today's first, then the legacy one). */
  membersOf(app: string): string[] {
    return [`${this.ns}${app}/member/`, `${this.ns}${app}/link/`];
  }
  /**
   * The prefixes that may hold the member records of `xid`: today's, and the 0.1 one, always — a
   * participant still running 0.1 (or a 0.2 one with `legacyLinks`) writes there, whoever began it.
   */
  members(xid: string): string[] {
    const app = appOfXid(xid);
    return [`${this.ns}${app}/member/${xid}/`, `${this.ns}${app}/link/${xid}/`];
  }
  /** Where a member record is written under today's layout. */
  member(xid: string, owner: string, branchId: string): string {
    return `${this.ns}${appOfXid(xid)}/member/${xid}/${owner}/${branchId}`;
  }
  /** Where the member record of a branch is: under `member/` (`keyLayout: 2`), else under `link/` (0.1, or `legacyLinks`). */
  memberOf(branch: { xid: string; owner: string; branchId: string; keyLayout?: number }): string {
    return branch.keyLayout === 2 ? this.member(branch.xid, branch.owner, branch.branchId) : `${this.ns}${appOfXid(branch.xid)}/link/${branch.xid}/${branch.owner}/${branch.branchId}`;
  }
  /** Every key a member record of this branch may be kept under. */
  memberKeys(xid: string, owner: string, branchId: string): string[] {
    return this.members(xid).map((p) => `${p}${owner}/${branchId}`);
  }
  branch(owner: string, xid: string, branchId: string): string {
    return `${this.ns}${owner}/branch/${xid}/${branchId}`;
  }
  order(owner: string, xid: string, branchId: string): string {
    return `${this.ns}${owner}/order/${xid}/${branchId}`;
  }
  leader(app: string): string {
    return `${this.ns}${app}/leader`;
  }
  stats(app: string): string {
    return `${this.ns}${app}/stats`;
  }
  /** A replica's presence record (replicaIdOf its lease). */
  replica(app: string, replicaId: string): string {
    return `${this.ns}${app}/replica/${replicaId}`;
  }
  replicasOf(app: string): string {
    return `${this.ns}${app}/replica/`;
  }

  /** Classifies a key read from etcd; undefined for keys txloop does not own (they are ignored). */
  parse(key: string): ParsedKey | undefined {
    if (!key.startsWith(this.ns)) return undefined;
    const parts = key.slice(this.ns.length).split('/');
    const [app, kind, a, b, c] = parts;
    if (!app || !APP_RE.test(app)) return undefined;
    if (parts.length === 2 && kind === 'leader') return { kind: 'leader', app };
    if (parts.length === 2 && kind === 'stats') return { kind: 'stats', app };
    if (parts.length === 3 && kind === 'gtx' && a && XID_RE.test(a)) return { kind: 'global', app, xid: a };
    if (parts.length === 3 && kind === 'replica' && a && REPLICA_ID_RE.test(a)) return { kind: 'replica', app, replicaId: a };
    if (parts.length === 5 && (kind === 'member' || kind === 'link') && a && b && c && XID_RE.test(a) && APP_RE.test(b) && BRANCH_ID_RE.test(c)) {
      return { kind: 'member', app, xid: a, owner: b, branchId: c };
    }
    if (parts.length === 4 && (kind === 'branch' || kind === 'order') && a && b && XID_RE.test(a) && BRANCH_ID_RE.test(b)) {
      return { kind, app, owner: app, xid: a, branchId: b };
    }
    return undefined;
  }
}

export type ParsedKey =
  | { kind: 'leader' | 'stats'; app: string }
  | { kind: 'global'; app: string; xid: string }
  | { kind: 'replica'; app: string; replicaId: string }
  | { kind: 'member'; app: string; xid: string; owner: string; branchId: string }
  | { kind: 'branch' | 'order'; app: string; owner: string; xid: string; branchId: string };
