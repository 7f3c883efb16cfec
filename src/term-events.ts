/**
 * What a service's leadership terms report (TermEvents), turned into its counters, its metrics and
 * its events. A finished global is reported once: a saga or a message that finished by another's
 * write is seen by more than one reconcile of its initiator.
 */
import type { EventEmitter } from 'node:events';
import type { TxloopMetrics } from './metrics.js';
import type { ServiceCounters, TermEvents } from './runtime/index.js';
import type { ServiceEvents } from './service.js';

/** Finished globals remembered (until collected) so each is reported once; the oldest go first past this. */
const REMEMBERED = 100_000;

export function termEvents(o: { app: string; counters: ServiceCounters; metrics: TxloopMetrics | undefined; emit: Pick<EventEmitter<ServiceEvents>, 'emit'>['emit'] }): TermEvents {
  const reported = new Set<string>();
  return {
    phase2: (outcome) => {
      o.counters.attempted(outcome);
      o.metrics?.recordPhase2(o.app, outcome);
      o.emit('phase2', outcome);
    },
    decided: (g) => o.metrics?.recordDecision(o.app, g),
    completed: (g) => {
      if (reported.has(g.xid)) return;
      if (reported.size >= REMEMBERED) reported.delete(reported.values().next().value!);
      reported.add(g.xid);
      o.counters.completed();
      o.metrics?.recordCompletion(o.app, g);
      o.emit('completed', { xid: g.xid, status: g.status, heuristic: g.heuristic ?? false });
    },
    collected: (xid) => {
      reported.delete(xid);
      o.counters.collected();
      o.emit('collected', { xid });
    },
  };
}
