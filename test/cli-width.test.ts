/**
 * `txloop` tables with wide characters: a transaction named in Chinese with an emoji, and branches
 * parked with Chinese-and-emoji last errors, made by running services. Every column must start at
 * the same terminal column in every row (CJK characters and these emoji take two columns), and a
 * cut cell must be cut by columns, at a whole character.
 */
import stringWidth from 'string-width';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TxloopService } from '../src/index.js';
import { assertBuilt, runCli, spawnCli, waitFor } from './helpers/cli.js';
import { freshNamespace, harness, useEtcd, type Harness } from './helpers/harness.js';

const env = useEtcd();
const ns = freshNamespace('width');
const NAME = '订单 42 支付 💳';
const LOCKED = '账本已锁定 🔒 请联系管理员 👩‍💻';
/** 80 columns of Chinese and an emoji: over LAST ERROR's 50. */
const LONG = `${'对账失败'.repeat(10)} 🧾 done`;

let services: Harness;
let shop: TxloopService;
let xid = '';
const cli = (...args: string[]) => runCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, ...args]);

/** The terminal column where each cell of a table line starts (cells are two or more spaces apart). */
function cellStarts(line: string): number[] {
  return [...line.matchAll(/\S+(?: \S+)*/g)].map((m) => stringWidth(line.slice(0, m.index)));
}

function expectAligned(stdout: string): string[] {
  const [header, ...rows] = stdout.split('\n').filter((l) => l.length > 0);
  expect(rows.length).toBeGreaterThan(0);
  for (const r of rows) expect(cellStarts(r), `${header}\n${r}`).toEqual(cellStarts(header!));
  return rows;
}

beforeAll(async () => {
  assertBuilt();
  services = harness(() => env.endpoints, ns);
  shop = services.service({ app: 'shop' });
  const ledger = services.service({ app: 'ledger', deadThreshold: 2 });
  ledger.resource('credit', { try: () => 'ok', confirm: () => Promise.reject(new Error(LOCKED)), cancel: () => undefined });
  ledger.resource('audit', { try: () => 'ok', confirm: () => Promise.reject(new Error(LONG)), cancel: () => undefined });
  await shop.start();
  await ledger.start();
  const t = await shop.begin({ name: NAME, timeoutMs: 600_000 });
  await ledger.tryBranch(t.context, 'credit', { amount: 42 });
  await ledger.tryBranch(t.context, 'audit', { note: '备注' });
  await t.commit();
  xid = t.xid;
  await waitFor(async () => (await shop.get(xid)).branches.every((b) => b.state === 'PARKED'), 'both branches to be parked', 30_000);
}, 60_000);

afterAll(async () => {
  await services?.closeAll();
});

describe('wide characters in tables', () => {
  it('get branches lines up every column by display width, with Chinese and emoji in LAST ERROR', async () => {
    for (const wide of [[], ['-o', 'wide']]) {
      const r = await cli('get', 'branches', ...wide);
      expect(r.code, r.stderr).toBe(0);
      const rows = expectAligned(r.stdout);
      expect(rows.some((l) => l.includes(LOCKED))).toBe(true);
    }
  });

  it('a last error wider than LAST ERROR is cut to its 50 columns at a whole character, ending in ...', async () => {
    const r = await cli('get', 'branches', '-o', 'json');
    const audit = (JSON.parse(r.stdout) as { items: { resource: string; branchId: string }[] }).items.find((b) => b.resource === 'audit')!;
    const table = await cli('get', 'branches', `${xid}/${audit.branchId}`);
    const [header, line] = table.stdout.split('\n') as [string, string];
    const printed = line.split(/\s{2,}/)[header.split(/\s{2,}/).indexOf('LAST ERROR')]!;
    expect(printed.endsWith('...')).toBe(true);
    expect(stringWidth(printed)).toBeLessThanOrEqual(50);
    expect(stringWidth(printed)).toBeGreaterThanOrEqual(48);
    expect(LONG.startsWith(printed.slice(0, -3))).toBe(true);
    // No half of a surrogate pair left behind.
    expect(printed).not.toMatch(/[\uD800-\uDFFF]/u);
  });

  it('get gtx -o wide lines up NAME and the columns after it', async () => {
    const r = await cli('get', 'gtx', '-o', 'wide');
    expect(r.code, r.stderr).toBe(0);
    const rows = expectAligned(r.stdout);
    expect(rows[0]).toContain(NAME);
  });

  it('get branches -w lines up its first rows with the header by display width', async () => {
    const w = spawnCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, 'get', 'branches', '-w']);
    try {
      await w.waitForLine((l) => l.includes(LOCKED), 'the row with the Chinese last error');
      await w.waitForLine((l) => l.includes('对账失败'), 'the row with the long last error');
      const first = w.stdout();
      // The watch itself is running, so it has its Ctrl-C handler: it prints the list before it
      // installs that, and a SIGINT sent on seeing the rows can beat it on a loaded machine (the
      // process then dies of the signal). A record written now is reported by the watch.
      await env.client.put(`${ns}ledger/weird/ready`).value('x');
      await waitFor(() => w.stderr().includes(`${ns}ledger/weird/ready`), 'the watch to report a record written after its list');
      expectAligned(first);
    } finally {
      expect(await w.interrupt()).toBe(0);
      await env.client.delete().key(`${ns}ledger/weird/ready`);
    }
  });
});
