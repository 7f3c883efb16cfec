/**
 * Connection flags and environment, etcdctl style: --endpoints, --namespace, TLS (--cacert, --cert,
 * --key), --user user:password, --dial-timeout, --command-timeout; TXLOOP_* variables as defaults.
 */
import { readFileSync } from 'node:fs';
import type { Etcd3, IOptions } from 'etcd3';
import type { EtcdConnectionOptions } from '../connection.js';
import { createEtcdClient, etcdFaultHandling } from '../etcd/index.js';
import { DEFAULT_NAMESPACE, Store, validateNamespace } from '../store/index.js';
import { CliError, UnreachableError, UsageError } from './errors.js';

export interface GlobalOptions {
  endpoints?: string;
  namespace?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  user?: string;
  password?: string;
  dialTimeout?: string;
  commandTimeout?: string;
}

export interface ConnectionConfig {
  endpoints: string[];
  namespace: string;
  dialTimeoutMs: number;
  commandTimeoutMs: number;
  tls?: { cacert?: string; cert?: string; key?: string };
  auth?: { username: string; password: string };
}

export const ENV = {
  endpoints: 'TXLOOP_ENDPOINTS',
  namespace: 'TXLOOP_NAMESPACE',
  cacert: 'TXLOOP_CACERT',
  cert: 'TXLOOP_CERT',
  key: 'TXLOOP_KEY',
  user: 'TXLOOP_USER',
  password: 'TXLOOP_PASSWORD',
} as const;

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = String.raw`(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)`;
const GO_DURATION = new RegExp(`^(?:${PART})+$`);

/**
 * A duration as Go (and so etcdctl) writes them: `500ms`, `3s`, `1m30s`, `1.5s`, `1h`; also a bare
 * number of seconds. Between 1ms and 1h.
 */
export function parseDuration(value: string, flag: string, maxMs = 3_600_000): number {
  const v = value.trim();
  let ms = 0;
  if (/^\d+(?:\.\d+)?$/.test(v)) ms = Number(v) * 1000;
  else if (GO_DURATION.test(v)) for (const [, n, unit] of v.matchAll(new RegExp(PART, 'g'))) ms += Number(n) * UNIT_MS[unit!]!;
  else throw new UsageError(`invalid ${flag} ${JSON.stringify(value)}: use a duration like 500ms, 3s or 1m30s`);
  if (!(ms >= 1 && ms <= maxMs)) throw new UsageError(`invalid ${flag} ${JSON.stringify(value)}: must be between 1ms and ${maxMs >= 86_400_000 ? `${maxMs / 86_400_000}d` : '1h'}`);
  return Math.round(ms);
}

export function resolveConnection(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): ConnectionConfig {
  const cacert = opts.cacert ?? env[ENV.cacert];
  const cert = opts.cert ?? env[ENV.cert];
  const key = opts.key ?? env[ENV.key];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--cert and --key must be given together (client certificate and its private key)');
  const secure = cacert !== undefined || cert !== undefined;

  const rawEndpoints = opts.endpoints ?? env[ENV.endpoints] ?? 'http://127.0.0.1:2379';
  const endpoints = rawEndpoints
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
    .map((e) => normalizeEndpoint(e, secure));
  if (endpoints.length === 0) throw new UsageError('--endpoints is empty: give etcd client URLs like http://127.0.0.1:2379');
  const schemes = new Set(endpoints.map((e) => new URL(e).protocol));
  if (schemes.size > 1) throw new UsageError('--endpoints mixes http:// and https:// URLs; use one scheme');

  let namespace = opts.namespace ?? env[ENV.namespace] ?? DEFAULT_NAMESPACE;
  if (namespace !== '' && !namespace.endsWith('/')) namespace += '/';
  try {
    validateNamespace(namespace);
  } catch (err) {
    throw new UsageError(`invalid --namespace: ${(err as Error).message.replace(/^namespace: /, '')}`);
  }

  const config: ConnectionConfig = {
    endpoints,
    namespace,
    dialTimeoutMs: parseDuration(opts.dialTimeout ?? '2s', '--dial-timeout'),
    commandTimeoutMs: parseDuration(opts.commandTimeout ?? '5s', '--command-timeout'),
  };
  if (secure) config.tls = { ...(cacert !== undefined ? { cacert } : {}), ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) };

  const user = opts.user ?? env[ENV.user];
  if (user !== undefined) {
    const colon = user.indexOf(':');
    const username = colon >= 0 ? user.slice(0, colon) : user;
    const password = colon >= 0 ? user.slice(colon + 1) : (opts.password ?? env[ENV.password]);
    if (!username) throw new UsageError('--user needs a user name: --user name:password (or --user name with --password / TXLOOP_PASSWORD)');
    // Never echo the value: it may hold the password.
    if (password === undefined) throw new UsageError(`--user ${username} has no password: use --user ${username}:PASSWORD, --password or ${ENV.password}`);
    config.auth = { username, password };
  } else if (opts.password !== undefined) {
    throw new UsageError('--password needs --user');
  }
  return config;
}

function normalizeEndpoint(e: string, secure: boolean): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(e) ? e : `${secure ? 'https' : 'http'}://${e}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`invalid endpoint ${JSON.stringify(e)}: expected a URL like http://127.0.0.1:2379`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`invalid endpoint ${JSON.stringify(e)}: use http:// or https://`);
  if (url.username || url.password) throw new UsageError('credentials in --endpoints are not supported; use --user');
  return `${url.protocol}//${url.host}`;
}

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new CliError(`cannot read ${flag} file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The connection settings as a service takes them (the sidecar's TxloopService): TLS files read, credentials kept out of logs. */
export function etcdOptionsOf(config: ConnectionConfig): EtcdConnectionOptions {
  const tls = config.tls;
  return {
    endpoints: config.endpoints,
    dialTimeoutMs: config.dialTimeoutMs,
    requestTimeoutMs: config.commandTimeoutMs,
    ...(tls
      ? {
          credentials: {
            // Without --cacert, grpc falls back to the system's trusted roots.
            rootCertificate: (tls.cacert !== undefined ? readPem(tls.cacert, '--cacert') : undefined) as Buffer,
            ...(tls.key !== undefined ? { privateKey: readPem(tls.key, '--key') } : {}),
            ...(tls.cert !== undefined ? { certChain: readPem(tls.cert, '--cert') } : {}),
          },
        }
      : {}),
    ...(config.auth ? { auth: config.auth } : {}),
  };
}

export interface Connection {
  config: ConnectionConfig;
  client: Etcd3;
  store: Store;
  close(): void;
}

/**
 * Opens an etcd client each of whose requests fails after --command-timeout with one line naming the
 * endpoints and the flag: each one, with etcd3's retries on other endpoints, however many a command
 * makes (a listing of 100k records makes hundreds). gRPC's own deadline per attempt is a second
 * later, so the CLI's line is what a hung etcd gets. (The first request is bounded by
 * --dial-timeout in runtime.ts, so an unreachable etcd fails within seconds.) It accepts responses
 * as large as the services' client does: a listing of a few transactions with large payloads
 * passes gRPC's default 4 MiB, and so may one watch response under `-w`.
 */
export function connect(config: ConnectionConfig, overrides: Partial<IOptions> = {}): Connection {
  const faults = etcdFaultHandling(config.endpoints.length);
  const client = createEtcdClient(
    { ...etcdOptionsOf(config), requestTimeoutMs: config.commandTimeoutMs + 1000 },
    // A command a human waits on reconnects sooner than a service does.
    { reconnectBackoffMs: { initial: 200, max: 1000 }, overrides: { faultHandling: { ...faults, global: bounded(faults.global, config) }, ...overrides } },
  );
  return {
    config,
    client,
    store: new Store(client, config.namespace),
    close: () => client.close(),
  };
}

/** Rejects with an UnreachableError (`message`, or "cannot reach etcd …") if `p` has not settled within `ms`. */
export function withDeadline<T>(p: Promise<T>, ms: number, endpoints: readonly string[], message?: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new UnreachableError(message ?? `cannot reach etcd at ${endpoints.join(',')}: no answer within ${ms / 1000}s (check --endpoints / TXLOOP_ENDPOINTS, TLS flags and that etcd is running)`)),
      ms,
    );
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/** The message of a request etcd did not answer within --command-timeout. */
export function commandTimeoutMessage(config: Pick<ConnectionConfig, 'endpoints' | 'commandTimeoutMs'>): string {
  return `etcd at ${config.endpoints.join(',')} did not answer a request within ${config.commandTimeoutMs / 1000}s (--command-timeout): check that it is running and not paused or overloaded, or raise --command-timeout`;
}

/** `inner` (etcd3's retries of one unary request), the whole of it failing with an UnreachableError after --command-timeout. */
function bounded(inner: Policy | undefined, config: ConnectionConfig): Policy {
  type Call = Parameters<Policy['execute']>[0];
  const run = (fn: Call): Promise<unknown> => (inner ? inner.execute(fn) : Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 } as never)));
  return { execute: (fn: Call) => withDeadline(run(fn), config.commandTimeoutMs, config.endpoints, commandTimeoutMessage(config)) } as unknown as Policy;
}

/** Runs the call once: no retry, no circuit breaker (etcd3's default breaker would keep failing for 5s after etcd is back). */
const once = { execute: (fn: (ctx: { signal: AbortSignal; attempt: number }) => unknown) => Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 })) } as unknown as Policy;

export interface Probe {
  /** Resolves when some endpoint answers a tiny request within --dial-timeout; rejects with the first endpoint's error otherwise. */
  check(): Promise<void>;
  close(): void;
}

/**
 * Is etcd answering right now? One client per endpoint, each call tried once, so the answer is not
 * skewed by one dead member of a cluster or by a circuit breaker still open from an outage just over.
 */
export function probe(config: ConnectionConfig): Probe {
  const clients = config.endpoints.map((e) => connect({ ...config, endpoints: [e] }, { faultHandling: { host: () => once, global: once } }).client);
  return {
    check: async () => {
      try {
        await Promise.any(clients.map((c, i) => withDeadline(c.maintenance.status(), config.dialTimeoutMs, [config.endpoints[i]!])));
      } catch (err) {
        throw err instanceof AggregateError ? err.errors[0] : err;
      }
    },
    close: () => clients.forEach((c) => c.close()),
  };
}
