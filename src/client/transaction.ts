/** The handle on a transaction a service began: its context for Try calls, and its decision. */
import { injectHeaders, type TxContext } from '../context.js';
import type { DecideCallOptions } from './options.js';

export interface Decider {
  commit(xid: string, options?: DecideCallOptions): Promise<void>;
  rollback(xid: string, options?: DecideCallOptions): Promise<void>;
}

/** Handle on a transaction this service began. Pass `context` (or `headers()`) along with Try calls. */
export class GlobalTransaction implements TxContext {
  /** Aborts at the deadline: hand it to fetch() and friends so Try calls stop when it passes. */
  readonly signal: AbortSignal;

  constructor(
    private readonly decider: Decider,
    readonly xid: string,
    readonly name: string,
    readonly deadline: number,
  ) {
    this.signal = AbortSignal.timeout(Math.max(0, deadline - Date.now()));
  }

  get context(): TxContext {
    return { xid: this.xid, deadline: this.deadline };
  }

  /** Headers that carry this transaction to a participant over HTTP. */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    return injectHeaders(this.context, extra);
  }

  commit(options?: DecideCallOptions): Promise<void> {
    return this.decider.commit(this.xid, options);
  }

  rollback(options?: DecideCallOptions): Promise<void> {
    return this.decider.rollback(this.xid, options);
  }
}
