/**
 * The producer's side of 2-phase messages (the transactional outbox with check-back):
 *
 *   prepareMessage()   one Txn: the global, PREPARED, holding its consumers (nothing is delivered yet)
 *   the producer's local transaction, which also records that it committed (the outbox row)
 *   submit()           the decision: SUBMITTED, and every consumer's delivery owed, in one Txn
 *
 * A message whose producer dies before its submit (or its discard) is resolved by the check-back
 * the producer registered for the message's name, run by its leader once the message's check-back
 * delay has passed (modes/msg/global-step.ts). Also here: a message's delivery state per
 * consumer, which any service can read (a consumer recovering a lost notification, say).
 */
import { PayloadError, TransactionAlreadyDecided, TransactionNotFound, ValidationError, errorMessage } from '../errors.js';
import { decide, msgRules } from '../modes/index.js';
import { rejectUnknownOptions } from '../options.js';
import type { CheckBack } from '../resource.js';
import { GlobalStatus, Mode, type Outcome } from '../states.js';
import { encodePayload, newBranchId, newXid, parseBranch, parseOrder, validateApp, validateBranchId, validateResource, validateXid, withEvent, type BranchRecord, type GlobalRecord, type MemberRecord, type MessageConsumerEntry, type OrderRecord } from '../store/index.js';
import { op } from '../etcd/index.js';
import { validName, type InitiatorOptions } from './initiator.js';
import type { CallOptions, DecideCallOptions } from './options.js';

/** How long a prepared message waits for its submit before its check-back is asked, when not given. */
export const DEFAULT_CHECK_AFTER_MS = 10_000;
const MAX_CHECK_AFTER_MS = 7 * 24 * 3_600_000;

/** One consumer of a message: the service, its consumer resource (`service.consumer(resource, …)`), what it gets. */
export interface MessageDestination {
  /** The consuming service's app name. */
  service: string;
  /** The consumer it registered with `consumer(resource, { deliver })`. */
  resource: string;
  /** What its `deliver` receives, as JSON. @default null */
  payload?: unknown;
  /**
   * The consumer's branch id, which its `deliver` receives (a key to deduplicate by). 1-64
   * letters, digits, '.', '_' or '-'. @default a new random id
   */
  branchId?: string;
}

export interface PrepareMessageOptions {
  /** What the message is, for people reading `txloop get`; also what its check-back is registered for (`checkBack(name, …)`). 1-128 characters. */
  name: string;
  /**
   * Who gets it: one or more consumers. Their submit is one etcd Txn of 3 writes each plus one,
   * so at most (maxTxnOps - 1) / 3 (42 with the default 128); their payloads together count
   * against maxPayloadBytes, since the prepared message holds them all in one record.
   */
  consumers: MessageDestination[];
  /**
   * How long after prepare the message may stay unsubmitted before the producer's leader asks its
   * check-back, and how long it waits before asking again after an `unknown`. Give it more than
   * your local transaction can take. @default 10_000
   */
  checkAfterMs?: number;
  /** As BeginOptions.signal: aborted before the write, nothing is written; while in flight, AbortError with `maybeWritten`. */
  signal?: AbortSignal;
}

/** Submit and discard of a message, by xid. */
export interface MessageDecider {
  submitMessage(xid: string, options?: DecideCallOptions): Promise<void>;
  discardMessage(xid: string, options?: DecideCallOptions): Promise<void>;
}

/** A message this service prepared: submit it once your local transaction committed, discard it if it did not. */
export class PreparedMessage {
  constructor(
    private readonly decider: MessageDecider,
    readonly xid: string,
    readonly name: string,
    /** Epoch ms: from then on, unless submitted or discarded, the check-back decides it. */
    readonly checkBackAt: number,
  ) {}

  /** Every consumer gets it at least once from now on; throws TransactionAlreadyDecided if it was discarded. */
  submit(options?: DecideCallOptions): Promise<void> {
    return this.decider.submitMessage(this.xid, options);
  }

  /** Nothing is delivered; throws TransactionAlreadyDecided if it was submitted (a submitted message is never taken back). */
  discard(options?: DecideCallOptions): Promise<void> {
    return this.decider.discardMessage(this.xid, options);
  }
}

/** One consumer's delivery of a message. */
export interface DeliveryView {
  service: string;
  resource: string;
  branchId: string;
  /**
   * DELIVERING (submitted, not yet acknowledged; see `attempts`, `lastError`, `nextRetryAt`),
   * DELIVERED, RESOLVED_DELIVERED (a human resolved it as delivered), PARKED (attempts ran out:
   * `txloop retry` / `resolve`); before the submit PREPARED, after a discard DISCARDED.
   */
  status: string;
  attempts: number;
  lastError?: string;
  /** When the next attempt is due, while a failed delivery waits to be retried. */
  nextRetryAt?: Date;
  /** When its `deliver` succeeded, or a human resolved it. */
  deliveredAt?: Date;
  resolution?: MemberRecord['resolution'];
}

/** A message and its deliveries, as `deliveries(xid)` returns them. */
export interface MessageView {
  xid: string;
  /** The producer. */
  app: string;
  name: string;
  /** PREPARED, SUBMITTED, DELIVERED (every consumer acknowledged) or DISCARDED. */
  status: GlobalStatus;
  preparedAt: Date;
  /** While PREPARED: when the check-back is (or was) due. */
  checkBackAt?: Date;
  decision?: GlobalRecord['decision'];
  /** When it became DELIVERED or DISCARDED. */
  completedAt?: Date;
  deliveries: DeliveryView[];
}

export interface MessagesOptions extends InitiatorOptions {
  maxPayloadBytes: number;
}

export class Messages implements MessageDecider {
  private readonly checkBacks = new Map<string, CheckBack>();
  /** Names prepared without a check-back registered here: warned once each. */
  private readonly unanswered = new Set<string>();

  constructor(private readonly o: MessagesOptions) {}

  /** Prepares a message: one Txn writes it PREPARED with its consumers; nothing is delivered until its submit. */
  prepare(options: PrepareMessageOptions): Promise<PreparedMessage> {
    return this.o.calls.run('prepareMessage', undefined, options?.signal, true, async () => {
      if (typeof options !== 'object' || options === null) throw new ValidationError('options', 'must be { name, consumers, checkAfterMs? }');
      rejectUnknownOptions(options, ['name', 'consumers', 'checkAfterMs', 'signal'], 'options.');
      const name = validName(options.name);
      const checkAfterMs = options.checkAfterMs ?? DEFAULT_CHECK_AFTER_MS;
      if (typeof checkAfterMs !== 'number' || !Number.isInteger(checkAfterMs) || checkAfterMs <= 0 || checkAfterMs > MAX_CHECK_AFTER_MS) {
        throw new ValidationError('checkAfterMs', `must be a whole number of milliseconds from 1 to ${MAX_CHECK_AFTER_MS} (7 days), got ${JSON.stringify(checkAfterMs)}`);
      }
      const consumers = this.consumersOf(options.consumers);
      if (!this.checkBacks.has(name) && !this.unanswered.has(name)) {
        this.unanswered.add(name);
        this.o.logger.warn({ name }, `no check-back is registered on this service for messages named ${JSON.stringify(name)} (checkBack()); one whose producer dies before its submit stays PREPARED until a replica with one answers`);
      }
      const now = Date.now();
      const xid = newXid(this.o.app, now);
      const record: GlobalRecord = withEvent(
        { mode: Mode.MESSAGE, v: 1, xid, app: this.o.app, name, status: GlobalStatus.PREPARED, createdAt: now, timeoutMs: checkAfterMs, deadline: now + checkAfterMs, consumers, events: [] },
        'Began',
        `prepared by ${this.o.identity} for ${consumers.length} consumer${consumers.length === 1 ? '' : 's'}; check-back after ${checkAfterMs}ms`,
        now,
      );
      await this.o.store.globals.create(record);
      this.o.logger.debug({ xid, name, consumers: consumers.length, checkAfterMs }, 'message prepared');
      return new PreparedMessage(this, xid, name, record.deadline);
    });
  }

  /** Submits a prepared message: SUBMITTED, each consumer's delivery owed, in one Txn. */
  submitMessage(xid: string, options: DecideCallOptions = {}): Promise<void> {
    return this.decide(xid, 'commit', 'submitMessage', options);
  }

  /** Discards a prepared message: DISCARDED, nothing delivered. */
  discardMessage(xid: string, options: DecideCallOptions = {}): Promise<void> {
    return this.decide(xid, 'rollback', 'discardMessage', options);
  }

  /**
   * Prepares a message, runs `fn` (your local transaction), submits when it returns and discards
   * when it throws (then rethrows). Throw only when the local transaction did not commit; an error
   * with `maybeCommitted: true` (the barrier's, for a COMMIT whose answer was lost) leaves the
   * message to the check-back instead of discarding it. A submit
   * that fails after `fn` returned is not discarded: the local transaction committed, so the
   * message must go out, and the check-back finds that and submits it.
   */
  async run<T>(options: PrepareMessageOptions, fn: (message: PreparedMessage) => Promise<T>): Promise<{ xid: string; result: T }> {
    const message = await this.prepare(options);
    let result: T;
    try {
      result = await fn(message);
    } catch (err) {
      // A commit whose answer was lost (BarrierDatabaseError, pg's own) may have committed: the
      // check-back, not a guess, decides that message.
      if ((err as { maybeCommitted?: unknown } | null)?.maybeCommitted === true) {
        this.o.logger.warn({ xid: message.xid, err: errorMessage(err) }, 'the local transaction may have committed; leaving the message to the check-back');
        throw err;
      }
      await message.discard({ reason: `local transaction failed: ${errorMessage(err)}`.slice(0, 1000) }).catch((discardErr: unknown) => {
        if (!(discardErr instanceof TransactionAlreadyDecided)) this.o.logger.warn({ xid: message.xid, err: errorMessage(discardErr) }, 'discard after a failed local transaction did not go through; the check-back will decide the message');
      });
      throw err;
    }
    await message.submit();
    return { xid: message.xid, result };
  }

  /** Registers the check-back for messages named `name`. */
  registerCheckBack(name: string, fn: CheckBack): void {
    validName(name);
    if (typeof fn !== 'function') throw new ValidationError('checkBack', `must be a function ({ xid, name, signal }) => 'committed' | 'rolled-back' | 'unknown'`);
    if (this.checkBacks.has(name)) throw new ValidationError('name', `a check-back for messages named ${JSON.stringify(name)} is already registered`);
    this.checkBacks.set(name, fn);
  }

  checkBackOf(name: string): CheckBack | undefined {
    return this.checkBacks.get(name);
  }

  /** A message's status and each consumer's delivery state; any service may ask (the xid names the producer). */
  deliveries(xid: string, options: CallOptions = {}): Promise<MessageView> {
    return this.o.calls.run('deliveries', typeof xid === 'string' ? xid : undefined, options?.signal, false, async () => {
      rejectUnknownOptions(options, ['signal'], 'options.');
      validateXid(xid);
      const { store } = this.o;
      const { global, members } = await store.globals.read(xid);
      if (!global) throw new TransactionNotFound(xid);
      const g = global.record;
      if (g.mode !== Mode.MESSAGE) throw new ValidationError('xid', `${xid} is a ${g.mode} transaction, not a 2-phase message; read it with get()`);
      const records = await this.branchesOf(members.map((m) => m.record));
      const deliveries: DeliveryView[] = members.map(({ record: m }) => deliveryOf(m, records.get(`${m.owner}/${m.branchId}`)));
      // Before the submit (and after a discard), the consumers are in the global.
      for (const c of g.consumers ?? []) deliveries.push({ service: c.service, resource: c.resource, branchId: c.branchId, status: g.status === GlobalStatus.PREPARED ? 'PREPARED' : 'DISCARDED', attempts: 0 });
      return {
        xid,
        app: g.app,
        name: g.name,
        status: g.status,
        preparedAt: new Date(g.createdAt),
        ...(g.status === GlobalStatus.PREPARED ? { checkBackAt: new Date(g.deadline) } : {}),
        ...(g.decision ? { decision: g.decision } : {}),
        ...(g.completedAt !== undefined ? { completedAt: new Date(g.completedAt) } : {}),
        deliveries,
      };
    });
  }

  private decide(xid: string, outcome: Outcome, what: string, options: DecideCallOptions): Promise<void> {
    return this.o.calls.run(what, typeof xid === 'string' ? xid : undefined, options?.signal, true, async () => {
      rejectUnknownOptions(options, ['reason', 'signal'], 'options.');
      validateXid(xid);
      if (options.reason !== undefined && (typeof options.reason !== 'string' || options.reason.length > 1000)) {
        throw new ValidationError('reason', 'must be a string of at most 1000 characters');
      }
      const cached = this.o.cached(xid);
      const g = cached?.global?.record ?? (await this.o.store.globals.get(xid))?.record;
      if (!g) throw new TransactionNotFound(xid);
      if (g.mode !== Mode.MESSAGE) throw new ValidationError('xid', `${xid} is a ${g.mode} transaction, not a 2-phase message; decide it with ${outcome}()`);
      const by = outcome === 'commit' ? 'submit' : 'discard';
      const result = await decide(this.o.store, this.o.modes, xid, { outcome, by, ...(options.reason ? { reason: options.reason } : {}) }, cached);
      this.o.decided(result.global);
      this.o.logger.info({ xid, consumers: result.ordered }, outcome === 'commit' ? 'message submitted' : 'message discarded');
    });
  }

  /** The consumers as given, validated, each with its branch id; refused when the submit could not carry them in one Txn. */
  private consumersOf(given: unknown): MessageConsumerEntry[] {
    if (!Array.isArray(given) || given.length === 0) throw new ValidationError('consumers', 'must be a non-empty array of { service, resource, payload?, branchId? }');
    const limit = msgRules.maxConsumers(this.o.store.maxTxnOps);
    if (given.length > limit) {
      throw new ValidationError('consumers', `${given.length} consumers need ${msgRules.submitOps(given.length)} writes in the submit's one etcd Txn, over maxTxnOps (${this.o.store.maxTxnOps}): at most ${limit} consumers per message`);
    }
    const seen = new Set<string>();
    let bytes = 0;
    return given.map((c: unknown, i) => {
      const at = `consumers[${i}]`;
      if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new ValidationError(at, 'must be { service, resource, payload?, branchId? }');
      rejectUnknownOptions(c, ['service', 'resource', 'payload', 'branchId'], `${at}.`);
      const d = c as MessageDestination;
      const service = validateApp(d.service, `${at}.service`);
      const resource = validateResource(d.resource, `${at}.resource`);
      const branchId = d.branchId === undefined ? newBranchId() : validateBranchId(d.branchId, `${at}.branchId`);
      if (seen.has(`${service}/${branchId}`)) throw new ValidationError(`${at}.branchId`, `${branchId} is given twice for ${service}; each consumer of a message needs its own branch id`);
      seen.add(`${service}/${branchId}`);
      const payload = encodePayload(d.payload, this.o.maxPayloadBytes, `${at}.payload`);
      bytes += Buffer.byteLength(JSON.stringify(payload));
      if (bytes > this.o.maxPayloadBytes) {
        throw new PayloadError('consumers', `payloads are ${bytes} bytes as JSON together (by consumers[${i}]), over the ${this.o.maxPayloadBytes}-byte limit (maxPayloadBytes) a prepared message holds in its one record; keep large data in your own store and pass a reference`);
      }
      return { service, resource, branchId, payload };
    });
  }

  /** The consumers' branch records and orders, each read from its owner's prefix (at most 100 gets a Txn). */
  private async branchesOf(members: MemberRecord[]): Promise<Map<string, { branch: BranchRecord; order?: OrderRecord }>> {
    const { store } = this.o;
    const out = new Map<string, { branch: BranchRecord; order?: OrderRecord }>();
    for (let i = 0; i < members.length; i += 50) {
      const part = members.slice(i, i + 50);
      const res = await store.txn([], part.flatMap((m) => [op.get(store.keys.branch(m.owner, m.xid, m.branchId)), op.get(store.keys.order(m.owner, m.xid, m.branchId))]));
      part.forEach((m, j) => {
        const bkv = res.responses[2 * j]?.response_range.kvs[0];
        const okv = res.responses[2 * j + 1]?.response_range.kvs[0];
        if (!bkv) return;
        const bkey = store.keys.branch(m.owner, m.xid, m.branchId);
        try {
          const branch = parseBranch(bkey, bkv.value);
          const order = okv ? parseOrder(store.keys.order(m.owner, m.xid, m.branchId), okv.value) : undefined;
          out.set(`${m.owner}/${m.branchId}`, { branch, ...(order ? { order } : {}) });
        } catch {
          // A malformed branch record: its member record still tells the state.
        }
      });
    }
    return out;
  }
}

/** One delivery, from the consumer's branch record when it is readable, else from the member record. */
function deliveryOf(m: MemberRecord, found: { branch: BranchRecord; order?: OrderRecord } | undefined): DeliveryView {
  const base = { service: m.owner, resource: m.resource, branchId: m.branchId };
  if (!found) {
    const status = m.state === 'PARKED' ? 'PARKED' : m.state === 'DONE' ? (m.resolution ? 'RESOLVED_DELIVERED' : 'DELIVERED') : 'DELIVERING';
    return { ...base, status, attempts: m.attempts ?? 0, ...(m.lastError ? { lastError: m.lastError } : {}), ...(m.resolution ? { resolution: m.resolution } : {}) };
  }
  const p = found.branch.phase2;
  const doneAt = p?.resolution?.at ?? p?.doneAt;
  return {
    ...base,
    status: msgRules.messageBranchStatus(found.branch, found.order),
    attempts: p?.attempts ?? 0,
    ...(p?.lastError ? { lastError: p.lastError } : {}),
    ...(p?.state === 'ACTIVE' && p.nextRetryAt !== undefined ? { nextRetryAt: new Date(p.nextRetryAt) } : {}),
    ...(p?.state === 'DONE' && doneAt !== undefined ? { deliveredAt: new Date(doneAt) } : {}),
    ...(p?.resolution ? { resolution: p.resolution.as } : {}),
  };
}
