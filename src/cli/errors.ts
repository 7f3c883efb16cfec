/** CLI error classes and the mapping of any error to one line on stderr and an exit code. */
import { MalformedRecord, TxloopError, ValidationError, errorMessage } from '../errors.js';
import { isTooLarge } from '../etcd/index.js';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

/** The command line itself is wrong (bad flag value, malformed argument): exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The command ran and failed (not found, refused, etcd trouble): exit 1. */
export class CliError extends Error {
  override readonly name = 'CliError';
}

/** etcd could not be reached within the dial/command timeout. */
export class UnreachableError extends CliError {}

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT_USAGE;
  // A malformed id or option value given on the command line.
  if (err instanceof ValidationError) return EXIT_USAGE;
  return EXIT_ERROR;
}

/** One line, never a stack trace, never a credential. */
export function messageOf(err: unknown, endpoints: readonly string[] = []): string {
  if (err instanceof UsageError || err instanceof CliError || err instanceof TxloopError || err instanceof MalformedRecord) return oneLine(err.message);
  const name = err instanceof Error ? err.constructor.name : '';
  const msg = errorMessage(err);
  const where = endpoints.length > 0 ? ` at ${endpoints.join(',')}` : '';
  if (isTooLarge(err)) {
    // grpc-js says "Received message larger than max (5523717 vs 4194304)".
    const sizes = /\((\d+) vs (\d+)\)/.exec(msg);
    return `etcd${where} answered with more data than the CLI receives in one response${sizes ? ` (${sizes[1]} bytes, limit ${sizes[2]})` : ''}`;
  }
  if (/required revision has been compacted/i.test(msg)) {
    return `etcd${where} compacted the revision this listing reads while it ran (it took longer than etcd keeps old revisions, say behind a slow reader): run it again, or list less at a time (--app, --status)`;
  }
  if (/alert (bad certificate|certificate required|unknown ca)/i.test(msg)) {
    return `etcd${where} refused the TLS client certificate (${/alert ([a-z ]+?)(?::|$)/i.exec(msg)?.[1] ?? 'handshake failed'}): check --cert and --key`;
  }
  if (/unable to verify|self[- ]signed|certificate verify failed|unable to get local issuer/i.test(msg)) {
    return `etcd's TLS certificate${where} is not trusted (${/(unable to verify[a-z ]*|self[- ]signed[a-z ]*|unable to get local issuer[a-z ]*)/i.exec(msg)?.[1] ?? 'verify failed'}): pass its CA with --cacert`;
  }
  if (/Unavailable|ConnectFailed|DeadlineExceeded/.test(name) || /ECONNREFUSED|No connection established|deadline exceeded|UNAVAILABLE|failed to connect/i.test(msg)) {
    return `cannot reach etcd${where}: ${oneLine(shortGrpc(msg))} (check --endpoints / TXLOOP_ENDPOINTS, TLS flags and that etcd is running)`;
  }
  if (/UNIMPLEMENTED|HTTP status code/.test(msg)) return `cannot reach etcd${where}: the endpoint did not answer as etcd (${oneLine(shortGrpc(msg))}); check --endpoints`;
  if (/user name is empty|token is not provided/i.test(msg)) return `etcd${where} requires authentication: use --user name:password (or TXLOOP_USER and TXLOOP_PASSWORD)`;
  if (/Authentication|InvalidAuthToken|Unauthenticated/.test(name)) return `etcd rejected the credentials${where}: ${oneLine(shortGrpc(msg))}`;
  if (/PermissionDenied/.test(name) || /permission denied/i.test(msg)) return `etcd denied access${where}: ${oneLine(shortGrpc(msg))}`;
  if (/authentication is not enabled/i.test(msg)) return `etcd${where} does not have authentication enabled; drop --user/--password`;
  return oneLine(shortGrpc(msg));
}

/** The cause of an etcd/gRPC error alone, short, without endpoints or hints: `connect ECONNREFUSED 127.0.0.1:2379`. */
export function shortReason(err: unknown): string {
  const msg = oneLine(shortGrpc(errorMessage(err)));
  return /last error: (.*)$/.exec(msg)?.[1] ?? msg;
}

function shortGrpc(msg: string): string {
  // grpc-js messages look like "14 UNAVAILABLE: No connection established. Last error: ..."; keep them short.
  return msg
    .replace(/^\d+ [A-Z_]+: /, '')
    .replace(/\.? ?Resolution note:\s*$/, '')
    .replace(/Last error: Error: /, 'last error: ')
    .slice(0, 300);
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/** A failure whose message was already printed (e.g. one target of several failed): exit 1, print nothing more. */
export class ReportedError extends CliError {
  constructor() {
    super('');
  }
}
