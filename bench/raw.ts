/** The raw phase: etcd's own write rate from the same client, Txns of one compare + one put, never batched. */
import type { Etcd3, ICompare } from 'etcd3';
import { PhaseClock, summarize, type LatencySummary } from './stats.js';
import { runWorkers } from './workers.js';

export interface RawResult {
  ops: number;
  seconds: number;
  perSecond: number;
  latencyMs: LatencySummary;
  samples: number[];
  benchCpu: number;
  etcdCpu: number | undefined;
}

/** `ops` Txns at `concurrency`, each creating its own key `txloop-bench/raw/<tag>/<i>` (512-byte value). */
export async function rawPhase(client: Etcd3, ops: number, concurrency: number, etcdPid: number | undefined, tag: string): Promise<RawResult> {
  const value = Buffer.alloc(512, 'x');
  const latencies: number[] = [];
  const clock = new PhaseClock(etcdPid);
  await runWorkers(ops, concurrency, async (i) => {
    const key = Buffer.from(`txloop-bench/raw/${tag}/${i}`);
    const compare: ICompare[] = [{ key, target: 'Create', result: 'Equal', create_revision: 0 }];
    const t0 = performance.now();
    const res = await client.kv.txn({ compare, success: [{ request_put: { key, value } }], failure: [] });
    latencies.push(performance.now() - t0);
    if (!res.succeeded) throw new Error(`raw Txn on ${key.toString()} did not succeed`);
  });
  const { seconds, benchCpu, etcdCpu } = clock.stop();
  return { ops, seconds, perSecond: ops / seconds, latencyMs: summarize(latencies), samples: latencies, benchCpu, etcdCpu };
}

/** The two halves (before and after the TCC run) as one result, keeping each half's rate. */
export function combineRaw(a: RawResult, b: RawResult): RawResult & { before: number; after: number } {
  if (a === b) return { ...a, before: a.perSecond, after: a.perSecond };
  const seconds = a.seconds + b.seconds;
  const ops = a.ops + b.ops;
  const weighted = (x: number, y: number): number => (x * a.seconds + y * b.seconds) / seconds;
  const etcdCpu = a.etcdCpu === undefined || b.etcdCpu === undefined ? undefined : weighted(a.etcdCpu, b.etcdCpu);
  return {
    ops,
    seconds,
    perSecond: ops / seconds,
    latencyMs: summarize([...a.samples, ...b.samples]),
    samples: [],
    benchCpu: weighted(a.benchCpu, b.benchCpu),
    etcdCpu,
    before: a.perSecond,
    after: b.perSecond,
  };
}
