/**
 * Service options: the public interface with its defaults, and the validation that turns a bad
 * option into a ValidationError naming the option before anything connects to etcd.
 */
import type { Etcd3 } from 'etcd3';
import { closest, distance } from 'fastest-levenshtein';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ValidationError } from './errors.js';
import { DEFAULT_NAMESPACE, validateApp, validateNamespace } from './store/keys.js';

/** TLS material and credentials handed to the etcd client unchanged. Never logged. */
export interface EtcdConnectionOptions {
  /** etcd client URLs. @default process.env.TXLOOP_ENDPOINTS split on ',', else ['http://127.0.0.1:2379'] */
  endpoints?: string[];
  /** TLS: CA certificate, and the client certificate/key for mutual TLS. */
  credentials?: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer };
  /** etcd user authentication. */
  auth?: { username: string; password: string };
  /** @default 5_000 */
  dialTimeoutMs?: number;
  /** Deadline of each etcd request (not of watch or keep-alive streams). @default 10_000 */
  requestTimeoutMs?: number;
}

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
  /** Attempts after which a branch is parked as FAILED for a human. @default 10 */
  deadThreshold?: number;
  /** A confirm/cancel handler that runs longer than this counts as a failed attempt. @default 30_000 */
  handlerTimeoutMs?: number;
  /** How long finished transactions stay in etcd for inspection before they are collected. @default 3_600_000 (1h) */
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
  /** pino logger; every line about a transaction carries `xid`. @default pino at level $TXLOOP_LOG_LEVEL or 'info' */
  logger?: Logger;
  /** prom-client registry to report metrics into (serve it with serveMetrics()). @default none: no metrics */
  metrics?: Registry;
}

type Passthrough = 'etcd' | 'client' | 'logger' | 'metrics';
export type ResolvedOptions = Required<Omit<ServiceOptions, Passthrough>> & Pick<ServiceOptions, Passthrough>;

function positiveInt(options: Record<string, unknown>, name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const v = options[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ValidationError(name, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

const SERVICE_OPTION_NAMES = [
  'app', 'etcd', 'client', 'namespace', 'identity', 'leaseTtlSeconds', 'concurrency', 'retryBaseMs', 'retryMaxMs', 'deadThreshold',
  'handlerTimeoutMs', 'retentionMs', 'graceMs', 'resyncMs', 'defaultTimeoutMs', 'maxPayloadBytes', 'maxTxnOps', 'statsIntervalMs', 'logger', 'metrics',
] as const satisfies readonly (keyof ServiceOptions)[];
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

export function resolveOptions(options: ServiceOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new ValidationError('options', 'must be an object with at least { app }');
  rejectUnknownOptions(options, SERVICE_OPTION_NAMES);
  if (options.etcd !== undefined) {
    if (typeof options.etcd !== 'object' || options.etcd === null) throw new ValidationError('etcd', 'must be an object like { endpoints: ["http://127.0.0.1:2379"] }');
    rejectUnknownOptions(options.etcd, ETCD_OPTION_NAMES, 'etcd.');
  }
  const o = options as unknown as Record<string, unknown>;
  const app = validateApp(options.app);
  const namespace = validateNamespace(options.namespace ?? DEFAULT_NAMESPACE);
  if (options.identity !== undefined && (typeof options.identity !== 'string' || options.identity.length === 0 || options.identity.length > 200)) {
    throw new ValidationError('identity', 'must be a non-empty string of at most 200 characters');
  }
  const resolved: ResolvedOptions = {
    app,
    namespace,
    identity: options.identity ?? '',
    leaseTtlSeconds: positiveInt(o, 'leaseTtlSeconds', 10, 1, 3600),
    concurrency: positiveInt(o, 'concurrency', 8, 1, 1024),
    retryBaseMs: positiveInt(o, 'retryBaseMs', 200, 1),
    retryMaxMs: positiveInt(o, 'retryMaxMs', 60_000, 1),
    deadThreshold: positiveInt(o, 'deadThreshold', 10, 1, 1_000_000),
    handlerTimeoutMs: positiveInt(o, 'handlerTimeoutMs', 30_000, 1),
    retentionMs: positiveInt(o, 'retentionMs', 3_600_000, 0),
    graceMs: positiveInt(o, 'graceMs', 5_000, 0),
    resyncMs: positiveInt(o, 'resyncMs', 300_000, 100),
    defaultTimeoutMs: positiveInt(o, 'defaultTimeoutMs', 30_000, 1),
    maxPayloadBytes: positiveInt(o, 'maxPayloadBytes', 262_144, 1, 1_000_000),
    maxTxnOps: positiveInt(o, 'maxTxnOps', 128, 4, 100_000),
    statsIntervalMs: positiveInt(o, 'statsIntervalMs', 5_000, 100),
    ...(options.etcd ? { etcd: options.etcd } : {}),
    ...(options.client ? { client: options.client } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  };
  if (resolved.retryMaxMs < resolved.retryBaseMs) throw new ValidationError('retryMaxMs', 'must be at least retryBaseMs');
  if (options.etcd?.endpoints !== undefined) validateEndpoints(options.etcd.endpoints);
  if (options.etcd) {
    const e = options.etcd as unknown as Record<string, unknown>;
    positiveInt(e, 'requestTimeoutMs', 0, 1);
    positiveInt(e, 'dialTimeoutMs', 0, 1);
  }
  return resolved;
}

export function validateEndpoints(endpoints: unknown, field = 'etcd.endpoints'): string[] {
  if (!Array.isArray(endpoints) || endpoints.length === 0) throw new ValidationError(field, 'must be a non-empty list of URLs like http://127.0.0.1:2379');
  for (const e of endpoints) {
    let url: URL;
    try {
      url = new URL(String(e));
    } catch {
      throw new ValidationError(field, `${JSON.stringify(e)} is not a URL (expected e.g. http://127.0.0.1:2379)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ValidationError(field, `${JSON.stringify(e)} must use http:// or https://`);
  }
  return endpoints as string[];
}

export function defaultEndpoints(): string[] {
  const env = process.env.TXLOOP_ENDPOINTS;
  if (env && env.trim()) return validateEndpoints(env.split(',').map((s) => s.trim()).filter(Boolean), 'TXLOOP_ENDPOINTS');
  return ['http://127.0.0.1:2379'];
}
