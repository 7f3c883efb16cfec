/**
 * `--profile`: each process of the run writes a V8 CPU profile (`node --cpu-prof`); this reads them
 * back and says where the time went, as self time grouped by package: txloop's own code, each npm
 * package, Node's core (streams, buffers, events, http2), and V8's GC / idle / program entries.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Self time by package, largest first, as shares of the non-idle time. */
  packages: [string, number][];
  /** The heaviest functions by self time. */
  functions: [string, number][];
}

export function packageOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node core';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.includes('/src/')) return 'txloop';
  if (url.includes('/bench/')) return 'bench';
  return 'other';
}

export function summarizeProfile(file: string, top = 8): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const pkgs = new Map<string, number>();
  const fns = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const pkg = packageOf(n.callFrame.url, n.callFrame.functionName);
    if (pkg === '(idle)') continue;
    busy += us;
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us);
    const where = n.callFrame.url ? `${n.callFrame.url.replace(/^.*\/(node_modules|src|bench)\//, '$1/')}:${n.callFrame.lineNumber + 1}` : '';
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${where}`.trim();
    fns.set(fn, (fns.get(fn) ?? 0) + us);
  }
  const share = (m: Map<string, number>): [string, number][] => [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, us]) => [k, busy > 0 ? us / busy : 0]);
  return { file, totalMs: busy / 1000, packages: share(pkgs).slice(0, top), functions: share(fns).slice(0, top) };
}

/** The profiles written into `dir` (one per process that exited cleanly). */
export function profilesIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f));
  } catch {
    return [];
  }
}
