/**
 * The sidecar's resources file (YAML): each resource of the service it stands beside, with the
 * service's paths the sidecar calls for it — a TCC resource's try/confirm/cancel, a saga step's
 * action/compensate, a message consumer's deliver — and the check-backs of the messages it produces.
 *
 *   resources:
 *     debit:    { try: /debit/try, confirm: /debit/confirm, cancel: /debit/cancel, retry: ['5m', '1h'] }
 *     reserve:  { action: /reserve/action, compensate: /reserve/compensate }
 *     receipt:  { deliver: /receipt/deliver }
 *   checkBacks:
 *     order paid: /checkback/order-paid
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ValidationError } from '../errors.js';
import { validateResource } from '../store/index.js';

export type ResourceSpec =
  | { kind: 'tcc'; try?: string; confirm: string; cancel: string; retry?: unknown }
  | { kind: 'saga'; action: string; compensate: string; retry?: unknown }
  | { kind: 'msg'; deliver: string; retry?: unknown };

export interface ResourcesFile {
  resources: Map<string, ResourceSpec>;
  checkBacks: Map<string, string>;
}

const KINDS = {
  tcc: { required: ['confirm', 'cancel'], optional: ['try'] },
  saga: { required: ['action', 'compensate'], optional: [] },
  msg: { required: ['deliver'], optional: [] },
} as const;

/** Reads and checks the file; every problem names the file and the field. */
export function loadResourcesFile(path: string): ResourcesFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ValidationError('--resources', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ValidationError('--resources', `${path} is not YAML: ${(err as Error).message}`);
  }
  return parseResources(doc ?? {}, path);
}

export function parseResources(doc: unknown, where: string): ResourcesFile {
  const fail = (field: string, problem: string): never => {
    throw new ValidationError(`${where}: ${field}`, problem);
  };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail('(top)', 'must be a mapping with `resources` and, optionally, `checkBacks`');
  const top = doc as Record<string, unknown>;
  for (const k of Object.keys(top)) if (k !== 'resources' && k !== 'checkBacks') fail(k, 'unknown section (expected resources, checkBacks)');
  const resources = new Map<string, ResourceSpec>();
  const rs = top.resources ?? {};
  if (typeof rs !== 'object' || rs === null || Array.isArray(rs)) fail('resources', 'must be a mapping of resource name to its paths');
  for (const [name, raw] of Object.entries(rs as Record<string, unknown>)) {
    const field = `resources.${name}`;
    try {
      validateResource(name, field);
    } catch (err) {
      fail(field, (err as Error).message);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(field, 'must be a mapping like { confirm: /path, cancel: /path }');
    const spec = raw as Record<string, unknown>;
    const kind = 'deliver' in spec ? 'msg' : 'action' in spec || 'compensate' in spec ? 'saga' : 'tcc';
    const allowed = new Set<string>([...KINDS[kind].required, ...KINDS[kind].optional, 'retry']);
    for (const k of Object.keys(spec)) if (!allowed.has(k)) fail(`${field}.${k}`, `not a ${kind === 'tcc' ? 'TCC resource' : kind === 'saga' ? 'saga step' : 'message consumer'} path (expected ${[...allowed].join(', ')})`);
    for (const k of KINDS[kind].required) if (spec[k] === undefined) fail(`${field}.${k}`, `missing: a ${kind === 'tcc' ? 'TCC resource' : kind === 'saga' ? 'saga step' : 'message consumer'} needs ${KINDS[kind].required.join(' and ')}`);
    for (const k of [...KINDS[kind].required, ...KINDS[kind].optional]) if (spec[k] !== undefined) checkPath(spec[k], `${field}.${k}`, fail);
    resources.set(name, { kind, ...spec } as ResourceSpec);
  }
  const checkBacks = new Map<string, string>();
  const cb = top.checkBacks ?? {};
  if (typeof cb !== 'object' || cb === null || Array.isArray(cb)) fail('checkBacks', 'must be a mapping of message name to a path');
  for (const [name, path] of Object.entries(cb as Record<string, unknown>)) {
    checkPath(path, `checkBacks.${name}`, fail);
    checkBacks.set(name, path as string);
  }
  return { resources, checkBacks };
}

function checkPath(v: unknown, field: string, fail: (field: string, problem: string) => never): void {
  if (typeof v !== 'string' || !/^\/[!-~]{0,2000}$/.test(v)) fail(field, `must be a path on the service's URL, starting with '/', got ${JSON.stringify(v)}`);
}
