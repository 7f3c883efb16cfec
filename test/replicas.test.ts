/**
 * Every replica of a service, leader or standby, announces itself: `<ns><app>/replica/<lease id in
 * hex>`, bound to its election lease, so "replicas seen" is the records there. Real etcd, real
 * processes for the one that dies, the built CLI for what an operator reads.
 */
import { randomBytes } from 'node:crypto';
import { Etcd3, Range } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TxloopService, type ReplicaRecord } from '../src/index.js';
import { prefixEnd } from '../src/etcd/index.js';
import { Keys, replicaIdOf } from '../src/store/index.js';
import { startEtcd, type EtcdServer } from '../src/testing.js';
import { assertBuilt, row, runCli, table } from './helpers/cli.js';
import { capturingLogger, useEtcd, waitFor } from './helpers/harness.js';
import { spawnReplica, stopReplica, type Replica } from './helpers/processes.js';

const env = useEtcd();
const noop = { try: () => undefined, confirm: () => undefined, cancel: () => undefined };

/** The presence records under `<ns><app>/replica/`, by key. */
async function presence(client: Etcd3, ns: string, app: string): Promise<Map<string, ReplicaRecord>> {
  const all = await client.getAll().prefix(new Keys(ns).replicasOf(app)).strings();
  return new Map(Object.entries(all).map(([k, v]) => [k, JSON.parse(v) as ReplicaRecord]));
}

const identities = (records: Map<string, ReplicaRecord>): string[] => [...records.values()].map((r) => r.identity).sort();

/** Two started replicas of `app` in a fresh namespace, and what etcd holds of their presence once both are there. */
async function twoReplicas(label: string, app = 'acct'): Promise<{ ns: string; a: TxloopService; b: TxloopService; records: Map<string, ReplicaRecord> }> {
  const { ns, h } = env.fresh(label);
  const a = h.service({ app, identity: `${app}-a` });
  const b = h.service({ app, identity: `${app}-b` });
  await Promise.all([a.start(), b.start()]);
  const records = await waitFor(async () => {
    const r = await presence(env.client, ns, app);
    return r.size === 2 ? r : undefined;
  }, 'both replicas to announce themselves');
  await waitFor(() => a.isLeader() || b.isLeader(), 'a leader');
  return { ns, a, b, records };
}

beforeAll(() => assertBuilt());

describe('every replica announces itself, bound to its lease', () => {
  it('two replicas of one app, leader and standby, each have a presence record naming its identity, keyed by its lease id; get leaders and top count REPLICAS 2', async () => {
    const { ns, a, b, records } = await twoReplicas('two');
    expect(identities(records)).toEqual(['acct-a', 'acct-b']);
    for (const [key, r] of records) {
      expect(key).toBe(new Keys(ns).replica('acct', replicaIdOf(r.lease)));
      expect(r).toMatchObject({ pid: process.pid, host: expect.any(String), since: expect.any(Number) });
    }
    // The leader's record is the one of the lease its leader key is bound to.
    expect([a, b].filter((s) => s.isLeader())).toHaveLength(1);
    const leader = JSON.parse((await env.client.get(new Keys(ns).leader('acct')).string())!) as { identity: string; lease: string };
    expect([...records.values()].find((r) => r.lease === leader.lease)?.identity).toBe(leader.identity);

    const cli = (...args: string[]) => runCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, ...args]);
    const leaders = await cli('get', 'leaders');
    expect(leaders.code, leaders.stderr).toBe(0);
    expect(leaders.stderr).toBe('');
    expect(table(leaders.stdout).header).toEqual(['APP', 'LEADER', 'HOST', 'PID', 'REPLICAS', 'AGE']);
    expect(row(leaders.stdout, 'acct')).toMatchObject({ LEADER: leader.identity, REPLICAS: '2' });
    const json = JSON.parse((await cli('get', 'leaders', 'acct', '-o', 'json')).stdout) as { replicas: ReplicaRecord[] };
    expect(json.replicas.map((r) => r.identity).sort()).toEqual(['acct-a', 'acct-b']);
    const yaml = await cli('get', 'leaders', 'acct', '-o', 'yaml');
    expect(yaml.stdout).toMatch(/^replicas:\n {2}- identity: acct-[ab]\n/m);
    const top = await cli('top');
    expect(table(top.stdout).header.slice(0, 3)).toEqual(['APP', 'LEADER', 'REPLICAS']);
    expect(row(top.stdout, 'acct')?.REPLICAS).toBe('2');
  });

  it("a replica that closes takes its presence record with it at once (its lease is revoked); the standby that takes over keeps its one record", async () => {
    const { ns, a, b, records } = await twoReplicas('close');
    const [leader, standby] = a.isLeader() ? [a, b] : [b, a];
    const keyOf = (identity: string): string => [...records].find(([, r]) => r.identity === identity)![0];
    const standbyKey = keyOf(standby === a ? 'acct-a' : 'acct-b');
    await leader.close();
    // No wait: close() returns after the revoke, and the revoke deletes what was bound to the lease.
    expect([...(await presence(env.client, ns, 'acct')).keys()]).toEqual([standbyKey]);
    await waitFor(() => standby.isLeader(), 'the standby to take over');
    // Leading on the same lease: no second record, the first one unchanged.
    const after = await presence(env.client, ns, 'acct');
    expect([...after.keys()]).toEqual([standbyKey]);
    expect(after.get(standbyKey)).toEqual(records.get(standbyKey));
    await standby.close();
    expect((await presence(env.client, ns, 'acct')).size).toBe(0);
  });

  describe('a replica killed without closing', () => {
    let replica: Replica | undefined;
    afterEach(async () => {
      if (replica) await stopReplica(replica);
      replica = undefined;
    });

    it("a SIGKILLed replica's presence record stays until its lease's TTL has passed, then it is gone", async () => {
      const { ns, h } = env.fresh('kill');
      const standby = h.service({ app: 'acct', identity: 'in-process' });
      await standby.start();
      replica = spawnReplica('participant.ts', 'replica-killed', { TXLOOP_ENDPOINTS: env.endpoints.join(','), NS: ns, APP: 'acct', LEASE_TTL_S: '6' });
      await replica.waitForEvent((e) => e.event === 'started', 'the replica process to start');
      const mine = await waitFor(async () => [...(await presence(env.client, ns, 'acct'))].find(([, r]) => r.identity === 'replica-killed'), 'the process replica to announce itself');
      expect(mine[1].pid).toBe(replica.child.pid);
      await stopReplica(replica); // SIGKILL: nothing revokes its lease
      // Its lease was kept alive up to the kill, so it has most of its 6 s TTL left.
      expect((await presence(env.client, ns, 'acct')).has(mine[0])).toBe(true);
      await waitFor(async () => !(await presence(env.client, ns, 'acct')).has(mine[0]), { what: "the killed replica's record to expire with its lease", timeoutMs: 30_000 });
      expect(identities(await presence(env.client, ns, 'acct'))).toEqual(['in-process']);
    });
  });
});

describe('invariant 9: a malformed presence record', () => {
  it('is reported once, naming its key and field, counted as a replica record in the stats and top, and the control loop goes on', async () => {
    const { ns, h } = env.fresh('bad');
    const { logger, lines } = capturingLogger('error');
    const acct = h.service({ app: 'acct', logger, resyncMs: 200 }).resource('r', noop);
    const shop = h.service({ app: 'shop' });
    await Promise.all([acct.start(), shop.start()]);
    await waitFor(() => acct.isLeader(), 'acct to lead');
    const bad = `${ns}acct/replica/abc123`;
    await env.client.put(bad).value(JSON.stringify({ identity: 'hand-written', host: 'vm', pid: 'x', since: Date.now(), lease: '1' }));
    const reports = (): Record<string, unknown>[] => lines.filter((l) => l.key === bad && l.msg === 'malformed record skipped; it is ignored until it is repaired or deleted');
    const first = await waitFor(() => reports()[0], 'the malformed presence record to be reported');
    expect(first).toMatchObject({ kind: 'replica', problem: expect.stringMatching(/^pid must be a process id/) });

    // The loop goes on: a transaction through it completes.
    const tx = await shop.begin({ name: 'after the bad record', timeoutMs: 30_000 });
    await acct.tryBranch(tx.context, 'r', {});
    await tx.commit();
    expect((await shop.waitForCompletion(tx.xid, { timeoutMs: 30_000 })).status).toBe('COMMITTED');

    // Published as a replica record in the leader's tally, once the figures are a second past the
    // report (five resyncs of 200 ms have delivered the record again meanwhile): still one report.
    const reportedAt = first.time as number;
    const stats = await waitFor(async () => {
      const raw = await env.client.get(new Keys(ns).stats('acct')).string();
      const s = raw ? (JSON.parse(raw) as { at: number; malformed?: Record<string, number> }) : undefined;
      return s && s.at > reportedAt + 1_000 ? s : undefined;
    }, 'stats published a second after the report');
    expect(stats.malformed).toMatchObject({ replica: 1 });
    expect(reports()).toHaveLength(1);

    const cli = (...args: string[]) => runCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, ...args]);
    const top = await cli('top', '--app', 'acct');
    expect(top.code, top.stderr).toBe(0);
    expect(row(top.stdout, 'acct')).toMatchObject({ MALFORMED: '1', REPLICAS: '1' }); // the bad one is named, not counted
    expect(top.stderr.trim().split('\n')).toEqual([`warning: malformed record at ${bad}: ${first.problem as string}`]);
  });
});

describe('a presence put that etcd refuses', () => {
  let etcd: EtcdServer;
  let root: Etcd3;
  const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
  const ns = `replicas-auth-${randomBytes(4).toString('hex')}/`;
  const replicas = `${ns}acct/replica/`;

  beforeAll(async () => {
    etcd = await startEtcd();
    root = new Etcd3({ hosts: etcd.endpoints });
    await root.role('root').create();
    await root.user('root').create(PASSWORD);
    await root.user('root').addRole('root');
    // A service user that may read all of its namespace and write all of it but the presence records.
    const svc = await root.role('svc').create();
    await svc.grant([
      { permission: 'Read', range: Range.prefix(ns) },
      { permission: 'Write', range: new Range(ns, replicas) },
      { permission: 'Write', range: new Range(prefixEnd(replicas), prefixEnd(ns)) },
    ]);
    await root.user('svc').create(PASSWORD);
    await root.user('svc').addRole('svc');
    await root.auth.authEnable();
    root.close();
    root = new Etcd3({ hosts: etcd.endpoints, auth: { username: 'root', password: PASSWORD } });
  });

  afterAll(async () => {
    root?.close();
    await etcd?.stop();
  });

  it('is retried while its lease lives, also by a leader holding its term: the replica is seen once the put can land', async () => {
    const { logger, lines } = capturingLogger('warn');
    // Not the harness's: this service logs in as the restricted user.
    const acct = new TxloopService({ app: 'acct', namespace: ns, identity: 'acct-1', logger, leaseTtlSeconds: 10, etcd: { endpoints: etcd.endpoints, auth: { username: 'svc', password: PASSWORD } } });
    try {
      await acct.start();
      await waitFor(() => acct.isLeader(), 'acct to lead although its presence put is refused');
      await waitFor(() => lines.find((l) => l.msg === 'replica presence record not written; retrying while its lease lives' && /permission denied/.test(String(l.err))), 'the refused put to be logged');
      expect((await presence(root, ns, 'acct')).size).toBe(0);

      await root.role('svc').grant({ permission: 'Write', range: Range.prefix(replicas) });
      const records = await waitFor(async () => {
        const r = await presence(root, ns, 'acct');
        return r.size > 0 ? r : undefined;
      }, 'the retried put to land', 30_000);
      const leader = JSON.parse((await root.get(`${ns}acct/leader`).string())!) as { lease: string };
      expect([...records.values()]).toEqual([expect.objectContaining({ identity: 'acct-1', lease: leader.lease })]);
      expect(acct.isLeader()).toBe(true); // still the same term: the loop never turned
      expect(lines.filter((l) => l.msg === 'replica presence record not written; retrying while its lease lives')).toHaveLength(1);
    } finally {
      await acct.close();
    }
    expect((await presence(root, ns, 'acct')).size).toBe(0);
  });
});
