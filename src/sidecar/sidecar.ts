/**
 * One sidecar: a TxloopService for one app whose handlers are HTTP callbacks to the service it
 * stands beside, and the HTTP server that service calls. Loopback only unless told otherwise; a
 * token, when set, guards both directions.
 */
import { isIP } from 'node:net';
import type { Etcd3 } from 'etcd3';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import type { EtcdConnectionOptions } from '../connection.js';
import { ValidationError, errorMessage } from '../errors.js';
import { createEtcdClient } from '../etcd/index.js';
import type { ServiceOptions } from '../options.js';
import { TxloopService } from '../service.js';
import { Callbacks } from './callbacks.js';
import { loadOpenApi } from './openapi.js';
import type { ResourcesFile } from './resources-file.js';
import { buildServer } from './server.js';
import { restTccPlugin } from '../resttcc/index.js';

export interface SidecarOptions {
  app: string;
  /** @default 'txloop/' */
  namespace?: string;
  etcd: EtcdConnectionOptions;
  /** Where the sidecar listens; port 0 picks a free one. @default { host: '127.0.0.1', port: 7480 } */
  listen?: { host: string; port: number };
  /** Listen beyond loopback without a token (--listen-unsafe-any). @default false */
  unsafeAnyAddress?: boolean;
  /** Where the service listens for the sidecar's callbacks. */
  serviceUrl: string;
  /** The bearer token both directions carry. */
  token?: string;
  resources: ResourcesFile;
  logger?: Logger;
  /** Engine options for its TxloopService (timings, attempts, retention). */
  service?: Omit<ServiceOptions, 'app' | 'namespace' | 'etcd' | 'client' | 'logger' | 'metrics'>;
  /** Origins (http://host:port) of REST-TCC participants it may call besides loopback ones. @default [] */
  restTccAllow?: string[];
  /** How long the first list of its keys may take before it gives up (etcd unreachable). @default 30_000 */
  startTimeoutMs?: number;
  /** Extra routes on its server (REST-TCC's coordinator). */
  plugins?: ((app: FastifyInstance, service: TxloopService) => Promise<void>)[];
}

export interface Sidecar {
  readonly url: string;
  readonly service: TxloopService;
  /** Stops accepting, finishes requests in flight, resigns leadership, closes etcd. Safe to call twice. */
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export async function startSidecar(o: SidecarOptions): Promise<Sidecar> {
  const listen = o.listen ?? { host: '127.0.0.1', port: 7480 };
  if (!LOOPBACK.has(listen.host) && !o.token && !o.unsafeAnyAddress) {
    throw new ValidationError('--listen', `${listen.host} is not a loopback address: the sidecar's API decides transactions, so it listens on 127.0.0.1 unless it has a token (--token-file) or --listen-unsafe-any says otherwise`);
  }
  if (!LOOPBACK.has(listen.host) && isIP(listen.host) === 0 && listen.host !== '0.0.0.0') throw new ValidationError('--listen', `${JSON.stringify(listen.host)} is not an IP address`);
  const logger = (o.logger ?? pino({ level: 'info' })).child({ component: 'sidecar' });
  const callbacks = new Callbacks({ serviceUrl: o.serviceUrl, ...(o.token ? { token: o.token } : {}) });
  const openapi = loadOpenApi();
  const registry = new Registry();
  const client: Etcd3 = createEtcdClient(o.etcd);
  const service = new TxloopService({ ...o.service, app: o.app, ...(o.namespace ? { namespace: o.namespace } : {}), client, logger, metrics: registry });
  for (const [name, spec] of o.resources.resources) {
    const options = spec.retry !== undefined ? { retry: spec.retry as never } : {};
    if (spec.kind === 'tcc') service.resource(name, callbacks.tcc(spec), options);
    else if (spec.kind === 'saga') service.sagaStep(name, callbacks.saga(spec), options);
    else service.consumer(name, callbacks.consumer(spec), options);
  }
  for (const [name, path] of o.resources.checkBacks) service.checkBack(name, callbacks.checkBack(path));

  let started = false;
  let probed: { at: number; why: string | undefined } | undefined;
  const ready = async (): Promise<string | undefined> => {
    if (!started) return 'the first list of its keys in etcd is not done yet';
    if (probed && Date.now() - probed.at < 1_000) return probed.why;
    let why: string | undefined;
    try {
      await Promise.race([client.maintenance.status(), new Promise((_, reject) => setTimeout(() => reject(new Error('no answer within 1s')), 1_000).unref())]);
    } catch (err) {
      // Said to anyone on the loopback (the probe needs no token): no endpoints, the log has them.
      why = 'etcd does not answer';
      logger.warn({ err: errorMessage(err) }, 'readiness: etcd does not answer');
    }
    probed = { at: Date.now(), why };
    return why;
  };
  // The REST-TCC coordinator (PUT /coordinator/confirm|cancel) on every sidecar: its links become
  // branches of this service, so it is set up before start(), on every replica.
  // It PUTs and DELETEs the links it is given: only to loopback participants unless allowed more.
  const allowed = new Set((o.restTccAllow ?? []).map((origin) => new URL(origin).origin));
  const restTcc = restTccPlugin({ schema: (id) => openapi.route(id), allow: (url) => LOOPBACK.has(url.hostname.replace(/^\[|\]$/g, '')) || allowed.has(url.origin) });
  const plugins = [restTcc, ...(o.plugins ?? [])].map((p) => (app: FastifyInstance) => p(app, service));
  const closing = new AbortController();
  const app = await buildServer({ service, app: o.app, callbacks, resources: o.resources, openapi, registry, logger, ready, plugins, closing: closing.signal, ...(o.token ? { token: o.token } : {}) });
  // Nothing else holds the event loop while the first list retries against an etcd that is down.
  const alive = setInterval(() => undefined, 1_000);
  try {
    await service.start({ timeoutMs: o.startTimeoutMs ?? 30_000 });
    started = true;
    await app.listen({ host: listen.host, port: listen.port });
  } catch (err) {
    await app.close().catch(() => undefined);
    await service.close().catch(() => undefined);
    client.close();
    throw err;
  } finally {
    clearInterval(alive);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : listen.port;
  const url = `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${port}`;
  logger.info({ url, app: o.app, resources: [...o.resources.resources.keys()] }, 'sidecar listening');
  let stopping: Promise<void> | undefined;
  return {
    url,
    service,
    close: () =>
      (stopping ??= (async () => {
        closing.abort(new Error('the sidecar is stopping'));
        await app.close();
        await service.close();
        client.close();
      })()),
  };
}
