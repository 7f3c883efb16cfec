/**
 * `npm run demo -- go`'s processes: the Go bank (demo/go-bank, built here with the Go toolchain
 * into .cache/go-bank/, gitignored, and rebuilt only when its sources or the client's change) and
 * the `txloop sidecar` processes beside it (dist/cli/main.js).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { JsonLineProcess } from '../tools/processes.js';
import type { Account } from './accounts.js';
import { logDir, root } from './cluster.js';
import { onCleanup } from './lifecycle.js';
import type { TryTarget } from './transfers.js';

/** What the demo says, and all it does, when there is no Go toolchain. */
export const GO_MISSING = 'demo -- go needs Go (1.19+): apt-get install golang, or https://go.dev/dl; skipped';

const SOURCES = [join(root, 'demo', 'go-bank'), join(root, 'clients', 'go')];
const CACHE = join(root, '.cache', 'go-bank');
const BINARY = join(CACHE, 'go-bank');
const STAMP = join(CACHE, 'stamp');
/** A cold build (the standard library compiled first) on a loaded 2-core machine stays well under this. */
export const BUILD_LIMIT_MS = 180_000;
export const CLI = join(root, 'dist', 'cli', 'main.js');

/** Runs a command to its end; rejects with its output when it fails or outlives `timeoutMs`. Stopped at cleanup. */
function run(cmd: string, args: string[], options: { cwd?: string; timeoutMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd ?? root, env: { ...process.env, CGO_ENABLED: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    onCleanup(`${cmd} ${args[0] ?? ''} (pid ${child.pid})`, async () => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out.trim());
      else reject(new Error(`${cmd} ${args.join(' ')} ${timedOut ? `took over ${options.timeoutMs / 1000}s` : `failed (${signal ?? `exit ${code}`})`}:\n${out.trim()}`));
    });
  });
}

/** `go version`'s version (go1.22.2), or undefined when there is no `go` on PATH. */
export async function goVersion(): Promise<string | undefined> {
  try {
    const out = await run('go', ['env', 'GOVERSION'], { timeoutMs: 30_000 });
    return out.split('\n').pop() || 'go';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The hash of everything the binary is built from: the Go files and go.mod of both modules, and the toolchain. */
function sourceStamp(version: string): string {
  const hash = createHash('sha256').update(`${version}\n`);
  for (const dir of SOURCES) {
    for (const f of readdirSync(dir).sort()) {
      if (f !== 'go.mod' && f !== 'go.sum' && !(f.endsWith('.go') && !f.endsWith('_test.go'))) continue;
      hash.update(`${relative(root, join(dir, f))}\n`).update(readFileSync(join(dir, f)));
    }
  }
  return hash.digest('hex');
}

/** The Go bank's binary, built first when it is missing or stale. */
export async function buildGoBank(version: string): Promise<{ binary: string; builtInMs?: number }> {
  const stamp = sourceStamp(version);
  if (existsSync(BINARY) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === stamp) return { binary: BINARY };
  mkdirSync(CACHE, { recursive: true });
  rmSync(STAMP, { force: true });
  const started = Date.now();
  await run('go', ['build', '-buildvcs=false', '-o', BINARY, '.'], { cwd: SOURCES[0]!, timeoutMs: BUILD_LIMIT_MS });
  writeFileSync(STAMP, stamp);
  return { binary: BINARY, builtInMs: Date.now() - started };
}

/** What demo/go-bank reports on stdout, one JSON object a line. */
export interface GoBankEvent {
  event: 'ready' | 'sidecar' | 'try' | 'phase2-start' | 'phase2';
  app: string;
  pid: number;
  at: number;
  port?: number;
  url?: string;
  xid?: string;
  branchId?: string;
  resource?: string;
  action?: string;
  attempt?: number;
  fencingToken?: string;
  tryState?: string;
  holdMs?: number;
  /** phase2: applied, released, empty (rollback), repeat (idempotent), abandoned (its caller hung up), superseded, failed. */
  result?: string;
  error?: string;
  branch?: { kind: string; amount: number; phase: string; xid: string; empty?: boolean };
  account?: { name: string; balance: number; frozen: number; incoming: number };
  [k: string]: unknown;
}

/** The Go bank (demo/go-bank): bank-b's one account, served beside its sidecar. */
export class GoBank extends JsonLineProcess<GoBankEvent> implements TryTarget {
  port: number | undefined;

  constructor(
    binary: string,
    readonly app: string,
    readonly account: string,
    balance: number,
    stateFile: string,
  ) {
    super({
      name: 'go-bank',
      program: binary,
      args: ['--app', app, '--account', account, '--balance', String(balance), '--state', stateFile],
      cwd: root,
      stderrFile: join(logDir, 'go-bank.log'),
      // It exits when its stdin closes: it does not outlive the demo, even a SIGKILLed one.
      stdin: 'pipe',
    });
    this.onEvent((e) => {
      if (e.event === 'ready' && typeof e.port === 'number') this.port = e.port;
    });
  }

  async ready(): Promise<void> {
    await this.waitForEvent((e) => e.event === 'ready', 'ready (HTTP port)', { timeoutMs: 30_000 });
  }

  /** Points its Try middleware at `sidecar` (its own sidecar: it registers and reports its Trys there). */
  async useSidecar(sidecar: Sidecar): Promise<void> {
    const from = this.events.length;
    this.send({ sidecar: sidecar.url });
    await this.waitForEvent((e) => e.event === 'sidecar' && e.url === sidecar.url, `to use ${sidecar.name}`, { timeoutMs: 10_000, from });
  }

  url(path: string): string {
    if (this.port === undefined) throw new Error(`${this.name} is not ready`);
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Its account, as GET /account answers it. */
  async read(): Promise<Account> {
    const res = await fetch(this.url('/account'));
    if (!res.ok) throw new Error(`${this.name}: GET /account answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as Account;
  }
}

/** One `txloop sidecar` process (dist/cli/main.js) of `app`, calling the service at `serviceUrl` back. */
export class Sidecar extends JsonLineProcess<{ event: string; url?: string }> {
  url = '';

  constructor(
    name: string,
    app: string,
    endpoints: string[],
    serviceUrl: string,
    resourcesFile: string,
    leaseTtlSeconds: number,
    logFile: string,
  ) {
    super({
      name,
      script: CLI,
      javascript: true,
      args: ['sidecar', '--app', app, '--endpoints', endpoints.join(','), '--listen', '127.0.0.1:0', '--service-url', serviceUrl, '--resources', resourcesFile, '--lease-ttl', String(leaseTtlSeconds), '--log-level', process.env.TXLOOP_LOG_LEVEL ?? 'warn'],
      cwd: root,
      stderrFile: logFile,
    });
  }

  async ready(): Promise<void> {
    const e = await this.waitForEvent((ev) => ev.event === 'ready', 'ready (its url)', { timeoutMs: 30_000 });
    this.url = String(e.url);
  }
}
