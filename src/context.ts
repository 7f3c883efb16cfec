/**
 * Transaction context propagation: the xid and deadline travel with a Try call (HTTP headers here;
 * any carrier works), so the participant can register its branch and bound its work by the deadline.
 */
import { ValidationError } from './errors.js';
import { validateXid } from './store/index.js';

export const XID_HEADER = 'txloop-xid';
export const DEADLINE_HEADER = 'txloop-deadline';

export interface TxContext {
  readonly xid: string;
  /** Epoch milliseconds after which the global transaction is rolled back. */
  readonly deadline: number;
}

/** Adds the context's headers to `headers` (a new object is returned; the input is not changed). */
export function injectHeaders(ctx: TxContext, headers: Record<string, string> = {}): Record<string, string> {
  return { ...headers, [XID_HEADER]: ctx.xid, [DEADLINE_HEADER]: String(ctx.deadline) };
}

type HeaderBag = Record<string, string | string[] | undefined> | Headers;

/**
 * Reads a context from incoming headers (node:http IncomingHttpHeaders or fetch Headers).
 * Returns undefined when the request carries no xid; throws ValidationError when it carries a bad one.
 */
export function extractContext(headers: HeaderBag): TxContext | undefined {
  const get = (name: string): string | undefined => {
    if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
    const v = (headers as Record<string, string | string[] | undefined>)[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const xid = get(XID_HEADER);
  if (xid === undefined) return undefined;
  validateXid(xid, `header ${XID_HEADER}`);
  const raw = get(DEADLINE_HEADER);
  const deadline = Number(raw);
  if (raw === undefined || !Number.isSafeInteger(deadline) || deadline <= 0) {
    throw new ValidationError(`header ${DEADLINE_HEADER}`, `must be epoch milliseconds, got ${JSON.stringify(raw)}`);
  }
  return { xid, deadline };
}
