/**
 * Guards the README's first command (`npm run demo`, package.json's demo script): runs the demo as a
 * real process, with its own etcd and service processes, and checks what it prints and that it cleans
 * up. `--keep` (docs/cli.md's session) is run too: the real CLI against what it leaves running, then
 * Ctrl-C — in the usual order, and with the signal reaching the services and etcd before the demo
 * while the pipe it writes to is gone (`npm run demo -- --keep | tee log`). `-- saga`, `-- message` and
 * `-- go` (bank-b a Go program beside two sidecars; one line and exit 0 without Go on PATH) too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { assertBuilt, runCli } from './helpers/cli.js';
import { untilStopped, waitFor, within } from './helpers/wait.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startEtcd } from '../src/testing.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DEMO_TIMEOUT_MS = 90_000;
const CTRL_C_LINE = 'Ctrl-C stops the services and etcd.';

/**
 * package.json's demo script, run with this Node and without npm (npm exits 130 on Ctrl-C whatever
 * its child returns; the demo's own exit code is what is checked here).
 */
function demoCommand(args: string[] = []): [string, string[]] {
  const script = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.demo!;
  const [bin, ...rest] = script.split(' ');
  // tsx's CLI runs the script in a child and relays a Ctrl-C to it, SIGKILLing it (and exiting 130)
  // when the child does not confirm within about 60 ms, as a loaded machine's demo does not: no
  // cleanup, etcd's data dir left behind. `node --import tsx` has no such middleman.
  expect(bin, `the demo script must run node itself: ${script}`).toBe('node');
  return [process.execPath, [...rest, ...args]];
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function runDemo(demoArgs: string[] = [], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Run> {
  const timeoutMs = options.timeoutMs ?? DEMO_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    // Own process group, so a timeout can interrupt the demo and everything it started together.
    const [bin, args] = demoCommand(demoArgs);
    const child = spawn(bin, args, { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
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
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** An exited process its parent has not reaped yet (a zombie: the parent is stopped) counts as dead. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/** What a service process wrote to its log (stderr) that is not a pino JSON line: crashes, stacks. */
function serviceCrashes(): string[] {
  const logs = join(root, '.txloop-demo', 'logs');
  return readdirSync(logs)
    .filter((f) => f.startsWith('bank-'))
    .flatMap((f) => readFileSync(join(logs, f), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('{')).map((l) => `${f}: ${l}`));
}

interface KeepRun {
  child: ChildProcess;
  stdout: () => string;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  signalGroup: (signal: NodeJS.Signals) => void;
  /** etcd and every service process, as printed. */
  pids: number[];
  dataDir: string;
  /** Ctrl-C, then waits for the demo's exit (SIGKILL to the group if it takes longer than 20 s). */
  stop: () => Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `--keep` and returns once it waits for Ctrl-C (it prints CTRL_C_LINE only after its handler treats a signal as the end). */
async function startKeep(): Promise<KeepRun> {
  const [bin, args] = demoCommand(['--keep']);
  // Its own process group, like a terminal's foreground job: the group gets the Ctrl-C.
  const child = spawn(bin, args, { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  // 'exit', not 'close': a test may close its ends of the demo's pipes before the demo exits.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  const output = (): string => `--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
  const stop = async (): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    signalGroup('SIGCONT');
    signalGroup('SIGINT');
    const kill = setTimeout(() => signalGroup('SIGKILL'), 20_000);
    try {
      return await exited;
    } finally {
      clearTimeout(kill);
    }
  };
  try {
    await waitFor(() => stdout.includes(CTRL_C_LINE) || child.exitCode !== null || child.signalCode !== null, { what: `"${CTRL_C_LINE}"`, timeoutMs: 60_000 });
    expect(stdout, output()).toContain(CTRL_C_LINE);
  } catch (err) {
    await stop();
    throw err;
  }
  const pids = [...stdout.matchAll(/\bpid (\d+)/g)].map((m) => Number(m[1]));
  const dataDir = /data in (\S+)\)/.exec(stdout)?.[1] ?? '';
  return { child, stdout: () => stdout, output, exited, signalGroup, pids, dataDir, stop };
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
      // A wait for them to be gone (as after --keep), not 200 ms that a loaded machine may not honour.
      await waitFor(() => pids.filter(alive).length === 0, { what: `demo processes ${pids.join(', ')} to be gone`, timeoutMs: 5_000 }).catch(() => undefined);
      expect(pids.filter(alive), output).toEqual([]);
    },
    DEMO_TIMEOUT_MS + 30_000,
  );
});

describe('npm run demo -- saga | message', () => {
  const gone = async (out: string, output: string): Promise<void> => {
    const pids = [...out.matchAll(/\bpid (\d+)/g)].map((m) => Number(m[1]));
    expect(pids.length, output).toBeGreaterThanOrEqual(3);
    await waitFor(() => pids.filter(alive).length === 0, { what: `demo processes ${pids.join(', ')} to be gone`, timeoutMs: 5_000 }).catch(() => undefined);
    expect(pids.filter(alive), output).toEqual([]);
  };

  it(
    'saga: payment declines for good, the compensations run in reverse (payment empty, inventory, order), printed as they happen; everything stopped',
    async () => {
      const run = await runDemo(['saga']);
      const output = `exit ${run.code ?? run.signal}${run.timedOut ? ' (timed out)' : ''}\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}`;
      expect(run.code, output).toBe(0);
      const out = run.stdout;
      const at = (re: RegExp): number => out.search(re);
      expect(at(/payment\s+compensated\s+\(empty/), output).toBeGreaterThan(at(/payment\s+action/));
      expect(at(/inventory compensated/), output).toBeGreaterThan(at(/payment\s+compensated/));
      expect(at(/order\s+compensated/), output).toBeGreaterThan(at(/inventory compensated/));
      expect(out, output).toMatch(/saga COMPENSATED \(decided by participant:payment: .*card declined/);
      expect(out, output).toContain('saga demo passed');
      await gone(out, output);
    },
    DEMO_TIMEOUT_MS + 30_000,
  );

  it(
    'message: delivered to the consumer that was down once it is back; the check-back delivers the committed prepare and discards the open one of a killed producer; everything stopped',
    async () => {
      const run = await runDemo(['message']);
      const output = `exit ${run.code ?? run.signal}${run.timedOut ? ' (timed out)' : ''}\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}`;
      expect(run.code, output).toBe(0);
      const out = run.stdout;
      expect(out, output).toMatch(/while the mailer is down: SUBMITTED; ledger DELIVERED, mailer DELIVERING/);
      expect(out.search(/mailer\s+got order 42/), output).toBeGreaterThan(out.search(/mailer\s+pid \d+ started/));
      expect(out, output).toMatch(/check-back for order 43: committed/);
      expect(out, output).toMatch(/check-back for order 44: rolled-back/);
      expect(out, output).toMatch(/order 43: DELIVERED; order 44: DISCARDED/);
      expect(out, output).not.toMatch(/got order 44/);
      expect(out, output).toContain('message demo passed');
      await gone(out, output);
    },
    DEMO_TIMEOUT_MS + 30_000,
  );
});

describe('npm run demo -- go', () => {
  const hasGo = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8' }).status === 0;
  // A cold `go build` (the standard library compiled first) comes before the demo's own watchdog.
  const GO_BUILD_MS = 180_000;
  const SKIPPED = 'demo -- go needs Go (1.19+): apt-get install golang, or https://go.dev/dl; skipped';

  it(
    "bank-b in Go beside two sidecars: commit, its refused Try rolls back with an empty cancel, its leader sidecar SIGKILLed in the middle of the held Go confirm and the standby confirms again; money conserved; everything stopped",
    async () => {
      const run = await runDemo(['go'], { timeoutMs: GO_BUILD_MS + DEMO_TIMEOUT_MS });
      const output = `exit ${run.code ?? run.signal}${run.timedOut ? ' (timed out)' : ''}\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}`;
      expect(run.timedOut, output).toBe(false);
      expect(run.code, output).toBe(0);
      const out = run.stdout;
      if (!hasGo) {
        // No Go here: the one line, and nothing started.
        expect(out.trim(), output).toBe(SKIPPED);
        return;
      }
      const s1 = out.indexOf('== 1.');
      const s2 = out.indexOf('== 2.');
      const s3 = out.indexOf('== 3.');
      const fin = out.indexOf('== Final check ==');
      expect(s1 >= 0 && s1 < s2 && s2 < s3 && s3 < fin, output).toBe(true);
      expect(out.slice(0, s1), output).toMatch(/leaders \(etcd lease, 2s TTL\): .*bank-b → bank-b\/sidecar#1/);
      expect(out.slice(s1, s2), output).toMatch(/Try debit\s+B −50 → C\s+via go-bank: ok, branch \w+/);
      expect(out.slice(s1, s2), output).toMatch(/go-bank\s+confirm B −50 applied \(branch \w+, attempt 1, fencing token \d+\)/);
      expect(out.slice(s1, s2), output).toMatch(/transaction COMMITTED/);
      expect(out.slice(s2, s3), output).toMatch(/Try debit\s+B −60 → C\s+via go-bank: REFUSED — go-bank answered 409: .*insufficient funds: account B has 50 available/);
      expect(out.slice(s2, s3), output).toMatch(/go-bank\s+cancel: empty rollback, its Try \(FAILED\) froze nothing/);
      expect(out.slice(s2, s3), output).toMatch(/transaction ROLLED_BACK/);
      expect(out.slice(s2, s3), output).toMatch(/A frozen before: 0, while the transaction was open: 40, after the rollback: 0/);
      expect(out.slice(s2, s3), output).toMatch(/bank-b\s+debit\s+B −60 → C\s+FAILED\s+cancel DONE after 1 attempt \(empty rollback\)/);

      const part3 = out.slice(s3, fin);
      const held = /go-bank\s+confirm attempt (\d+) of branch (\w+) started \(fencing token (\d+), called by bank-b\/sidecar#1\): held/.exec(part3);
      expect(held, output).not.toBeNull();
      const at = (re: RegExp): number => part3.search(re);
      expect(at(/SIGKILL → bank-b\/sidecar#1 \(pid \d+\) died \(SIGKILL\)/), output).toBeGreaterThan(at(/confirm attempt \d+ of branch \w+ started/));
      expect(at(/go-bank\s+confirm attempt \d+ abandoned: its caller hung up/), output).toBeGreaterThan(at(/SIGKILL → /));
      expect(at(/bank-b\/sidecar#2 became bank-b's leader/), output).toBeGreaterThan(at(/SIGKILL → /));
      const applied = new RegExp(`go-bank\\s+confirm B −25 applied \\(branch ${held![2]}, attempt (\\d+), fencing token (\\d+)\\)`).exec(part3);
      expect(applied, output).not.toBeNull();
      expect(Number(applied![1]), output).toBeGreaterThan(Number(held![1]));
      expect(BigInt(applied![2]!) > BigInt(held![3]!), output).toBe(true);
      expect(part3.match(/confirm B −25 applied/g), output).toHaveLength(1);
      expect(part3, output).toMatch(/transaction COMMITTED after failover/);

      // Money conserved across etcd (A, C) and the Go bank (B): A 70, B 25, C 105.
      const final = out.slice(fin);
      expect(final, output).toMatch(/^\s+A\s+70\s+0\s+0\s+70$/m);
      expect(final, output).toMatch(/^\s+B\s+25\s+0\s+0\s+25$/m);
      expect(final, output).toMatch(/^\s+C\s+105\s+0\s+0\s+105$/m);
      expect(final, output).toMatch(/^\s+total\s+200\s+0\s+0\s+200$/m);
      expect(out, output).toContain("OK: 1: COMMITTED, 2: ROLLED_BACK, 3: COMMITTED after failover of the Go bank's sidecar; money conserved");

      // etcd, the Node banks, the Go bank and both sidecars are gone.
      const pids = [...out.matchAll(/\bpid (\d+)/g)].map((m) => Number(m[1]));
      expect(new Set(pids).size, output).toBeGreaterThanOrEqual(6);
      await waitFor(() => pids.filter(alive).length === 0, { what: `demo processes ${pids.join(', ')} to be gone`, timeoutMs: 5_000 }).catch(() => undefined);
      expect(pids.filter(alive), output).toEqual([]);
    },
    GO_BUILD_MS + DEMO_TIMEOUT_MS + 30_000,
  );

  it('without Go on PATH: one line saying what it needs, exit 0, nothing started', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'txloop-no-go-'));
    try {
      const run = await runDemo(['go'], { env: { PATH: empty } });
      const output = `exit ${run.code ?? run.signal}\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}`;
      expect(run.code, output).toBe(0);
      expect(run.stdout, output).toBe(`${SKIPPED}\n`);
      expect(run.stderr, output).toBe('');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('npm run demo -- --keep', () => {
  it(
    'keeps etcd and the services running with a parked branch for the CLI, and stops everything on Ctrl-C',
    async () => {
      assertBuilt();
      const run = await startKeep();
      const { output } = run;
      const stdout = run.stdout();
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      try {
        expect(stdout, output()).toContain('OK: 1: COMMITTED, 2: ROLLED_BACK, 3: COMMITTED after failover; money conserved');
        expect(stdout, output()).toMatch(/attempt 5 failed: ledger C locked for audit → parked, waiting for a human/);
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
        expect(rows.slice(1), failed.stdout).toEqual([expect.stringMatching(new RegExp(`^${parked!.replace('.', '\\.')}/\\w+\\s+bank-c\\s+credit\\s+confirm\\s+PARKED\\s+5\\s+<none>\\s+ledger C locked for audit\\s`))]);
        const gtx = await runCli(['get', 'gtx', trying!, '--no-headers'], { TXLOOP_ENDPOINTS: endpoints! });
        expect(gtx.stdout, gtx.stderr).toMatch(new RegExp(`^${trying!.replace('.', '\\.')}\\s+transfer\\s+TCC\\s+TRYING\\s+0/2\\s`));
      } finally {
        exit = await run.stop();
      }
      // A Ctrl-C is how --keep ends: exit 0 when every check passed.
      expect(exit, output()).toEqual({ code: 0, signal: null });
      expect(output(), output()).toContain('demo: SIGINT; stopping the services and etcd');
      expect(run.pids.length, output()).toBeGreaterThanOrEqual(5);
      await waitFor(() => run.pids.filter(alive).length === 0, { what: `demo processes ${run.pids.join(', ')} to be gone`, timeoutMs: 5_000 });
      expect(run.dataDir, output()).toMatch(/^\//);
      expect(existsSync(run.dataDir), `${run.dataDir} left behind\n${output()}`).toBe(false);
      expect(serviceCrashes(), output()).toEqual([]);
    },
    90_000,
  );

  it(
    'Ctrl-C on `--keep | tee`: the pipe reader dies and the services and etcd get the signal before a busy demo does; no EPIPE, exit 0, everything stopped, data dir removed',
    async () => {
      const run = await startKeep();
      const { output } = run;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      try {
        // A demo starved of CPU: it sees the Ctrl-C last. Meanwhile tee, which died of the same
        // SIGINT, no longer reads the demo's output (both ends gone, as with `2>&1 | tee`).
        process.kill(run.child.pid!, 'SIGSTOP');
        // kill() returns before the demo has stopped; a Ctrl-C meanwhile would reach a running demo.
        await untilStopped(run.child.pid!, 'the demo');
        run.child.stdout!.destroy();
        run.child.stderr!.destroy();
        run.signalGroup('SIGINT'); // pending for the stopped demo until SIGCONT
        await waitFor(() => run.pids.filter(alive).length === 0, { what: `services and etcd (${run.pids.join(', ')}) to exit on their own SIGINT`, timeoutMs: 15_000 });
        expect(existsSync(run.dataDir), 'etcd exited by itself; its data dir is still there for the demo to remove').toBe(true);
        process.kill(run.child.pid!, 'SIGCONT');
        exit = await within(run.exited, 'the demo to exit after SIGCONT', 20_000);
      } finally {
        if (!exit) exit = await run.stop();
      }
      // Its checks passed and the Ctrl-C was the normal end; a vanished reader of its output is no failure.
      expect(exit, output()).toEqual({ code: 0, signal: null });
      await waitFor(() => !existsSync(run.dataDir), { what: `${run.dataDir} to be removed`, timeoutMs: 5_000 });
      expect(serviceCrashes(), output()).toEqual([]);
    },
    90_000,
  );
});

describe('demo/account-service.ts', () => {
  it('exits cleanly, without an EPIPE crash, when its parent stopped reading its events', async () => {
    const etcd = await startEtcd();
    const child = spawn(process.execPath, ['--import', 'tsx', 'demo/account-service.ts', '--app', 'bank-epipe', '--account', 'E', '--endpoints', etcd.endpoints.join(',')], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    try {
      const events: Record<string, unknown>[] = [];
      createInterface({ input: child.stdout! }).on('line', (l) => events.push(JSON.parse(l) as Record<string, unknown>));
      await waitFor(() => events.some((e) => e.event === 'ready') && events.some((e) => e.event === 'leader' && e.leading === true), { what: `bank-epipe ready and leading (stderr: ${stderr})`, timeoutMs: 20_000 });
      // Its parent gone (as after a crash of the demo): the 'leader' event it emits while resigning
      // on SIGTERM goes to a pipe nobody reads.
      child.stdout!.destroy();
      child.kill('SIGTERM');
      const exit = await within(exited, 'bank-epipe to exit after SIGTERM', 10_000);
      expect(exit, stderr).toEqual({ code: 0, signal: null });
      expect(stderr).not.toMatch(/EPIPE|Error/);
    } finally {
      child.kill('SIGKILL');
      await etcd.stop();
    }
  });
});
