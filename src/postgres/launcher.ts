// Starts throwaway PostgreSQL servers on loopback for tests: initdb into a fresh temp dir, postgres
// on a free port (TCP on 127.0.0.1 only, no Unix socket), removed on stop(). Every server is tracked
// so that none outlives the Node process that started it — as etcd/launcher.ts does for etcd.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeLoopbackPorts, isExecutableFile, PORT_RANGE, spawnWatchdog, trackDir, trackProcess, untrackDir, untrackProcess } from '../local-servers.js';
import { PostgresNotInstalledError, PostgresStartError } from './errors.js';

const HOST = '127.0.0.1';
const USER = 'postgres';
const DATABASE = 'postgres';
const STOP_GRACE_MS = 5_000;
const READY_POLL_MS = 25;
const MAX_PORT_ATTEMPTS = 5;
const OUTPUT_TAIL_BYTES = 16 * 1024;
/** Debian's PostgreSQL 15, the version the project's scripts install. */
const DEBIAN_BIN_DIR = '/usr/lib/postgresql/15/bin';

// Named where it is (node_modules/txloop/scripts/… when installed; this module sits two levels
// below the package root, in dist/postgres/ or src/postgres/).
const ENSURE_SCRIPT = fileURLToPath(new URL('../../scripts/ensure-postgres.sh', import.meta.url));
const HOW_TO_INSTALL =
  'Install PostgreSQL with `sudo apt-get install postgresql-15` (Debian/Ubuntu; txloop is tested with 15), ' +
  'or set TXLOOP_PG_BIN_DIR to a directory holding initdb and postgres, ' +
  'or run `npx txloop-ensure-postgres`' +
  (existsSync(ENSURE_SCRIPT) ? ` (bash ${ENSURE_SCRIPT})` : '') +
  ", which installs Debian's PostgreSQL when run as root and says what to do otherwise.";

export interface FindPostgresOptions {
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * The directory of the PostgreSQL server binaries: $TXLOOP_PG_BIN_DIR, then Debian's
 * /usr/lib/postgresql/15/bin, then the newest /usr/lib/postgresql/<version>/bin, then initdb on PATH.
 */
export function findPostgresBinDir(options: FindPostgresOptions = {}): string {
  const env = options.env ?? process.env;
  const explicit = env.TXLOOP_PG_BIN_DIR;
  if (explicit) {
    // A set-but-wrong override is a configuration mistake; falling back would hide it.
    if (hasServer(explicit)) return path.resolve(explicit);
    throw new PostgresNotInstalledError(`TXLOOP_PG_BIN_DIR=${explicit} holds no executable initdb and postgres. ${HOW_TO_INSTALL}`);
  }
  if (hasServer(DEBIAN_BIN_DIR)) return DEBIAN_BIN_DIR;
  const versions = safeList('/usr/lib/postgresql')
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (hasServer(dir)) return dir;
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && hasServer(dir)) return dir;
  }
  throw new PostgresNotInstalledError(
    `No PostgreSQL server found (looked at $TXLOOP_PG_BIN_DIR, ${DEBIAN_BIN_DIR}, /usr/lib/postgresql/*/bin, initdb on PATH). ${HOW_TO_INSTALL}`,
  );
}

function hasServer(dir: string): boolean {
  return ['initdb', 'postgres'].every((b) => isExecutableFile(path.join(dir, b)));
}


function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export interface StartPostgresOptions {
  /** The server binaries' directory. @default findPostgresBinDir() */
  binDir?: string;
  /** Extra server settings (`-c name=value`), after the launcher's own, so they override them. */
  settings?: Record<string, string | number | boolean>;
  /** @default 30_000 */
  startTimeoutMs?: number;
}

export interface PostgresServer {
  /** `postgresql://postgres:<password>@127.0.0.1:<port>/postgres`, for `new pg.Pool({ connectionString })`. */
  readonly connectionString: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Random per server: the server takes password (SCRAM) logins only. */
  readonly password: string;
  readonly database: string;
  readonly dataDir: string;
  readonly pid: number;
  /** Fast shutdown (SIGINT), SIGKILL after 5 s, then the data dir is removed. Safe to call twice. */
  stop(): Promise<void>;
}


// ---- running as the postgres user -------------------------------------------------------------

interface RunAs {
  uid: number;
  gid: number;
}

/** initdb and postgres refuse to run as root: as root, they run as the `postgres` user (Debian's package creates it). */
function runAs(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = passwdLine(USER);
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined || !/^\d+$/.test(uid) || !/^\d+$/.test(gid)) {
    throw new PostgresStartError(
      `running as root, and initdb refuses to: there is no '${USER}' user to run it as (Debian's postgresql package creates one; or run the tests as another user)`,
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

function passwdLine(user: string): string | undefined {
  try {
    const fromFile = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${user}:`));
    if (fromFile) return fromFile;
  } catch {
    // No /etc/passwd: ask NSS.
  }
  try {
    return execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // libpq and the server read PG* variables (PGDATA, PGPORT, …): none of the caller's may leak in.
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) env[key] = value;
  env.LC_ALL = 'C';
  env.LANG = 'C';
  return env;
}

// ---- one process ------------------------------------------------------------------------------

class ServerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  private hasExited = false;
  private tail = '';
  private exitDescription = 'exited';
  private waiters = 0;
  private readonly watchdog: ChildProcess | undefined;

  constructor(bin: string, args: string[], cwd: string, as: RunAs | undefined, watchDir: string | undefined) {
    this.child = spawn(bin, args, { cwd, env: serverEnv(), stdio: ['ignore', 'pipe', 'pipe'], ...(as ?? {}) });
    this.exited = new Promise<void>((resolve) => {
      const done = (description: string) => {
        if (this.hasExited) return;
        this.hasExited = true;
        this.exitDescription = description;
        untrackProcess(this.child);
        this.watchdog?.stdin?.write('exited\n');
        resolve();
      };
      this.child.once('close', (code, signal) => done(signal ? `was killed by ${signal}` : `exited with code ${code}`));
      this.child.once('error', (err) => done(`could not be started: ${err.message}`));
    });
    const onOutput = (chunk: Buffer) => {
      this.tail = (this.tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
    };
    this.child.stdout?.on('data', onOutput);
    this.child.stderr?.on('data', onOutput);
    this.child.unref();
    for (const stream of [this.child.stdout, this.child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
    if (this.child.pid !== undefined) {
      trackProcess(this.child);
      if (watchDir) this.watchdog = spawnWatchdog('txloop-postgres-watchdog', this.child.pid, watchDir);
    }
  }

  get running(): boolean {
    return !this.hasExited;
  }

  get output(): string {
    return this.tail.trimEnd().split('\n').slice(-30).join('\n');
  }

  get portInUse(): boolean {
    return /could not bind|Address already in use/i.test(this.tail);
  }

  describeExit(): string {
    return this.exitDescription;
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.hasExited) this.child.kill(signal);
  }

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

  async stop(): Promise<void> {
    if (this.hasExited) return;
    // SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to disconnect).
    this.signal('SIGINT');
    this.signal('SIGCONT');
    const timer = setTimeout(() => this.signal('SIGKILL'), STOP_GRACE_MS);
    try {
      await this.waitForExit();
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---- ports and readiness ----------------------------------------------------------------------


/** postmaster.pid's eighth line is the server's state; 'ready' once it accepts connections (what pg_ctl -w waits for). */
async function waitReady(dataDir: string, proc: ServerProcess, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!proc.running) throw new PostgresStartError(`postgres ${proc.describeExit()} before it was ready on ${HOST}:${port}`, proc.output);
    let lines: string[] = [];
    try {
      lines = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    } catch {
      // Not written yet.
    }
    if (lines[7]?.trim() === 'ready' && Number(lines[3]) === port) return;
    if (Date.now() > deadline) throw new PostgresStartError(`postgres was not ready on ${HOST}:${port} within ${timeoutMs}ms`, proc.output);
    await Promise.race([new Promise((resolve) => setTimeout(resolve, READY_POLL_MS)), proc.exited]);
  }
}

// ---- the server -------------------------------------------------------------------------------

async function initdb(bin: string, dir: string, dataDir: string, password: string, as: RunAs | undefined, timeoutMs: number): Promise<void> {
  const pwfile = path.join(dir, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (as) await chown(pwfile, as.uid, as.gid);
  const proc = new ServerProcess(
    path.join(bin, 'initdb'),
    ['-D', dataDir, '-U', USER, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync'],
    dir,
    as,
    undefined,
  );
  const timer = setTimeout(() => proc.signal('SIGKILL'), timeoutMs);
  try {
    await proc.waitForExit();
  } finally {
    clearTimeout(timer);
    await rm(pwfile, { force: true });
  }
  if (!/code 0$/.test(proc.describeExit())) throw new PostgresStartError(`initdb ${proc.describeExit()}`, proc.output);
}

function serverArgs(dataDir: string, port: number, settings: StartPostgresOptions['settings']): string[] {
  const all: Record<string, string | number | boolean> = {
    listen_addresses: HOST,
    unix_socket_directories: '',
    // A throwaway cluster: durability buys nothing, and the machine is shared.
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    shared_buffers: '32MB',
    // Kept in the data dir (removed with it), not in /dev/shm, even when postgres is SIGKILLed.
    dynamic_shared_memory_type: 'mmap',
    max_connections: 100,
    log_min_messages: 'warning',
    ...settings,
  };
  return ['-D', dataDir, '-p', String(port), ...Object.entries(all).flatMap(([k, v]) => ['-c', `${k}=${typeof v === 'boolean' ? (v ? 'on' : 'off') : v}`])];
}

/**
 * Starts a throwaway PostgreSQL server: initdb into a fresh temp dir (as the `postgres` user when
 * running as root), postgres on a free loopback port, TCP on 127.0.0.1 only, a random password.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const bin = options.binDir ?? findPostgresBinDir();
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const as = runAs();
  const dir = await mkdtemp(path.join(tmpdir(), 'txloop-pg-'));
  trackDir(dir);
  const dataDir = path.join(dir, 'data');
  const removeDir = async () => {
    await rm(dir, { recursive: true, force: true });
    untrackDir(dir);
  };
  let proc: ServerProcess | undefined;
  try {
    if (as) await chown(dir, as.uid, as.gid);
    const password = randomBytes(18).toString('base64url');
    await initdb(bin, dir, dataDir, password, as, timeoutMs);
    for (let attempt = 1; ; attempt++) {
      const port = (await freeLoopbackPorts(HOST, 1, () => new PostgresStartError(`no free loopback port found in ${PORT_RANGE.min}-${PORT_RANGE.max}`)))[0]!;
      proc = new ServerProcess(path.join(bin, 'postgres'), serverArgs(dataDir, port, options.settings), dir, as, dir);
      try {
        await waitReady(dataDir, proc, port, timeoutMs);
      } catch (err) {
        await proc.stop();
        proc.dismissWatchdog();
        // Ports are only probed free, not reserved; someone may have taken it since.
        if (!proc.portInUse || attempt >= MAX_PORT_ATTEMPTS) throw err;
        continue;
      }
      const running = proc;
      let stopping: Promise<void> | undefined;
      return {
        connectionString: `postgresql://${USER}:${password}@${HOST}:${port}/${DATABASE}`,
        host: HOST,
        port,
        user: USER,
        password,
        database: DATABASE,
        dataDir,
        pid: running.child.pid!,
        stop: () =>
          (stopping ??= (async () => {
            await running.stop();
            await removeDir();
            running.dismissWatchdog();
          })()),
      };
    }
  } catch (err) {
    await proc?.stop();
    await removeDir();
    proc?.dismissWatchdog();
    throw err;
  }
}
