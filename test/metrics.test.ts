import { describe, expect, it } from 'vitest';
import { Registry, serveMetrics } from '../src/index.js';
import { useEtcd, waitFor } from './helpers/harness.js';

const env = useEtcd();

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : undefined;
}

describe('Prometheus metrics', () => {
  it('exposes client-go workqueue series, phase-2 outcomes, decisions, completions and the leader gauge over loopback HTTP', async () => {
    const { h } = env.fresh('metrics');
    const registry = new Registry();
    let failOnce = true;
    const p = h.service({ app: 'acct', metrics: registry }).resource('r', {
      try: () => undefined,
      confirm: () => {
        if (failOnce) {
          failOnce = false;
          throw new Error('flaky');
        }
      },
      cancel: () => undefined,
    });
    const init = h.service({ app: 'shop', metrics: registry });
    await Promise.all([p.start(), init.start()]);
    const tx = await init.begin({ name: 'metered', timeoutMs: 30_000 });
    await p.tryBranch(tx.context, 'r', {});
    await tx.commit();
    await init.waitForCompletion(tx.xid);

    const endpoint = await serveMetrics(registry);
    try {
      expect(endpoint.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const text = await waitFor(async () => {
        const t = await (await fetch(endpoint.url)).text();
        return sample(t, 'txloop_transactions_completed_total{app="shop",status="COMMITTED"}') === 1 ? t : undefined;
      }, { what: 'completion counted' });
      expect(sample(text, 'txloop_phase2_attempts_total{app="acct",resource="r",action="confirm",result="failed"}')).toBe(1);
      expect(sample(text, 'txloop_phase2_attempts_total{app="acct",resource="r",action="confirm",result="succeeded"}')).toBe(1);
      expect(sample(text, 'txloop_decisions_total{app="shop",outcome="commit",by="commit"}')).toBe(1);
      expect(sample(text, 'txloop_leader{app="acct"}')).toBe(1);
      expect(sample(text, 'txloop_leader{app="shop"}')).toBe(1);
      expect(sample(text, 'workqueue_adds_total{name="acct-branches"}')).toBeGreaterThanOrEqual(2);
      expect(sample(text, 'workqueue_retries_total{name="acct-branches"}')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'workqueue_depth{name="acct-branches"}')).toBe(0);
      expect(text).toContain('workqueue_work_duration_seconds_bucket{le="0.005",name="acct-branches"}');
      expect(text).toContain('txloop_completion_latency_seconds_count{app="shop",status="COMMITTED"} 1');
      expect((await fetch(endpoint.url.replace('/metrics', '/other'))).status).toBe(404);

      await p.close();
      const after = await (await fetch(endpoint.url)).text();
      expect(sample(after, 'txloop_leader{app="acct"}')).toBe(0);
    } finally {
      await endpoint.close();
      await endpoint.close();
    }
  });
});
