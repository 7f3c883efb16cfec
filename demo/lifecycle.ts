/**
 * How the demo ends: everything it starts registers how to stop it (`onCleanup`), run newest first on
 * every exit path (success, failure, the watchdog, Ctrl-C / SIGTERM), and the exit code.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { mute, warn } from './print.js';

const cleanups: { what: string; fn: () => Promise<void> }[] = [];
let cleaning: Promise<void> | undefined;

export function onCleanup(what: string, fn: () => Promise<void>): void {
  cleanups.push({ what, fn });
}

export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    // Newest first; also stops what is registered while this runs (main() may still be starting things).
    for (let c = cleanups.pop(); c; c = cleanups.pop()) {
      const { what, fn } = c;
      try {
        await Promise.race([fn(), sleep(8_000).then(() => Promise.reject(new Error('timed out')))]);
      } catch (err) {
        warn(`demo: could not stop ${what}: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}

/** The first SIGINT/SIGTERM, if one came. */
let interrupted: NodeJS.Signals | undefined;
export const interruptedBy = (): NodeJS.Signals | undefined => interrupted;
/**
 * Set (before the demo prints "Ctrl-C stops the services and etcd.") once --keep waits for Ctrl-C:
 * a signal from then on is the normal end, and main() returns the checks' exit code. A signal before
 * that interrupts the demo: cleanup, exit 130/143.
 */
let waitingForCtrlC = false;
/** The signal came while --keep waited for it: the exit code is the checks' result, not 130/143. */
let endedTheWait = false;
/** Resolved by the first SIGINT/SIGTERM, so a signal that comes before the wait starts still ends it. */
let signalled!: () => void;
export const interruption = new Promise<void>((resolve) => (signalled = resolve));

/** From now on a signal ends the demo normally (--keep's wait for Ctrl-C). */
export function signalsEndTheWait(): void {
  waitingForCtrlC = true;
}

export function handleSignals(): void {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = signal;
      mute();
      warn(`\ndemo: ${signal}; stopping the services and etcd`);
      signalled();
      endedTheWait = waitingForCtrlC;
      if (endedTheWait) return;
      void cleanup().finally(() => process.exit(code));
    });
  }
}

let watchdog: NodeJS.Timeout | undefined;
let watchdogMs = 0;

/** Gives up (cleanup, exit 1) when the demo still runs after `ms`. */
export function startWatchdog(ms: number): void {
  clearTimeout(watchdog);
  watchdogMs = ms;
  watchdog = setTimeout(() => {
    warn(`demo: still running after ${ms / 1000}s; giving up`);
    void cleanup().finally(() => process.exit(1));
  }, ms);
}

export function stopWatchdog(): void {
  clearTimeout(watchdog);
  watchdog = undefined;
}

/**
 * Runs `work`, which bounds itself (a build with a time limit of its own), with the watchdog
 * stopped; the demo then gets the watchdog's whole limit again from the end of `work`.
 */
export async function outsideWatchdog<T>(work: () => Promise<T>): Promise<T> {
  const running = watchdog !== undefined;
  stopWatchdog();
  try {
    return await work();
  } finally {
    if (running) startWatchdog(watchdogMs);
  }
}

/** The demo's exit code: a Ctrl-C that ends --keep's wait is its normal end, any other signal 130/143. */
export function exitCode(code: number): number {
  return endedTheWait ? code : interrupted === 'SIGINT' ? 130 : interrupted === 'SIGTERM' ? 143 : code;
}
