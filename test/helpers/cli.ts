/** Runs the built `txloop` binary (dist/cli/main.js) as a real process, once or streaming (-w). */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitFor as waitUntil } from './wait.js';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does it)`);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Environment for the CLI: only what the test gives, plus PATH/HOME, so a developer's TXLOOP_* never leaks in. */
function cliEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  return { ...base, ...env };
}

export function runCli(args: string[], env: Record<string, string> = {}, { timeoutMs = 30_000, argv0 = CLI } = {}): Promise<CliResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [argv0, ...args], { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`txloop ${args.join(' ')} did not exit within ${timeoutMs}ms; stdout: ${stdout} stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

export interface Streaming {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  lines(): string[];
  /** Resolves once some stdout line matches; rejects at the deadline with what was printed. */
  waitForLine(match: (line: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  /** Sends SIGINT and resolves with the exit code (SIGKILL, exit code null, if it takes over 15 s). */
  interrupt(): Promise<number | null>;
  /** Resolves with the exit code once the process exits by itself; rejects at the deadline with what was printed. */
  exit(timeoutMs: number): Promise<number | null>;
}

export function spawnCli(args: string[], env: Record<string, string> = {}): Streaming {
  const child = spawn(process.execPath, [CLI, ...args], { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      exitCode = code;
      resolve(code);
    }),
  );
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const lines = (): string[] => out.split('\n').filter((l) => l.length > 0);
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    lines,
    async waitForLine(match, what, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = lines().find(match);
        if (hit !== undefined) return hit;
        if (exitCode !== undefined) throw new Error(`txloop ${args.join(' ')} exited (${exitCode}) before printing ${what}; stdout:\n${out}\nstderr:\n${err}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stdout:\n${out}\nstderr:\n${err}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async exit(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`txloop ${args.join(' ')} did not exit within ${timeoutMs}ms; stdout:\n${out}\nstderr:\n${err}`)), timeoutMs);
      });
      try {
        return await Promise.race([exited, late]);
      } finally {
        clearTimeout(timer);
      }
    },
    async interrupt() {
      if (exitCode === undefined) child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Table rows as cells: columns are separated by two or more spaces. */
export function table(stdout: string): { header: string[]; rows: string[][] } {
  const [head, ...rest] = stdout.split('\n').filter((l) => l.trim().length > 0);
  const split = (l: string): string[] => l.trim().split(/\s{2,}/);
  return { header: head ? split(head) : [], rows: rest.map(split) };
}

/** The row whose first cell is `name`, as header → value. */
export function row(stdout: string, name: string): Record<string, string> | undefined {
  const { header, rows } = table(stdout);
  const r = rows.find((cells) => cells[0] === name);
  return r ? Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])) : undefined;
}

export function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 15_000): Promise<T> {
  return waitUntil(check, { what, timeoutMs, intervalMs: 50 });
}
