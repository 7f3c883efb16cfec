/**
 * The participant of `--scale` (scale.ts), in its own process: one TxloopService with a no-op
 * resource over a prefix the bench filled with pending branches. It times its own start (the first
 * list) and its election, watches its event loop's delay (a stall starves the lease's keep-alives),
 * counts the confirms it runs and its leadership changes, and answers the bench's commands:
 *
 * - `memory`: process.memoryUsage() after full GCs (the process runs with --expose-gc), and the
 *   peak RSS so far;
 * - `loop`: the event loop's delay since the last `loop` (max, p99, mean, ms);
 * - `relist`: one relist of the service's informer, timed (the one place this reaches into the
 *   engine's internals: there is no public way to ask for a relist);
 * - `drained`: resolves once `expect` confirms have succeeded.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import { childConfig, leading, send, serveCommands, serviceOf, setUp } from './child.js';

const config = childConfig() as ReturnType<typeof childConfig> & { expect: number };
const child = setUp(config);
const service = serviceOf(child);
service.resource('account', {
  try: async () => ({ frozen: true }),
  confirm: async () => undefined,
  cancel: async () => undefined,
});

let succeeded = 0;
let drainedAt: number | undefined;
const drainWaiters: (() => void)[] = [];
service.on('phase2', (o) => {
  if (o.result !== 'succeeded') return;
  succeeded++;
  if (succeeded >= config.expect && drainedAt === undefined) {
    drainedAt = Date.now();
    for (const w of drainWaiters.splice(0)) w();
  }
});
let termsLost = 0;
service.on('leader', ({ leading: l }) => {
  if (!l) termsLost++;
});

const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const loopFigures = (): { maxMs: number; p99Ms: number; meanMs: number } => {
  const f = { maxMs: loop.max / 1e6, p99Ms: loop.percentile(99) / 1e6, meanMs: loop.mean / 1e6 };
  loop.reset();
  return f;
};

/**
 * Resident bytes of the C heap (glibc's main arena, `[heap]` in /proc/self/smaps: Buffers' memory,
 * gRPC's and Node's native allocations, and what glibc keeps after they are freed) and of the
 * anonymous mappings (V8's heap pages among them, and other threads' arenas); undefined without /proc.
 */
function residentByKind(): { cHeap: number; anonymous: number } | undefined {
  try {
    let cHeap = 0;
    let anonymous = 0;
    let kind: 'heap' | 'anon' | 'other' = 'other';
    for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
      const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (m) kind = m[1] === '[heap]' ? 'heap' : m[1] === '' ? 'anon' : 'other';
      else if (line.startsWith('Rss:')) {
        const kb = Number(line.split(/\s+/)[1]) * 1024;
        if (kind === 'heap') cHeap += kb;
        else if (kind === 'anon') anonymous += kb;
      }
    }
    return { cHeap, anonymous };
  } catch {
    return undefined;
  }
}

const gc = (globalThis as { gc?: () => void }).gc;
const memory = async (): Promise<Record<string, unknown>> => {
  // Twice, a moment apart: V8 frees the memory of dead Buffers on a background thread after a GC.
  gc?.();
  await new Promise((resolve) => setTimeout(resolve, 500));
  gc?.();
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name.replace(/_space$/, ''), [s.space_size, s.space_used_size]]));
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, maxRss: process.resourceUsage().maxRSS * 1024, spaces, ...residentByKind() };
};

const before = await memory();
const t0 = performance.now();
await service.start({ timeoutMs: 600_000 });
const listMs = performance.now() - t0;
await leading(service);
const leadMs = performance.now() - t0 - listMs;
const startLoop = loopFigures();

serveCommands(
  child,
  async (c) => {
    switch (c.cmd) {
      case 'memory':
        return { memory: await memory(), termsLost };
      case 'loop':
        return { loop: loopFigures(), termsLost };
      case 'relist': {
        const informer = (service as unknown as { manager: { informer: { relist(reason: string): Promise<void> } } }).manager.informer;
        loopFigures();
        const r0 = performance.now();
        await informer.relist('bench');
        const ms = performance.now() - r0;
        // The notifications a relist hands on may still be running: let them finish into the loop figures.
        await new Promise((resolve) => setTimeout(resolve, 200));
        return { ms, loop: loopFigures(), termsLost };
      }
      case 'drained':
        if (drainedAt === undefined) await new Promise<void>((resolve) => drainWaiters.push(resolve));
        return { drainedAt, succeeded, loop: loopFigures(), termsLost };
      case 'heapSnapshot':
        gc?.();
        return { file: writeHeapSnapshot() };
      default:
        throw new Error(`unknown command ${c.cmd}`);
    }
  },
  () => service.close(),
);
send({ event: 'ready', pid: process.pid, listMs, leadMs, loop: startLoop, before });
