/**
 * The one way txloop makes an etcd client (services, CLI, bench, and later the sidecar and the
 * mirror): endpoints validated, TLS and auth passed through untouched (never logged), a deadline on
 * every unary call, the 256 MiB receive limit, and txloop's fault handling.
 */
import { Etcd3, type IOptions } from 'etcd3';
import type { EtcdConnectionOptions } from '../connection.js';
import { ValidationError } from '../errors.js';
import { etcdFaultHandling } from './fault-handling.js';
import { MAX_RECEIVE_MESSAGE_BYTES } from './range.js';

export const ETCD_DEFAULTS = { dialTimeoutMs: 5_000, requestTimeoutMs: 10_000 } as const;

/** Client settings for a short-lived tool (the CLI), beyond the connection options. */
export interface ClientTuning {
  /** gRPC's reconnect backoff, shorter for a command a human waits on. */
  reconnectBackoffMs?: { initial: number; max: number };
  /** More gRPC channel options (the bench's request counting hook). */
  grpcOptions?: Record<string, unknown>;
  /** etcd3 options that replace txloop's (e.g. a probe's one-shot fault handling). */
  overrides?: Partial<IOptions>;
}

export function createEtcdClient(options: EtcdConnectionOptions = {}, tuning: ClientTuning = {}): Etcd3 {
  const hosts = options.endpoints ? validateEndpoints(options.endpoints) : defaultEndpoints();
  const requestTimeoutMs = options.requestTimeoutMs ?? ETCD_DEFAULTS.requestTimeoutMs;
  const callDeadline = (): { deadline: number } => ({ deadline: Date.now() + requestTimeoutMs });
  const config: IOptions = {
    hosts,
    dialTimeout: options.dialTimeoutMs ?? ETCD_DEFAULTS.dialTimeoutMs,
    // A hung etcd (partitioned, paused) must not hang calls forever; streams (watch, keep-alive)
    // are long-lived by design and get no deadline.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : callDeadline()),
    grpcOptions: {
      // One watch response carries every event of a revision range; past gRPC's default 4 MiB limit
      // etcd3 silently restarts the watch at the current revision, skipping events.
      'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES,
      ...(tuning.reconnectBackoffMs
        ? { 'grpc.initial_reconnect_backoff_ms': tuning.reconnectBackoffMs.initial, 'grpc.max_reconnect_backoff_ms': tuning.reconnectBackoffMs.max }
        : {}),
      ...tuning.grpcOptions,
    },
    faultHandling: etcdFaultHandling(hosts.length),
    ...tuning.overrides,
  };
  if (options.credentials) config.credentials = options.credentials;
  if (options.auth) config.auth = { username: options.auth.username, password: options.auth.password, callOptions: callDeadline };
  return new Etcd3(config);
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
