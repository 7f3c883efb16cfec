/**
 * One replica of a bank's account service, a TCC participant run as its own process by the demo (demo/cluster.ts):
 *
 *   node --import tsx demo/account-service.ts --app bank-a --account A --endpoints http://127.0.0.1:2379 [--replica 1] [--max-attempts 5]
 *
 * It registers two TCC resources on its account, `debit` (Try freezes the amount, Confirm takes it,
 * Cancel unfreezes it) and `credit` (Try records the incoming amount, Confirm adds it, Cancel drops
 * it), starts the txloop control loop (one replica of the app leads and runs confirm/cancel), and
 * serves HTTP on 127.0.0.1 (a free port):
 *
 *   POST /try/<debit|credit>   body {"amount": 30, "settleDelayMs"?: 0}, txloop headers from the initiator
 *                              200 {branchId, account}; 400 bad input; 404 unknown resource; 409 Try refused/failed
 *   GET  /balances             the account as stored in etcd
 *   GET  /status               {app, replica, pid, identity, leader}
 *   POST /audit/lock           locks the account's ledger for audit: every confirm on it fails
 *                              ("ledger C locked for audit") until POST /audit/unlock (`npm run demo -- --keep`)
 *
 * stdout carries one JSON object per line for the parent (ready, leader, phase2-start, phase2, audit);
 * logs go to stderr at level warn. The process exits when its stdin closes (parent gone) or on
 * SIGTERM/SIGINT, resigning leadership first.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import {
  BranchRegistrationRefused,
  DeadlineExceeded,
  ServiceClosed,
  TransactionNotFound,
  TryFailed,
  TxloopService,
  ValidationError,
  extractContext,
  type PhaseTwoContext,
} from '../src/index.js';
// txloop's one client factory (receive limit, call deadlines, fault handling); not a public export.
import { createEtcdClient } from '../src/etcd/index.js';
import {
  AccountRefusal,
  AccountStore,
  available,
  cancelBranch,
  confirmBranch,
  lockLedger,
  tryCredit,
  tryDebit,
  unlockLedger,
  type BranchKind,
  type TransferLeg,
} from './accounts.js';

const { values: args } = parseArgs({
  options: {
    app: { type: 'string' },
    account: { type: 'string' },
    endpoints: { type: 'string' },
    replica: { type: 'string', default: '1' },
    // Failed phase-2 attempts before a branch is parked; txloop's default (10) when absent.
    'max-attempts': { type: 'string' },
  },
});
if (!args.app || !args.account || !args.endpoints) {
  process.stderr.write('usage: account-service.ts --app bank-a --account A --endpoints http://127.0.0.1:2379 [--replica 1] [--max-attempts 5]\n');
  process.exit(2);
}
const maxAttempts = args['max-attempts'] === undefined ? undefined : Number(args['max-attempts']);
if (maxAttempts !== undefined && !(Number.isSafeInteger(maxAttempts) && maxAttempts >= 1)) {
  process.stderr.write(`account-service.ts: --max-attempts must be a whole number from 1, got ${JSON.stringify(args['max-attempts'])}\n`);
  process.exit(2);
}
const app = args.app;
const accountName = args.account;
const replica = args.replica ?? '1';
const endpoints = args.endpoints.split(',');

// stdout is a pipe to the parent. When the parent is gone first (killed, or crashed), the next event
// fails with EPIPE, raised as an 'error' event: unhandled, the service crashed in the middle of its
// shutdown instead of resigning leadership. A parent that stopped listening is the same as a closed
// stdin: shut down. Logs on stderr are not worth a crash either.
let parentGone = false;
process.stdout.on('error', () => {
  parentGone = true;
  void shutdown(0);
});
process.stderr.on('error', () => undefined);
function emit(event: Record<string, unknown>): void {
  if (parentGone || process.stdout.destroyed) return;
  process.stdout.write(`${JSON.stringify({ ...event, app, replica, pid: process.pid, at: Date.now() })}\n`);
}

const client = createEtcdClient({ endpoints, dialTimeoutMs: 5_000 });
const accounts = new AccountStore(client);
const identity = `${app}#${replica}/pid-${process.pid}`;
const service = new TxloopService({
  app,
  client,
  identity,
  leaseTtlSeconds: 2,
  retryBaseMs: 100,
  retryMaxMs: 2_000,
  handlerTimeoutMs: 15_000,
  ...(maxAttempts !== undefined ? { maxAttempts } : {}),
  logger: pino({ level: process.env.TXLOOP_LOG_LEVEL ?? 'warn', base: { app, replica } }, logDestination()),
});

function logDestination(): ReturnType<typeof pino.destination> {
  const dest = pino.destination(2);
  dest.on('error', () => undefined); // stderr gone (EPIPE): lose the log lines, not the process
  return dest;
}

function legOf(payload: unknown): TransferLeg {
  const problem = validateLeg(payload);
  if (problem) throw new ValidationError('payload', problem);
  return payload as TransferLeg;
}

/** Why a request body is not a transfer leg, or undefined when it is one. */
function validateLeg(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object like {"amount": 30}';
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (!['amount', 'counterparty', 'settleDelayMs'].includes(k)) return `unknown field ${JSON.stringify(k)} (allowed: amount, counterparty, settleDelayMs)`;
  }
  if (typeof b.amount !== 'number' || !Number.isSafeInteger(b.amount) || b.amount <= 0) return `amount must be a positive whole number, got ${JSON.stringify(b.amount)}`;
  if (b.counterparty !== undefined && (typeof b.counterparty !== 'string' || b.counterparty.length === 0 || b.counterparty.length > 64)) return 'counterparty must be a short non-empty string';
  if (b.settleDelayMs !== undefined && (typeof b.settleDelayMs !== 'number' || !Number.isSafeInteger(b.settleDelayMs) || b.settleDelayMs < 0 || b.settleDelayMs > 10_000)) {
    return 'settleDelayMs must be a whole number of milliseconds from 0 to 10000';
  }
  return undefined;
}

async function phaseTwo(kind: BranchKind, ctx: PhaseTwoContext<TransferLeg>): Promise<void> {
  emit({ event: 'phase2-start', xid: ctx.xid, branchId: ctx.branchId, resource: ctx.resource, action: ctx.action, attempt: ctx.attempt, tryCompleted: ctx.tryCompleted });
  const delay = ctx.payload?.settleDelayMs ?? 0;
  // Aborted if this replica stops leading: the new leader runs the attempt again.
  if (delay > 0) await sleep(delay, undefined, { signal: ctx.signal });
  if (ctx.action === 'confirm') {
    await accounts.update(accountName, (a) => confirmBranch(a, ctx.branchId), ctx.signal);
    return;
  }
  await accounts.update(
    accountName,
    (a) => {
      // tryCompleted=false and nothing recorded: an empty rollback, release nothing. If the account
      // does hold this branch's reservation (the Try's write landed but its success never reached
      // txloop), the account's own record is authoritative and the reservation is released.
      if (!ctx.tryCompleted && a.branches[ctx.branchId]?.phase === 'tried') {
        service.logger.warn({ xid: ctx.xid, branch: ctx.branchId }, 'cancel with tryCompleted=false found a reservation on the account; releasing it');
      }
      return cancelBranch(a, ctx.xid, ctx.branchId, kind);
    },
    ctx.signal,
  );
}

service.resource<TransferLeg>('debit', {
  try: async ({ xid, branchId, payload, signal }) => {
    const { amount } = legOf(payload);
    await accounts.update(accountName, (a) => tryDebit(a, xid, branchId, amount), signal);
  },
  confirm: (ctx) => phaseTwo('debit', ctx),
  cancel: (ctx) => phaseTwo('debit', ctx),
});

service.resource<TransferLeg>('credit', {
  try: async ({ xid, branchId, payload, signal }) => {
    const { amount } = legOf(payload);
    await accounts.update(accountName, (a) => tryCredit(a, xid, branchId, amount), signal);
  },
  confirm: (ctx) => phaseTwo('credit', ctx),
  cancel: (ctx) => phaseTwo('credit', ctx),
});

service.on('leader', ({ leading }) => emit({ event: 'leader', leading }));
service.on('phase2', (o) => emit({ event: 'phase2', ...o }));

// ---------------------------------------------------------------------------------------------
// HTTP

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`; // a newline for curl users
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/json')) throw new HttpError(400, `content-type must be application/json, got ${JSON.stringify(type)}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new HttpError(413, 'request body is over 64 KiB');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(400, `body is not valid JSON: ${(err as Error).message}`);
  }
}

async function handleTry(req: IncomingMessage, resource: string): Promise<unknown> {
  if (resource !== 'debit' && resource !== 'credit') throw new HttpError(404, `no TCC resource ${JSON.stringify(resource)} here; use /try/debit or /try/credit`);
  let ctx;
  try {
    ctx = extractContext(req.headers);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
  if (!ctx) throw new HttpError(400, 'missing txloop-xid / txloop-deadline headers: call Try inside a transaction (tx.headers())');
  const body = await readJson(req);
  const problem = validateLeg(body);
  if (problem) throw new HttpError(400, problem);
  try {
    const { branchId } = await service.tryBranch(ctx, resource, body);
    const account = await accounts.read(accountName);
    return { branchId, account: account && { name: account.name, balance: account.balance, frozen: account.frozen, incoming: account.incoming } };
  } catch (err) {
    if (err instanceof TryFailed) {
      const cause = err.cause instanceof AccountRefusal ? err.cause.message : (err.cause as Error | undefined)?.message ?? String(err.cause);
      throw new HttpError(409, `Try of ${resource} on account ${accountName} failed: ${cause}`, { xid: err.xid, branchId: err.branchId, refused: err.cause instanceof AccountRefusal });
    }
    if (err instanceof BranchRegistrationRefused) throw new HttpError(409, err.message, { xid: err.xid, globalStatus: err.status });
    if (err instanceof DeadlineExceeded) throw new HttpError(409, err.message, { xid: err.xid });
    if (err instanceof TransactionNotFound) throw new HttpError(409, err.message, { xid: err.xid });
    if (err instanceof ValidationError) throw new HttpError(400, err.message);
    if (err instanceof ServiceClosed) throw new HttpError(503, err.message);
    throw err;
  }
}

async function route(req: IncomingMessage): Promise<unknown> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const tryMatch = /^\/try\/([^/]+)$/.exec(url.pathname);
  if (tryMatch) {
    if (req.method !== 'POST') throw new HttpError(405, 'use POST for /try/<resource>');
    return handleTry(req, decodeURIComponent(tryMatch[1]!));
  }
  if (url.pathname === '/balances' && req.method === 'GET') {
    const a = await accounts.read(accountName);
    if (!a) throw new HttpError(404, `account ${accountName} does not exist`);
    return { ...a, available: available(a) };
  }
  if (url.pathname === '/status' && req.method === 'GET') {
    return { app, replica, pid: process.pid, identity, leader: service.isLeader(), account: accountName };
  }
  const audit = /^\/audit\/(lock|unlock)$/.exec(url.pathname);
  if (audit) {
    if (req.method !== 'POST') throw new HttpError(405, `use POST for ${url.pathname}`);
    const lock = audit[1] === 'lock';
    const a = await accounts.update(accountName, (acct) => (lock ? lockLedger(acct, 'audit') : unlockLedger(acct)));
    emit({ event: 'audit', locked: lock });
    return { account: accountName, locked: a.lockedFor !== undefined, ...(a.lockedFor ? { lockedFor: a.lockedFor } : {}) };
  }
  throw new HttpError(404, `no route ${req.method ?? ''} ${url.pathname}; try POST /try/debit, POST /try/credit, GET /balances, GET /status, POST /audit/lock, POST /audit/unlock`);
}

const server = createServer((req, res) => {
  route(req).then(
    (body) => send(res, 200, body),
    (err: unknown) => {
      if (err instanceof HttpError) {
        send(res, err.status, { error: err.message, ...err.details });
      } else {
        service.logger.error({ err: (err as Error).message }, 'request failed');
        send(res, 500, { error: (err as Error).message ?? String(err) });
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Lifecycle

let stopping: Promise<void> | undefined;
function shutdown(code: number): Promise<void> {
  stopping ??= (async () => {
    const force = setTimeout(() => process.exit(code), 3_000);
    force.unref();
    server.close();
    await service.close().catch(() => undefined);
    client.close();
    process.exit(code);
  })();
  return stopping;
}
process.on('SIGTERM', () => void shutdown(0));
process.on('SIGINT', () => void shutdown(0));
// The parent holds our stdin open; when it goes away (even by SIGKILL), so do we.
process.stdin.on('end', () => void shutdown(0));
process.stdin.on('error', () => void shutdown(0));
process.stdin.resume();

try {
  await service.start();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  emit({ event: 'ready', port, identity, account: accountName });
} catch (err) {
  process.stderr.write(`${app}#${replica}: failed to start: ${(err as Error).message}\n`);
  await shutdown(1);
}
