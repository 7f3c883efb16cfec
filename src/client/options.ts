/** The options of the initiator's calls. */
import type { GlobalStatus } from '../states.js';

export interface BeginOptions {
  /** What the transaction does, for people reading `txloop get`. 1-128 characters. */
  name: string;
  /** Rolled back if not decided within this many ms. @default ServiceOptions.defaultTimeoutMs */
  timeoutMs?: number;
  /**
   * The caller's signal: aborted before the write, begin() throws AbortError and writes nothing;
   * aborted while the write is in flight, it throws AbortError with `maybeWritten`.
   */
  signal?: AbortSignal;
}

export interface DecideCallOptions {
  /** Recorded with the decision and shown by `txloop describe`. */
  reason?: string;
  /** Aborted before the decision is sent: AbortError, nothing written. While in flight: AbortError with `maybeWritten` (read the transaction to know). */
  signal?: AbortSignal;
}

/** For calls that only read: aborting the signal makes the call reject with AbortError at once. */
export interface CallOptions {
  signal?: AbortSignal;
}

export interface ListOptions extends CallOptions {
  /** Whose transactions. @default this service */
  app?: string;
  /** Only these statuses. @default every status */
  status?: GlobalStatus | GlobalStatus[];
}

export interface WaitOptions extends CallOptions {
  /** Give up (DeadlineExceeded) after this long. @default 60_000 */
  timeoutMs?: number;
}
