/**
 * Every record the CLI reads but cannot use is named on stderr, once per key, by get, top, describe
 * and -w: values that fail validation under every prefix, keys that are no txloop key, orphan
 * members and orders. Each command reads only the record types it shows, of the services it covers
 * (one with --app), and the keys of no record type under those services' prefixes (and, over the
 * whole namespace, of no service). Next to them, a real transaction made by running services.
 * `top` shows the MALFORMED count a leader publishes in its stats record.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TxloopService } from '../src/index.js';
import { assertBuilt, row, runCli, spawnCli, table, waitFor } from './helpers/cli.js';
import { freshNamespace, harness, useEtcd, type Harness } from './helpers/harness.js';

const env = useEtcd();
const ns = freshNamespace('poison');
let services: Harness;
let good = { xid: '', branchId: '' };
const cli = (...args: string[]) => runCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, ...args]);

const now = Date.now();
const stats = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ identity: 'audit#1/pid-1', at: now, queues: { globals: { depth: 0 }, branches: { depth: 0 } }, phase2: { succeeded: 0, failed: 0 }, branches: {}, ...extra });
const link = (xid: string, branchId: string) => JSON.stringify({ v: 1, xid, owner: 'bank', branchId, resource: 'hold', tryState: 'SUCCEEDED' });
const order = (xid: string, branchId: string) => JSON.stringify({ v: 1, xid, branchId, action: 'cancel', decidedAt: now, by: 'rollback' });

/**
 * What reads a record: the command listing its type (`gtx`: globals and members, `branches`:
 * branches and orders, `services`: leader, stats and presence records), `any` command covering its service's
 * prefix (a key of no record type there), or `any` command covering the whole namespace (`ns`: a
 * key of no service).
 */
type Reader = 'gtx' | 'branches' | 'services' | 'any' | 'ns';

/** Key (after the namespace) → value, the problem the CLI must name for it, and what reads it. */
const POISON: [string, string, RegExp, Reader][] = [
  // Keys that are no txloop key.
  ['bank/branch/not-a-xid', '{}', /^a branch key is .*<app>\/branch\/<transaction-id>\/<branch-id>$/, 'branches'],
  ['bank/gtx/', '{}', /^empty transaction id$/, 'gtx'],
  ['bank/weird/x', 'x', /^unknown record type "weird"/, 'any'],
  ['Bad_App/gtx/orders.0000000000000009', '{}', /^"Bad_App" is not a service name$/, 'ns'],
  ['orders/gtx/orders.0000000000000008/extra', '{}', /^a gtx key is /, 'gtx'],
  ['bank/leader/extra', '{}', /^a leader key is /, 'services'],
  ['bank/replica/NOT-HEX', '{}', /^"NOT-HEX" is not a replica id$/, 'services'],
  ['bank/replica', '{}', /^a replica key is .*<app>\/replica\/<replica-id>$/, 'any'],
  ['bank/order/orders.0000000000000007/-x', '{}', /^"-x" is not a branch id$/, 'branches'],
  ['bank/gtx/orders.0000000000000006', '{}', /^transaction orders\.0000000000000006 belongs under .*orders\/, not .*bank\/$/, 'gtx'],
  // Values that fail validation, one under every prefix.
  ['orders/gtx/orders.00000000000000a1', 'not json', /^not JSON/, 'gtx'],
  ['orders/link/orders.00000000000000a2/bank/abcd0002', '{"v":1}', /must be a non-empty string/, 'gtx'],
  ['bank/branch/orders.00000000000000a3/abcd0003', '[]', /^not a JSON object$/, 'branches'],
  ['bank/order/orders.00000000000000a4/abcd0004', '{"v":1,"xid":"orders.00000000000000a4","branchId":"abcd0004","action":"maybe"}', /^action must be one of/, 'branches'],
  ['pay/leader', '{"identity":5}', /^identity must be a non-empty string$/, 'services'],
  ['pay/stats', '{"identity":"pay#1"}', /^at must be a finite number$/, 'services'],
  ['odd/stats', stats({ malformed: 'lots' }), /^malformed must map record kinds to counts$/, 'services'],
  ['pay/replica/1f', '{"identity":"pay#1","pid":1,"since":1,"lease":"31"}', /^host must be a string$/, 'services'],
  // Well-formed records pointing at nothing.
  ['orders/link/orders.00000000000000b1/bank/abcd1001', link('orders.00000000000000b1', 'abcd1001'), /^orphan member: transaction orders\.00000000000000b1 has no global record$/, 'gtx'],
  ['bank/order/orders.00000000000000b2/abcd1002', order('orders.00000000000000b2', 'abcd1002'), /^orphan order: branch orders\.00000000000000b2\/abcd1002 has no branch record$/, 'branches'],
];

/** `warning: malformed record at <key>: <problem>` lines of stderr, as key → problems. */
function warnings(stderr: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of stderr.split('\n')) {
    const m = /^warning: malformed record at (\S+): (.*)$/.exec(line);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

/** Every poison key `reads` selects warned about exactly once, with its problem, and nothing else. */
function expectPoisonOnce(stderr: string, reads: (key: string, reader: Reader) => boolean): void {
  const seen = warnings(stderr);
  const expected = POISON.filter(([k, , , r]) => reads(k, r));
  expect(expected.length).toBeGreaterThan(0);
  expect([...seen.keys()].sort(), stderr).toEqual(expected.map(([k]) => `${ns}${k}`).sort());
  for (const [k, , problem] of expected) {
    const got = seen.get(`${ns}${k}`)!;
    expect(got, k).toHaveLength(1);
    expect(got[0], k).toMatch(problem);
  }
}

/** What a command over the whole namespace reads: its record types, and every key of no record type or service. */
const wholeNamespace = (type: Reader) => (_key: string, r: Reader) => r === type || r === 'any' || r === 'ns';
/** What a command over one service (`--app`) reads: its record types and the keys of no record type under that service's prefix. */
const oneService = (app: string, type: Reader) => (key: string, r: Reader) => key.startsWith(`${app}/`) && (r === type || r === 'any');

beforeAll(async () => {
  assertBuilt();
  services = harness(() => env.endpoints, ns);
  const orders: TxloopService = services.service({ app: 'orders' });
  const bank: TxloopService = services.service({ app: 'bank' });
  bank.resource('hold', { try: () => 'held', confirm: () => undefined, cancel: () => undefined });
  await orders.start();
  await bank.start();
  const t = await orders.begin({ name: 'good', timeoutMs: 600_000 });
  good = { xid: t.xid, branchId: (await bank.tryBranch(t.context, 'hold', {})).branchId };
  for (const [k, v] of POISON) await env.client.put(`${ns}${k}`).value(v);
  // A leader that reports 2 + 3 records it could not use.
  await env.client.put(`${ns}audit/stats`).value(stats({ malformed: { gtx: 2, unknown: 3 } }));
  await env.client.put(`${ns}audit/leader`).value(JSON.stringify({ identity: 'audit#1/pid-1', since: now }));
}, 60_000);

afterAll(async () => {
  await services?.closeAll();
});

describe('records the CLI cannot use', () => {
  it.each([
    [['get', 'gtx'], wholeNamespace('gtx')],
    [['get', 'branches', '-o', 'json'], wholeNamespace('branches')],
    [['get', 'branches', '--status', 'failed'], wholeNamespace('branches')],
    [['get', 'leaders'], wholeNamespace('services')],
    [['top'], wholeNamespace('services')],
    [['get', 'gtx', '--app', 'orders'], oneService('orders', 'gtx')],
    [['get', 'branches', '--app', 'bank'], oneService('bank', 'branches')],
    [['top', '--app', 'bank'], oneService('bank', 'services')],
  ] as const)('%j names every unusable record it reads on stderr, once each, and succeeds', async (args, reads) => {
    const r = await cli(...args);
    expect(r.code, r.stderr).toBe(0);
    expectPoisonOnce(r.stderr, reads);
  });

  it('the good transaction is still listed next to them', async () => {
    const r = await cli('get', 'gtx');
    expect(row(r.stdout, good.xid)).toMatchObject({ STATUS: 'TRYING', BRANCHES: '0/1' });
    expect(row(r.stdout, 'orders.00000000000000a1')).toMatchObject({ STATUS: 'MALFORMED' });
  });

  it('get -w names them once when it lists, and a poison record written while it watches once more', async () => {
    const w = spawnCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, 'get', 'gtx', '-w']);
    try {
      await w.waitForLine((l) => l.startsWith(good.xid), 'the good transaction');
      await env.client.put(`${ns}bank/weird/later`).value('x');
      await env.client.put(`${ns}orders/gtx/orders.00000000000000c1`).value('{');
      // A later write that fixes nothing and breaks nothing new is not warned about again.
      await env.client.put(`${ns}bank/weird/x`).value('y');
      // And one more poison record after it, whose warning shows the watch got past that write: events
      // come in revision order (without it, the check below could look before the rewrite arrived).
      await env.client.put(`${ns}bank/weird/last`).value('z');
      await waitFor(() => {
        const seen = warnings(w.stderr());
        return seen.has(`${ns}orders/gtx/orders.00000000000000c1`) && seen.has(`${ns}bank/weird/later`) && seen.has(`${ns}bank/weird/last`);
      }, 'warnings for the records written during the watch', 20_000);
      expect(await w.interrupt()).toBe(0);
      const seen = warnings(w.stderr());
      // -w lists the namespace whole, as before.
      for (const [k] of POISON) expect(seen.get(`${ns}${k}`), k).toHaveLength(1);
      expect(seen.get(`${ns}bank/weird/later`)).toEqual(['unknown record type "weird" (a service keeps gtx, member, link, branch, order, leader, stats, replica)']);
      expect(seen.get(`${ns}orders/gtx/orders.00000000000000c1`)).toHaveLength(1);
      expect(seen.get(`${ns}bank/weird/last`)).toHaveLength(1);
    } finally {
      await w.interrupt();
      await env.client.delete().key(`${ns}bank/weird/last`);
      await env.client.delete().key(`${ns}bank/weird/later`);
      await env.client.delete().key(`${ns}orders/gtx/orders.00000000000000c1`);
      await env.client.put(`${ns}bank/weird/x`).value('x');
    }
  });

  it("describe names the unusable records among the transaction's own", async () => {
    await env.client.put(`${ns}orders/link/${good.xid}/bank/abcd2001`).value('{"v":3}');
    try {
      const r = await cli('describe', 'gtx', good.xid);
      expect(r.code, r.stderr).toBe(0);
      expect([...warnings(r.stderr)]).toEqual([[`${ns}orders/link/${good.xid}/bank/abcd2001`, ['unsupported record version 3']]]);
    } finally {
      await env.client.delete().key(`${ns}orders/link/${good.xid}/bank/abcd2001`);
    }
  });

  it("top shows the MALFORMED count a leader publishes (an SDK leader counts what it found), <none> without stats", async () => {
    const r = await cli('top');
    expect(table(r.stdout).header).toEqual(['APP', 'LEADER', 'REPLICAS', 'QUEUE', 'PROCESSING', 'WAITING', 'REQUEUES', 'SUCCEEDED', 'FAILED', 'PARKED', 'MALFORMED', 'UPDATED']);
    expect(row(r.stdout, 'audit')?.MALFORMED).toBe('5');
    // The SDK's leader publishes the records under its own prefix that it cannot use; top shows their sum.
    await waitFor(async () => {
      const raw = await env.client.get(`${ns}orders/stats`).string();
      const m = raw ? (JSON.parse(raw) as { malformed?: Record<string, number> }).malformed : undefined;
      const sum = Object.values(m ?? {}).reduce((a, b) => a + b, 0);
      return sum > 0 && row((await cli('top')).stdout, 'orders')?.MALFORMED === String(sum);
    }, 'top to show the malformed count the orders leader published', 20_000);
    expect(row(r.stdout, 'pay')?.MALFORMED).toBe('<none>');
    const sorted = await cli('top', '--sort-by', 'malformed', '-o', 'json');
    expect((JSON.parse(sorted.stdout) as { items: { app: string; stats: { malformed?: unknown } | null }[] }).items.find((s) => s.app === 'audit')?.stats?.malformed).toEqual({ gtx: 2, unknown: 3 });
  });
});
