/**
 * The participant's Try: register the branch (refused once the global was decided: anti-hanging),
 * run the resource's Try handler, report its outcome. The three steps are separate so a remote Try
 * (the sidecar's) can register and report around a call it makes itself.
 */
import type { Logger } from 'pino';
import { retrying } from '../backoff.js';
import type { CallGuard } from '../calls.js';
import { AbortError, DeadlineExceeded, OperationRefused, RefusalReason, TransactionAlreadyDecided, TryFailed, TryOutcomeUnknown, UnknownResource, ValidationError, WriteConflict, errorMessage } from '../errors.js';
import type { TxContext } from '../context.js';
import { tccRules } from '../modes/index.js';
import { rejectUnknownOptions } from '../options.js';
import type { TccResource, TryContext } from '../resource.js';
import { throwIfAborted } from '../signals.js';
import { Mode, TryState } from '../states.js';
import { appOfXid, encodePayload, newBranchId, newWriteId, validateBranchId, validateResource, validateXid, withEvent, type BranchRecord, type Registration, type Store } from '../store/index.js';
import type { ResourceRegistry } from './resources.js';

export interface TryOptions {
  /**
   * The caller's signal, handed to the Try handler (which is also aborted at the transaction's
   * deadline). If it fires before the handler ran, or the handler fails after it fired, the branch
   * is recorded as failed (so commit refuses it) and tryBranch throws AbortError. A handler that
   * finishes its work anyway is recorded as succeeded, and its result returned.
   */
  signal?: AbortSignal;
  /**
   * Makes the Try idempotent across retries of the call (TCC's idempotency rule): the same id in the same
   * transaction registers one branch only. A Try that already succeeded is not run again
   * (`replayed: true`, no `result`); one that failed throws TryFailed again; one still
   * PENDING (its first call died) runs again. 1-64 letters, digits, '.', '_' or '-' (a UUID or ULID fits).
   * @default a new random id: every call is a new branch
   */
  branchId?: string;
}

/**
 * What tryBranch returns: the handler's result, or — when a retried call found the branch already
 * succeeded under its `branchId` — no result at all (the handler did not run again). Check
 * `replayed` before using `result`.
 */
export type TryResult<R> =
  | { readonly branchId: string; readonly replayed: false; readonly result: R }
  | { readonly branchId: string; readonly replayed: true; readonly result?: undefined };

export interface ParticipantOptions {
  app: string;
  identity: string;
  store: Store;
  resources: ResourceRegistry;
  calls: CallGuard;
  logger: Logger;
  maxPayloadBytes: number;
  /** Member records under the 0.1 prefix, for 0.1 initiators (ServiceOptions.legacyLinks). */
  legacyLinks: boolean;
  /** Aborted when close() stops waiting for Trys in flight: their handlers are told to stop. */
  cutOff: AbortSignal;
}

/** A Try that registered its branch, to be run and reported. */
export interface RegisteredTry {
  registration: Registration;
  /** The branch already existed under this id: succeeded (replay), failed, or PENDING (run again). */
  existed: boolean;
}

export class Participant {
  /** Trys in flight → their transaction's deadline (close() waits for them). */
  readonly inFlight = new Map<Promise<unknown>, number>();

  constructor(private readonly o: ParticipantOptions) {}

  /**
   * Runs this service's Try for `resource` inside the initiator's transaction: registers the branch
   * first, runs the handler, records whether it succeeded. Throws TryFailed if the handler threw.
   */
  tryBranch(ctx: TxContext, resource: string, payload: unknown, options: TryOptions = {}): Promise<TryResult<unknown>> {
    return this.tryWith(ctx, resource, payload, options);
  }

  /** A Try's arguments, validated: the transaction context, a TCC resource of this service, the payload, the branch id. */
  private validTry(ctx: TxContext, resource: string, payload: unknown, options: TryOptions): { xid: string; handler: TccResource; data: unknown; branchId: string } {
    this.o.calls.assertOpen();
    if (typeof ctx !== 'object' || ctx === null) throw new ValidationError('ctx', 'must be a transaction context { xid, deadline }');
    const xid = validateXid(ctx.xid, 'ctx.xid');
    if (typeof ctx.deadline !== 'number' || !Number.isSafeInteger(ctx.deadline) || ctx.deadline <= 0) {
      throw new ValidationError('ctx.deadline', 'must be epoch milliseconds');
    }
    rejectUnknownOptions(options, ['signal', 'branchId'], 'options.');
    validateResource(resource);
    const handler = this.o.resources.get(resource);
    if (!handler) throw new UnknownResource(this.o.app, resource);
    const data = encodePayload(payload, this.o.maxPayloadBytes);
    const branchId = options.branchId === undefined ? newBranchId() : validateBranchId(options.branchId, 'options.branchId');
    return { xid, handler, data, branchId };
  }

  /**
   * A Try run outside this process (the sidecar's service runs it): joins the branch first, as
   * tryBranch does (refused once the global was decided), and returns; reportTry records the outcome.
   */
  async registerTry(ctx: TxContext, resource: string, payload: unknown, options: Pick<TryOptions, 'branchId'> = {}): Promise<{ branchId: string; existed: boolean; tryState: TryState }> {
    const { xid, data, branchId } = this.validTry(ctx, resource, payload, options);
    if (Date.now() >= ctx.deadline) throw new DeadlineExceeded(xid, `transaction ${xid} passed its deadline; Try not registered`);
    const { registration, existed } = await this.register(xid, ctx.deadline, branchId, resource, data).catch((err: unknown) => {
      throw this.o.calls.error(err, `register ${resource} in ${xid}`);
    });
    return { branchId, existed, tryState: registration.record.tryState };
  }

  /**
   * Records the outcome of a Try registered with registerTry. The same outcome again changes
   * nothing; another one is refused (a branch's Try has one outcome). A branch collected with its
   * rolled-back transaction meanwhile: a failed Try had nothing to undo; a succeeded one is
   * refused with TransactionAlreadyDecided — nobody else knows what it reserved, so the service
   * must release it itself.
   */
  async reportTry(xid: string, branchId: string, outcome: 'succeeded' | 'failed', error?: string): Promise<void> {
    this.o.calls.assertOpen();
    validateXid(xid);
    validateBranchId(branchId);
    const registered = await this.o.store.branches.get(this.o.app, xid, branchId).catch((err: unknown) => {
      throw this.o.calls.error(err, `report ${branchId} in ${xid}`);
    });
    const wanted = outcome === 'succeeded' ? TryState.SUCCEEDED : TryState.FAILED;
    if (!registered) {
      if (wanted === TryState.FAILED) return;
      throw new TransactionAlreadyDecided(xid, 'rollback', 'ROLLED_BACK', 'unknown (rolled back and collected before the Try reported; release what it reserved)');
    }
    const recorded = registered.record.tryState;
    if (recorded !== TryState.PENDING && recorded !== wanted) {
      throw new OperationRefused(xid, RefusalReason.ALREADY_REPORTED, `branch ${branchId} of ${xid}: its Try is already recorded as ${recorded}; a Try has one outcome`, branchId);
    }
    await this.report({ ...registered, existed: false }, wanted, error).catch((err: unknown) => {
      throw this.o.calls.error(err, `report ${branchId} in ${xid}`);
    });
  }

  /**
   * tryBranch with `call` in place of the resource's Try handler: a Try this process does not run
   * itself but calls (the sidecar's POST /v1/tries), with the same register → run → report. A
   * `call` that throws TryOutcomeUnknown leaves the branch PENDING.
   */
  async tryWith(ctx: TxContext, resource: string, payload: unknown, options: TryOptions = {}, call?: (ctx: TryContext) => Promise<unknown>): Promise<TryResult<unknown>> {
    const { xid, handler, data, branchId } = this.validTry(ctx, resource, payload, options);
    throwIfAborted(options.signal, xid);
    if (Date.now() >= ctx.deadline) throw new DeadlineExceeded(xid, `transaction ${xid} passed its deadline; Try not started`);
    const running = this.runTry(xid, ctx.deadline, branchId, resource, call ? { ...handler, try: call } : handler, data, options.signal).catch((err: unknown) => {
      throw this.o.calls.error(err, `try of ${resource} in ${xid}`);
    });
    // close() waits for Trys in flight: a Try whose result is never recorded leaves its cancel unsure.
    this.inFlight.set(running, ctx.deadline);
    try {
      return await running;
    } finally {
      this.inFlight.delete(running);
    }
  }

  /** Step 1: joins the branch to the transaction (refused once it was decided). */
  async register(xid: string, deadline: number, branchId: string, resource: string, payload: unknown): Promise<RegisteredTry> {
    const now = Date.now();
    const record: BranchRecord = withEvent(
      { v: 1, mode: Mode.TCC, xid, app: appOfXid(xid), branchId, owner: this.o.app, resource, payload, createdAt: now, deadline, tryState: TryState.PENDING, updatedAt: now, writeId: newWriteId(), ...(this.o.legacyLinks ? {} : { keyLayout: 2 as const }), events: [] },
      'Registered',
      `branch joined by ${this.o.identity}`,
      now,
    );
    const registration = await this.o.store.branches.register(record);
    if (registration.existed) {
      const existing = registration.record;
      if (existing.resource !== resource || JSON.stringify(existing.payload) !== JSON.stringify(payload)) {
        throw new ValidationError('options.branchId', `branch ${branchId} of ${xid} already exists for ${existing.resource} with another payload; use a new branch id for a different Try`);
      }
    }
    return { registration, existed: registration.existed };
  }

  /**
   * Step 3: records the Try's outcome. A Try that succeeded after its transaction was rolled back and
   * collected puts its branch back with a cancel of its own, and fails with TransactionAlreadyDecided.
   */
  async report(registered: Registration, tryState: TryState, tryError?: string): Promise<void> {
    const { store, logger } = this.o;
    const record = (): Promise<unknown> =>
      retrying(() => store.branches.update(registered, (b) => tccRules.withTryResult(b, tryState, tryError, Date.now())), { attempts: 5, delayMs: (n) => 50 * 2 ** n });
    if (await record()) return;
    if (tryState !== TryState.SUCCEEDED) return;
    // Collected while this Try ran: nobody would release what it reserved.
    const { branch, order } = tccRules.compensationOfCollectedTry(registered.record, Date.now());
    if (await retrying(() => store.branches.restoreWithOrder(branch, order), { attempts: 5, delayMs: (n) => 50 * 2 ** n })) {
      logger.warn({ xid: branch.xid, branch: branch.branchId }, 'try succeeded after its transaction was rolled back and collected; its cancel is ordered');
      throw new TransactionAlreadyDecided(branch.xid, 'rollback', 'ROLLED_BACK', 'unknown (collected before the Try finished)');
    }
    // Put back meanwhile by a retried call of the same Try: record into it.
    if (!(await record())) throw new WriteConflict(registered.key);
  }

  private async runTry(xid: string, deadline: number, branchId: string, resource: string, handler: TccResource, data: unknown, callerSignal: AbortSignal | undefined): Promise<TryResult<unknown>> {
    const log = this.o.logger.child({ xid, branch: branchId, resource });
    const { registration, existed } = await this.register(xid, deadline, branchId, resource, data);
    if (existed) {
      const existing = registration.record;
      if (existing.tryState === TryState.SUCCEEDED) return { branchId, replayed: true };
      if (existing.tryState === TryState.FAILED) throw new TryFailed(xid, branchId, resource, new Error(existing.tryError ?? 'try failed'));
      log.info('try of an existing branch still PENDING (an earlier call died or is running): running it again');
    }
    const signals = [AbortSignal.timeout(Math.max(0, deadline - Date.now())), this.o.cutOff];
    if (callerSignal) signals.push(callerSignal);
    const signal = AbortSignal.any(signals);
    let result: unknown;
    try {
      // Aborted while the branch was being registered: the Try never runs, and says so.
      if (callerSignal?.aborted) throw new AbortError(xid, callerSignal.reason);
      result = await handler.try({ xid, branchId, resource, payload: data, deadline, signal });
    } catch (err) {
      // No answer: it may have reserved; the branch stays PENDING, and its cancel says so.
      if (err instanceof TryOutcomeUnknown) {
        log.warn({ err: errorMessage(err) }, 'try got no answer; its outcome is unknown');
        throw err;
      }
      log.info({ err: errorMessage(err) }, 'try failed');
      await this.report(registration, TryState.FAILED, errorMessage(err));
      // The caller gave up: that is what it should hear, not the handler's reaction to it.
      if (callerSignal?.aborted) throw new AbortError(xid, callerSignal.reason);
      throw new TryFailed(xid, branchId, resource, err);
    }
    await this.report(registration, TryState.SUCCEEDED);
    log.debug('try succeeded');
    return { branchId, result, replayed: false };
  }
}
