/**
 * The sidecar's HTTP server (fastify 5): the routes of api/openapi.yaml over one TxloopService,
 * requests validated against that document, errors as problem documents, an optional bearer token
 * on every route but the probes and the document, and per-route request histograms.
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { TryOutcomeUnknown, UnknownResource, ValidationError, errorMessage } from '../errors.js';
import type { TxloopService } from '../service.js';
import { GlobalStatus } from '../states.js';
import { CallbackNotSent, TryAnswered, type Callbacks } from './callbacks.js';
import type { OpenApi } from './openapi.js';
import { problem, problemOf, type Problem } from './problems.js';
import type { ResourcesFile } from './resources-file.js';

export interface ServerOptions {
  service: TxloopService;
  app: string;
  callbacks: Callbacks;
  resources: ResourcesFile;
  openapi: OpenApi;
  registry: Registry;
  logger: Logger;
  /** Required as `authorization: Bearer <token>` when set. */
  token?: string;
  /** Whether etcd answers and the first list is done. */
  ready(): Promise<string | undefined>;
  /** Largest request body. @default 1 MiB */
  bodyLimit?: number;
  /** Extra routes (REST-TCC's coordinator). */
  plugins?: ((app: FastifyInstance) => Promise<void>)[];
  /** Aborted when the sidecar stops: long waits answer at once (503) instead of holding the shutdown. */
  closing: AbortSignal;
}

/** Routes anyone on the loopback may call, token or not: the probes and the contract. */
const OPEN = new Set(['/healthz', '/readyz', '/openapi.json']);

export async function buildServer(o: ServerOptions): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({ loggerInstance: o.logger.child({ component: 'sidecar-http' }) as unknown as FastifyBaseLogger, bodyLimit: o.bodyLimit ?? 1024 * 1024, logController: new LogController({ disableRequestLogging: true }), ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } } });
  // JSON only (and REST-TCC's application/tcc+json): anything else is 415, not a string to validate.
  // An empty JSON body is an empty object, as an absent one is: the schema says what is needed.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if ((body as string).trim() === '') return done(null, {});
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      (err as FastifyError).statusCode = 400;
      done(err as Error, undefined);
    }
  });
  // A POST without a body is an empty object: its schema says what it needs.
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined && (req.method === 'POST' || req.method === 'PUT')) req.body = {};
  });
  app.addContentTypeParser('application/tcc+json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      (err as FastifyError).statusCode = 400;
      done(err as Error, undefined);
    }
  });
  const seconds = new Histogram({ name: 'txloop_sidecar_http_request_duration_seconds', help: 'Sidecar HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [o.registry], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5] });
  const inFlight = new Gauge({ name: 'txloop_sidecar_http_requests_in_flight', help: 'Sidecar HTTP requests being handled, by route', labelNames: ['route'], registers: [o.registry] });
  app.addHook('onRequest', async (req) => {
    inFlight.inc({ route: req.routeOptions.url ?? 'unmatched' });
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    inFlight.dec({ route });
    seconds.observe({ method: req.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  const expected = o.token ? Buffer.from(o.token) : undefined;
  app.addHook('onRequest', async (req, reply) => {
    if (!expected || OPEN.has(req.url.split('?')[0]!)) return;
    // The scheme is case-insensitive (RFC 9110); the token is compared in constant time.
    const given = Buffer.from(/^bearer +(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return send(reply, problem('Unauthorized', 'a bearer token is required (authorization: Bearer <token>)'));
  });
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err.validation) {
      const first = err.validation[0];
      const field = `${err.validationContext ?? 'body'}${first?.instancePath ? first.instancePath.replace(/\//g, '.') : ''}${first?.params && 'missingProperty' in first.params ? `.${String(first.params.missingProperty)}` : first?.params && 'additionalProperty' in first.params ? `.${String(first.params.additionalProperty)}` : ''}`;
      return send(reply, problem('ValidationError', `${field}: ${first?.message ?? 'invalid'}${first?.params && 'additionalProperty' in first.params ? ' (an unknown field)' : ''}`, { field }));
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return send(reply, problem('PayloadTooLarge', `the request body is over ${o.bodyLimit ?? 1024 * 1024} bytes`));
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return send(reply, problem('UnsupportedMediaType', 'send application/json'));
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.statusCode === 400) return send(reply, problem('BadRequest', `the body is not valid JSON (${err.message})`));
    const p = problemOf(err);
    if (p.status >= 500 && p.name === 'InternalError') o.logger.error({ err: errorMessage(err) }, 'sidecar route failed');
    return send(reply, p);
  });
  app.setNotFoundHandler((req, reply) => send(reply, problem('NotFound', `no route ${req.method} ${req.url.split('?')[0]}`)));

  const schema = (id: string) => ({ schema: o.openapi.route(id) });
  const s = o.service;
  type Req<B = unknown, P = unknown, Q = unknown> = FastifyRequest<{ Body: B; Params: P; Querystring: Q }>;
  type Xid = { xid: string };
  type Reason = { reason?: string } | undefined;
  const reasonOf = (b: Reason): { reason?: string } => (b?.reason !== undefined ? { reason: b.reason } : {});

  app.get('/healthz', async () => ({ status: 'up' }));
  app.get('/readyz', async (_req, reply) => {
    const why = await o.ready();
    if (why) return send(reply, problem('NotReady', why, {}, 503));
    return { status: 'ready' };
  });
  app.get('/openapi.json', async () => o.openapi.document);
  app.get('/metrics', async (_req, reply) => reply.type(o.registry.contentType).send(await o.registry.metrics()));

  // Initiator
  app.post('/v1/transactions', schema('begin'), async (req: Req<{ name: string; timeoutMs?: number }>, reply) => {
    const tx = await s.begin({ name: req.body.name, ...(req.body.timeoutMs !== undefined ? { timeoutMs: req.body.timeoutMs } : {}) });
    return reply.code(201).send({ xid: tx.xid, deadline: tx.deadline, headers: tx.headers() });
  });
  app.get('/v1/transactions', schema('list'), async (req: Req<unknown, unknown, { app?: string; status?: string }>) => {
    const statuses = req.query.status?.split(',').map((x) => x.trim().toUpperCase()).filter(Boolean) as GlobalStatus[] | undefined;
    return { items: await s.list({ ...(req.query.app ? { app: req.query.app } : {}), ...(statuses?.length ? { status: statuses } : {}) }) };
  });
  app.get('/v1/transactions/:xid', schema('get'), async (req: Req<unknown, Xid>) => s.get(req.params.xid));
  app.post('/v1/transactions/:xid/commit', schema('commit'), async (req: Req<Reason, Xid>, reply) => {
    await s.commit(req.params.xid, reasonOf(req.body));
    return reply.code(204).send();
  });
  app.post('/v1/transactions/:xid/rollback', schema('rollback'), async (req: Req<Reason, Xid>, reply) => {
    await s.rollback(req.params.xid, reasonOf(req.body));
    return reply.code(204).send();
  });
  app.post('/v1/transactions/:xid/wait', schema('waitForCompletion'), async (req: Req<{ timeoutMs?: number } | undefined, Xid>) =>
    s.waitForCompletion(req.params.xid, { timeoutMs: req.body?.timeoutMs ?? 30_000, signal: o.closing }),
  );
  app.post('/v1/sagas', schema('saga'), async (req: Req<Parameters<TxloopService['saga']>[0]>, reply) => reply.code(201).send(await s.saga(req.body)));
  app.post('/v1/messages', schema('prepareMessage'), async (req: Req<Parameters<TxloopService['prepareMessage']>[0]>, reply) => {
    const m = await s.prepareMessage(req.body);
    return reply.code(201).send({ xid: m.xid, checkBackAt: m.checkBackAt });
  });
  app.post('/v1/messages/:xid/submit', schema('submitMessage'), async (req: Req<Reason, Xid>, reply) => {
    await s.submitMessage(req.params.xid, reasonOf(req.body));
    return reply.code(204).send();
  });
  app.post('/v1/messages/:xid/discard', schema('discardMessage'), async (req: Req<Reason, Xid>, reply) => {
    await s.discardMessage(req.params.xid, reasonOf(req.body));
    return reply.code(204).send();
  });
  app.get('/v1/messages/:xid/deliveries', schema('deliveries'), async (req: Req<unknown, Xid>) => s.deliveries(req.params.xid));

  // Participant
  type Register = { xid: string; deadline: number; resource: string; payload?: unknown; branchId?: string };
  /** A TCC resource of the resources file: the only ones a caller may register (not, say, REST-TCC's own link resource). */
  const tccSpec = (resource: string) => {
    const spec = o.resources.resources.get(resource);
    if (!spec || spec.kind !== 'tcc') throw new UnknownResource(o.app, resource);
    return spec;
  };
  app.post('/v1/branches', schema('register'), async (req: Req<Register>, reply) => {
    const b = req.body;
    tccSpec(b.resource);
    return reply.code(201).send(await s.registerTry({ xid: b.xid, deadline: b.deadline }, b.resource, b.payload, b.branchId !== undefined ? { branchId: b.branchId } : {}));
  });
  app.post('/v1/branches/:xid/:branchId/report', schema('report'), async (req: Req<{ outcome: 'succeeded' | 'failed'; error?: string }, Xid & { branchId: string }>, reply) => {
    await s.reportTry(req.params.xid, req.params.branchId, req.body.outcome, req.body.error);
    return reply.code(204).send();
  });
  app.post('/v1/tries', schema('try'), async (req: Req<Register>) => {
    const b = req.body;
    const spec = tccSpec(b.resource);
    if (!spec.try) throw new ValidationError('resource', `resource ${b.resource} has no try path in the resources file: add one, or register and report the branch yourself`);
    const tryPath = spec.try;
    const done = await s.tryWith({ xid: b.xid, deadline: b.deadline }, b.resource, b.payload, b.branchId !== undefined ? { branchId: b.branchId } : {}, async (ctx) => {
      try {
        return await o.callbacks.tryCall(tryPath, { xid: ctx.xid, deadline: ctx.deadline, branchId: ctx.branchId, resource: ctx.resource }, ctx.payload, ctx.signal);
      } catch (err) {
        // An answer (an error status) or a request that never left: the Try failed. No answer: unknown.
        if (err instanceof TryAnswered || err instanceof CallbackNotSent) throw err;
        throw new TryOutcomeUnknown(ctx.xid, ctx.branchId, ctx.resource, err);
      }
    });
    return done.replayed ? { branchId: done.branchId, replayed: true } : { branchId: done.branchId, replayed: false, ...(done.result !== undefined ? { result: done.result } : {}) };
  });

  for (const plugin of o.plugins ?? []) await plugin(app);
  return app;
}

function send(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type('application/problem+json').send(p);
}
