/**
 * The mirror's Prometheus series: etcd changes seen and apiserver writes made (their ratio is the
 * write cost docs/kubernetes.md reports), repairs by outcome, reconcile failures, the objects held,
 * whether this replica leads; its workqueue under client-go's names (through TxloopMetrics).
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { TxloopMetrics } from '../metrics.js';
import type { KindName, WriteVerb } from './api.js';

export class MirrorMetrics {
  readonly registry = new Registry();
  readonly base = new TxloopMetrics(this.registry);
  readonly etcdChanges = new Counter({ name: 'txloop_mirror_etcd_changes_total', help: 'Key changes the mirror saw in the txloop namespace in etcd.', registers: [this.registry] });
  readonly writes = new Counter<'kind' | 'verb'>({ name: 'txloop_mirror_apiserver_writes_total', help: 'Writes the mirror made to the Kubernetes API (apply, status, patch, delete).', labelNames: ['kind', 'verb'], registers: [this.registry] });
  readonly repairs = new Counter<'action' | 'result'>({ name: 'txloop_mirror_repairs_total', help: 'Declarative repairs run (result: repaired, refused, invalid).', labelNames: ['action', 'result'], registers: [this.registry] });
  readonly reconcileErrors = new Counter<'kind'>({ name: 'txloop_mirror_reconcile_errors_total', help: 'Reconciles that failed and were retried with backoff.', labelNames: ['kind'], registers: [this.registry] });
  readonly resyncs = new Counter({ name: 'txloop_mirror_resyncs_total', help: 'Full relists of the apiserver side, each followed by a look at every object.', registers: [this.registry] });
  readonly leading = new Gauge({ name: 'txloop_mirror_leader', help: '1 while this mirror replica leads (writes), else 0.', registers: [this.registry] });
  readonly objects: Gauge<'kind'>;

  constructor(count: (kind: KindName) => number) {
    this.objects = new Gauge<'kind'>({
      name: 'txloop_mirror_objects',
      help: 'txloop objects in the Kubernetes namespace, as the mirror sees them.',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        for (const kind of ['transaction', 'participant'] as const) this.set({ kind }, count(kind));
      },
    });
  }

  wrote(kind: KindName, verb: WriteVerb): void {
    this.writes.inc({ kind, verb });
  }
}
