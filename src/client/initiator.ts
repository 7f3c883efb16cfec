/**
 * The initiator's side of a service: begin, decide (commit/rollback, one compare-and-swap each),
 * read and wait. An initiator writes the transaction and its decision to etcd and returns; it never
 * calls confirm/cancel itself (the participants' control loops do).
 */
import type { Logger } from 'pino';
import type { CallGuard } from '../calls.js';
import { DeadlineExceeded, MalformedRecord, TransactionAlreadyDecided, TransactionNotFound, ValidationError, errorMessage } from '../errors.js';
import { cancelWatcher } from '../etcd/index.js';
import { decide, type ModeRegistry } from '../modes/index.js';
import { rejectUnknownOptions } from '../options.js';
import { throwIfAborted } from '../signals.js';
import { GlobalStatus, Mode, isTerminal, type Outcome } from '../states.js';
import { newXid, parseGlobal, parseMember, validateApp, validateXid, withEvent, type GlobalRecord, type MemberRecord, type Store, type TransactionRead } from '../store/index.js';
import type { BeginOptions, CallOptions, DecideCallOptions, ListOptions, WaitOptions } from './options.js';
import { GlobalTransaction } from './transaction.js';
import { toView, type TransactionView } from './views.js';

export interface InitiatorOptions {
  app: string;
  identity: string;
  store: Store;
  modes: ModeRegistry;
  calls: CallGuard;
  logger: Logger;
  defaultTimeoutMs: number;
  /** Reports a records the initiator cannot use (list()). */
  malformed(key: string, kind: 'gtx' | 'member', problem: string, modRevision: string): void;
  /** This service decided `global` (metrics). */
  decided(global: GlobalRecord): void;
  /** The transaction as this service's informer holds it (undefined if not cached, or not started). */
  cached(xid: string): TransactionRead | undefined;
}

/** A transaction's name: what people reading `txloop get` see. */
export function validName(name: unknown): string {
  if (typeof name !== 'string' || name.trim().length === 0 || name.length > 128 || /[\n\r\t\0]/.test(name)) {
    throw new ValidationError('name', 'must be 1-128 printable characters describing the transaction, e.g. "transfer"');
  }
  return name;
}

/** A transaction's timeout in ms, or `fallback` when not given. */
export function validTimeout(timeoutMs: unknown, fallback: number): number {
  const ms = timeoutMs ?? fallback;
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms <= 0 || ms > 7 * 24 * 3_600_000) {
    throw new ValidationError('timeoutMs', `must be a whole number of milliseconds from 1 to 604800000 (7 days), got ${JSON.stringify(ms)}`);
  }
  return ms;
}

export class Initiator {
  constructor(private readonly o: InitiatorOptions) {}

  /** Starts a global transaction (TRYING until commit, rollback or its deadline). */
  begin(options: BeginOptions): Promise<GlobalTransaction> {
    return this.o.calls.run('begin', undefined, options?.signal, true, async () => {
      if (typeof options !== 'object' || options === null) throw new ValidationError('options', 'must be { name, timeoutMs? }');
      rejectUnknownOptions(options, ['name', 'timeoutMs', 'signal'], 'options.');
      const name = validName(options.name);
      const timeoutMs = validTimeout(options.timeoutMs, this.o.defaultTimeoutMs);
      const now = Date.now();
      const xid = newXid(this.o.app, now);
      const record: GlobalRecord = withEvent(
        { v: 1, xid, app: this.o.app, name, mode: Mode.TCC, status: GlobalStatus.TRYING, createdAt: now, timeoutMs, deadline: now + timeoutMs, events: [] },
        'Began',
        `began by ${this.o.identity} with timeout ${timeoutMs}ms`,
        now,
      );
      await this.o.store.globals.create(record);
      this.o.logger.debug({ xid, name, timeoutMs }, 'began');
      return new GlobalTransaction(this, xid, name, record.deadline);
    });
  }

  /**
   * Decides commit with one compare-and-swap and returns; the participants' control loops confirm.
   * Throws TransactionAlreadyDecided if rollback or the deadline won, BranchesNotPrepared if some
   * Try has not succeeded, DeadlineExceeded past the deadline.
   */
  commit(xid: string, options: DecideCallOptions = {}): Promise<void> {
    return this.decide(xid, 'commit', options);
  }

  /** Decides rollback with one compare-and-swap; the participants' control loops cancel. */
  rollback(xid: string, options: DecideCallOptions = {}): Promise<void> {
    return this.decide(xid, 'rollback', options);
  }

  private decide(xid: string, outcome: Outcome, options: DecideCallOptions): Promise<void> {
    return this.o.calls.run(outcome, typeof xid === 'string' ? xid : undefined, options?.signal, true, async () => {
      rejectUnknownOptions(options, ['reason', 'signal'], 'options.');
      validateXid(xid);
      if (options.reason !== undefined && (typeof options.reason !== 'string' || options.reason.length > 1000)) {
        throw new ValidationError('reason', 'must be a string of at most 1000 characters');
      }
      const result = await decide(this.o.store, this.o.modes, xid, { outcome, by: outcome, ...(options.reason ? { reason: options.reason } : {}) }, this.o.cached(xid));
      this.o.decided(result.global);
      this.o.logger.info({ xid, outcome, branches: result.total }, `decided ${outcome}`);
    });
  }

  /**
   * Begins a transaction, runs `fn`, commits if it returns and rolls back if it throws (then rethrows).
   * `fn` makes the Try calls, passing `tx.context` or `tx.headers()` to the participants.
   */
  async transaction<T>(options: BeginOptions, fn: (tx: GlobalTransaction) => Promise<T>): Promise<{ xid: string; result: T }> {
    const tx = await this.begin(options);
    let result: T;
    try {
      result = await fn(tx);
    } catch (err) {
      await tx.rollback({ reason: `aborted: ${errorMessage(err)}`.slice(0, 1000) }).catch((rollbackErr: unknown) => {
        if (!(rollbackErr instanceof TransactionAlreadyDecided)) this.o.logger.warn({ xid: tx.xid, err: errorMessage(rollbackErr) }, 'rollback after failure did not go through; the deadline will roll it back');
      });
      throw err;
    }
    try {
      await tx.commit();
    } catch (err) {
      // Not committed (a Try not prepared, etcd trouble): roll back rather than leave it to the
      // deadline. If the commit did land after all, the rollback loses the CAS and changes nothing.
      if (!(err instanceof TransactionAlreadyDecided)) {
        await tx.rollback({ reason: `commit failed: ${errorMessage(err)}`.slice(0, 1000) }).catch(() => undefined);
      }
      throw err;
    }
    return { xid: tx.xid, result };
  }

  /** Reads a transaction and its branches. */
  get(xid: string, options: CallOptions = {}): Promise<TransactionView> {
    return this.o.calls.run('get', typeof xid === 'string' ? xid : undefined, options.signal, false, async () => {
      rejectUnknownOptions(options, ['signal'], 'options.');
      validateXid(xid);
      const { global, members } = await this.o.store.globals.read(xid);
      if (!global) throw new TransactionNotFound(xid);
      return toView(global.record, members.map((m) => m.record), this.o.modes);
    });
  }

  /**
   * Lists the transactions a service initiated (this one by default), oldest first, for admin views
   * and alerting: e.g. `{ status: ['COMMITTING', 'ROLLING_BACK'] }` for unfinished ones, and
   * `branches[].state === 'PARKED'` for parked work. Malformed records are skipped (and reported).
   */
  list(options: ListOptions = {}): Promise<TransactionView[]> {
    return this.o.calls.run('list', undefined, options.signal, false, async () => {
      rejectUnknownOptions(options, ['app', 'status', 'signal'], 'options.');
      const app = options.app === undefined ? this.o.app : validateApp(options.app, 'options.app');
      const wanted = options.status === undefined ? undefined : new Set(Array.isArray(options.status) ? options.status : [options.status]);
      for (const st of wanted ?? []) {
        if (!Object.values(GlobalStatus).includes(st)) throw new ValidationError('options.status', `${JSON.stringify(st)} is not one of ${Object.values(GlobalStatus).join(', ')}`);
      }
      const { store } = this.o;
      const { kvs, revision } = await store.range(store.keys.globalsOf(app));
      // Members read at the same revision, so every view is one consistent snapshot.
      const members = new Map<string, MemberRecord[]>();
      for (const prefix of store.keys.membersOf(app)) {
        for (const kv of (await store.range(prefix, revision)).kvs) {
          const key = kv.key.toString();
          try {
            const m = parseMember(key, kv.value);
            members.set(m.xid, [...(members.get(m.xid) ?? []), m]);
          } catch (err) {
            if (!(err instanceof MalformedRecord)) throw err;
            this.o.malformed(key, 'member', err.problem, kv.mod_revision);
          }
        }
      }
      const views: TransactionView[] = [];
      for (const kv of kvs) {
        const key = kv.key.toString();
        try {
          const g = parseGlobal(key, kv.value);
          if (!wanted || wanted.has(g.status)) views.push(toView(g, members.get(g.xid) ?? [], this.o.modes));
        } catch (err) {
          if (!(err instanceof MalformedRecord)) throw err;
          this.o.malformed(key, 'gtx', err.problem, kv.mod_revision);
        }
      }
      return views;
    });
  }

  /**
   * Resolves once the transaction is COMMITTED or ROLLED_BACK; rejects with DeadlineExceeded after
   * `timeoutMs`, with AbortError when `signal` fires.
   */
  waitForCompletion(xid: string, options: WaitOptions = {}): Promise<TransactionView> {
    return this.o.calls.run('waitForCompletion', typeof xid === 'string' ? xid : undefined, options.signal, false, async () => {
      rejectUnknownOptions(options, ['timeoutMs', 'signal'], 'options.');
      validateXid(xid);
      const timeoutMs = options.timeoutMs ?? 60_000;
      const deadline = Date.now() + timeoutMs;
      const watcher = await this.o.store.client.watch().key(this.o.store.keys.global(xid)).create();
      try {
        let wake: (() => void) | undefined;
        watcher.on('put', () => wake?.());
        watcher.on('delete', () => wake?.());
        for (;;) {
          const view = await this.get(xid);
          if (isTerminal(view.status)) return view;
          const left = deadline - Date.now();
          if (left <= 0) throw new DeadlineExceeded(xid, `transaction ${xid} still ${view.status} after waiting ${timeoutMs}ms`);
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => wake?.(), Math.min(left, 1000));
            wake = () => {
              clearTimeout(t);
              options.signal?.removeEventListener('abort', wake!);
              resolve();
            };
            // An abort ends the wait here too, so the watcher is cancelled at once.
            options.signal?.addEventListener('abort', wake, { once: true });
          });
          throwIfAborted(options.signal, xid);
        }
      } finally {
        await cancelWatcher(watcher);
      }
    });
  }
}
