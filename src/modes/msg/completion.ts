/**
 * A message's completion, pure (invariant 8): a SUBMITTED message is DELIVERED once every consumer
 * acknowledged (its deliver succeeded, or a human resolved it as delivered). Nothing else changes a
 * submitted message: a consumer's failure parks its branch and leaves the message SUBMITTED.
 */
import { GlobalStatus, Phase2State } from '../../states.js';
import { withEvent, type GlobalRecord, type MemberRecord } from '../../store/index.js';

/** The delivered global, or undefined while a consumer has not acknowledged. */
export function delivered(global: GlobalRecord, members: readonly MemberRecord[], now: number): GlobalRecord | undefined {
  if (global.status !== GlobalStatus.SUBMITTED || !members.every((m) => m.state === Phase2State.DONE)) return undefined;
  const byHand = members.filter((m) => m.resolution !== undefined).length;
  // Only "delivered" is a resolution of a delivery; any other (a hand-edited record) is against it.
  const heuristic = members.some((m) => m.resolution !== undefined && m.resolution !== 'delivered');
  return withEvent(
    { ...global, status: GlobalStatus.DELIVERED, completedAt: now, ...(heuristic ? { heuristic: true } : {}) },
    'Completed',
    `every consumer acknowledged: DELIVERED${byHand > 0 ? ` (${byHand} resolved by hand)` : ''}`,
    now,
  );
}
