/**
 * The built-in TCC resource whose branches are REST-TCC participant links (`rest-tcc-link`). Its
 * payload is the link; its Try does nothing (the participant reserved when it answered its own Try);
 * its confirm is `PUT uri` and its cancel `DELETE uri`, both with `Accept: application/tcc`. Each
 * answer is an attempt's outcome for txloop's attempt runner, so the links get the retries, backoff,
 * parking and fencing of any branch:
 *
 * | request | answer | the branch |
 * |---|---|---|
 * | PUT | 2xx | confirmed |
 * | PUT | 404, 410 | resolved as cancelled by `participant:<host>` (it cancelled or let it expire): heuristic |
 * | PUT | 408, 429, 5xx, no answer | retried with backoff |
 * | PUT | any other | parked for a human (retrying cannot help) |
 * | PUT | — link expired before the attempt | never PUT: resolved as cancelled when no PUT was sent, or the last one was answered; parked (in doubt) when the last PUT got no answer |
 * | DELETE | 2xx, 404, 410 | cancelled |
 * | DELETE | 405, 501, other 4xx | resolved as cancelled: relying on the participant's expiry |
 * | DELETE | 409 | resolved as confirmed: the participant refused the cancel of a confirmed link (heuristic) |
 * | DELETE | 408, 429, 5xx, no answer | retried with backoff, until the link expires |
 * | DELETE | — link expired before the attempt | no DELETE: resolved as cancelled by the participant's expiry |
 * | DELETE | — a confirm's transaction rolled back | no DELETE: resolved as cancelled, the link left to its participant |
 *
 * A confirm's transaction is rolled back only when its commit failed (its coordinator then answers
 * an error, and the requester may send the confirm again) or never came (its coordinator died:
 * the deadline rolls it back), or when every link had expired. None of these is a cancel: the
 * links are left as they are, to a later confirm or cancel, or to their participants' expiry.
 */
import { NonRetryableError, ResolvedByParticipant, errorMessage } from '../errors.js';
import type { PhaseTwoContext, TccResource } from '../resource.js';
import { TCC_ACCEPT, parseLink, participantOf, type ParsedLink, type ParticipantLink } from './links.js';

export const LINK_RESOURCE = 'rest-tcc-link';

/** The start of a confirm attempt's error when the participant answered (its reservation was not confirmed then). */
export const ANSWERED = 'PUT answered ';
/** The start of one whose PUT got no answer: it may have been confirmed. */
const NO_ANSWER = 'PUT got no answer: ';

/** A link branch's payload: the link, and which coordinator call made the branch. */
export interface LinkPayload extends ParticipantLink {
  call: 'confirm' | 'cancel';
}

export interface LinkRequests {
  /** Headers added to every PUT and DELETE (e.g. authorization). */
  headers?: Record<string, string>;
  /** The fetch to use. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** The last error recorded for a branch (its member record's), or undefined. */
  lastError(xid: string, branchId: string): Promise<string | undefined>;
}

export function linkResource(o: LinkRequests): TccResource<LinkPayload> {
  const send = async (method: 'PUT' | 'DELETE', link: ParsedLink, signal: AbortSignal): Promise<{ status: number; body: string }> => {
    const res = await (o.fetch ?? fetch)(link.url, { method, headers: { ...o.headers, accept: TCC_ACCEPT }, redirect: 'manual', signal });
    if (res.ok) {
      await res.body?.cancel().catch(() => undefined);
      return { status: res.status, body: '' };
    }
    // An error's body says why, for the branch's last error: a problem document's detail, or its first bytes.
    return { status: res.status, body: shortBody(await res.text().catch(() => '')) };
  };
  // Our reading first, the participant's words last: a member record keeps 200 characters of it.
  const said = (r: { status: number; body: string }, meaning?: string): string => `${r.status}${meaning ? `: ${meaning}` : ''}${r.body ? ` (it said: ${r.body})` : ''}`;
  const retryable = (status: number): boolean => status === 408 || status === 429 || status >= 500;

  return {
    try: () => undefined,

    async confirm(ctx: PhaseTwoContext<LinkPayload>): Promise<void> {
      const link = parseLink(ctx.payload, 'payload');
      const by = participantOf(link.url);
      if (Date.now() >= link.expiresAt) {
        // Never PUT an expired link. Without an earlier PUT, or after one the participant answered
        // (so it had not confirmed), its own expiry cancelled it; after one that got no answer, it
        // may have confirmed: only a human can tell.
        const last = ctx.attempt > 1 ? await o.lastError(ctx.xid, ctx.branchId) : undefined;
        if (ctx.attempt === 1) throw new ResolvedByParticipant('cancelled', `the link expired at ${link.expires} before its confirm; never PUT`, by);
        if (last?.startsWith(ANSWERED)) throw new ResolvedByParticipant('cancelled', `the link expired at ${link.expires} during the retries of its confirm (last: ${last}); not PUT after its expiry`, by);
        throw new NonRetryableError(`the link expired at ${link.expires} during the retries of its confirm and its last PUT got no answer (${last ?? 'none recorded'}): it may or may not be confirmed; not PUT after its expiry. Ask ${link.url.host}, then txloop resolve --as confirmed or --as cancelled`);
      }
      let r: { status: number; body: string };
      try {
        r = await send('PUT', link, ctx.signal);
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        throw new Error(`${NO_ANSWER}${errorMessage(err)}${causeOf(err)}`);
      }
      if (r.status >= 200 && r.status < 300) return;
      // A gateway's 502/504 is not the participant's answer: it may have confirmed behind it.
      if (r.status === 502 || r.status === 504) throw new Error(`${NO_ANSWER}${said(r, 'a gateway answered, not the participant: in doubt')}`);
      if (r.status === 404 || r.status === 410) throw new ResolvedByParticipant('cancelled', `${ANSWERED}${said(r, 'the participant had cancelled the reservation or let it expire')}`, by);
      if (retryable(r.status)) throw new Error(`${ANSWERED}${said(r)}`);
      throw new NonRetryableError(`${ANSWERED}${said(r, 'retrying cannot help; fix it, then txloop retry (or resolve)')}`);
    },

    async cancel(ctx: PhaseTwoContext<LinkPayload>): Promise<void> {
      const link = parseLink(ctx.payload, 'payload');
      const by = participantOf(link.url);
      if (Date.now() >= link.expiresAt) throw new ResolvedByParticipant('cancelled', `the link expired at ${link.expires}: the participant's own expiry cancelled it; no DELETE sent`, by);
      if (ctx.payload.call === 'confirm') throw new ResolvedByParticipant('cancelled', `this confirm was not decided (its transaction rolled back): no DELETE sent; the link is left to a later confirm or cancel, or to the participant's expiry at ${link.expires}`, by);
      let r: { status: number; body: string };
      try {
        r = await send('DELETE', link, ctx.signal);
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        throw new Error(`DELETE got no answer: ${errorMessage(err)}${causeOf(err)}`);
      }
      if ((r.status >= 200 && r.status < 300) || r.status === 404 || r.status === 410) return;
      if (r.status === 409) throw new ResolvedByParticipant('confirmed', `DELETE answered ${said(r, 'the participant refused the cancel: it says the reservation is confirmed')}`, by);
      if (retryable(r.status) && r.status !== 501) throw new Error(`DELETE answered ${said(r)}`);
      const why = r.status === 405 || r.status === 501 ? 'no explicit cancel there' : 'the explicit cancel was refused';
      throw new ResolvedByParticipant('cancelled', `DELETE answered ${said(r, `${why}; relying on the participant's expiry at ${link.expires}`)}`, by);
    },
  };
}

/** A problem document's detail (or title), else the body's first bytes, on one line. */
function shortBody(text: string): string {
  let said = text;
  try {
    const doc = JSON.parse(text) as { detail?: unknown; title?: unknown };
    const words = typeof doc.detail === 'string' ? doc.detail : typeof doc.title === 'string' ? doc.title : undefined;
    if (words !== undefined) said = words;
  } catch {
    // not JSON: its first bytes
  }
  return said.replace(/\s+/g, ' ').trim().slice(0, 200);
}

/** fetch's own error says only "fetch failed"; its cause says why (ECONNREFUSED, a reset, …). */
function causeOf(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? ` (${(cause as NodeJS.ErrnoException).code ?? cause.message})` : '';
}
