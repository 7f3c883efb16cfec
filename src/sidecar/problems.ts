/**
 * Errors as RFC 9457 problem documents: the SDK error's stable `name` and its context fields, under
 * the HTTP status that says what kind of failure it is. A field named `status` in the SDK (a
 * transaction's status) is `transactionStatus` here, `status` being the HTTP one.
 */
import { TxloopError } from '../errors.js';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  name: string;
  [field: string]: unknown;
}

const STATUS: Record<string, number> = {
  ValidationError: 422,
  PayloadError: 422,
  TransactionNotFound: 404,
  BranchNotFound: 404,
  UnknownResource: 422,
  TransactionAlreadyDecided: 409,
  BranchRegistrationRefused: 409,
  BranchesNotPrepared: 409,
  DeadlineExceeded: 409,
  OperationRefused: 409,
  WriteConflict: 409,
  TryFailed: 424,
  TryOutcomeUnknown: 504,
  EtcdUnavailable: 503,
  EtcdError: 502,
  ServiceClosed: 503,
  LeadershipLost: 503,
  AbortError: 503,
  Unauthorized: 401,
  NotFound: 404,
  BadRequest: 400,
  PayloadTooLarge: 413,
  UnsupportedMediaType: 415,
};

const TITLES: Record<number, string> = { 504: 'Gateway Timeout', 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 413: 'Content Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Content', 424: 'Failed Dependency', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };

/** The context fields a problem carries, as the SDK errors name them. */
const FIELDS = ['xid', 'branchId', 'field', 'outcome', 'decidedBy', 'branchIds', 'resource', 'reason', 'maybeWritten', 'mode', 'kind', 'op'] as const;

export function problem(name: string, detail: string, fields: Record<string, unknown> = {}, status = STATUS[name] ?? 500): Problem {
  return { type: `https://txloop.dev/problems/${name}`, title: TITLES[status] ?? 'Error', status, detail, name, ...fields };
}

/** The problem for an error a route threw. Errors that are not txloop's are 500, their message kept out of the body. */
export function problemOf(err: unknown): Problem {
  // A txloop error with no status of its own (a malformed record, a terminal error) is an
  // internal failure like any other: said generically here, logged by the server.
  if (err instanceof TxloopError && STATUS[err.name] !== undefined) {
    const fields: Record<string, unknown> = {};
    const e = err as unknown as Record<string, unknown>;
    for (const f of FIELDS) if (e[f] !== undefined) fields[f] = e[f];
    if (typeof e.status === 'string') fields.transactionStatus = e.status;
    return problem(err.name, err.message, fields);
  }
  return problem('InternalError', 'the sidecar failed to handle the request (see its log)', {}, 500);
}
