/** What a REST-TCC confirm or cancel can end in besides success, as typed errors under TxloopError. */
import { TxloopError } from '../errors.js';

/** How one link of a confirm or cancel ended (or stands, when the coordinator stopped waiting). */
export interface LinkOutcome {
  uri: string;
  expires: string;
  /** Its branch in the txloop transaction (`txloop describe branch <xid>/<branchId>`). */
  branchId: string;
  /**
   * confirmed; cancelled (its participant cancelled it, let it expire, or said so with 404); parked
   * (needs a human: `txloop resolve`, e.g. a link that expired after a PUT that got no answer);
   * pending (still being retried when the coordinator stopped waiting).
   */
  state: 'confirmed' | 'cancelled' | 'parked' | 'pending';
  attempts: number;
  /** Why it is not confirmed, in the participant's words (its answer) or the coordinator's (the expiry). */
  reason?: string;
}

/** 404: the confirm came too late: every link was cancelled or had expired, none confirmed. */
export class RestTccTooLate extends TxloopError {
  override readonly name = 'RestTccTooLate';
  constructor(
    /** The txloop transaction that recorded it (undefined when the coordinator's answer gave none). */
    readonly xid: string | undefined,
    readonly links: readonly LinkOutcome[] = [],
    detail?: string,
  ) {
    super(detail ?? `confirm came too late: every participant link had expired or was cancelled, none was confirmed${xid ? ` (transaction ${xid})` : ''}`);
  }
}

/**
 * 409: the heuristic outcome: some links confirmed and some did not (cancelled by their
 * participant, expired, or parked in doubt). Recorded as such: `txloop describe gtx <xid>`.
 */
export class RestTccHeuristic extends TxloopError {
  override readonly name = 'RestTccHeuristic';
  constructor(
    readonly xid: string | undefined,
    readonly links: readonly LinkOutcome[] = [],
    detail?: string,
  ) {
    super(detail ?? `heuristic outcome: not every participant link was confirmed${xid ? ` (transaction ${xid})` : ''}: ${summary(links)}`);
  }
}

/**
 * The confirm is decided and txloop keeps retrying it, but not every participant had answered when
 * the coordinator stopped waiting. Nothing to undo: ask again, or follow the transaction.
 */
export class RestTccPending extends TxloopError {
  override readonly name = 'RestTccPending';
  constructor(
    readonly xid: string | undefined,
    readonly links: readonly LinkOutcome[] = [],
    detail?: string,
  ) {
    super(detail ?? `confirm decided but not finished when the coordinator stopped waiting; txloop keeps retrying${xid ? ` (transaction ${xid})` : ''}: ${summary(links)}`);
  }
}

/** A participant's Try did not answer 2xx with a participant link. */
export class RestTccTryFailed extends TxloopError {
  override readonly name = 'RestTccTryFailed';
  constructor(
    readonly url: string,
    /** The HTTP status, or undefined when there was no answer. */
    readonly status: number | undefined,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`Try at ${url} failed: ${detail}`, options);
  }
}

/** A coordinator answered something other than REST-TCC's 204, 404 or 409; `problem` is its RFC 9457 body, if any. */
export class RestTccCoordinatorError extends TxloopError {
  override readonly name = 'RestTccCoordinatorError';
  constructor(
    readonly status: number | undefined,
    detail: string,
    readonly problem?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(detail, options);
  }
}

function summary(links: readonly LinkOutcome[]): string {
  return links.map((l) => `${l.uri} ${l.state}${l.reason ? ` (${l.reason})` : ''}`).join('; ') || 'no link detail';
}
