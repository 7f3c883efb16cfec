/** Spawns fixture services as real processes and follows their JSON-line reports. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { waitFor } from './harness.js';

export interface Replica {
  readonly identity: string;
  readonly child: ChildProcess;
  readonly events: Record<string, unknown>[];
  readonly stderr: string[];
  exited(): boolean;
  kill(signal: NodeJS.Signals): void;
  waitForEvent(match: (e: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export function spawnReplica(fixture: string, identity: string, env: Record<string, string>): Replica {
  const file = fileURLToPath(new URL(`../fixtures/${fixture}`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    env: { ...process.env, IDENTITY: identity, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let exited = false;
  child.on('exit', () => {
    exited = true;
    running.delete(child);
  });
  const events: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      stderr.push(line);
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  return {
    identity,
    child,
    events,
    stderr,
    exited: () => exited,
    kill: (signal) => {
      child.kill(signal);
    },
    waitForEvent: (match, what, timeoutMs = 20_000) =>
      waitFor(() => events.find(match), { what: `${identity}: ${what} (stderr: ${stderr.slice(-5).join(' | ')})`, timeoutMs }),
  };
}

export async function stopReplica(r: Replica): Promise<void> {
  if (r.exited()) return;
  r.child.kill('SIGCONT');
  r.child.kill('SIGKILL');
  await waitFor(() => r.exited(), { what: `${r.identity} exit`, timeoutMs: 15_000 });
}
