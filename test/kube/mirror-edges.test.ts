/**
 * The mirror at its boundaries: a malformed record in etcd is logged once naming its key and shown
 * as a Transaction that needs eyes, without stopping the loop; a repair asked with annotations that
 * the CRD rejects is refused in status and its annotations removed; probes and metrics; bad flags,
 * no kubeconfig and an unreachable etcd each end it with one clear line.
 */
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '../../src/testing.js';
import { JsonLineProcess } from '../../tools/processes.js';
import { CLI, assertBuilt, runCli, waitFor } from '../helpers/cli.js';
import { installCrds, kubeObject, startKubeApiserver, type KubeApiserver } from '../helpers/kube.js';

const NS = `edges-${randomBytes(4).toString('hex')}/`;
const KNS = `edges-${randomBytes(3).toString('hex')}`;
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let kube: KubeApiserver;
let etcd: EtcdServer;
let client: Etcd3;
let mirror: JsonLineProcess;
let url = '';

const getJson = (kind: string, name: string): Json | undefined => kubeObject(kube, KNS, kind, name);

/** A metric's value on the mirror, summed over its label sets. */
async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

beforeAll(async () => {
  assertBuilt();
  kube = await startKubeApiserver();
  installCrds(kube, KNS);
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.endpoints });
  mirror = new JsonLineProcess({
    name: 'mirror',
    script: CLI,
    javascript: true,
    args: ['mirror', '--endpoints', etcd.endpoints.join(','), '--namespace', NS, '--kubeconfig', kube.kubeconfig, '--kube-namespace', KNS, '--listen', '127.0.0.1:0', '--lease-ttl', '3s', '--resync', '2s', '--service-lease-ttl', '2s', '--log-level', 'info'],
  });
  url = String((await mirror.waitForEvent((e) => e.event === 'ready', 'the mirror ready', { timeoutMs: 30_000 })).url);
}, 600_000);

afterAll(async () => {
  await mirror?.stop('SIGTERM', 5_000).catch(() => undefined);
  client?.close();
  await etcd?.stop();
  await kube?.stop();
});

describe('txloop mirror at its boundaries', () => {
  it('serves /healthz, /readyz (leader or not) and /metrics', async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    // Ready once etcd and both kinds in the apiserver were listed (the ready line only says it listens).
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, '/readyz 200');
    await waitFor(async () => ((await (await fetch(`${url}/readyz`)).json()) as Json).leader === true, 'the only mirror to lead');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    for (const series of ['txloop_mirror_leader 1', 'txloop_mirror_etcd_changes_total', 'txloop_mirror_objects{kind="transaction"}', 'workqueue_depth{name="mirror"}']) expect(metrics).toContain(series);
  });

  it('a malformed global record is logged once naming its key, shown as a Transaction that needs eyes, and the loop goes on', async () => {
    const xid = 'orders.0000bad0000bad01';
    const key = `${NS}orders/gtx/${xid}`;
    await client.put(key).value('{"v":1,"xid":');
    const obj = await waitFor(() => getJson('txn', xid), `a Transaction for the malformed ${key}`, 30_000);
    expect(obj.status).toMatchObject({ xid, status: 'MALFORMED', branchesDone: '0/0' });
    expect(obj.status.conditions[0]).toMatchObject({ type: 'NeedsAttention', status: 'True', reason: 'Malformed' });
    expect(obj.status.conditions[0].message).toContain(key);
    // Written again (an unrelated change elsewhere, then the same bad value): still one log line.
    await client.put(`${NS}orders/gtx/orders.0000good000good01`).value('{}');
    await client.put(key).value('{"v":1,"xid":');
    await waitFor(() => getJson('txn', 'orders.0000good000good01'), 'the second malformed record mirrored too');
    const lines = mirror.stderr.filter((l) => l.includes(key) && l.includes('malformed record'));
    expect(lines).toHaveLength(1);
    // Deleting the records: the Transactions go with them.
    await client.delete().prefix(`${NS}orders/`);
    await waitFor(() => getJson('txn', xid) === undefined && getJson('txn', 'orders.0000good000good01') === undefined, 'both Transactions deleted');
  });

  it('an annotated repair the CRD rejects is refused in status (InvalidRequest) and its annotations removed', async () => {
    // A Transaction made by hand for a transaction whose record cannot be read: not the mirror's, so it stays.
    const xid = 'orders.0000bad0000bad02';
    await client.put(`${NS}orders/gtx/${xid}`).value('not json');
    await waitFor(() => getJson('txn', xid), 'the Transaction of the malformed record');
    const ann = kube.kubectl(['annotate', 'txn', xid, '-n', KNS, 'txloop.io/repair=resolve', 'txloop.io/repair-reason=by hand']);
    expect(ann.status, ann.stderr).toBe(0);
    const refused = await waitFor(() => {
      const o = getJson('txn', xid);
      const c = o?.status?.conditions?.find((x: Json) => x.type === 'RepairRefused');
      return o && c && !o.metadata.annotations?.['txloop.io/repair'] ? c : undefined;
    }, 'RepairRefused and the annotations removed');
    expect(refused.reason).toBe('InvalidRequest');
    expect(refused.message).toMatch(/resolve needs a branch and as/);
    // A valid request on a transaction that cannot be read is refused by the repair itself, naming the record.
    expect(kube.kubectl(['patch', 'txn', xid, '-n', KNS, '--type', 'merge', '-p', JSON.stringify({ spec: { repair: { action: 'abort', reason: 'clean up' } } })]).status).toBe(0);
    const second = await waitFor(() => {
      const o = getJson('txn', xid);
      const c = o?.status?.conditions?.find((x: Json) => x.type === 'RepairRefused' && x.reason === 'AbortRefused');
      return o && c && o.spec.repair === undefined ? c : undefined;
    }, 'the abort refused');
    expect(second.message).toMatch(/malformed|cannot be used|not valid JSON|invalid/i);
    await client.delete().prefix(`${NS}orders/`);
    await waitFor(() => getJson('txn', xid) === undefined, 'the Transaction deleted with its record');
  });

  it('a resync (every 2s here) writes nothing when nothing changed, and a repair outcome survives it', async () => {
    const xid = 'orders.0000bad0000bad03';
    await client.put(`${NS}orders/gtx/${xid}`).value('{"v":1');
    await waitFor(() => getJson('txn', xid), 'the Transaction of the malformed record');
    expect(kube.kubectl(['patch', 'txn', xid, '-n', KNS, '--type', 'merge', '-p', JSON.stringify({ spec: { repair: { action: 'retry', reason: 'try again' } } })]).status).toBe(0);
    const refused = () => getJson('txn', xid)?.status?.conditions?.find((x: Json) => x.type === 'RepairRefused' && x.reason === 'RetryRefused');
    await waitFor(() => refused() && getJson('txn', xid)?.spec.repair === undefined, 'the retry refused and cleared');
    // Settled: the app's Participant (no leader at all) past its lease TTL, so Degraded.
    await waitFor(() => (getJson('txp', 'orders')?.status?.conditions as Json[] | undefined)?.some((c) => c.type === 'Degraded' && c.status === 'True'), 'Participant orders Degraded');
    await waitFor(async () => (await metric('workqueue_depth')) === 0, 'the queue to drain');
    const writes = await metric('txloop_mirror_apiserver_writes_total');
    const pBefore = JSON.stringify(getJson('txp', 'orders')?.status);
    const before = (await (await fetch(`${url}/metrics`)).text()).split('\n').filter((l) => l.startsWith('txloop_mirror_apiserver_writes_total{')).join('; ');
    const resyncs = await metric('txloop_mirror_resyncs_total');
    await waitFor(async () => (await metric('txloop_mirror_resyncs_total')) >= resyncs + 3, 'three resyncs', 30_000);
    await waitFor(async () => (await metric('workqueue_depth')) === 0, 'the queue to drain');
    const lines = async () => (await (await fetch(`${url}/metrics`)).text()).split('\n').filter((l) => l.startsWith('txloop_mirror_apiserver_writes_total{')).join('; ');
    expect(await metric('txloop_mirror_apiserver_writes_total'), `${before} → ${await lines()} ${pBefore} → ${JSON.stringify(getJson('txp', 'orders')?.status)}`).toBe(writes);
    expect(refused()).toBeDefined();
    await client.delete().prefix(`${NS}orders/`);
    await waitFor(() => getJson('txn', xid) === undefined, 'the Transaction deleted with its record');
  });

  it('a Participant is Ready while its leader publishes, Degraded with parked branches, and Degraded (NoLeader) once leaderless for longer than the lease TTL', async () => {
    const now = Date.now();
    const queue = { depth: 3, processing: 1, waiting: 0, adds: 9, retries: 2, unfinishedWorkMs: 0, longestRunningProcessorMs: 0 };
    // A stand-in for a service: its records written by hand (a real one's are bound to its lease), and one transaction of its own.
    await client.put(`${NS}ghost/leader`).value(JSON.stringify({ identity: 'ghost-0', host: 'h', pid: 7, since: now, lease: '1' }));
    await client.put(`${NS}ghost/stats`).value(JSON.stringify({ identity: 'ghost-0', at: now, queues: { globals: queue, branches: queue }, phase2: { succeeded: 1, failed: 0, parked: 2, completed: 0, collected: 0 }, branches: { PARKED: 2 } }));
    await client.put(`${NS}ghost/gtx/ghost.0000ghost000ghost1`).value('{}');
    const cond = (type: string) => (getJson('txp', 'ghost')?.status?.conditions as Json[] | undefined)?.find((c) => c.type === type);
    await waitFor(() => cond('Ready')?.status === 'True' && cond('Degraded')?.status === 'True', 'ghost Ready and Degraded');
    expect(getJson('txp', 'ghost')!.status).toMatchObject({ leader: { identity: 'ghost-0' }, queueDepth: 6, inFlight: 2, parkedBranches: 2, replicasSeen: 0 });
    expect(cond('Degraded')).toMatchObject({ reason: 'BranchesParked' });
    await client.delete().key(`${NS}ghost/leader`);
    await client.delete().key(`${NS}ghost/stats`);
    await waitFor(() => cond('Ready')?.status === 'False', 'ghost not Ready');
    expect(cond('Ready')).toMatchObject({ reason: 'NoLeader' });
    // Nothing changes in etcd when the lease TTL (2s here) has passed: the mirror comes back to it by itself.
    await waitFor(() => cond('Degraded')?.reason === 'NoLeader', 'ghost Degraded: no leader', 15_000);
    await client.delete().prefix(`${NS}ghost/`);
    await waitFor(() => getJson('txp', 'ghost') === undefined, 'the Participant deleted once its app has no key left', 30_000);
  });

  it('bad flags, no Kubernetes configuration and an unreachable etcd each end the mirror with one clear line', async () => {
    const ns = await runCli(['mirror', '--kube-namespace', 'Not_A_Namespace', '--kubeconfig', kube.kubeconfig]);
    expect(ns.code).toBe(2);
    expect(ns.stderr).toMatch(/invalid --kube-namespace "Not_A_Namespace"/);
    const none = await runCli(['mirror', '--endpoints', etcd.endpoints.join(','), '--kubeconfig', '/nonexistent/kubeconfig']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/mirror: .*\/nonexistent\/kubeconfig/);
    const down = await runCli(['mirror', '--endpoints', 'http://127.0.0.1:1', '--kubeconfig', kube.kubeconfig, '--start-timeout', '2s']);
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split('\n').filter((l) => !l.startsWith('{'))).toEqual([expect.stringMatching(/did not answer the first list within 2s \(--start-timeout\)/)]);
  });
});
