/**
 * Guards the README's first command (`npm run demo` → `tsx demo/main.ts`): runs the demo as a real
 * process, with its own etcd and service processes, and checks what it prints and that it cleans up.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DEMO_TIMEOUT_MS = 90_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function runDemo(): Promise<Run> {
  return new Promise((resolve, reject) => {
    // Own process group, so a timeout can interrupt npx, tsx and the demo together.
    const child = spawn('npx', ['tsx', 'demo/main.ts'], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGINT'); // the demo stops its services and etcd on SIGINT
      setTimeout(() => signalGroup('SIGKILL'), 15_000).unref();
    }, DEMO_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

describe('npm run demo', () => {
  it(
    'runs the seed-000 transfers: commit, rollback, commit after a leader is SIGKILLed; money conserved; everything stopped',
    async () => {
      const run = await runDemo();
      const output = `exit ${run.code ?? run.signal}${run.timedOut ? ' (timed out)' : ''}\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}`;
      expect(run.timedOut, output).toBe(false);
      expect(run.code, output).toBe(0);
      const out = run.stdout;

      // The three scenarios and their outcomes.
      const s1 = out.indexOf('== 1.');
      const s2 = out.indexOf('== 2.');
      const s3 = out.indexOf('== 3.');
      const fin = out.indexOf('== Final check ==');
      expect(s1 >= 0 && s1 < s2 && s2 < s3 && s3 < fin, output).toBe(true);
      expect(out.slice(s1, s2), output).toMatch(/transaction COMMITTED/);
      expect(out.slice(s2, s3), output).toMatch(/REFUSED .*insufficient funds/);
      expect(out.slice(s2, s3), output).toMatch(/transaction ROLLED_BACK/);
      expect(out.slice(s2, s3), output).toMatch(/A frozen before: 0, while the transaction was open: 40, after the rollback: 0/);
      expect(out.slice(s2, s3), output).toMatch(/empty rollback/);
      expect(out.slice(s3, fin), output).toMatch(/SIGKILL → bank-c#\d .* died \(SIGKILL\)/);
      expect(out.slice(s3, fin), output).toMatch(/bank-c#\d became bank-c's leader/);
      expect(out.slice(s3, fin), output).toMatch(/transaction COMMITTED after failover/);

      // Conserved money: final balances A 45, B 50, C 105, total 200, nothing frozen or incoming.
      const final = out.slice(fin);
      expect(final, output).toMatch(/^\s+A\s+45\s+0\s+0\s+45$/m);
      expect(final, output).toMatch(/^\s+B\s+50\s+0\s+0\s+50$/m);
      expect(final, output).toMatch(/^\s+C\s+105\s+0\s+0\s+105$/m);
      expect(final, output).toMatch(/^\s+total\s+200\s+0\s+0\s+200$/m);
      expect(out, output).toContain('OK: 1: COMMITTED, 2: ROLLED_BACK, 3: COMMITTED after failover; money conserved');

      // Cleanup: etcd and every service process the demo printed are gone.
      const pids = [...out.matchAll(/\bpid (\d+)/g)].map((m) => Number(m[1]));
      expect(pids.length, output).toBeGreaterThanOrEqual(5);
      await new Promise((r) => setTimeout(r, 200));
      expect(pids.filter(alive), output).toEqual([]);
    },
    DEMO_TIMEOUT_MS + 30_000,
  );
});
