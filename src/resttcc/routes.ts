/**
 * The REST-TCC coordinator's two routes (api/openapi.yaml `/coordinator/confirm` and
 * `/coordinator/cancel`) on a fastify 5 instance, for the sidecar or any fastify server. Bodies are
 * `application/tcc+json` (or `application/json`) `{ "participantLinks": [...] }`. Answers: confirm
 * 204 (every link confirmed), 404 (too late: none confirmed, every one expired or cancelled), 409
 * (heuristic: some confirmed and some not, or in doubt), 504 RestTccPending (decided, still being
 * retried when the wait ended); cancel 204. Errors are RFC 9457 problems (`application/problem+json`
 * with `type`, `title`, `status`, `detail`, `name`, and the xid and each link's state when known),
 * under the sidecar's statuses (ValidationError 422, etcd 502/503) — except that 404 and 409 mean
 * only REST-TCC's too-late and heuristic here: a confirm that failed before its decision (its
 * deadline, etcd) is a 503, and sending it again is safe (a confirm's rollback cancels nothing).
 *
 * fastify is imported for its types only: this module loads nothing of it.
 */
import type { FastifyInstance, FastifyReply, FastifySchema } from 'fastify';
import { TxloopError, ValidationError } from '../errors.js';
import type { TxloopService } from '../service.js';
import { RestTccCoordinator, type ConfirmResult, type RestTccCoordinatorOptions } from './coordinator.js';
import { TCC_JSON } from './links.js';

export interface RestTccRoutesOptions {
  /** How long each call waits for the links to settle (RestTccCoordinatorOptions.waitMs). */
  waitMs?: number;
  /**
   * The request schemas of each route by its api/openapi.yaml operationId (the sidecar passes its
   * document's): a request that fails one goes to the server's error handler. @default none: the
   * coordinator validates the links itself
   */
  schema?: (operationId: 'restTccConfirm' | 'restTccCancel') => FastifySchema | undefined;
}

/**
 * For `startSidecar({ plugins: [restTccPlugin()] })`: a coordinator over the sidecar's service
 * (created before the service starts, as the sidecar calls its plugins first) and its routes.
 */
export function restTccPlugin(options: RestTccCoordinatorOptions & Pick<RestTccRoutesOptions, 'schema'> = {}): (app: FastifyInstance, service: TxloopService) => Promise<void> {
  const { schema, ...coordinator } = options;
  return (app, service) => restTccRoutes(app, new RestTccCoordinator(service, coordinator), schema ? { schema } : {});
}

export async function restTccRoutes(app: FastifyInstance, coordinator: RestTccCoordinator, options: RestTccRoutesOptions = {}): Promise<void> {
  if (!app.hasContentTypeParser(TCC_JSON)) app.addContentTypeParser(TCC_JSON, { parseAs: 'string' }, app.getDefaultJsonParser('error', 'ignore'));
  const wait = options.waitMs !== undefined ? { waitMs: options.waitMs } : {};
  const schemaOf = (id: 'restTccConfirm' | 'restTccCancel') => {
    const schema = options.schema?.(id);
    return schema ? { schema } : {};
  };

  app.put('/coordinator/confirm', schemaOf('restTccConfirm'), async (req, reply) => {
    let result: ConfirmResult;
    try {
      result = await coordinator.confirm(req.body, wait);
    } catch (err) {
      return failed(reply, err);
    }
    const { xid, links } = result;
    const notConfirmed = links.filter((l) => l.state !== 'confirmed');
    const which = notConfirmed.map((l) => `${l.uri} ${l.state}${l.reason ? ` (${l.reason})` : ''}`).join('; ');
    switch (result.outcome) {
      case 'confirmed':
        return reply.code(204).header('txloop-xid', xid).send();
      case 'too-late':
        return problem(reply, 404, 'RestTccTooLate', 'Too late', `every participant link had expired or was cancelled; none was confirmed (transaction ${xid}): ${which}`, { xid, links });
      case 'heuristic':
        return problem(reply, 409, 'RestTccHeuristic', 'Heuristic outcome', `not every participant link was confirmed (transaction ${xid}, see txloop describe gtx ${xid}): ${which}`, { xid, links });
      case 'pending':
        return problem(reply, 504, 'RestTccPending', 'Still confirming', `the confirm is decided and txloop keeps retrying it, but not every participant had answered in time (transaction ${xid}): ${which}`, { xid, links });
    }
  });

  app.put('/coordinator/cancel', schemaOf('restTccCancel'), async (req, reply) => {
    try {
      const { xid } = await coordinator.cancel(req.body, wait);
      return reply.code(204).header('txloop-xid', xid).send();
    } catch (err) {
      return failed(reply, err);
    }
  });
}

function problem(reply: FastifyReply, status: number, name: string, title: string, detail: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply
    .code(status)
    .type('application/problem+json')
    .send({ type: `https://txloop.dev/problems/${name}`, title, status, detail, name, ...extra });
}

function failed(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof ValidationError) return problem(reply, 422, err.name, 'Unprocessable Content', err.message, { field: err.field });
  if (!(err instanceof TxloopError)) return problem(reply, 500, 'InternalError', 'Internal Server Error', 'the coordinator failed to handle the request (see its log)');
  // Not decided (its deadline passed, etcd failed, a rollback won), or not known to be: nothing was
  // confirmed or cancelled for sure, and the call may be sent again.
  const xid = (err as { xid?: unknown }).xid;
  const status = err.name === 'EtcdError' ? 502 : 503;
  return problem(reply, status, err.name, status === 503 ? 'Service Unavailable' : 'Bad Gateway', `${err.message}; nothing is known to be decided: send it again`, typeof xid === 'string' ? { xid } : {});
}
