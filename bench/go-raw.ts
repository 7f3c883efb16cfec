/**
 * The raw rate from Go: bench/go-raw (etcd's own Go client, go.etcd.io/etcd/client/v3) sends the same
 * Txns as the Node raw phase (one compare "key absent" + one 512-byte put) to the same etcd. Built
 * once into .cache/go-raw/ (gitignored) and rebuilt when its sources change (a stamp of their hash);
 * without a Go toolchain the figure is reported as missing, not guessed.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'go-raw');
const CACHE = join(SOURCE, '..', '..', '.cache', 'go-raw');
const BINARY = join(CACHE, 'go-raw');
const STAMP = join(CACHE, 'stamp');

export interface GoRawResult {
  ops: number;
  seconds: number;
  perSecond: number;
  cpuMs: number;
  failed: number;
}

/** The built binary's path, building it first when missing or stale; undefined (with the reason) without Go. */
export async function ensureGoRaw(): Promise<{ binary?: string; why?: string }> {
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(SOURCE, f)));
  const stamp = hash.digest('hex');
  if (existsSync(BINARY) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === stamp) return { binary: BINARY };
  try {
    await run('go', ['version']);
  } catch {
    return { why: 'no Go toolchain on PATH (the Go raw rate needs Go 1.26)' };
  }
  mkdirSync(CACHE, { recursive: true });
  await run('go', ['build', '-o', BINARY, '.'], { cwd: SOURCE, env: { ...process.env, CGO_ENABLED: '0' }, maxBuffer: 16 << 20 });
  writeFileSync(STAMP, stamp);
  return { binary: BINARY };
}

export async function goRawPhase(binary: string, endpoints: string[], ops: number, concurrency: number, tag: string): Promise<GoRawResult> {
  const { stdout } = await run(binary, ['--endpoints', endpoints.join(','), '--ops', String(ops), '--concurrency', String(concurrency), '--prefix', `txloop-bench/raw-go/${tag}/`]);
  return JSON.parse(stdout.trim()) as GoRawResult;
}
