/**
 * Child processes that report JSON lines on stdout: the tests' fixture services
 * (test/helpers/processes.ts) and the demo's account services (demo/cluster.ts) are both run by this.
 *
 * Each is `node --import tsx <script>` (plain `node <script>` for JavaScript, or any `program`), in the caller's
 * process group (a Ctrl-C in a terminal reaches it too). Every stdout line that parses as a JSON
 * object is an event, kept in order; other stdout lines and, when piped, stderr lines are kept as
 * text. Whatever is still running when this process exits is SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { relative } from 'node:path';
import { createInterface } from 'node:readline';

export type ProcessEvent = Record<string, unknown>;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Named in error messages. */
  name: string;
  /** The TypeScript (or JavaScript) file to run. */
  script?: string;
  /** A program to run instead of node (a Go binary): `program ...args`; script, nodeArgs and javascript are then unused. */
  program?: string;
  args?: string[];
  /** Added to this process's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Where stderr goes: kept in `stderr` ('pipe', the default) or written to this file (truncated first). */
  stderrFile?: string;
  /**
   * 'pipe' holds the child's stdin open for as long as this process lives (a child that exits when
   * its stdin closes then dies with its parent, even a SIGKILLed one); 'ignore' by default.
   */
  stdin?: 'pipe' | 'ignore';
  /** Node options before the script (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /** The script is JavaScript: run it without tsx's loader (which takes ~40 MiB of RSS of its own). */
  javascript?: boolean;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export class JsonLineProcess<E extends ProcessEvent = ProcessEvent> {
  readonly name: string;
  readonly child: ChildProcess;
  /** Every event so far, in the order they came. */
  readonly events: E[] = [];
  /** stderr lines (when piped) and stdout lines that are not JSON objects. */
  readonly stderr: string[] = [];
  /** Resolves when the process has exited. */
  readonly exit: Promise<ExitStatus>;
  exitStatus: ExitStatus | undefined;
  private readonly stderrFile: string | undefined;
  private readonly listeners: ((e: E) => void)[] = [];
  /** Set once stdout has ended after the exit: no event can come any more. */
  private finished = false;
  private waiters: (() => void)[] = [];

  constructor(options: SpawnOptions) {
    this.name = options.name;
    this.stderrFile = options.stderrFile;
    const stderrFd = options.stderrFile === undefined ? undefined : openSync(options.stderrFile, 'w');
    try {
      const loader = options.javascript ? [] : ['--import', 'tsx'];
      if ((options.program === undefined) === (options.script === undefined)) throw new Error(`${options.name}: give either a script or a program`);
      const [file, argv] = options.program !== undefined ? [options.program, options.args ?? []] : [process.execPath, [...(options.nodeArgs ?? []), ...loader, options.script!, ...(options.args ?? [])]];
      this.child = spawn(file, argv, {
        ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
        env: { ...process.env, ...options.env },
        stdio: [options.stdin ?? 'ignore', 'pipe', stderrFd ?? 'pipe'],
      });
    } finally {
      if (stderrFd !== undefined) closeSync(stderrFd);
    }
    running.add(this.child);
    // A child that exits (or never reads) closes its end: writes to its stdin must not crash us.
    this.child.stdin?.on('error', () => undefined);
    let stdoutEnded = false;
    this.exit = new Promise((resolve) => {
      const exited = (code: number | null, signal: NodeJS.Signals | null): void => {
        running.delete(this.child);
        this.exitStatus = { code, signal };
        this.finished = stdoutEnded;
        this.wake();
        resolve({ code, signal });
      };
      this.child.once('exit', exited);
      // A program that could not be started (ENOENT, EACCES) reports an 'error' and never exits.
      this.child.once('error', (err) => {
        if (this.child.pid !== undefined || this.exitStatus) return;
        this.stderr.push(`cannot start ${this.name}: ${err.message}`);
        exited(null, null);
      });
    });
    const stdout = createInterface({ input: this.child.stdout! });
    stdout.on('line', (line) => {
      let e: unknown;
      try {
        e = JSON.parse(line);
      } catch {
        e = undefined;
      }
      if (typeof e !== 'object' || e === null) {
        this.stderr.push(line);
        return;
      }
      this.events.push(e as E);
      for (const l of this.listeners) l(e as E);
      this.wake();
    });
    stdout.on('close', () => {
      stdoutEnded = true;
      this.finished = this.exitStatus !== undefined;
      this.wake();
    });
    if (this.child.stderr) createInterface({ input: this.child.stderr }).on('line', (line) => this.stderr.push(line));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  hasExited(): boolean {
    return this.exitStatus !== undefined;
  }

  /** Calls `listener` with every event from now on, as it arrives. */
  onEvent(listener: (e: E) => void): void {
    this.listeners.push(listener);
  }

  /**
   * The first event (from index `from` on) that `match` accepts, once it has come. Rejects after
   * `timeoutMs`, or as soon as the process has exited and every line it wrote was read.
   */
  async waitForEvent(match: (e: E) => boolean, what: string, options: { timeoutMs?: number; from?: number } = {}): Promise<E> {
    const timeoutMs = options.timeoutMs ?? 20_000;
    const until = Date.now() + timeoutMs;
    for (let seen = options.from ?? 0; ; ) {
      for (; seen < this.events.length; seen++) if (match(this.events[seen]!)) return this.events[seen]!;
      if (this.finished) {
        const how = this.exitStatus!.signal ?? `code ${this.exitStatus!.code}`;
        throw new Error(`${this.name} exited (${how}) while waiting for ${what}${this.detail()}`);
      }
      const left = until - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs}ms waiting for ${this.name}: ${what}${this.detail()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Writes `message` to the child's stdin as one JSON line (needs `stdin: 'pipe'`). */
  send(message: ProcessEvent): void {
    if (!this.child.stdin) throw new Error(`${this.name} was started without stdin: 'pipe'`);
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  /** Closes the child's stdin (children that exit when it closes then shut down cleanly). */
  endInput(): void {
    this.child.stdin?.end();
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** `signal` (SIGTERM: the services shut down cleanly), then SIGKILL if it has not exited after `killAfterMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 3_000): Promise<ExitStatus> {
    if (this.exitStatus) return this.exitStatus;
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), killAfterMs);
    try {
      return await this.exit;
    } finally {
      clearTimeout(t);
    }
  }

  /** SIGKILL now (SIGCONT first, should it be stopped) and wait for the exit, at most `timeoutMs`. */
  async killNow(timeoutMs = 15_000): Promise<ExitStatus> {
    if (this.exitStatus) return this.exitStatus;
    this.child.kill('SIGCONT');
    this.child.kill('SIGKILL');
    let t: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out after ${timeoutMs}ms waiting for ${this.name} exit`)), timeoutMs)));
    try {
      return await Promise.race([this.exit, late]);
    } finally {
      clearTimeout(t);
    }
  }

  /** Where to look when something went wrong: the last stderr lines, or the log file. */
  private detail(): string {
    if (this.stderrFile !== undefined) return `; see ${relative(process.cwd(), this.stderrFile) || this.stderrFile}`;
    return ` (stderr: ${this.stderr.slice(-5).join(' | ')})`;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
