/**
 * Why a key under the namespace is not a txloop key: Keys.parse only says "not mine", and the CLI
 * must tell the operator what is wrong with each key it cannot use (`<ns>bank/branch/not-a-xid`,
 * `<ns>bank/gtx/`, `<ns>bank/weird/x`).
 */
import { validateApp, validateBranchId, validateReplicaId, validateXid } from '../store/index.js';

type Part = 'xid' | 'owner' | 'branchId' | 'replicaId';

/** What follows `<app>/<type>` in each record type's key. */
const LAYOUT: Record<string, Part[]> = {
  gtx: ['xid'],
  member: ['xid', 'owner', 'branchId'],
  // where member records were kept before 0.2
  link: ['xid', 'owner', 'branchId'],
  branch: ['xid', 'branchId'],
  order: ['xid', 'branchId'],
  leader: [],
  stats: [],
  replica: ['replicaId'],
};

const PART: Record<Part, { label: string; valid: (s: string) => unknown }> = {
  xid: { label: 'transaction id', valid: validateXid },
  owner: { label: 'service name', valid: validateApp },
  branchId: { label: 'branch id', valid: validateBranchId },
  replicaId: { label: 'replica id', valid: validateReplicaId },
};

/** The problem with `key` (under namespace `ns`), which Keys.parse rejected. */
export function keyProblem(ns: string, key: string): string {
  const [app = '', type, ...rest] = key.slice(ns.length).split('/');
  if (type === undefined) return `not under a service's prefix (${ns}<app>/…)`;
  if (!accepts(validateApp, app)) return app === '' ? 'empty service name' : `${JSON.stringify(app)} is not a service name`;
  const layout = LAYOUT[type];
  if (!layout) return type === '' ? `no record type after ${ns}${app}/` : `unknown record type ${JSON.stringify(type)} (a service keeps ${Object.keys(LAYOUT).join(', ')})`;
  if (rest.length !== layout.length) return `a ${type} key is ${ns}<app>/${[type, ...layout.map((p) => `<${PART[p].label.replace(/ /g, '-')}>`)].join('/')}`;
  for (const [i, part] of layout.entries()) {
    const value = rest[i]!;
    if (!accepts(PART[part].valid, value)) return value === '' ? `empty ${PART[part].label}` : `${JSON.stringify(value)} is not a ${PART[part].label}`;
  }
  return 'not a txloop key';
}

function accepts(valid: (s: string) => unknown, value: string): boolean {
  try {
    valid(value);
    return true;
  } catch {
    return false;
  }
}
