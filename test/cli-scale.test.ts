/**
 * The CLI at scale, against real etcd servers and the built `txloop` binary: a command for one
 * service reads that service's prefix only; `get` prints as it reads, holding a bounded part of the
 * listing; --command-timeout bounds each etcd request, not the command. Records are written in bulk
 * by Txn, in the shapes the services write (see compat.test.ts and src/store/keys.ts).
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newBranchId, newXid } from '../src/store/index.js';
import { startEtcd, type EtcdServer } from '../src/testing.js';
import { assertBuilt, row, runCli, spawnCli, table } from './helpers/cli.js';
import { freshNamespace } from './helpers/harness.js';
import { sleep, untilStopped } from './helpers/wait.js';

const now = Date.now();

/** A TRYING transaction of `app` with one branch on `owner`, as its key-values: global, member, branch. */
function transaction(ns: string, app: string, owner: string, payload: unknown = { n: 1 }): { xid: string; branchId: string; kvs: [string, string][] } {
  const xid = newXid(app);
  const branchId = newBranchId();
  const global = { v: 1, xid, app, name: 'bulk', mode: 'tcc', status: 'TRYING', createdAt: now, timeoutMs: 600_000, deadline: now + 600_000, events: [] };
  const member = { v: 1, xid, owner, branchId, resource: 'r', tryState: 'SUCCEEDED' };
  const branch = { v: 1, mode: 'tcc', xid, app, branchId, owner, resource: 'r', payload, createdAt: now, deadline: now + 600_000, tryState: 'SUCCEEDED', updatedAt: now, writeId: 'w', keyLayout: 2, events: [] };
  return {
    xid,
    branchId,
    kvs: [
      [`${ns}${app}/gtx/${xid}`, JSON.stringify(global)],
      [`${ns}${app}/member/${xid}/${owner}/${branchId}`, JSON.stringify(member)],
      [`${ns}${owner}/branch/${xid}/${branchId}`, JSON.stringify(branch)],
    ],
  };
}

/** Writes key-values in Txns of up to `perTxn` puts (etcd takes 128 ops and 1.5 MiB per request by default). */
async function putAll(client: Etcd3, kvs: [string, string][], perTxn = 120): Promise<void> {
  for (let i = 0; i < kvs.length; i += perTxn) {
    await client.kv.txn({ success: kvs.slice(i, i + perTxn).map(([k, v]) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } })) });
  }
}

/** Peak resident memory of a running process so far (VmHWM), in bytes; undefined once it is gone. */
async function peakRss(pid: number): Promise<number | undefined> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const kb = status && /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : undefined;
}

let etcd: EtcdServer;
let client: Etcd3;

beforeAll(async () => {
  assertBuilt();
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.endpoints });
});

afterAll(async () => {
  client?.close();
  await etcd?.stop();
});

const cliIn = (ns: string, ...args: string[]) => runCli(['--endpoints', etcd.endpoints.join(','), '--namespace', ns, ...args]);

describe('a command for one service reads that service prefix only', () => {
  const ns = freshNamespace('one-app');
  let tiny: { xid: string; branchId: string };

  beforeAll(async () => {
    // The other service's prefix is full of records no command for `tiny` may read: values that fail
    // validation (caught if they were read) and keys of no txloop record (caught if even their keys were).
    const bulk: [string, string][] = [];
    for (let i = 0; i < 300; i++) {
      const t = transaction(ns, 'bulk', 'bulk');
      bulk.push(...t.kvs.map(([k]) => [k, 'not json'] as [string, string]));
      bulk.push([`${ns}bulk/weird/${i}`, 'x'], [`${ns}bulk/gtx/not-a-xid-${i}`, '{}'], [`${ns}bulk/branch/not-a-xid-${i}`, '{}']);
    }
    bulk.push([`${ns}bulk/leader`, '[]'], [`${ns}bulk/stats`, '{}']);
    await putAll(client, bulk);
    const t = transaction(ns, 'tiny', 'tiny');
    tiny = t;
    await putAll(client, [...t.kvs, [`${ns}tiny/leader`, JSON.stringify({ identity: 'tiny#1/pid-1', host: 'vm', pid: 1, since: now })]]);
  });

  it('top --app reads only that app prefix', async () => {
    const r = await cliIn(ns, 'top', '--app', 'tiny');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(table(r.stdout).rows.map((c) => c[0])).toEqual(['tiny']);
  });

  it.each([
    [['get', 'gtx', '--app', 'tiny'], (): string => tiny.xid],
    [['get', 'branches', '--app', 'tiny'], (): string => `${tiny.xid}/${tiny.branchId}`],
    [['get', 'leaders', '--app', 'tiny'], (): string => 'tiny'],
    [['get', 'gtx', '--app', 'tiny', '-o', 'json'], undefined],
  ] as const)('%j reads only that app prefix', async (args, first) => {
    const r = await cliIn(ns, ...args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    if (first) expect(table(r.stdout).rows.map((c) => c[0])).toEqual([first()]);
    else expect((JSON.parse(r.stdout) as { items: { xid: string; branches: unknown[] }[] }).items.map((g) => [g.xid, g.branches.length])).toEqual([[tiny.xid, 1]]);
  });

  it('get -w --app lists and watches only that app prefix', async () => {
    const w = spawnCli(['--endpoints', etcd.endpoints.join(','), '--namespace', ns, 'get', 'gtx', '--app', 'tiny', '-w']);
    try {
      await w.waitForLine((l) => l.startsWith(tiny.xid), 'the row of tiny');
      // A record written under the other prefix while it watches is not seen either.
      await client.put(`${ns}bulk/gtx/bulk.0000000000000001`).value('still not json');
      const later = transaction(ns, 'tiny', 'tiny');
      await putAll(client, later.kvs);
      await w.waitForLine((l) => l.startsWith(later.xid), 'a transaction of tiny begun while watched');
      expect(await w.interrupt()).toBe(0);
      expect(w.stderr()).toBe('');
    } finally {
      await w.interrupt();
    }
  });

  it("get gtx XID reads only the records of the service the name implies", async () => {
    const r = await cliIn(ns, 'get', 'gtx', tiny.xid);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(row(r.stdout, tiny.xid)).toMatchObject({ APP: 'tiny', STATUS: 'TRYING', BRANCHES: '0/1' });
  });

  it('over the whole namespace, the same commands do read the other prefix (and name what they cannot use)', async () => {
    // The premise of the tests above: reading bulk's prefix would show on stderr.
    for (const args of [['top'], ['get', 'gtx'], ['get', 'branches']]) {
      const r = await cliIn(ns, ...args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(new RegExp(`^warning: malformed record at ${ns}bulk/`, 'm'));
    }
  });
});

describe('get streams', () => {
  // 10,000 branches of 2 kB: 30 MB in etcd, 550 kB of `-o name` output, far more than a pipe and
  // the CLI's stdout buffer hold, and more than the CLI reads ahead of what it printed.
  const ns = freshNamespace('stream');
  const BRANCHES = 10_000;
  const names = new Set<string>();

  beforeAll(async () => {
    const kvs: [string, string][] = [];
    for (let i = 0; i < BRANCHES; i++) {
      const t = transaction(ns, 'shop', 'bank', { blob: 'x'.repeat(2_000), i });
      names.add(`branch/${t.xid}/${t.branchId}`);
      kvs.push(...t.kvs);
    }
    await putAll(client, kvs, 100);
  }, 120_000);

  const spawnGet = (...args: string[]) => spawnCli(['--endpoints', etcd.endpoints.join(','), '--namespace', ns, 'get', 'branches', '-o', 'name', ...args]);

  it('--command-timeout bounds each request: a listing printed to a reader that pauses for longer still completes', async () => {
    const w = spawnGet('--command-timeout', '1s');
    try {
      await w.waitForLine((l) => l.startsWith('branch/'), 'the first rows');
      w.child.stdout!.pause();
      // Longer than --command-timeout, with the CLI waiting on its output, not on etcd.
      await sleep(2_500);
      w.child.stdout!.resume();
      expect(await w.exit(60_000), w.stderr()).toBe(0);
      expect(w.stderr()).toBe('');
      expect(new Set(w.lines())).toEqual(names);
      expect(w.lines()).toHaveLength(BRANCHES);
    } finally {
      await w.interrupt();
    }
  }, 90_000);

  it('--command-timeout bounds each request: etcd hung mid-listing fails the next request after it, with one line and exit 1; the rows before it were printed', async () => {
    const w = spawnGet('--command-timeout', '1s');
    let stopped = false;
    try {
      await w.waitForLine((l) => l.startsWith('branch/'), 'the first rows');
      // The CLI waits for its reader; then etcd hangs; then the reader asks for more.
      w.child.stdout!.pause();
      process.kill(etcd.pid, 'SIGSTOP');
      stopped = true;
      await untilStopped(etcd.pid, 'etcd');
      w.child.stdout!.resume();
      expect(await w.exit(30_000), w.stderr()).toBe(1);
      expect(w.stderr()).toBe(
        `error: etcd at ${etcd.endpoints.join(',')} did not answer a request within 1s (--command-timeout): check that it is running and not paused or overloaded, or raise --command-timeout\n`,
      );
      // Output arrived before the listing was complete: what was printed is a part of it, and only rows.
      const printed = w.lines();
      expect(printed.length).toBeGreaterThan(0);
      expect(printed.length).toBeLessThan(BRANCHES);
      for (const l of printed) expect(names.has(l), l).toBe(true);
    } finally {
      if (stopped) process.kill(etcd.pid, 'SIGCONT');
      await w.interrupt();
    }
  }, 60_000);

  it('get streams: memory stays bounded (150 MB of records listed with a 32 MiB heap, resident memory growing by less than half of that)', async () => {
    // 600 branches of 250 kB. Holding them (as the CLI did: parsed into its model) takes several times
    // the heap limit. With the limit, the heap is what the CLI keeps alive, not what V8 leaves uncollected.
    const big = freshNamespace('stream-big');
    const want = new Set<string>();
    for (let i = 0; i < 600; i++) {
      const t = transaction(big, 'shop', 'bank', { blob: 'y'.repeat(250_000), i });
      want.add(`branch/${t.xid}/${t.branchId}`);
      await putAll(client, t.kvs);
    }
    const DATA = 600 * 250_000;
    const heap = { NODE_OPTIONS: '--max-old-space-size=32' };
    /** Runs `get branches -o name` in `namespace`, sampling its peak resident memory until it exits. */
    const measured = async (namespace: string): Promise<{ code: number | null; lines: string[]; stderr: string; peak: number }> => {
      const w = spawnCli(['--endpoints', etcd.endpoints.join(','), '--namespace', namespace, 'get', 'branches', '-o', 'name'], heap);
      let peak = 0;
      const sampling = (async () => {
        for (let rss = await peakRss(w.child.pid!); rss !== undefined; rss = await peakRss(w.child.pid!)) {
          peak = Math.max(peak, rss);
          await sleep(10);
        }
      })();
      try {
        const code = await w.exit(60_000);
        await sampling;
        return { code, lines: w.lines(), stderr: w.stderr(), peak };
      } finally {
        await w.interrupt();
      }
    };
    try {
      const empty = await measured(freshNamespace('stream-empty'));
      expect(empty.code, empty.stderr).toBe(0);
      const listed = await measured(big);
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stderr).toBe('');
      expect(new Set(listed.lines)).toEqual(want);
      expect(empty.peak).toBeGreaterThan(0);
      expect(listed.peak - empty.peak).toBeLessThan(DATA / 2);
    } finally {
      await client.delete().prefix(big);
    }
  }, 180_000);
});

describe('a table printed in chunks', () => {
  it('a listing longer than one chunk keeps every row under a header printed once, columns widening only', async () => {
    const ns = freshNamespace('chunks');
    const kvs: [string, string][] = [];
    for (let i = 0; i < 1_200; i++) kvs.push(...transaction(ns, 'shop', i < 1_100 ? 'bank' : 'zz-a-much-longer-owner-name').kvs);
    await putAll(client, kvs);
    const r = await cliIn(ns, 'get', 'branches');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => l.startsWith('BRANCH '))).toHaveLength(1);
    expect(lines).toHaveLength(1 + 1_200);
    // The short owner's rows come first (key order), the long one's in a later chunk: each row's
    // STATUS starts where the header's does, or further right once that chunk widened OWNER.
    const at = (l: string) => l.search(/\sPREPARED\s/) + 1;
    const header = lines[0]!.indexOf('STATUS');
    const starts = lines.slice(1).map(at);
    for (const s of starts) expect(s).toBeGreaterThanOrEqual(header);
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
  });
});
