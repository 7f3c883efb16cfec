/**
 * What a service reports about its work, part of the public API: each phase-2 attempt as it finishes
 * (the `phase2` event, metrics), and the figures its leader publishes for `txloop top`
 * (`<ns><app>/stats`, validated by store/parse.ts).
 */

/** A phase-2 attempt that finished on this replica (events, metrics, stats). */
export interface Phase2Outcome {
  xid: string;
  branchId: string;
  resource: string;
  action: string;
  result: 'succeeded' | 'failed' | 'parked';
  attempt: number;
  error?: string;
  durationMs: number;
}

/** A workqueue's figures, as the leader publishes them. */
export interface QueueStats {
  /** Keys queued and ready to be handed out (not processing, not waiting). */
  depth: number;
  /** Keys handed out and not yet done. */
  processing: number;
  /** Delayed keys whose time has not come yet. */
  waiting: number;
  /** Total counted adds (an add coalesced into an already dirty key is not counted). */
  adds: number;
  /** Total accepted delayed adds (addAfter/addRateLimited), client-go's retries_total. */
  retries: number;
  /** Sum of the time the keys currently processing have been processing (client-go unfinished_work). */
  unfinishedWorkMs: number;
  /** How long the longest-running processing key has been processing. */
  longestRunningProcessorMs: number;
}

/** `<ns><app>/stats`: the leader's queue figures for `txloop top`, bound to its lease. */
export interface ServiceStats {
  identity: string;
  at: number;
  queues: { globals: QueueStats; branches: QueueStats };
  phase2: { succeeded: number; failed: number; parked: number; completed: number; collected: number };
  branches: Record<string, number>;
  /** Records under the service's prefix the engine cannot use, by key prefix (gtx, member, branch, …). */
  malformed?: Record<string, number>;
}
