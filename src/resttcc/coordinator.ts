/**
 * A REST-TCC coordinator (Atomikos' protocol, docs/rest-tcc.md) over a TxloopService: `confirm` and
 * `cancel` take the participant links a requester collected and turn them into one TCC transaction
 * of that service, one branch per link, owned by the service itself (resource `rest-tcc-link`,
 * link-resource.ts). So the service's control loop PUTs or DELETEs each link with the retries,
 * backoff, parking, fencing and failover of any branch, and `txloop get/describe/retry/resolve`
 * work on them. The call waits for the branches to settle and answers from what they say.
 */
import { AbortError, ValidationError } from '../errors.js';
import type { ResourceOptions } from '../resource.js';
import type { TransactionView } from '../client/index.js';
import type { TxloopService } from '../service.js';
import { Phase2State, isTerminal } from '../states.js';
import { throwIfAborted } from '../signals.js';
import type { LinkOutcome } from './errors.js';
import { LINK_RESOURCE, linkResource, type LinkPayload } from './link-resource.js';
import { parseLinks, type ParsedLink, type ParticipantLink } from './links.js';

export interface RestTccCoordinatorOptions {
  /** How long confirm() and cancel() wait for every link to settle before answering with what they know. @default 30_000 */
  waitMs?: number;
  /** The txloop transaction's timeout: its links must be registered and the decision taken within it. @default 10_000 */
  timeoutMs?: number;
  /** Headers added to every PUT and DELETE sent to participants (e.g. authorization). */
  headers?: Record<string, string>;
  /** Which participant URIs this coordinator may call. @default every http(s) URI */
  allow?: (url: URL) => boolean;
  /** How the links' confirms and cancels are retried (ResourceOptions.retry). @default the service's backoff */
  retry?: ResourceOptions['retry'];
  /** The fetch used to call participants. @default globalThis.fetch */
  fetch?: typeof fetch;
}

export interface RestTccCallOptions {
  /** Stops waiting (AbortError); a decision already taken stands and its links are still confirmed or cancelled. */
  signal?: AbortSignal;
  /** This call's wait (RestTccCoordinatorOptions.waitMs). */
  waitMs?: number;
}

/**
 * - confirmed: every link confirmed (204);
 * - too-late: none confirmed, every one expired or cancelled by its participant (404);
 * - heuristic: some confirmed and some not, or some in doubt (parked) (409);
 * - pending: decided, but some link still being retried when the wait ended.
 */
export type ConfirmOutcome = 'confirmed' | 'too-late' | 'heuristic' | 'pending';

export interface ConfirmResult {
  /** The txloop transaction holding the links (`txloop describe gtx <xid>`). */
  xid: string;
  outcome: ConfirmOutcome;
  links: LinkOutcome[];
}

export interface CancelResult {
  xid: string;
  /** Every link's cancel finished (or was parked) within the wait. */
  settled: boolean;
  links: LinkOutcome[];
}

/**
 * Register one per service, on every replica (its leader runs the links' confirms and cancels),
 * before `service.start()`: the constructor registers the `rest-tcc-link` resource.
 */
export class RestTccCoordinator {
  private readonly waitMs: number;
  private readonly timeoutMs: number;
  private readonly allow: (url: URL) => boolean;
  /** Calls waiting on a transaction, woken by this replica's events about it (one listener per event for them all). */
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(
    readonly service: TxloopService,
    options: RestTccCoordinatorOptions = {},
  ) {
    this.waitMs = positive(options.waitMs ?? 30_000, 'options.waitMs');
    this.timeoutMs = positive(options.timeoutMs ?? 10_000, 'options.timeoutMs');
    this.allow = options.allow ?? (() => true);
    const handlers = linkResource({
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.fetch ? { fetch: options.fetch } : {}),
      lastError: async (xid, branchId) => (await service.get(xid)).branches.find((b) => b.branchId === branchId)?.lastError,
    });
    service.resource<LinkPayload>(LINK_RESOURCE, handlers, options.retry !== undefined ? { retry: options.retry } : undefined);
    const wake = (e: { xid: string }): void => this.waiting.get(e.xid)?.forEach((w) => w());
    service.on('phase2', wake).on('completed', wake);
  }

  /**
   * Confirms the links: PUT each one not expired, in one committed transaction; links all expired
   * already are never PUT and the transaction is rolled back (too-late).
   */
  async confirm(input: unknown, options: RestTccCallOptions = {}): Promise<ConfirmResult> {
    const links = this.accept(input);
    const now = Date.now();
    const tooLate = links.every((l) => l.expiresAt <= now);
    const xid = await this.decide('confirm', links, tooLate ? 'every link had expired before the confirm: nothing PUT' : undefined, options.signal);
    const { view, settled } = await this.settle(xid, options);
    const outcomes = linkOutcomes(view, links);
    return { xid, outcome: tooLate ? 'too-late' : confirmOutcome(outcomes, settled), links: outcomes };
  }

  /** Cancels the links: DELETE each one not expired (404 and 405 are fine), as a rolled-back transaction's cancels. */
  async cancel(input: unknown, options: RestTccCallOptions = {}): Promise<CancelResult> {
    const links = this.accept(input);
    const xid = await this.decide('cancel', links, 'REST-TCC cancel', options.signal);
    const { view, settled } = await this.settle(xid, options);
    return { xid, settled, links: linkOutcomes(view, links) };
  }

  private accept(input: unknown): ParsedLink[] {
    const links = parseLinks(input);
    links.forEach((l, i) => {
      if (!this.allow(l.url)) throw new ValidationError(`participantLinks[${i}].uri`, `${l.url.host} is not a participant this coordinator may call`);
    });
    return links;
  }

  /** Begins the transaction, registers one branch per link, and commits, or rolls back for `rollback`. */
  private async decide(what: 'confirm' | 'cancel', links: ParsedLink[], rollback: string | undefined, signal: AbortSignal | undefined): Promise<string> {
    const hosts = [...new Set(links.map((l) => l.url.host))].join(', ');
    const name = `REST-TCC ${what} of ${links.length} link${links.length === 1 ? '' : 's'}: ${hosts}`;
    const tx = await this.service.begin({ name: name.length > 128 ? `${name.slice(0, 127)}…` : name, timeoutMs: this.timeoutMs, ...(signal ? { signal } : {}) });
    try {
      await Promise.all(links.map((l, i) => this.service.tryBranch(tx.context, LINK_RESOURCE, { uri: l.uri, expires: l.expires, call: what } satisfies LinkPayload, { branchId: branchIdOf(i), ...(signal ? { signal } : {}) })));
      if (rollback === undefined) await tx.commit();
      else await tx.rollback({ reason: rollback });
    } catch (err) {
      // Not decided as meant: roll back (a commit that did land makes this lose its CAS, harmlessly).
      // A confirm's rollback sends no DELETE (link-resource.ts): the requester may send it again.
      await tx.rollback({ reason: `REST-TCC ${what} failed before its decision` }).catch(() => undefined);
      throw err;
    }
    return tx.xid;
  }

  /**
   * Waits until the transaction completed, or every branch is done or parked with one parked, or
   * the wait is over. Wakes on this replica's phase-2 events and polls for another replica's.
   */
  private async settle(xid: string, options: RestTccCallOptions): Promise<{ view: TransactionView; settled: boolean }> {
    const until = Date.now() + (options.waitMs !== undefined ? positive(options.waitMs, 'options.waitMs') : this.waitMs);
    for (;;) {
      throwIfAborted(options.signal, xid);
      const view = await this.service.get(xid, options.signal ? { signal: options.signal } : {});
      const settled = view.branches.every((b) => b.state === Phase2State.DONE || b.state === Phase2State.PARKED);
      // A completion follows the last branch's DONE at once; a parked branch waits for a human.
      if (isTerminal(view.status) || (settled && view.branches.some((b) => b.state === Phase2State.PARKED))) return { view, settled: true };
      const left = until - Date.now();
      if (left <= 0) return { view, settled };
      await this.nextChange(xid, Math.min(left, 250), options.signal);
    }
  }

  private nextChange(xid: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiters = this.waiting.get(xid) ?? new Set<() => void>();
      this.waiting.set(xid, waiters);
      const onAbort = (): void => {
        done();
        reject(new AbortError(xid, signal?.reason));
      };
      const timer = setTimeout(() => done(), ms);
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.waiting.get(xid) === waiters) this.waiting.delete(xid);
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      waiters.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** The branch id of the i-th link. */
export function branchIdOf(i: number): string {
  return `link-${i}`;
}

/** Each link's state, from its branch as the transaction's view shows it. */
export function linkOutcomes(view: TransactionView, links: readonly ParticipantLink[]): LinkOutcome[] {
  const byId = new Map(view.branches.map((b) => [b.branchId, b]));
  return links.map((l, i) => {
    const b = byId.get(branchIdOf(i));
    const confirmedByAction = b?.state === Phase2State.DONE && !b.resolution && b.action === 'confirm';
    const state: LinkOutcome['state'] =
      b?.state === Phase2State.PARKED ? 'parked' : b?.state !== Phase2State.DONE ? 'pending' : confirmedByAction || b.resolution === 'confirmed' ? 'confirmed' : 'cancelled';
    return { uri: l.uri, expires: l.expires, branchId: branchIdOf(i), state, attempts: b?.attempts ?? 0, ...(state !== 'confirmed' && b?.lastError ? { reason: b.lastError } : {}) };
  });
}

/** What a committed confirm answers, from its links (REST-TCC: 204, 404, 409; pending while one is retried). */
export function confirmOutcome(links: readonly LinkOutcome[], settled: boolean): ConfirmOutcome {
  if (links.every((l) => l.state === 'confirmed')) return 'confirmed';
  if (!settled || links.some((l) => l.state === 'pending')) return 'pending';
  if (links.every((l) => l.state === 'cancelled')) return 'too-late';
  return 'heuristic';
}

function positive(ms: unknown, field: string): number {
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms <= 0) throw new ValidationError(field, `must be a positive whole number of milliseconds, got ${JSON.stringify(ms)}`);
  return ms;
}
