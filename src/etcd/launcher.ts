// Starts real etcd servers and clusters on loopback for tests, the demo and the benchmark.
// Every process is tracked so that no etcd outlives the Node process that started it.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EtcdNotInstalledError, EtcdStartError } from '../errors.js';
import { freeLoopbackPorts, isExecutableFile, PORT_RANGE, spawnWatchdog, trackDir, trackProcess, untrackDir, untrackProcess } from '../local-servers.js';

const HOST = '127.0.0.1';
const STOP_GRACE_MS = 5_000;
const HEALTH_POLL_MS = 50;
const MAX_PORT_ATTEMPTS = 5;
const STDERR_TAIL_BYTES = 16 * 1024;

// The message is read by consumers of the installed package as much as by this repository's
// developers, so it names the script where it actually is (node_modules/txloop/scripts/… when
// installed; this module sits in dist/etcd/ or src/etcd/, two levels below the package root)
// and the bin that runs it from anywhere in a project that depends on txloop.
const ENSURE_ETCD_SCRIPT = fileURLToPath(new URL('../../scripts/ensure-etcd.sh', import.meta.url));
const HOW_TO_INSTALL =
  'Install it with `sudo apt-get install etcd-server` (Debian/Ubuntu), ' +
  'or set TXLOOP_ETCD_BIN=/path/to/etcd (etcd 3.4+), ' +
  'or run `npx txloop-ensure-etcd`' +
  (existsSync(ENSURE_ETCD_SCRIPT) ? ` (bash ${ENSURE_ETCD_SCRIPT})` : '') +
  ', which installs Debian\'s etcd-server when run as root and says what to do otherwise.';

export interface FindEtcdBinaryOptions {
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Paths tried after PATH. @default ['/usr/bin/etcd'] */
  fallbackPaths?: readonly string[];
}

/** $TXLOOP_ETCD_BIN, then `etcd` on PATH, then /usr/bin/etcd. */
export function findEtcdBinary(options: FindEtcdBinaryOptions = {}): string {
  const env = options.env ?? process.env;
  const explicit = env.TXLOOP_ETCD_BIN;
  if (explicit) {
    // A set-but-wrong override is a configuration mistake; falling back would hide it.
    if (isExecutableFile(explicit)) return path.resolve(explicit);
    throw new EtcdNotInstalledError(`TXLOOP_ETCD_BIN=${explicit} is not an executable file. ${HOW_TO_INSTALL}`);
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutableFile(path.join(dir, 'etcd'))) return path.join(dir, 'etcd');
  }
  for (const candidate of options.fallbackPaths ?? ['/usr/bin/etcd']) {
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new EtcdNotInstalledError(
    `No etcd server binary found (looked at $TXLOOP_ETCD_BIN, etcd on PATH, /usr/bin/etcd). ${HOW_TO_INSTALL}`,
  );
}


export interface StartEtcdOptions {
  /** etcd --max-txn-ops. @default 128 */
  maxTxnOps?: number;
  /** Extra raw etcd flags. They come last, so they override the launcher's own flags. */
  extraArgs?: string[];
  /** Write etcd's own output to this file (at info level) instead of discarding it. */
  logFile?: string;
  /** @default 20_000 */
  startTimeoutMs?: number;
}

export interface EtcdServer {
  readonly endpoints: string[];
  readonly dataDir: string;
  readonly pid: number;
  /** SIGTERM, SIGKILL after 5s, remove the data dir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  /** undefined while the member is not running. */
  readonly pid: number | undefined;
  /** The process exists (a SIGSTOPped member is still running). */
  readonly running: boolean;
  /** Sends a real signal (default SIGKILL); resolves once the process exited, or at once for SIGSTOP. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGCONT, undoing kill('SIGSTOP'). */
  resume(): void;
  /** Starts the member again on the same ports and data dir (SIGKILLing it first if still running); waits until healthy. */
  restart(): Promise<void>;
}

export interface EtcdCluster {
  readonly endpoints: string[];
  readonly members: EtcdMember[];
  /** SIGKILLs every member (no graceful shutdown: the data is discarded) and removes their data dirs. Safe to call twice. */
  stop(): Promise<void>;
}


// ---- one etcd process -------------------------------------------------------------------------

interface MemberSpec {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
}

const clientUrlOf = (m: MemberSpec) => `http://${HOST}:${m.clientPort}`;
const peerUrlOf = (m: MemberSpec) => `http://${HOST}:${m.peerPort}`;

class EtcdProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  private hasExited = false;
  private head = '';
  private tail = '';
  private outputBytes = 0;
  private exitDescription = 'exited';
  private waiters = 0;
  private readonly watchdog: ChildProcess | undefined;

  constructor(bin: string, args: string[], dataDir: string, log: LogSink | undefined) {
    this.child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: etcdEnv() });
    this.exited = new Promise<void>((resolve) => {
      const done = (description: string) => {
        if (this.hasExited) return;
        this.hasExited = true;
        this.exitDescription = description;
        untrackProcess(this.child);
        // Not dismissed yet: the data dir outlives etcd until stop() removes it.
        this.watchdog?.stdin?.write('exited\n');
        resolve();
      };
      // 'close' rather than 'exit': it comes after stderr is drained, so the tail is complete.
      this.child.once('close', (code, signal) => done(signal ? `was killed by ${signal}` : `exited with code ${code}`));
      this.child.once('error', (err) => done(`could not be started: ${err.message}`));
    });
    const onOutput = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      if (this.head.length < 4096) this.head += text.slice(0, 4096);
      this.outputBytes += chunk.length;
      this.tail = (this.tail + text).slice(-STDERR_TAIL_BYTES);
      log?.write(chunk);
    };
    this.child.stdout?.on('data', onOutput);
    this.child.stderr?.on('data', onOutput);
    // Never keep the host process alive just because an etcd is running; the exit hook reaps it.
    this.child.unref();
    for (const stream of [this.child.stdout, this.child.stderr]) {
      (stream as unknown as { unref?: () => void } | null)?.unref?.();
    }
    if (this.child.pid !== undefined) {
      trackProcess(this.child);
      this.watchdog = spawnWatchdog('txloop-etcd-watchdog', this.child.pid, dataDir);
    }
  }

  get running(): boolean {
    return !this.hasExited;
  }

  get pid(): number | undefined {
    return this.hasExited ? undefined : this.child.pid;
  }

  /** First and last lines: etcd reports flag errors first (then a long usage text), fatal errors last. */
  get stderrTail(): string {
    const lines = this.tail.trimEnd().split('\n');
    const head = this.head.trimEnd().split('\n').slice(0, 5);
    if (this.outputBytes <= STDERR_TAIL_BYTES && lines.length <= 25) return lines.join('\n');
    return [...head, '...', ...lines.slice(-20)].join('\n');
  }

  get portInUse(): boolean {
    return /address already in use/.test(this.tail);
  }

  describeExit(): string {
    return `etcd ${this.exitDescription}`;
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.hasExited) this.child.kill(signal);
  }

  /** The data dir was removed, or a new process took it over with its own watchdog. */
  dismissWatchdog(): void {
    this.watchdog?.kill('SIGKILL');
  }

  /** Waits for exit while keeping the event loop alive (the child is unref'd otherwise). */
  async waitForExit(): Promise<void> {
    if (this.hasExited) return;
    if (this.waiters++ === 0) this.child.ref();
    try {
      await this.exited;
    } finally {
      if (--this.waiters === 0) this.child.unref();
    }
  }

  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    if (this.hasExited) return;
    this.signal(signal);
    this.signal('SIGCONT'); // A SIGSTOPped etcd would never act on the SIGTERM.
    const timer = setTimeout(() => this.signal('SIGKILL'), STOP_GRACE_MS);
    try {
      await this.waitForExit();
    } finally {
      clearTimeout(timer);
    }
  }
}

function etcdEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    // etcd 3.4 refuses to start when an ETCD_* variable shadows a flag we pass.
    if (!key.startsWith('ETCD_') || key === 'ETCD_UNSUPPORTED_ARCH') env[key] = value;
  }
  // etcd 3.4 only runs on amd64/ppc64le unless told the architecture is acknowledged.
  const goArch: Partial<Record<string, string>> = { arm64: 'arm64', arm: 'arm', ia32: '386', s390x: 's390x', riscv64: 'riscv64' };
  const arch = goArch[process.arch];
  if (arch && env.ETCD_UNSUPPORTED_ARCH === undefined) env.ETCD_UNSUPPORTED_ARCH = arch;
  return env;
}

interface LogSink {
  write(chunk: Buffer): void;
  close(): Promise<void>;
}

function openLog(file: string | undefined, prefix: string): LogSink | undefined {
  if (!file) return undefined;
  const stream: WriteStream = createWriteStream(file, { flags: 'a' });
  stream.on('error', () => {}); // A broken log file must not crash the test run.
  let partial = '';
  return {
    write(chunk) {
      // Cluster members share one file; prefix whole lines so they stay attributable.
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) stream.write(`${prefix}${line}\n`);
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (partial) stream.write(`${prefix}${partial}\n`);
        partial = '';
        stream.end(resolve);
      }),
  };
}

function etcdArgs(m: MemberSpec, all: MemberSpec[], token: string, options: StartEtcdOptions): string[] {
  return [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', clientUrlOf(m),
    '--advertise-client-urls', clientUrlOf(m),
    '--listen-peer-urls', peerUrlOf(m),
    '--initial-advertise-peer-urls', peerUrlOf(m),
    '--initial-cluster', all.map((o) => `${o.name}=${peerUrlOf(o)}`).join(','),
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', token,
    '--max-txn-ops', String(options.maxTxnOps ?? 128),
    // Short timeouts so that losing a member costs well under a second in failure tests.
    '--heartbeat-interval', '50',
    '--election-timeout', '500',
    '--logger', 'zap',
    '--log-outputs', 'stderr',
    '--log-level', options.logFile ? 'info' : 'error',
    ...(options.extraArgs ?? []),
  ];
}

// ---- ports and readiness ----------------------------------------------------------------------

/** Waits until /proc reports `pid` in `state` (Linux; elsewhere it returns at once). */
async function waitForState(pid: number, state: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return;
    }
    // pid (comm) state …: comm may hold spaces or parentheses, so read after the last ')'.
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === state) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}


async function waitHealthy(clientUrl: string, proc: EtcdProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    if (!proc.running) {
      throw new EtcdStartError(`${proc.describeExit()} before ${clientUrl} became healthy`, proc.stderrTail);
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new EtcdStartError(`etcd at ${clientUrl} was not healthy within ${timeoutMs}ms (last: ${last})`, proc.stderrTail);
    }
    try {
      const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(Math.min(1_000, remaining)) });
      const body = await res.text();
      if (res.ok && (JSON.parse(body) as { health?: unknown }).health === 'true') return;
      last = `HTTP ${res.status} ${body.trim()}`;
    } catch (err) {
      last = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
    }
    await Promise.race([new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS)), proc.exited]);
  }
}

// ---- members and clusters ---------------------------------------------------------------------

class Member implements EtcdMember {
  private proc: EtcdProcess | undefined;
  private log: LogSink | undefined;

  constructor(
    readonly spec: MemberSpec,
    private readonly args: string[],
    private readonly bin: string,
    private readonly options: StartEtcdOptions,
    private readonly isStopped: () => boolean,
  ) {}

  get name(): string {
    return this.spec.name;
  }
  get clientUrl(): string {
    return clientUrlOf(this.spec);
  }
  get pid(): number | undefined {
    return this.proc?.pid;
  }
  get running(): boolean {
    return this.proc?.running ?? false;
  }
  get process(): EtcdProcess | undefined {
    return this.proc;
  }

  spawn(): EtcdProcess {
    this.log ??= openLog(this.options.logFile, `[${this.spec.name}] `);
    this.proc?.dismissWatchdog();
    this.proc = new EtcdProcess(this.bin, this.args, this.spec.dataDir, this.log);
    return this.proc;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    if (!proc?.running) return;
    proc.signal(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGTSTP') {
      // A signal is delivered asynchronously: until every thread has stopped, etcd may still answer.
      // Return only once the kernel reports the process stopped, so "frozen" means frozen.
      if (proc.pid !== undefined) await waitForState(proc.pid, 'T', 5_000);
      return;
    }
    await proc.waitForExit();
  }

  resume(): void {
    this.proc?.signal('SIGCONT');
  }

  async restart(): Promise<void> {
    if (this.isStopped()) throw new EtcdStartError(`cannot restart ${this.name}: its cluster was stopped`);
    await this.kill('SIGKILL');
    if (this.isStopped()) throw new EtcdStartError(`cannot restart ${this.name}: its cluster was stopped`);
    const proc = this.spawn();
    await waitHealthy(this.clientUrl, proc, this.options.startTimeoutMs ?? 20_000);
  }

  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    await this.proc?.stop(signal);
    await this.log?.close();
    this.log = undefined;
  }
}

class Cluster implements EtcdCluster {
  private stopping: Promise<void> | undefined;

  constructor(readonly members: Member[]) {}

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  get stopped(): boolean {
    return this.stopping !== undefined;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // A lone etcd exits on SIGTERM in milliseconds. In a cluster a SIGTERMed leader that lost its
      // peers spends etcd's full request timeout (~6s) trying to hand over leadership, and the data
      // is thrown away anyway, so members are SIGKILLed.
      const signal = this.members.length === 1 ? 'SIGTERM' : 'SIGKILL';
      await Promise.all(this.members.map((m) => m.stop(signal)));
      await Promise.all(
        this.members.map(async (m) => {
          await rm(m.spec.dataDir, { recursive: true, force: true });
          untrackDir(m.spec.dataDir);
          m.process?.dismissWatchdog();
        }),
      );
    })();
    return this.stopping;
  }
}

async function launch(size: number, options: StartEtcdOptions): Promise<Cluster> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`cluster size must be a positive integer, got ${size}`);
  const bin = findEtcdBinary();
  const timeoutMs = options.startTimeoutMs ?? 20_000;
  for (let attempt = 1; ; attempt++) {
    const ports = await freeLoopbackPorts(HOST, size * 2, () => new EtcdStartError(`no ${size * 2} free loopback ports found in ${PORT_RANGE.min}-${PORT_RANGE.max}`));
    const specs: MemberSpec[] = [];
    for (let i = 0; i < size; i++) {
      const dataDir = await mkdtemp(path.join(tmpdir(), 'txloop-etcd-'));
      trackDir(dataDir);
      specs.push({ name: `etcd-${i}`, clientPort: ports[2 * i]!, peerPort: ports[2 * i + 1]!, dataDir });
    }
    // A random token keeps members of concurrently running clusters from ever joining each other.
    const token = `txloop-${randomBytes(6).toString('hex')}`;
    // Members ask the cluster whether it was stopped; the closure reads it after assignment below.
    let cluster: Cluster;
    const members = specs.map(
      (s) => new Member(s, etcdArgs(s, specs, token, options), bin, options, () => cluster.stopped),
    );
    cluster = new Cluster(members);
    try {
      await Promise.all(members.map((m) => waitHealthy(m.clientUrl, m.spawn(), timeoutMs)));
      return cluster;
    } catch (err) {
      await cluster.stop();
      // Ports are only probed free, not reserved; someone may have taken one since.
      const portRace = members.some((m) => m.process?.portInUse);
      if (!portRace || attempt >= MAX_PORT_ATTEMPTS) throw err;
    }
  }
}

/** Starts a single-member etcd on free loopback ports with a fresh data dir. */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdServer> {
  const cluster = await launch(1, options);
  const member = cluster.members[0]!;
  return {
    endpoints: cluster.endpoints,
    dataDir: member.spec.dataDir,
    pid: member.pid!,
    stop: () => cluster.stop(),
  };
}

/** Starts an etcd cluster (default 3 members) whose members can be killed, paused and restarted. */
export async function startEtcdCluster(options: StartEtcdOptions & { size?: number } = {}): Promise<EtcdCluster> {
  return launch(options.size ?? 3, options);
}
