/**
 * The `txloop` binary over a namespace larger than gRPC's default 4 MiB receive limit: 22
 * transactions whose branches carry 250 kB payloads (under the default maxPayloadBytes), written
 * through the SDK by running services.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageOf } from '../src/cli/errors.js';
import { createEtcdClient, prefixEnd } from '../src/etcd/index.js';
import type { TxloopService } from '../src/index.js';
import { Keys, newBranchId, newXid, type BranchRecord } from '../src/store/index.js';
import { startEtcd } from '../src/testing.js';
import { assertBuilt, row, runCli, spawnCli, table } from './helpers/cli.js';
import { freshNamespace, ordersAndBank, useEtcd, waitFor, type Harness } from './helpers/harness.js';

const env = useEtcd();
const TRANSACTIONS = 22;
const PAYLOAD_BYTES = 250_000;

const ns = freshNamespace('large');
let services: Harness;
let orders: TxloopService;
let bank: TxloopService;
const xids: string[] = [];
const cli = (...args: string[]) => runCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, ...args]);

async function bigTransaction(name: string): Promise<string> {
  const t = await orders.begin({ name, timeoutMs: 600_000 });
  await bank.tryBranch(t.context, 'hold', { blob: 'x'.repeat(PAYLOAD_BYTES) });
  return t.xid;
}

beforeAll(async () => {
  assertBuilt();
  // Services for the whole file (env.fresh() would close them after the first test).
  ({ services, orders, bank } = await ordersAndBank(() => env.endpoints, ns));
  for (let i = 0; i < TRANSACTIONS; i++) xids.push(await bigTransaction(`big ${i}`));
  // The premise: a client with gRPC's default limit cannot receive the namespace in one response.
  await expect(env.client.kv.range({ key: Buffer.from(ns), range_end: prefixEnd(ns) })).rejects.toThrow(/larger than max \(\d+ vs 4194304\)/);
}, 120_000);

afterAll(async () => {
  await services?.closeAll();
});

describe('a namespace larger than 4 MiB', () => {
  it('get gtx -A lists every transaction', async () => {
    const r = await cli('get', 'gtx', '-A');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(table(r.stdout).rows.map((c) => c[0]).sort()).toEqual([...xids].sort());
    expect(row(r.stdout, xids[0]!)).toMatchObject({ STATUS: 'TRYING', BRANCHES: '0/1' });
  });

  it('get branches -A -o json prints every branch with its whole payload', async () => {
    const r = await cli('get', 'branches', '-A', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as { items: { xid: string; payload: { blob: string } }[] };
    expect(list.items.map((b) => b.xid).sort()).toEqual([...xids].sort());
    for (const b of list.items) expect(b.payload.blob).toHaveLength(PAYLOAD_BYTES);
  });

  it("top and get leaders show each service's leader", async () => {
    const top = await cli('top');
    expect(top.code, top.stderr).toBe(0);
    expect(table(top.stdout).rows.map((c) => c[0])).toEqual(['bank', 'orders']);
    const leaders = await cli('get', 'leaders');
    expect(leaders.code, leaders.stderr).toBe(0);
    expect(row(leaders.stdout, 'bank')?.LEADER).not.toBe('<none>');
    expect(row(leaders.stdout, 'orders')?.LEADER).not.toBe('<none>');
  });

  it('get gtx -w lists every transaction, then follows changes', async () => {
    const w = spawnCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, 'get', 'gtx', '-w']);
    try {
      for (const xid of xids) await w.waitForLine((l) => l.startsWith(xid), `the row of ${xid}`, 30_000);
      const added = await bigTransaction('big, while watched');
      await w.waitForLine((l) => l.startsWith(added) && /\sTRYING\s/.test(l), 'the transaction begun during the watch', 30_000);
      await orders.rollback(added);
      await w.waitForLine((l) => l.startsWith(added) && /\sROLLED_BACK\s/.test(l), 'its rollback', 30_000);
      expect(await w.interrupt()).toBe(0);
      expect(w.stderr()).toBe('');
    } finally {
      await w.interrupt();
    }
  });
});

it('a response over the gRPC receive limit is reported as one line without gRPC wording', async () => {
  const tight = new Etcd3({ hosts: env.endpoints, grpcOptions: { 'grpc.max_receive_message_length': 100_000 } });
  try {
    const err = await tight.kv.range({ key: Buffer.from(ns), range_end: prefixEnd(ns) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    const line = messageOf(err, env.endpoints);
    expect(line).toBe(`etcd at ${env.endpoints.join(',')} answered with more data than the CLI receives in one response (${/\((\d+) vs/.exec((err as Error).message)?.[1]} bytes, limit 100000)`);
    expect(line).not.toMatch(/RESOURCE_EXHAUSTED|Received message|larger than max/);
  } finally {
    tight.close();
  }
});

it('txloop get branches -w -o name misses no event when one watch response carries more than 4 MiB', async () => {
  // Its own etcd, taking one 6 MB Txn: its 24 puts are one revision, and etcd sends one revision's
  // events to a watcher in one response, which a client with gRPC's default 4 MiB limit never
  // receives (etcd3 reconnects the watch over and over). The next Txn deletes them again, so a
  // relist after such a reconnect finds nothing: only the watch can show them.
  const etcd = await startEtcd({ extraArgs: ['--max-request-bytes', String(8 * 1024 * 1024)] });
  const writer = createEtcdClient({ endpoints: etcd.endpoints });
  const prefix = freshNamespace('watch-large');
  const keys = new Keys(prefix);
  const now = Date.now();
  const branch = (): { key: string; name: string; value: string } => {
    const xid = newXid('shop');
    const branchId = newBranchId();
    const record: BranchRecord = { v: 1, mode: 'tcc', xid, app: 'shop', branchId, owner: 'bank', resource: 'hold', payload: { blob: 'x'.repeat(PAYLOAD_BYTES) }, createdAt: now, deadline: now + 600_000, tryState: 'PENDING', updatedAt: now, writeId: 'w', keyLayout: 2, events: [] };
    return { key: keys.branch('bank', xid, branchId), name: `branch/${xid}/${branchId}`, value: JSON.stringify(record) };
  };
  const put = (b: { key: string; value: string }) => ({ request_put: { key: Buffer.from(b.key), value: Buffer.from(b.value) } });
  let w: ReturnType<typeof spawnCli> | undefined;
  try {
    // More than 4 MiB already there, for the list the watch starts from.
    const listed = Array.from({ length: 24 }, branch);
    for (const b of listed) await writer.kv.txn({ success: [put(b)] });
    w = spawnCli(['--endpoints', etcd.endpoints.join(','), '--namespace', prefix, 'get', 'branches', '-w', '-o', 'name']);
    for (const b of listed) await w.waitForLine((l) => l === b.name, `the listed ${b.name}`, 30_000);

    const burst = Array.from({ length: 24 }, branch);
    const written = await writer.kv.txn({ success: burst.map(put) });
    expect(written.succeeded).toBe(true);
    await writer.kv.txn({ success: burst.map((b) => ({ request_delete_range: { key: Buffer.from(b.key) } })) });
    // The premise: the burst is more than a 4 MiB client can receive in one response.
    const tight = new Etcd3({ hosts: etcd.endpoints });
    try {
      await expect(tight.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), revision: written.header.revision, min_mod_revision: written.header.revision })).rejects.toThrow(/larger than max \(\d+ vs 4194304\)/);
    } finally {
      tight.close();
    }
    // Each one's put (and then its deletion, which prints the name again) came through the watch.
    for (const b of burst) await w.waitForLine((l) => l === b.name, `the watched ${b.name}`, 30_000);
    expect(await w.interrupt()).toBe(0);
    const printed = w.lines();
    for (const b of listed) expect(printed.filter((l) => l === b.name), b.name).toHaveLength(1);
    expect(new Set(printed)).toEqual(new Set([...listed, ...burst].map((b) => b.name)));
    expect(w.stderr()).toBe('');
  } finally {
    await w?.interrupt();
    writer.close();
    await etcd.stop();
  }
}, 90_000);

it("the CLI's informer (what get -w runs) misses no event when its watch catches up over more than 4 MiB in one response", async () => {
  const { connect, resolveConnection } = await import('../src/cli/connection.js');
  const { Informer } = await import('../src/cache/index.js');
  const { pino } = await import('pino');
  const prefix = freshNamespace('catch-up');
  // Its own client: the file's shared one may have tripped its breaker on the too-large read above.
  const writer = new Etcd3({ hosts: env.endpoints });
  const from = (await writer.get('nothing').exec()).header.revision;
  // 24 × 250 kB written after the revision the watch resumes from: an unsynced watcher gets them
  // in one response.
  const burst = Array.from({ length: 24 }, (_, i) => `${prefix}big/${i}`);
  for (const key of burst) await writer.put(key).value('x'.repeat(PAYLOAD_BYTES));
  writer.close();
  const conn = connect(resolveConnection({ endpoints: env.endpoints.join(',') }, {}));
  const seen = new Set<string>();
  const informer = new Informer({ client: conn.client, prefix, logger: pino({ level: 'silent' }), seed: { kvs: [], revision: from }, onChange: (key) => void seen.add(key) });
  try {
    await informer.start();
    await waitFor(() => burst.every((k) => seen.has(k)), { what: `all ${burst.length} keys (seen ${seen.size})`, timeoutMs: 30_000 });
    expect(informer.relists).toBe(0); // delivered by the watch itself, not recovered by a relist
  } finally {
    await informer.stop();
    conn.close();
  }
});
