/**
 * The REST-TCC coordinator's two routes (api/openapi.yaml `/coordinator/confirm` and
 * `/coordinator/cancel`) on a fastify 5 instance, for the sidecar or any fastify server. Bodies are
 * `application/tcc+json` (or `application/json`) `{ "participantLinks": [...] }`. Answers: confirm
 * 204 (every link confirmed), 404 (too late: none confirmed, every one expired or cancelled), 409
 * (heuristic: some confirmed and some not, or in doubt), 504 RestTccPending (decided, still being
 * retried when the wait ended); cancel 204. Errors are RFC 9457 problems (`application/problem+json`
 * with `type`, `title`, `status`, `detail`, `name`, and the xid and each link's state when known).
 *
 * fastify is imported for its types only: this module loads nothing of it.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { DeadlineExceeded, EtcdUnavailable, ServiceClosed, TxloopError, ValidationError, errorMessage } from '../errors.js';
import type { ConfirmResult, RestTccCoordinator } from './coordinator.js';
import { TCC_JSON } from './links.js';

export interface RestTccRoutesOptions {
  /** How long each call waits for the links to settle (RestTccCoordinatorOptions.waitMs). */
  waitMs?: number;
}

export async function restTccRoutes(app: FastifyInstance, coordinator: RestTccCoordinator, options: RestTccRoutesOptions = {}): Promise<void> {
  if (!app.hasContentTypeParser(TCC_JSON)) app.addContentTypeParser(TCC_JSON, { parseAs: 'string' }, app.getDefaultJsonParser('error', 'ignore'));
  const wait = options.waitMs !== undefined ? { waitMs: options.waitMs } : {};

  app.put('/coordinator/confirm', async (req, reply) => {
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

  app.put('/coordinator/cancel', async (req, reply) => {
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
  const name = err instanceof TxloopError ? err.name : 'InternalError';
  if (err instanceof ValidationError) return problem(reply, 400, name, 'Invalid request', err.message, { field: err.field });
  if (err instanceof EtcdUnavailable || err instanceof ServiceClosed) return problem(reply, 503, name, 'Unavailable', err.message);
  if (err instanceof DeadlineExceeded) return problem(reply, 504, name, 'Deadline exceeded', err.message, err.xid ? { xid: err.xid } : {});
  const xid = (err as { xid?: unknown }).xid;
  return problem(reply, 500, name, 'Coordinator error', errorMessage(err) || 'unknown error', typeof xid === 'string' ? { xid } : {});
}
