/**
 * `txloop` writing into real pipes and files: every row reaches a slow reader before the process
 * exits, a reader that leaves early (`| head`) is not an error, and output that cannot be written
 * fails the command. The namespace holds tens of thousands of branches, enough to fill a pipe.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, assertBuilt } from './helpers/cli.js';
import { freshNamespace, useEtcd } from './helpers/harness.js';

const env = useEtcd();
const ns = freshNamespace('pipe');
const BRANCHES = 40_000;
const SLOW_READER = fileURLToPath(new URL('./fixtures/slow-reader.ts', import.meta.url));
const branchName = (i: number): string => `orders.${String(i).padStart(12, '0')}/b${String(i).padStart(11, '0')}`;

/** Valid branch records, 128 puts per Txn (etcd's --max-txn-ops), a few Txns at a time. */
async function writeBranches(count: number): Promise<void> {
  const now = Date.now();
  const txns: (() => Promise<unknown>)[] = [];
  for (let first = 0; first < count; first += 128) {
    txns.push(() => {
      const puts = [];
      for (let i = first; i < Math.min(count, first + 128); i++) {
        const [xid, branchId] = branchName(i).split('/') as [string, string];
        const record = { v: 1, xid, app: 'orders', branchId, owner: 'bank', resource: 'debit', payload: null, createdAt: now + i, deadline: now + 600_000, tryState: 'SUCCEEDED', updatedAt: now, writeId: '', events: [] };
        puts.push(env.client.put(`${ns}bank/branch/${xid}/${branchId}`).value(JSON.stringify(record)));
      }
      return env.client.if(`${ns}unused`, 'Version', '==', 0).then(...puts).commit();
    });
  }
  for (let i = 0; i < txns.length; i += 8) await Promise.all(txns.slice(i, i + 8).map((t) => t()));
}

/**
 * Runs `txloop get branches -A <redirect>` under bash: `| <reader>`, `> /dev/full`. Returns bash's
 * stdout (the reader's), the CLI's stderr and each pipeline member's exit code (PIPESTATUS).
 */
function shell(redirect: string): Promise<{ stdout: string; stderr: string; codes: number[] }> {
  const script = `"$0" "$1" --endpoints "$2" --namespace "$3" get branches -A ${redirect}; echo "pipestatus: \${PIPESTATUS[*]}" >&2`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, process.execPath, CLI, env.endpoints.join(','), ns, SLOW_READER], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`bash -c ${script} did not finish within 60s; stderr: ${stderr}`));
    }, 60_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      const status = /^pipestatus: ([\d ]+)$/m.exec(stderr);
      if (!status) return reject(new Error(`no pipestatus in stderr: ${stderr}`));
      resolve({ stdout, stderr: stderr.replace(status[0], '').trim(), codes: status[1]!.trim().split(' ').map(Number) });
    });
  });
}

beforeAll(async () => {
  assertBuilt();
  await writeBranches(BRANCHES);
}, 60_000);

describe('output into pipes and files', () => {
  it('every row reaches a slow reader at the end of a pipe before txloop exits 0', async () => {
    // The reader needs about a second and a half for these rows; txloop used to exit 200 ms after its last write.
    const r = await shell('| "$0" --import tsx "$4"');
    expect(r.codes, r.stderr).toEqual([0, 0]);
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout) as { lines: number; last: string };
    expect(got.lines).toBe(BRANCHES + 1);
    expect(got.last.split(/\s+/)[0]).toBe(branchName(BRANCHES - 1));
  });

  it('a reader that stops early (| head) is not an error: exit 0, nothing on stderr', async () => {
    const r = await shell('| head -n 3');
    expect(r.codes).toEqual([0, 0]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toHaveLength(3);
  });

  it.skipIf(!existsSync('/dev/full'))('output that cannot be written (a full device) fails the command: exit 1 and one line', async () => {
    const r = await shell('> /dev/full');
    expect(r.codes).toEqual([1]);
    expect(r.stderr).toBe('error: could not write the output: ENOSPC');
  });
});
