/** Small measuring helpers for the benchmark: percentiles, CPU accounting, number formatting. */
import { readFileSync } from 'node:fs';

/** Nearest-rank percentile of unsorted samples (milliseconds); NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export interface LatencySummary {
  p50: number;
  p99: number;
  max: number;
}

export function summarize(samples: readonly number[]): LatencySummary {
  return { p50: round(percentile(samples, 50), 2), p99: round(percentile(samples, 99), 2), max: round(percentile(samples, 100), 2) };
}

export function round(n: number, digits: number): number {
  if (!Number.isFinite(n)) return n;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** CPU seconds used so far by this process (user + system). */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** CPU seconds used so far by another process, from /proc (Linux); undefined where /proc is missing. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name "(...)": state is field 3, utime 14, stime 15 (1-based).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return (utime + stime) / 100; // USER_HZ is 100 on every Linux Node supports
  } catch {
    return undefined;
  }
}

/** Wall and CPU time of one measured phase. */
export class PhaseClock {
  private readonly wall0 = performance.now();
  private readonly self0 = selfCpuSeconds();
  private readonly etcd0: number | undefined;

  constructor(private readonly etcdPid: number | undefined) {
    this.etcd0 = etcdPid === undefined ? undefined : processCpuSeconds(etcdPid);
  }

  stop(): { seconds: number; benchCpu: number; etcdCpu: number | undefined } {
    const seconds = (performance.now() - this.wall0) / 1000;
    // /proc counts in 10 ms ticks: below a few hundred ms a CPU share is noise, so none is reported.
    if (seconds < 0.3) return { seconds, benchCpu: Number.NaN, etcdCpu: undefined };
    const benchCpu = (selfCpuSeconds() - this.self0) / seconds;
    const etcdNow = this.etcdPid === undefined ? undefined : processCpuSeconds(this.etcdPid);
    const etcdCpu = etcdNow === undefined || this.etcd0 === undefined ? undefined : (etcdNow - this.etcd0) / seconds;
    return { seconds, benchCpu, etcdCpu };
  }
}

export function fmt(n: number | undefined, digits = 1): string {
  if (n === undefined || !Number.isFinite(n)) return 'n/a';
  return n.toFixed(digits);
}
