/** The benchmark's command line. */
import { parseArgs } from 'node:util';

export const USAGE = `usage: npm run bench -- [options]
  --mode M           tcc (default): 2-branch TCC transactions; saga: 2-step sagas (one step on each
                     participant); message: 2-phase messages to two consumers (processes layout only)
  --via V            sdk (default), or sidecar: the same 2-branch TCC transactions through three
                     txloop sidecar processes next to the SDK's, on one etcd, and the ratio
  --layout L         processes (default): initiator and two participants each in its own process,
                     Trys over HTTP keep-alive, as deployed; inproc: all three in this process
  --concurrencies L  processes layout: the in-flight levels to run, comma-separated (default 16,64,256)
  --retention-ms MS  processes layout: how long a finished transaction is kept (default 1000, so
                     collection happens inside the measured window)
  --profile          processes layout: write each process's CPU profile (bench-profiles/) and print
                     its self time by package
  --tx N             measured TCC transactions (default 2000)
  --concurrency C    transactions in flight, and raw Txns in flight (default 16)
  --raw-ops N        raw etcd Txns measured (default 10000)
  --warmup N         unmeasured TCC transactions first (default 100)
  --workers N        phase-2 workers per service (ServiceOptions.concurrency; default: the SDK's, 8)
  --pipelined        don't wait for completion before the next begin (phase 2 overlaps, unbounded)
  --also-concurrency N
                     after the main run, --tx more TCC transactions (and --raw-ops/2 raw Txns) at
                     concurrency N, printed side by side (off by default; try 64)
  --scale N          instead of the transaction runs: one participant in its own process with 1k, 10k,
                     … up to N pending branches (bulk-written to a fresh etcd each): RSS, heap, first
                     list, idle CPU, a relist, and the drain rate once every branch is ordered to
                     confirm (see scale.ts)
  --idle-seconds S   scale mode: how long idle CPU is measured (default 10)
  --scale-levels L   scale mode: the pending-branch counts to run, comma-separated, instead of
                     1k, 10k, … up to N
  --heap-snapshot    scale mode: write the participant's heap snapshots after the idle window and
                     after the drain (in its working directory) and print where
  --json             print only the JSON line
  --verbose          pass the services' log lines (level $TXLOOP_LOG_LEVEL, default warn) to stderr
  --help`;

export type Layout = 'processes' | 'inproc';
export const MODES = ['tcc', 'saga', 'message'] as const;
export type BenchMode = (typeof MODES)[number];

export interface Args {
  mode: BenchMode;
  /** --via sidecar: the SDK next to sidecars instead of the usual runs. */
  via: 'sdk' | 'sidecar';
  layout: Layout;
  concurrencies: number[];
  retentionMs: number;
  profile: boolean;
  tx: number;
  concurrency: number;
  rawOps: number;
  warmup: number;
  workers: number | undefined;
  pipelined: boolean;
  alsoConcurrency: number | undefined;
  jsonOnly: boolean;
  verbose: boolean;
  /** --scale N: the scale run up to N pending branches instead of the transaction runs. */
  scale: number | undefined;
  idleSeconds: number;
  /** --scale-levels: the levels to run instead of 1k, 10k, … N. */
  scaleLevels: number[] | undefined;
  heapSnapshot: boolean;
}

/** The arguments of this process; prints the usage and exits on --help, throws on a bad value. */
export function parse(): Args {
  const { values } = parseArgs({
    options: {
      mode: { type: 'string' },
      via: { type: 'string' },
      layout: { type: 'string' },
      concurrencies: { type: 'string' },
      'retention-ms': { type: 'string' },
      profile: { type: 'boolean', default: false },
      tx: { type: 'string' },
      concurrency: { type: 'string' },
      'raw-ops': { type: 'string' },
      warmup: { type: 'string' },
      workers: { type: 'string' },
      pipelined: { type: 'boolean', default: false },
      'also-concurrency': { type: 'string' },
      scale: { type: 'string' },
      'idle-seconds': { type: 'string' },
      'heap-snapshot': { type: 'boolean', default: false },
      'scale-levels': { type: 'string' },
      json: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, fallback: number, min: number): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}\n${USAGE}`);
    return n;
  };
  const layout = values.layout ?? 'processes';
  if (layout !== 'processes' && layout !== 'inproc') throw new Error(`--layout must be processes or inproc, got ${JSON.stringify(layout)}\n${USAGE}`);
  const mode = (values.mode ?? 'tcc') as BenchMode;
  if (!MODES.includes(mode)) throw new Error(`--mode must be ${MODES.join(', ')}, got ${JSON.stringify(values.mode)}\n${USAGE}`);
  if (mode !== 'tcc' && layout !== 'processes') throw new Error(`--mode ${mode} runs in the processes layout only\n${USAGE}`);
  const concurrencies = (values.concurrencies ?? '16,64,256').split(',').map((v) => int('concurrencies', v.trim(), 16, 1));
  const via = values.via ?? 'sdk';
  if (via !== 'sdk' && via !== 'sidecar') throw new Error(`--via must be sdk or sidecar, got ${JSON.stringify(via)}\n${USAGE}`);
  return {
    mode,
    via,
    layout,
    concurrencies,
    retentionMs: int('retention-ms', values['retention-ms'], 1000, 0),
    profile: values.profile ?? false,
    tx: int('tx', values.tx, 2000, 1),
    concurrency: int('concurrency', values.concurrency, 16, 1),
    rawOps: int('raw-ops', values['raw-ops'], 10_000, 1),
    warmup: int('warmup', values.warmup, 100, 0),
    workers: values.workers === undefined ? undefined : int('workers', values.workers, 8, 1),
    pipelined: values.pipelined ?? false,
    alsoConcurrency: values['also-concurrency'] === undefined ? undefined : int('also-concurrency', values['also-concurrency'], 64, 1),
    jsonOnly: values.json ?? false,
    verbose: values.verbose ?? false,
    scale: values.scale === undefined ? undefined : int('scale', values.scale, 100_000, 1),
    idleSeconds: int('idle-seconds', values['idle-seconds'], 10, 1),
    heapSnapshot: values['heap-snapshot'] ?? false,
    scaleLevels: values['scale-levels'] === undefined ? undefined : values['scale-levels'].split(',').map((v) => int('scale-levels', v.trim(), 1000, 1)),
  };
}
