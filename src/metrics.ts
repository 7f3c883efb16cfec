/**
 * Prometheus metrics. Workqueue series use client-go's names (`workqueue_depth`,
 * `workqueue_adds_total`, `workqueue_retries_total`, `workqueue_queue_duration_seconds`,
 * `workqueue_work_duration_seconds`, …) so existing Kubernetes dashboards and alerts apply;
 * txloop's own series are prefixed `txloop_`.
 *
 * Several services in one process may share a registry: every series carries an `app` label
 * (workqueues a `name` label) and the collectors are registered once per registry.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Workqueue, WorkqueueObserver } from './runtime/index.js';
import type { Phase2Outcome } from './stats.js';
import type { GlobalRecord } from './store/index.js';

const durationBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class TxloopMetrics {
  readonly registry: Registry;
  private readonly queues = new Set<Workqueue>();
  /** Each service's malformed-record tally, summed per app (replicas of one app may share a process). */
  private readonly malformedSources = new Map<{ counts(): Record<string, number> }, string>();
  readonly workqueueAdds: Counter<'name'>;
  readonly workqueueRetries: Counter<'name'>;
  readonly workqueueQueueDuration: Histogram<'name'>;
  readonly workqueueWorkDuration: Histogram<'name'>;
  readonly phase2Attempts: Counter<'app' | 'resource' | 'action' | 'result'>;
  readonly phase2Duration: Histogram<'app' | 'action'>;
  readonly decisions: Counter<'app' | 'outcome' | 'by'>;
  readonly decisionLatency: Histogram<'app' | 'outcome'>;
  readonly completions: Counter<'app' | 'status'>;
  readonly completionLatency: Histogram<'app' | 'status'>;
  readonly leader: Gauge<'app'>;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const queues = this.queues;
    const r = [registry];
    new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of the workqueue (keys ready to be processed).',
      labelNames: ['name'],
      registers: r,
      collect() {
        this.reset();
        for (const q of queues) this.set({ name: q.name }, q.stats().depth);
      },
    });
    new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help: 'Seconds of work in progress that has not been observed by work_duration yet.',
      labelNames: ['name'],
      registers: r,
      collect() {
        this.reset();
        for (const q of queues) this.set({ name: q.name }, q.stats().unfinishedWorkMs / 1000);
      },
    });
    new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How long the longest-running key of the workqueue has been processing.',
      labelNames: ['name'],
      registers: r,
      collect() {
        this.reset();
        for (const q of queues) this.set({ name: q.name }, q.stats().longestRunningProcessorMs / 1000);
      },
    });
    const malformedSources = this.malformedSources;
    new Gauge({
      name: 'txloop_malformed_records',
      help: 'Records under the service prefix that the engine cannot use (logged once each), by key prefix.',
      labelNames: ['app', 'kind'],
      registers: r,
      collect() {
        this.reset();
        const sums = new Map<string, Record<string, number>>();
        for (const [source, app] of malformedSources) {
          const sum = sums.get(app) ?? {};
          for (const [kind, n] of Object.entries(source.counts())) sum[kind] = (sum[kind] ?? 0) + n;
          sums.set(app, sum);
        }
        for (const [app, sum] of sums) for (const [kind, n] of Object.entries(sum)) this.set({ app, kind }, n);
      },
    });
    this.workqueueAdds = new Counter({ name: 'workqueue_adds_total', help: 'Total adds handled by the workqueue.', labelNames: ['name'], registers: r });
    this.workqueueRetries = new Counter({ name: 'workqueue_retries_total', help: 'Total retries (delayed adds) handled by the workqueue.', labelNames: ['name'], registers: r });
    this.workqueueQueueDuration = new Histogram({ name: 'workqueue_queue_duration_seconds', help: 'Seconds a key stays in the workqueue before it is processed.', labelNames: ['name'], buckets: durationBuckets, registers: r });
    this.workqueueWorkDuration = new Histogram({ name: 'workqueue_work_duration_seconds', help: 'Seconds processing a key takes.', labelNames: ['name'], buckets: durationBuckets, registers: r });
    this.phase2Attempts = new Counter({ name: 'txloop_phase2_attempts_total', help: 'Confirm/cancel attempts by outcome (succeeded, failed, parked).', labelNames: ['app', 'resource', 'action', 'result'], registers: r });
    this.phase2Duration = new Histogram({ name: 'txloop_phase2_duration_seconds', help: 'Seconds a confirm/cancel handler ran.', labelNames: ['app', 'action'], buckets: durationBuckets, registers: r });
    this.decisions = new Counter({ name: 'txloop_decisions_total', help: 'Global transactions decided by this process, by outcome and by whom (commit, rollback, deadline, participant, operator).', labelNames: ['app', 'outcome', 'by'], registers: r });
    this.decisionLatency = new Histogram({ name: 'txloop_decision_latency_seconds', help: 'Seconds from begin to the decision, for decisions made by this process.', labelNames: ['app', 'outcome'], buckets: durationBuckets, registers: r });
    this.completions = new Counter({ name: 'txloop_transactions_completed_total', help: 'Global transactions completed (every branch done) by this leader.', labelNames: ['app', 'status'], registers: r });
    this.completionLatency = new Histogram({ name: 'txloop_completion_latency_seconds', help: 'Seconds from the decision to completion (all branches done).', labelNames: ['app', 'status'], buckets: durationBuckets, registers: r });
    this.leader = new Gauge({ name: 'txloop_leader', help: '1 while this replica leads its service, else 0.', labelNames: ['app'], registers: r });
  }

  /** Hooks a workqueue's events into the client-go series; pass the result as its `observer`. */
  observer(): WorkqueueObserver {
    return {
      onAdd: (name) => this.workqueueAdds.inc({ name }),
      onRetry: (name) => this.workqueueRetries.inc({ name }),
      onGet: (name, _key, queuedMs) => this.workqueueQueueDuration.observe({ name }, queuedMs / 1000),
      onDone: (name, _key, workMs) => this.workqueueWorkDuration.observe({ name }, workMs / 1000),
    };
  }

  /** Reports depth and in-flight gauges for `queue` until untrack(). */
  track(queue: Workqueue): void {
    this.queues.add(queue);
  }

  untrack(queue: Workqueue): void {
    this.queues.delete(queue);
  }

  /** A phase-2 attempt finished. */
  recordPhase2(app: string, o: Phase2Outcome): void {
    this.phase2Attempts.inc({ app, resource: o.resource, action: o.action, result: o.result });
    if (o.durationMs > 0) this.phase2Duration.observe({ app, action: o.action }, o.durationMs / 1000);
  }

  /** This process decided `g`. */
  recordDecision(app: string, g: GlobalRecord): void {
    const d = g.decision;
    if (!d) return;
    const by = d.by.startsWith('participant:') ? 'participant' : d.by.startsWith('operator') ? 'operator' : d.by;
    this.decisions.inc({ app, outcome: d.outcome, by });
    this.decisionLatency.observe({ app, outcome: d.outcome }, Math.max(0, d.at - g.createdAt) / 1000);
  }

  /** This leader completed `g`. */
  recordCompletion(app: string, g: GlobalRecord): void {
    this.completions.inc({ app, status: g.status });
    if (g.decision && g.completedAt) this.completionLatency.observe({ app, status: g.status }, Math.max(0, g.completedAt - g.decision.at) / 1000);
  }

  /** Reports a service's malformed-record counts (by key prefix) in `txloop_malformed_records` until untrackMalformed(). */
  trackMalformed(app: string, source: { counts(): Record<string, number> }): void {
    this.malformedSources.set(source, app);
  }

  untrackMalformed(source: { counts(): Record<string, number> }): void {
    this.malformedSources.delete(source);
  }
}

const shared = new WeakMap<Registry, TxloopMetrics>();

/** The metrics of a registry, created on first use, so services sharing a registry share collectors. */
export function metricsFor(registry: Registry): TxloopMetrics {
  let m = shared.get(registry);
  if (!m) shared.set(registry, (m = new TxloopMetrics(registry)));
  return m;
}

export interface MetricsServerOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** Loopback unless you choose otherwise. @default '127.0.0.1' */
  host?: string;
}

/** Serves `GET /metrics` in the Prometheus text format. Resolves with the bound server and URL. */
export async function serveMetrics(registry: Registry, options: MetricsServerOptions = {}): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`),
    );
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    server,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`,
    close: () => (closing ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}

export { Registry };
