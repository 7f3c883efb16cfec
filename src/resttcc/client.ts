/**
 * The initiator's side of REST-TCC: call each participant's Try and collect the link it answers,
 * then ask a coordinator (`txloop sidecar`'s, RestTccCoordinator's routes, or any REST-TCC
 * coordinator) to confirm or cancel them. Confirm's answers map to typed results: 204 returns,
 * 404 throws RestTccTooLate, 409 RestTccHeuristic, the txloop coordinator's "still retrying"
 * RestTccPending, anything else RestTccCoordinatorError.
 */
import { ValidationError, errorMessage } from '../errors.js';
import { RestTccCoordinatorError, RestTccHeuristic, RestTccPending, RestTccTooLate, RestTccTryFailed, type LinkOutcome } from './errors.js';
import { TCC_JSON, parseLinkAnswer, type ParticipantLink } from './links.js';

export interface RestTccClientOptions {
  /** Headers sent to the coordinator (e.g. `authorization: Bearer …` for a sidecar with a token). */
  headers?: Record<string, string>;
  /** How long one request may take, Try or coordinator call. @default 60_000 */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface RestTccRequestOptions {
  signal?: AbortSignal;
  /** Headers for this request. */
  headers?: Record<string, string>;
}

export class RestTccClient {
  private readonly base: URL;

  /** `coordinatorUrl`: where `/coordinator/confirm` and `/coordinator/cancel` are, e.g. `http://127.0.0.1:7480`. */
  constructor(
    coordinatorUrl: string,
    private readonly o: RestTccClientOptions = {},
  ) {
    try {
      this.base = new URL(coordinatorUrl.endsWith('/') ? coordinatorUrl : `${coordinatorUrl}/`);
    } catch {
      throw new ValidationError('coordinatorUrl', `must be an absolute URL, got ${JSON.stringify(coordinatorUrl)}`);
    }
  }

  /** A set of links to collect Trys into, then confirm or cancel together. */
  begin(): RestTccTransaction {
    return new RestTccTransaction(this);
  }

  /** Runs `fn` with a new set of links: confirms them if it returns, cancels them if it throws (then rethrows). */
  async run<T>(fn: (tx: RestTccTransaction) => Promise<T>, options: RestTccRequestOptions = {}): Promise<T> {
    const tx = this.begin();
    let result: T;
    try {
      result = await fn(tx);
    } catch (err) {
      // Best effort: a participant not told still cancels at its link's expiry.
      await tx.cancel(options).catch(() => undefined);
      throw err;
    }
    await tx.confirm(options);
    return result;
  }

  /**
   * POSTs `body` (as JSON) to a participant's Try and returns the link it answered; throws
   * RestTccTryFailed for any answer other than a 2xx with a link.
   */
  async try(url: string, body: unknown, options: RestTccRequestOptions = {}): Promise<ParticipantLink> {
    let res: Response;
    try {
      res = await this.fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', ...options.headers }, body: JSON.stringify(body ?? null) }, options.signal);
    } catch (err) {
      throw new RestTccTryFailed(url, undefined, `no answer (${errorMessage(err)})`, { cause: err });
    }
    const text = await res.text().catch(() => '');
    if (!res.ok) throw new RestTccTryFailed(url, res.status, `answered ${res.status}${text ? `: ${text.slice(0, 500)}` : ''}`);
    try {
      const { uri, expires } = parseLinkAnswer(JSON.parse(text) as unknown);
      return { uri, expires };
    } catch (err) {
      throw new RestTccTryFailed(url, res.status, `answered ${res.status} without a participant link (${errorMessage(err)})`, { cause: err });
    }
  }

  /** Confirms the links: resolves on 204; RestTccTooLate (404), RestTccHeuristic (409), RestTccPending, RestTccCoordinatorError. */
  async confirm(links: readonly ParticipantLink[], options: RestTccRequestOptions = {}): Promise<void> {
    const { status, problem } = await this.coordinator('confirm', links, options);
    if (status === 204) return;
    const xid = typeof problem?.xid === 'string' ? problem.xid : undefined;
    const outcomes = Array.isArray(problem?.links) ? (problem.links as LinkOutcome[]) : [];
    const detail = typeof problem?.detail === 'string' ? problem.detail : undefined;
    if (status === 404) throw new RestTccTooLate(xid, outcomes, detail);
    if (status === 409) throw new RestTccHeuristic(xid, outcomes, detail);
    if (problem?.name === 'RestTccPending') throw new RestTccPending(xid, outcomes, detail);
    throw new RestTccCoordinatorError(status, `coordinator answered the confirm with ${status}${detail ? `: ${detail}` : ''}`, problem);
  }

  /** Cancels the links (the coordinator DELETEs each; REST-TCC's only answer is 204). */
  async cancel(links: readonly ParticipantLink[], options: RestTccRequestOptions = {}): Promise<void> {
    const { status, problem } = await this.coordinator('cancel', links, options);
    if (status >= 200 && status < 300) return;
    throw new RestTccCoordinatorError(status, `coordinator answered the cancel with ${status}${typeof problem?.detail === 'string' ? `: ${problem.detail}` : ''}`, problem);
  }

  private async coordinator(what: 'confirm' | 'cancel', links: readonly ParticipantLink[], options: RestTccRequestOptions): Promise<{ status: number; problem: Record<string, unknown> | undefined }> {
    const url = new URL(`coordinator/${what}`, this.base);
    let res: Response;
    try {
      const body = JSON.stringify({ participantLinks: links.map(({ uri, expires }) => ({ uri, expires })) });
      res = await this.fetch(url, { method: 'PUT', headers: { 'content-type': TCC_JSON, ...this.o.headers, ...options.headers }, body }, options.signal);
    } catch (err) {
      // The coordinator may or may not have decided: a confirm can be sent again (a PUT is idempotent).
      throw new RestTccCoordinatorError(undefined, `no answer from the coordinator at ${url.href} to the ${what} (${errorMessage(err)}); it may have been decided: send it again`, undefined, { cause: err });
    }
    const text = await res.text().catch(() => '');
    let problem: Record<string, unknown> | undefined;
    try {
      const parsed = text ? (JSON.parse(text) as unknown) : undefined;
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) problem = parsed as Record<string, unknown>;
    } catch {
      problem = text ? { detail: text.slice(0, 500) } : undefined;
    }
    return { status: res.status, problem };
  }

  private fetch(url: string | URL, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
    const timeout = AbortSignal.timeout(this.o.timeoutMs ?? 60_000);
    return (this.o.fetch ?? fetch)(url, { ...init, redirect: 'manual', signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  }
}

/** The links of one REST-TCC transaction, collected from its Trys. */
export class RestTccTransaction {
  readonly links: ParticipantLink[] = [];

  constructor(private readonly client: RestTccClient) {}

  /** Calls a participant's Try and keeps the link it answered. */
  async try(url: string, body: unknown, options: RestTccRequestOptions = {}): Promise<ParticipantLink> {
    const link = await this.client.try(url, body, options);
    this.links.push(link);
    return link;
  }

  /** Keeps a link got some other way. */
  add(link: ParticipantLink): this {
    this.links.push({ uri: link.uri, expires: link.expires });
    return this;
  }

  /** Confirms every link collected (nothing to do without any). */
  async confirm(options: RestTccRequestOptions = {}): Promise<void> {
    if (this.links.length > 0) await this.client.confirm(this.links, options);
  }

  /** Cancels every link collected. */
  async cancel(options: RestTccRequestOptions = {}): Promise<void> {
    if (this.links.length > 0) await this.client.cancel(this.links, options);
  }
}
