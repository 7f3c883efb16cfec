/**
 * Service options: the public interface, the one DEFAULTS object (the resolver's defaults and what
 * the docs quote; a test keeps the `@default` tags below equal to it), and the validation that turns
 * a bad option into a ValidationError naming it before anything connects to etcd.
 */
import type { Etcd3 } from 'etcd3';
import { closest, distance } from 'fastest-levenshtein';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ValidationError } from './errors.js';
import type { EtcdConnectionOptions } from './connection.js';
import { validateEndpoints } from './etcd/index.js';
import { DEFAULT_NAMESPACE, validateApp, validateNamespace } from './store/index.js';

export type { EtcdConnectionOptions } from './connection.js';

export interface ServiceOptions {
  /** This service's name: the etcd prefix it owns and the `owner` of its branches. Lowercase DNS label. */
  app: string;
  /** How to reach etcd. Ignored when `client` is given. */
  etcd?: EtcdConnectionOptions;
  /** An etcd3 client to share; the service does not close it. */
  client?: Etcd3;
  /** Key prefix for all txloop data; must end in '/'. @default 'txloop/' */
  namespace?: string;
  /** Identifies this replica in the leader record. @default `<hostname>/<pid>/<random>` */
  identity?: string;
  /** Leader lease TTL: a standby takes over within about this long after the leader dies. @default 10 */
  leaseTtlSeconds?: number;
  /** Phase-2 handlers running at once on the leader. @default 8 */
  concurrency?: number;
  /** First retry delay after a failed phase-2 attempt; doubles per attempt. @default 200 */
  retryBaseMs?: number;
  /** Cap of the retry delay. @default 60_000 */
  retryMaxMs?: number;
  /** Attempts after which a branch is parked (PARKED) for a human. @default 10 */
  maxAttempts?: number;
  /** @deprecated since 0.2: the old name of `maxAttempts`; still accepted, with a warning. */
  deadThreshold?: number;
  /** A confirm/cancel handler that runs longer than this counts as a failed attempt. @default 30_000 */
  handlerTimeoutMs?: number;
  /** How long finished transactions stay in etcd for inspection before they are collected. @default 3_600_000 */
  retentionMs?: number;
  /**
   * Participants roll back a global still TRYING this long past its deadline (the initiator's leader
   * normally does it at the deadline). Also how long a cancel waits for a Try that is still running.
   * @default 5_000
   */
  graceMs?: number;
  /**
   * Full relist of the service's prefix, a safety net under the watch (which relists on its own
   * after a reconnect or compaction). Each relist reads every retained record. @default 300_000
   */
  resyncMs?: number;
  /** Timeout of begin() when none is given. @default 30_000 */
  defaultTimeoutMs?: number;
  /** Largest branch payload, as JSON bytes. @default 262_144 */
  maxPayloadBytes?: number;
  /** etcd's --max-txn-ops; decisions with more branches finish their fan-out by reconciliation. @default 128 */
  maxTxnOps?: number;
  /** How often the leader publishes queue figures for `txloop top`. @default 5_000 */
  statsIntervalMs?: number;
  /**
   * Write the member record of each branch this service joins under the 0.1 prefix `link/`, where
   * services still running 0.1 look for it. Set it on every 0.2 service while any 0.1 service is
   * left (see the README's upgrade notes); a 0.2 service reads both prefixes either way. @default false
   */
  legacyLinks?: boolean;
  /** pino logger; every line about a transaction carries `xid`. @default pino at level $TXLOOP_LOG_LEVEL or 'info' */
  logger?: Logger;
  /** prom-client registry to report metrics into (serve it with serveMetrics()). @default none: no metrics */
  metrics?: Registry;
}

/** The default of every numeric and string option, and the range each one accepts. */
export const DEFAULTS = {
  namespace: DEFAULT_NAMESPACE,
  leaseTtlSeconds: 10,
  concurrency: 8,
  retryBaseMs: 200,
  retryMaxMs: 60_000,
  maxAttempts: 10,
  handlerTimeoutMs: 30_000,
  retentionMs: 3_600_000,
  graceMs: 5_000,
  resyncMs: 300_000,
  defaultTimeoutMs: 30_000,
  maxPayloadBytes: 262_144,
  maxTxnOps: 128,
  statsIntervalMs: 5_000,
  legacyLinks: false,
} as const;

const RANGES: Record<Exclude<keyof typeof DEFAULTS, 'namespace' | 'legacyLinks'>, [min: number, max: number]> = {
  leaseTtlSeconds: [1, 3600],
  concurrency: [1, 1024],
  retryBaseMs: [1, Number.MAX_SAFE_INTEGER],
  retryMaxMs: [1, Number.MAX_SAFE_INTEGER],
  maxAttempts: [1, 1_000_000],
  handlerTimeoutMs: [1, Number.MAX_SAFE_INTEGER],
  retentionMs: [0, Number.MAX_SAFE_INTEGER],
  graceMs: [0, Number.MAX_SAFE_INTEGER],
  resyncMs: [100, Number.MAX_SAFE_INTEGER],
  defaultTimeoutMs: [1, Number.MAX_SAFE_INTEGER],
  maxPayloadBytes: [1, 1_000_000],
  maxTxnOps: [4, 100_000],
  statsIntervalMs: [100, Number.MAX_SAFE_INTEGER],
};

/** Old option names still accepted: old → new. */
export const DEPRECATED_OPTIONS = { deadThreshold: 'maxAttempts' } as const satisfies Record<string, keyof ServiceOptions>;

type Passthrough = 'etcd' | 'client' | 'logger' | 'metrics';
type Deprecated = keyof typeof DEPRECATED_OPTIONS;
export type ResolvedOptions = Required<Omit<ServiceOptions, Passthrough | Deprecated>> & Pick<ServiceOptions, Passthrough>;

const SERVICE_OPTION_NAMES = ['app', 'etcd', 'client', 'identity', 'logger', 'metrics', ...Object.keys(DEFAULTS), ...Object.keys(DEPRECATED_OPTIONS)];
const ETCD_OPTION_NAMES = ['endpoints', 'credentials', 'auth', 'dialTimeoutMs', 'requestTimeoutMs'] as const satisfies readonly (keyof EtcdConnectionOptions)[];

/**
 * A misspelt option (`retryBaseMS`) would otherwise be ignored silently and its default used: refuse
 * it, naming the closest valid name.
 */
export function rejectUnknownOptions(given: object, known: readonly string[], prefix = ''): void {
  for (const name of Object.keys(given)) {
    if (known.includes(name)) continue;
    const guess = closest(name, known as string[]);
    const near = distance(name.toLowerCase(), guess.toLowerCase()) <= Math.max(2, Math.floor(guess.length / 3));
    throw new ValidationError(`${prefix}${name}`, `unknown option${near ? `; did you mean ${prefix}${guess}?` : ` (valid: ${known.join(', ')})`}`);
  }
}

const warned = new Set<string>();

/**
 * Maps old option names onto new ones, warning once per process per name (Node's DeprecationWarning).
 * `labels` gets, for each renamed option, the name the caller wrote, for error messages.
 */
function renameDeprecated(options: Record<string, unknown>, labels: Map<string, string>): Record<string, unknown> {
  const out = { ...options };
  for (const [old, current] of Object.entries(DEPRECATED_OPTIONS)) {
    if (out[old] === undefined) continue;
    if (out[current] !== undefined) throw new ValidationError(old, `is the old name of ${current}; give only ${current}`);
    out[current] = out[old];
    delete out[old];
    labels.set(current, old);
    if (!warned.has(old)) {
      warned.add(old);
      process.emitWarning(`txloop option ${old} is deprecated; use ${current}`, { type: 'DeprecationWarning', code: `TXLOOP_OPTION_${old.toUpperCase()}` });
    }
  }
  return out;
}

/** `label`: the name the caller wrote (an old name for a renamed option). */
function integer(options: Record<string, unknown>, name: keyof typeof RANGES, label: string): number {
  const v = options[name];
  const [min, max] = RANGES[name];
  if (v === undefined) return DEFAULTS[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const renamed = label !== name ? ` (${label} is the old name of ${name})` : '';
    throw new ValidationError(label, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}${renamed}`);
  }
  return v;
}

export function resolveOptions(options: ServiceOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new ValidationError('options', 'must be an object with at least { app }');
  rejectUnknownOptions(options, SERVICE_OPTION_NAMES);
  if (options.etcd !== undefined) {
    if (typeof options.etcd !== 'object' || options.etcd === null) throw new ValidationError('etcd', 'must be an object like { endpoints: ["http://127.0.0.1:2379"] }');
    rejectUnknownOptions(options.etcd, ETCD_OPTION_NAMES, 'etcd.');
  }
  const labels = new Map<string, string>();
  const o = renameDeprecated(options as unknown as Record<string, unknown>, labels);
  const app = validateApp(options.app);
  // The Kubernetes mirror elects its leader on <ns>txloop-mirror/leader: a service of that name would contend for it.
  if (app === 'txloop-mirror') throw new ValidationError('app', '"txloop-mirror" is reserved: the Kubernetes mirror elects its leader under that name');
  const namespace = validateNamespace(options.namespace ?? DEFAULTS.namespace);
  if (options.identity !== undefined && (typeof options.identity !== 'string' || options.identity.length === 0 || options.identity.length > 200)) {
    throw new ValidationError('identity', 'must be a non-empty string of at most 200 characters');
  }
  const numbers = Object.fromEntries(Object.keys(RANGES).map((name) => [name, integer(o, name as keyof typeof RANGES, labels.get(name) ?? name)])) as Record<keyof typeof RANGES, number>;
  if (options.legacyLinks !== undefined && typeof options.legacyLinks !== 'boolean') throw new ValidationError('legacyLinks', `must be true or false, got ${JSON.stringify(options.legacyLinks)}`);
  const resolved: ResolvedOptions = {
    app,
    namespace,
    legacyLinks: options.legacyLinks ?? DEFAULTS.legacyLinks,
    identity: options.identity ?? '',
    ...numbers,
    ...(options.etcd ? { etcd: options.etcd } : {}),
    ...(options.client ? { client: options.client } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  };
  if (resolved.retryMaxMs < resolved.retryBaseMs) throw new ValidationError('retryMaxMs', 'must be at least retryBaseMs');
  if (options.etcd?.endpoints !== undefined) validateEndpoints(options.etcd.endpoints);
  for (const name of ['requestTimeoutMs', 'dialTimeoutMs'] as const) {
    const v = options.etcd?.[name];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) {
      throw new ValidationError(name, `must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}, got ${JSON.stringify(v)}`);
    }
  }
  return resolved;
}
