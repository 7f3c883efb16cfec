/**
 * What the local launchers of throwaway servers (etcd/launcher.ts, postgres/launcher.ts) share:
 * finding an executable, free loopback ports, and making sure no server and no temp dir outlives
 * the Node process that started it — an 'exit' hook for normal exits, a watchdog shell for a Node
 * that is SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, rmSync, statSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';

export function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

// ---- process and dir tracking -------------------------------------------------------------------

const liveProcesses = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: signal and remove, no waiting.
  process.on('exit', () => {
    for (const c of liveProcesses) c.kill('SIGKILL');
    for (const dir of liveDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // Best effort; the watchdog removes it again once the server is gone.
      }
    }
  });
}

/** SIGKILLed when this process exits, until {@link untrackProcess}. */
export function trackProcess(child: ChildProcess): void {
  installExitHook();
  liveProcesses.add(child);
}

export function untrackProcess(child: ChildProcess): void {
  liveProcesses.delete(child);
}

/** Removed when this process exits, until {@link untrackDir}. */
export function trackDir(dir: string): void {
  installExitHook();
  liveDirs.add(dir);
}

export function untrackDir(dir: string): void {
  liveDirs.delete(dir);
}

// The 'exit' hook does not run when Node itself is SIGKILLed (e.g. a hung test worker being reaped).
// This tiny shell blocks on a pipe from us; when we die the pipe closes and it kills the server and
// removes its dir.
// - It ignores SIGINT, SIGTERM and SIGHUP: it shares our process group, so a Ctrl-C (or a closed
//   terminal) reaches it together with us and the server, and it is needed exactly when that
//   signal, or whatever follows it, takes us down before our own cleanup ran.
// - A line from us means the server exited on its own (e.g. the same Ctrl-C): its pid is no longer
//   ours to kill, but the dir is still to remove once we are gone, unless we remove it first and
//   dismiss the watchdog.
const WATCHDOG_SCRIPT =
  "trap '' INT TERM HUP; " +
  'if read _; then cat >/dev/null; else kill -9 "$1" 2>/dev/null; i=0; ' +
  'while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; fi; rm -rf "$2"';

/** A watchdog (named `name` in ps) for the server `pid` and its `dir`; undefined without /bin/sh. */
export function spawnWatchdog(name: string, pid: number, dir: string): ChildProcess | undefined {
  try {
    const watchdog = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, name, String(pid), dir], { stdio: ['pipe', 'ignore', 'ignore'] });
    watchdog.on('error', () => {});
    watchdog.stdin?.on('error', () => {}); // It was SIGKILLed (dismissed) or killed by someone else.
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    return watchdog;
  } catch {
    return undefined; // No /bin/sh: the 'exit' hook still covers normal exits.
  }
}

// ---- ports ----------------------------------------------------------------------------------------

/**
 * Below the kernel's ephemeral range (Linux: 32768-60999), where outgoing connections take their
 * ports: a port picked there can be taken by a client connection before the server binds it.
 */
export const PORT_RANGE = { min: 15_000, max: 32_000 };

/**
 * Distinct free loopback ports, chosen at random in PORT_RANGE: all are held open together, then
 * released. `exhausted` makes the error when none are found after 2000 tries.
 */
export async function freeLoopbackPorts(host: string, count: number, exhausted: () => Error): Promise<number[]> {
  const held: Server[] = [];
  try {
    for (let tries = 0; held.length < count; tries++) {
      if (tries > 2_000) throw exhausted();
      const port = PORT_RANGE.min + Math.floor(Math.random() * (PORT_RANGE.max - PORT_RANGE.min));
      const server = await new Promise<Server | undefined>((resolve) => {
        const srv = createServer();
        srv.once('error', () => resolve(undefined));
        srv.listen(port, host, () => resolve(srv));
      });
      if (server) held.push(server);
    }
    return held.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
