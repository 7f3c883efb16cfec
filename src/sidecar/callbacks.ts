/**
 * The sidecar's calls to the service it stands beside (api/openapi.yaml, "Callbacks"): each phase-2
 * attempt is one POST to the path its resources file names, and the answer decides the attempt —
 * 2xx done, 409 refused for good (NonRetryableError), 410 nothing left to do (done), anything else
 * or no answer within the handler's signal: a failed attempt, retried by the engine with the
 * branch's backoff. The status and the start of the body become the branch's last error.
 */
import { NonRetryableError, ValidationError } from '../errors.js';
import type { CheckBack, CheckBackAnswer, DeliveryContext, MessageConsumer, PhaseTwoContext, SagaStep, StepContext, TccResource } from '../resource.js';

export interface CallbackOptions {
  /** Where the service listens, e.g. http://127.0.0.1:8080 (no trailing slash needed). */
  serviceUrl: string;
  /** Sent as `authorization: Bearer <token>`; never logged. */
  token?: string;
}

/** What one callback carries, in its body and in its headers. */
interface CallbackBody {
  xid: string;
  branchId: string;
  resource: string;
  action: string;
  payload: unknown;
  attempt: number;
  tryState?: string;
  fencingToken: string;
}

const EXCERPT = 200;

export class Callbacks {
  private readonly base: string;

  constructor(private readonly o: CallbackOptions) {
    let url: URL;
    try {
      url = new URL(o.serviceUrl);
    } catch {
      throw new ValidationError('--service-url', `${JSON.stringify(o.serviceUrl)} is not a URL like http://127.0.0.1:8080`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ValidationError('--service-url', 'must be an http:// or https:// URL');
    // Credentials in the URL would end up in every callback's error, in etcd and in the logs.
    if (url.username || url.password) throw new ValidationError('--service-url', 'must not carry credentials; use --token-file for the bearer token both directions carry');
    this.base = url.toString().replace(/\/$/, '');
  }

  /** A TCC resource whose confirm and cancel are the service's paths (its Try runs through the service's own call to register/report, or POST /v1/tries). */
  tcc(spec: { confirm: string; cancel: string }): TccResource {
    return {
      try: () => {
        throw new Error('a sidecar resource has no in-process Try: the service registers and reports it, or POST /v1/tries calls its try path');
      },
      confirm: (ctx) => this.phase2(spec.confirm, ctx),
      cancel: (ctx) => this.phase2(spec.cancel, ctx),
    };
  }

  saga(spec: { action: string; compensate: string }): SagaStep {
    return {
      action: (ctx) => this.step(spec.action, ctx),
      compensate: (ctx) => this.step(spec.compensate, ctx),
    };
  }

  consumer(spec: { deliver: string }): MessageConsumer {
    return { deliver: (ctx: DeliveryContext) => this.call(spec.deliver, { xid: ctx.xid, branchId: ctx.branchId, resource: ctx.resource, action: 'deliver', payload: ctx.payload, attempt: ctx.attempt, fencingToken: ctx.fencingToken }, ctx.signal).then(() => undefined) };
  }

  /** A message check-back: the service answers `{ "answer": "committed" | "rolled-back" | "unknown" }`. */
  checkBack(path: string): CheckBack {
    return async ({ xid, name, preparedAt, signal }) => {
      const res = await this.post(path, { xid, name, preparedAt }, { 'txloop-xid': xid }, signal);
      const text = await res.text();
      if (!res.ok) throw new Error(`check-back ${path} answered ${res.status}: ${text.slice(0, EXCERPT)}`);
      let answer: unknown;
      try {
        answer = (JSON.parse(text) as { answer?: unknown }).answer;
      } catch {
        throw new Error(`check-back ${path} answered ${res.status} with a body that is not JSON: ${text.slice(0, EXCERPT)}`);
      }
      return answer as CheckBackAnswer;
    };
  }

  /**
   * The service's Try for POST /v1/tries: the payload as the body, the transaction in txloop's
   * headers. Resolves with its JSON answer (undefined for an empty one); throws with its status.
   */
  async tryCall(path: string, ctx: { xid: string; deadline: number; branchId: string; resource: string }, payload: unknown, signal: AbortSignal): Promise<unknown> {
    const res = await this.post(path, payload ?? null, { 'txloop-xid': ctx.xid, 'txloop-deadline': String(ctx.deadline), 'txloop-branch-id': ctx.branchId, 'idempotency-key': `${ctx.xid}/${ctx.branchId}/try` }, signal);
    const text = await res.text();
    if (!res.ok) throw new TryAnswered(res.status, text.slice(0, EXCERPT));
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }

  private phase2(path: string, ctx: PhaseTwoContext): Promise<void> {
    return this.call(path, { xid: ctx.xid, branchId: ctx.branchId, resource: ctx.resource, action: ctx.action, payload: ctx.payload, attempt: ctx.attempt, tryState: ctx.tryState, fencingToken: ctx.fencingToken }, ctx.signal);
  }

  private step(path: string, ctx: StepContext): Promise<void> {
    return this.call(path, { xid: ctx.xid, branchId: ctx.branchId, resource: ctx.resource, action: ctx.action, payload: ctx.payload, attempt: ctx.attempt, tryState: ctx.actionState, fencingToken: ctx.fencingToken }, ctx.signal);
  }

  private async call(path: string, body: CallbackBody, signal: AbortSignal): Promise<void> {
    const headers = {
      'txloop-xid': body.xid,
      'txloop-branch-id': body.branchId,
      'txloop-action': body.action,
      'txloop-attempt': String(body.attempt),
      'txloop-fencing-token': body.fencingToken,
      ...(body.tryState ? { 'txloop-try-state': body.tryState } : {}),
      'idempotency-key': `${body.xid}/${body.branchId}/${body.action}`,
    };
    const res = await this.post(path, body, headers, signal);
    if ((res.status >= 200 && res.status < 300) || res.status === 410) {
      await res.body?.cancel().catch(() => undefined);
      return;
    }
    const excerpt = (await res.text().catch(() => '')).slice(0, EXCERPT);
    const message = `${body.action} callback ${path} answered ${res.status}${excerpt ? `: ${excerpt}` : ''}`;
    if (res.status === 409) throw new NonRetryableError(message);
    throw new Error(message);
  }

  private async post(path: string, body: unknown, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
    try {
      return await fetch(`${this.base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers, ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}) },
        body: JSON.stringify(body),
        signal,
        redirect: 'error',
      });
    } catch (err) {
      if (signal.aborted) throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const message = `callback POST ${this.base}${path} failed: ${cause?.code ?? cause?.message ?? (err as Error).message}`;
      // Refused or unresolvable: the request never reached the service.
      if ((cause?.code && NOT_SENT.has(cause.code)) || cause?.message === 'bad port') throw new CallbackNotSent(message);
      throw new Error(message);
    }
  }
}

const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH']);

/** A callback that never reached the service (connection refused, no such host). */
export class CallbackNotSent extends Error {}

/** The service's Try path answered an error status. */
export class TryAnswered extends Error {
  constructor(
    readonly status: number,
    readonly excerpt: string,
  ) {
    super(`the service's Try answered ${status}${excerpt ? `: ${excerpt}` : ''}`);
  }
}
