/**
 * Guards the README's first command (`npm run demo` → `tsx demo/main.ts`): runs the demo as a real
 * process, with its own etcd and service processes, and checks what it prints and that it cleans up.
 * `--keep` (docs/cli.md's session) is run too: the real CLI against what it leaves running, then Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { assertBuilt, runCli } from './helpers/cli.js';
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
    'runs the A, B → C transfers: commit, rollback, commit after a leader is SIGKILLed; money conserved; everything stopped',
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

describe('npm run demo -- --keep', () => {
  it(
    'keeps etcd and the services running with a parked branch for the CLI, and stops everything on Ctrl-C',
    async () => {
      assertBuilt();
      // tsx itself rather than npx: npm exits 130 on Ctrl-C whatever its child returns, and the
      // demo's own exit code is what is checked here.
      const child = spawn(join(root, 'node_modules', '.bin', 'tsx'), ['demo/main.ts', '--keep'], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
      // Like Ctrl-C in a terminal: SIGINT to npx, tsx, the demo and everything it started.
      const signalGroup = (signal: NodeJS.Signals): void => {
        try {
          process.kill(-child.pid!, signal);
        } catch {
          // already gone
        }
      };
      const output = (): string => `--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
      try {
        const until = Date.now() + 45_000;
        while (!stdout.includes('Ctrl-C stops the services and etcd.') && child.exitCode === null && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
        expect(stdout, output()).toContain('Ctrl-C stops the services and etcd.');
        expect(stdout, output()).toContain('OK: 1: COMMITTED, 2: ROLLED_BACK, 3: COMMITTED after failover; money conserved');
        expect(stdout, output()).toMatch(/attempt 5 failed: ledger C locked for audit → parked as FAILED/);
        expect(stdout, output()).toMatch(/money conserved: 190 on the accounts \+ 10 debited, not yet credited in transfer\.\w+ \(COMMITTING\) = 200/);

        const explore = stdout.slice(stdout.indexOf('== Explore with the CLI'));
        const endpoints = /export TXLOOP_ENDPOINTS=(\S+)/.exec(explore)?.[1];
        const parked = /describe gtx (transfer\.\w+)/.exec(explore)?.[1];
        const trying = /abort (transfer\.\w+)/.exec(explore)?.[1];
        expect(endpoints && parked && trying, output()).toBeTruthy();
        expect(explore, output()).toMatch(/curl -s -X POST http:\/\/127\.0\.0\.1:\d+\/audit\/unlock/);

        const failed = await runCli(['get', 'branches', '--status', 'failed'], { TXLOOP_ENDPOINTS: endpoints! });
        expect(failed.code, `${failed.stdout}${failed.stderr}\n${output()}`).toBe(0);
        const rows = failed.stdout.trim().split('\n');
        expect(rows[0], failed.stdout).toMatch(/^BRANCH\s+OWNER\s+RESOURCE\s+ACTION\s+STATUS\s+ATTEMPTS/);
        expect(rows.slice(1), failed.stdout).toEqual([expect.stringMatching(new RegExp(`^${parked!.replace('.', '\\.')}/\\w+\\s+bank-c\\s+credit\\s+confirm\\s+FAILED\\s+5\\s+<none>\\s+ledger C locked for audit\\s`))]);
        const gtx = await runCli(['get', 'gtx', trying!, '--no-headers'], { TXLOOP_ENDPOINTS: endpoints! });
        expect(gtx.stdout, gtx.stderr).toMatch(new RegExp(`^${trying!.replace('.', '\\.')}\\s+transfer\\s+TCC\\s+TRYING\\s+0/2\\s`));
      } finally {
        signalGroup('SIGINT');
        const kill = setTimeout(() => signalGroup('SIGKILL'), 15_000);
        const exit = await closed;
        clearTimeout(kill);
        // A Ctrl-C is how --keep ends: exit 0 when every check passed.
        expect(exit, output()).toEqual({ code: 0, signal: null });
      }
      expect(stderr, output()).toContain('demo: SIGINT; stopping the services and etcd');
      const pids = [...stdout.matchAll(/\bpid (\d+)/g)].map((m) => Number(m[1]));
      expect(pids.length, output()).toBeGreaterThanOrEqual(5);
      await new Promise((r) => setTimeout(r, 200));
      expect(pids.filter(alive), output()).toEqual([]);
    },
    60_000,
  );
});
