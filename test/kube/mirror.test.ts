/**
 * `txloop mirror` as a real process between a real txloop etcd (services running real transactions)
 * and a real kube-apiserver: Transactions appear only for transactions that need eyes and go when
 * they are fixed; Participants follow their app's leader across a SIGKILL; spec.repair (and the
 * annotations) run exactly the CLI's repair, refusals included; of two mirrors only the leader
 * writes; an apiserver restart is caught up with; a healthy workload costs no Transaction writes.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TxloopService } from '../../src/index.js';
import { startEtcd, type EtcdServer } from '../../src/testing.js';
import { JsonLineProcess } from '../../tools/processes.js';
import { CLI, assertBuilt, runCli, waitFor } from '../helpers/cli.js';
import { installCrds, kubeObject, startKubeApiserver, type KubeApiserver } from '../helpers/kube.js';
import { spawnReplica, stopReplica, type Replica } from '../helpers/processes.js';

const NS = `mirror-${randomBytes(4).toString('hex')}/`;
const KNS = `txloop-${randomBytes(3).toString('hex')}`;
const quiet = pino({ level: process.env.TXLOOP_TEST_LOG ?? 'silent' });
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let kube: KubeApiserver;
let etcd: EtcdServer;
let orders: TxloopService;
let bank: TxloopService;
const mirrors: JsonLineProcess[] = [];
const replicas: Replica[] = [];
/** Confirms of the `ledger` resource fail while this is set. */
let ledgerDown = true;
/** Cancels of the `vault` resource hang while this is set. */
let vaultHeld = false;

const cli = (...args: string[]) => runCli(['--endpoints', etcd.endpoints.join(','), '--namespace', NS, ...args]);

async function startMirror(identity: string): Promise<{ proc: JsonLineProcess; url: string }> {
  const proc = new JsonLineProcess({
    name: identity,
    script: CLI,
    javascript: true,
    args: ['mirror', '--endpoints', etcd.endpoints.join(','), '--namespace', NS, '--kubeconfig', kube.kubeconfig, '--kube-namespace', KNS, '--identity', identity, '--listen', '127.0.0.1:0', '--lease-ttl', '3s', '--grace', '1s', '--resync', '20s', '--service-lease-ttl', '3s', '--log-level', process.env.TXLOOP_TEST_LOG ?? 'warn'],
  });
  mirrors.push(proc);
  const ready = await proc.waitForEvent((e) => e.event === 'ready', `${identity} ready`, { timeoutMs: 30_000 });
  return { proc, url: String(ready.url) };
}

/** A metric's value on a mirror (summed over its label sets), 0 when absent. */
async function metric(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) && line.includes(labels)) sum += Number(line.split(' ').pop());
  return sum;
}

const getJson = (kind: string, name: string): Json | undefined => kubeObject(kube, KNS, kind, name);

/** A committed transaction whose ledger confirm fails until `ledgerDown` is cleared: parked after 2 attempts. */
async function parkedTransaction(name: string): Promise<{ xid: string; ledgerBranch: string }> {
  const t = await orders.begin({ name, timeoutMs: 600_000 });
  await bank.tryBranch(t.context, 'debit', { amount: 10 });
  const ledger = await bank.tryBranch(t.context, 'ledger', { amount: 10 });
  await t.commit();
  await waitFor(async () => (await orders.get(t.xid)).branches.some((b) => b.state === 'PARKED'), `${t.xid} parked`);
  return { xid: t.xid, ledgerBranch: ledger.branchId };
}

let a: { proc: JsonLineProcess; url: string };

beforeAll(async () => {
  assertBuilt();
  kube = await startKubeApiserver();
  installCrds(kube, KNS);
  etcd = await startEtcd();
  const common = { namespace: NS, etcd: { endpoints: etcd.endpoints }, leaseTtlSeconds: 10, retryBaseMs: 20, retryMaxMs: 100, graceMs: 200, statsIntervalMs: 500, logger: quiet, maxAttempts: 2 };
  orders = new TxloopService({ app: 'orders', ...common });
  bank = new TxloopService({ app: 'bank', ...common });
  const ok = { try: () => 'reserved', confirm: () => undefined, cancel: () => undefined };
  bank.resource('debit', ok);
  bank.resource('ledger', {
    ...ok,
    confirm: () => {
      if (ledgerDown) throw new Error('ledger locked');
    },
  });
  bank.resource('vault', {
    ...ok,
    cancel: async () => {
      while (vaultHeld) await new Promise((r) => setTimeout(r, 50));
    },
  });
  await orders.start();
  await bank.start();
  a = await startMirror('mirror-a');
}, 600_000);

afterAll(async () => {
  for (const m of mirrors) await m.stop('SIGTERM', 5_000).catch(() => undefined);
  for (const r of replicas) await stopReplica(r).catch(() => undefined);
  await orders?.close();
  await bank?.close();
  await etcd?.stop();
  await kube?.stop();
});

describe('txloop mirror', () => {
  it('a parked branch appears as a Transaction with its printer columns, and disappears once txloop retry fixes it', async () => {
    ledgerDown = true;
    const writesBefore = await metric(a.url, 'txloop_mirror_apiserver_writes_total', 'kind="transaction"');
    const { xid } = await parkedTransaction('pay order 1');
    const line = await waitFor(() => kube.kubectl(['get', 'txn', '-n', KNS]).stdout.split('\n').find((l) => l.startsWith(`${xid} `) && /\s1\s/.test(l)), `kubectl get txn to list ${xid}`);
    const header = kube.kubectl(['get', 'txn', '-n', KNS]).stdout.split('\n')[0]!;
    expect(header).toMatch(/^NAME\s+XID\s+MODE\s+STATUS\s+BRANCHES\s+PARKED\s+STUCK FOR\s+AGE$/);
    expect(line, line).toMatch(new RegExp(`^${xid.replace('.', '\\.')}\\s+${xid.replace('.', '\\.')}\\s+tcc\\s+COMMITTING\\s+1/2\\s+1\\s+\\d+s$`));
    const obj = getJson('txn', xid)!;
    expect(obj.metadata.labels['app.kubernetes.io/managed-by']).toBe('txloop-mirror');
    expect(obj.status).toMatchObject({ xid, app: 'orders', mode: 'tcc', status: 'COMMITTING', decidedBy: 'commit', branchesDone: '1/2', parked: 1 });
    expect(obj.status.branches[0]).toMatchObject({ owner: 'bank', resource: 'ledger', state: 'PARKED', attempts: 2, lastError: 'ledger locked' });
    expect(obj.status.conditions.find((c: Json) => c.type === 'NeedsAttention')).toMatchObject({ status: 'True', reason: 'BranchesParked' });
    // The healthy transactions of the same services are not mirrored.
    expect(kube.kubectl(['get', 'txn', '-n', KNS, '-o', 'name']).stdout.trim().split('\n')).toEqual([`transaction.txloop.io/${xid}`]);

    ledgerDown = false;
    const r = await cli('retry', xid);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(() => getJson('txn', xid) === undefined, `Transaction ${xid} to be deleted once its branch is no longer parked`);
    await orders.waitForCompletion(xid, { timeoutMs: 15_000 });
    expect((await orders.get(xid)).status).toBe('COMMITTED');
    const writes = (await metric(a.url, 'txloop_mirror_apiserver_writes_total', 'kind="transaction"')) - writesBefore;
    console.log(`mirror write cost: one transaction parked, then fixed: ${writes} Transaction writes (apply, status, delete)`);
    expect(writes).toBeGreaterThanOrEqual(3);
    expect(writes).toBeLessThanOrEqual(4);
  });

  it('a transaction not finished past its deadline + grace is mirrored as Stuck, with STUCK FOR, and deleted once it finishes', async () => {
    // Its deadline passes and the rollback's cancel hangs: ROLLING_BACK, nothing parked. Nothing in
    // etcd changes at deadline + grace: the mirror comes back to it by itself then.
    vaultHeld = true;
    const s = await orders.begin({ name: 'short deadline', timeoutMs: 1_000 });
    await bank.tryBranch(s.context, 'vault', { amount: 1 });
    const obj = await waitFor(() => {
      const o = getJson('txn', s.xid);
      return o?.status?.stuckSince ? o : undefined;
    }, `Transaction ${s.xid} with stuckSince`, 30_000);
    expect(obj.status).toMatchObject({ status: 'ROLLING_BACK', parked: 0, branchesDone: '0/1' });
    expect(obj.status.conditions.find((c: Json) => c.type === 'NeedsAttention')).toMatchObject({ status: 'True', reason: 'Stuck' });
    expect(Date.parse(obj.status.stuckSince)).toBe((await orders.get(s.xid)).deadline.getTime() + 1_000);
    expect(kube.kubectl(['get', 'txn', s.xid, '-n', KNS]).stdout).toMatch(/ROLLING_BACK\s+0\/1\s+0\s+\d+s\s+\d+s\n$/);
    vaultHeld = false;
    await waitFor(() => getJson('txn', s.xid) === undefined, `Transaction ${s.xid} deleted once rolled back`, 60_000);
  });

  it('spec.repair retry runs the CLI retry: the branch is re-queued (attempts go up), Repaired is recorded, the request cleared', async () => {
    ledgerDown = true;
    const { xid } = await parkedTransaction('pay order 2');
    await waitFor(() => getJson('txn', xid), `Transaction ${xid}`);
    const patch = kube.kubectl(['patch', 'txn', xid, '-n', KNS, '--type', 'merge', '-p', JSON.stringify({ spec: { repair: { action: 'retry', reason: 'ledger unlocked by ops' } } })]);
    expect(patch.status, patch.stderr).toBe(0);
    const repaired = await waitFor(() => {
      const o = getJson('txn', xid);
      const c = o?.status?.conditions?.find((x: Json) => x.type === 'Repaired');
      return o && c && o.spec.repair === undefined && o.status.branches[0]?.attempts === 4 ? { o, c } : undefined;
    }, 'Repaired, the request cleared and the branch parked again after 2 more attempts', 30_000).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(getJson('txn', xid))}`);
    });
    expect(repaired.c).toMatchObject({ status: 'True', reason: 'RetryDone', observedGeneration: repaired.o.metadata.generation - 1 });
    expect(repaired.c.message).toMatch(/re-queued for confirm/);
    const described = await cli('describe', 'gtx', xid);
    expect(described.stdout).toMatch(/kubernetes:kubectl-patch/);

    // The annotations ask for the same; this time the ledger is back and the transaction completes.
    ledgerDown = false;
    const ann = kube.kubectl(['annotate', 'txn', xid, '-n', KNS, 'txloop.io/repair=retry', 'txloop.io/repair-reason=ledger really back']);
    expect(ann.status, ann.stderr).toBe(0);
    await waitFor(() => getJson('txn', xid) === undefined, `Transaction ${xid} gone once the annotated retry completed it`, 30_000);
    await orders.waitForCompletion(xid, { timeoutMs: 15_000 });
    expect((await orders.get(xid)).status).toBe('COMMITTED');
    // Who annotated is what the retry records, though the mirror moved the request into spec.repair.
    expect((await cli('describe', 'gtx', xid)).stdout).toMatch(/re-queued by kubernetes:kubectl-annotate#/);
  });

  it('spec.repair abort of a committed transaction is refused as the invariants forbid it: RepairRefused, nothing changed', async () => {
    ledgerDown = true;
    const { xid } = await parkedTransaction('pay order 3');
    await waitFor(() => getJson('txn', xid), `Transaction ${xid}`);
    const before = await orders.get(xid);
    expect(kube.kubectl(['patch', 'txn', xid, '-n', KNS, '--type', 'merge', '-p', JSON.stringify({ spec: { repair: { action: 'abort', reason: 'customer cancelled' } } })]).status).toBe(0);
    const refused = await waitFor(() => {
      const o = getJson('txn', xid);
      const c = o?.status?.conditions?.find((x: Json) => x.type === 'RepairRefused');
      return o && c && o.spec.repair === undefined ? c : undefined;
    }, 'RepairRefused and the request cleared');
    expect(refused.reason).toBe('AbortRefused');
    expect(refused.message).toMatch(/cannot abort .* already decided: commit/);
    const after = await orders.get(xid);
    expect(after.status).toBe('COMMITTING');
    expect(after.decision).toEqual(before.decision);

    // resolve through spec.repair: the branch counts as done and the transaction completes.
    const ledger = after.branches.find((b) => b.state === 'PARKED')!;
    expect(kube.kubectl(['patch', 'txn', xid, '-n', KNS, '--type', 'merge', '-p', JSON.stringify({ spec: { repair: { action: 'resolve', branch: ledger.branchId, as: 'confirmed', reason: 'posted by hand, OPS-7' } } })]).status).toBe(0);
    await waitFor(() => getJson('txn', xid) === undefined, `Transaction ${xid} gone once resolved`, 30_000);
    await orders.waitForCompletion(xid, { timeoutMs: 15_000 });
    expect((await orders.get(xid)).status).toBe('COMMITTED');
  });

  it('a Participant per app shows its leader, Ready; after SIGKILL of the leader it shows the standby leading', async () => {
    const env = { TXLOOP_ENDPOINTS: etcd.endpoints.join(','), NS, APP: 'ledger', LEASE_TTL_S: '3' };
    replicas.push(spawnReplica('participant.ts', 'ledger-1', env));
    await replicas[0]!.waitForEvent((e) => e.event === 'started', 'ledger-1 started');
    replicas.push(spawnReplica('participant.ts', 'ledger-2', env));
    await replicas[1]!.waitForEvent((e) => e.event === 'started', 'ledger-2 started');
    const first = await waitFor(() => getJson('txp', 'ledger')?.status?.leader?.identity as string | undefined, 'Participant ledger with a leader', 30_000);
    expect(['ledger-1', 'ledger-2']).toContain(first);
    const cols = kube.kubectl(['get', 'txp', 'ledger', '-n', KNS]).stdout;
    expect(cols).toMatch(new RegExp(`^NAME\\s+APP\\s+LEADER\\s+QUEUE\\s+PARKED\\s+READY\\s+AGE\\nledger\\s+ledger\\s+${first}\\s+0\\s+0\\s+True\\s+\\d+s\\n$`));
    await waitFor(() => getJson('txp', 'ledger')?.status?.replicasSeen === 2, 'Participant ledger to count its 2 replicas');
    const leader = replicas.find((r) => r.identity === first)!;
    leader.kill('SIGKILL');
    const next = await waitFor(() => {
      const id = getJson('txp', 'ledger')?.status?.leader?.identity as string | undefined;
      return id && id !== first ? id : undefined;
    }, 'Participant ledger to show the standby leading', 30_000);
    expect(next).toBe(first === 'ledger-1' ? 'ledger-2' : 'ledger-1');
    // The killed replica's presence goes with its lease.
    await waitFor(() => getJson('txp', 'ledger')?.status?.replicasSeen === 1, 'Participant ledger to count 1 replica');
    // The apps of the in-process services are there too; the mirror's own election is not an app.
    const names = kube.kubectl(['get', 'txp', '-n', KNS, '-o', 'name']).stdout.trim().split('\n').sort();
    expect(names).toEqual(['participant.txloop.io/bank', 'participant.txloop.io/ledger', 'participant.txloop.io/orders']);

    // The same leader as `kubectl txloop`, the CLI found by kubectl's plugin discovery on PATH.
    const bin = mkdtempSync(join(tmpdir(), 'kubectl-plugin-'));
    symlinkSync(CLI, join(bin, 'kubectl-txloop'));
    const plugin = spawnSync('kubectl', ['txloop', 'get', 'leaders', 'ledger', '--endpoints', etcd.endpoints.join(','), '--namespace', NS], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    rmSync(bin, { recursive: true, force: true });
    expect(plugin.status, plugin.stderr).toBe(0);
    expect(plugin.stdout).toMatch(new RegExp(`^APP\\s+LEADER[^\\n]*\\nledger\\s+${next}\\s`));
  });

  it('a healthy workload costs no Transaction write: apiserver writes per etcd change', async () => {
    await waitFor(async () => (await metric(a.url, 'workqueue_depth')) === 0, 'the mirror queue to drain');
    const etcdBefore = await metric(a.url, 'txloop_mirror_etcd_changes_total');
    const txnBefore = await metric(a.url, 'txloop_mirror_apiserver_writes_total', 'kind="transaction"');
    const allBefore = await metric(a.url, 'txloop_mirror_apiserver_writes_total');
    const n = 40;
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const t = await orders.begin({ name: `healthy ${i}`, timeoutMs: 60_000 });
        await bank.tryBranch(t.context, 'debit', { amount: 1 });
        await t.commit();
        await orders.waitForCompletion(t.xid, { timeoutMs: 30_000 });
      }),
    );
    await waitFor(async () => (await metric(a.url, 'workqueue_depth')) === 0, 'the mirror queue to drain');
    const etcdChanges = (await metric(a.url, 'txloop_mirror_etcd_changes_total')) - etcdBefore;
    const txnWrites = (await metric(a.url, 'txloop_mirror_apiserver_writes_total', 'kind="transaction"')) - txnBefore;
    const allWrites = (await metric(a.url, 'txloop_mirror_apiserver_writes_total')) - allBefore;
    console.log(`mirror write cost: ${n} healthy transactions, ${etcdChanges} etcd changes → ${txnWrites} Transaction writes, ${allWrites} apiserver writes in all (${(allWrites / etcdChanges).toFixed(3)} per etcd change)`);
    expect(etcdChanges).toBeGreaterThanOrEqual(n * 3);
    expect(txnWrites, await (await fetch(`${a.url}/metrics`)).text().then((t) => t.split('\n').filter((l) => l.startsWith('txloop_mirror_apiserver_writes_total')).join('; '))).toBe(0);
  });

  it('of two mirrors only the leader writes; when it is SIGKILLed the other takes over', async () => {
    const b = await startMirror('mirror-b');
    const leading = async (m: { url: string }): Promise<number> => metric(m.url, 'txloop_mirror_leader');
    expect(await leading(a)).toBe(1);
    expect(await leading(b)).toBe(0);
    ledgerDown = true;
    const { xid } = await parkedTransaction('pay order 4');
    await waitFor(() => getJson('txn', xid), `Transaction ${xid} (by the leader)`);
    // What an operator sees (captured for the README).
    console.log(`kubectl get txloop -n ${KNS}:\n${kube.kubectl(['get', 'txloop', '-n', KNS]).stdout}`);
    expect(await metric(b.url, 'txloop_mirror_apiserver_writes_total')).toBe(0);
    expect(await metric(a.url, 'txloop_mirror_apiserver_writes_total')).toBeGreaterThan(0);
    expect((await fetch(`${b.url}/readyz`)).status).toBe(200);

    a.proc.kill('SIGKILL');
    await waitFor(async () => (await leading(b)) === 1, 'mirror-b to lead', 30_000);
    const next = await parkedTransaction('pay order 5');
    await waitFor(() => getJson('txn', next.xid), `Transaction ${next.xid} (by mirror-b)`, 30_000);
    expect(await metric(b.url, 'txloop_mirror_apiserver_writes_total')).toBeGreaterThan(0);
    a = b;
  });

  it('the apiserver restarted mid-run: the mirror catches up with what changed meanwhile', async () => {
    ledgerDown = true;
    const fixed = await parkedTransaction('pay order 6');
    await waitFor(() => getJson('txn', fixed.xid), `Transaction ${fixed.xid}`);
    let parkedMeanwhile = '';
    await kube.restart(async () => {
      // While the apiserver is away: one more transaction parks, and the first one is fixed.
      parkedMeanwhile = (await parkedTransaction('pay order 7')).xid;
      ledgerDown = false;
      expect((await cli('retry', fixed.xid)).code).toBe(0);
      await orders.waitForCompletion(fixed.xid, { timeoutMs: 30_000 });
    });
    await waitFor(() => getJson('txn', parkedMeanwhile), `Transaction ${parkedMeanwhile}, parked while the apiserver was down`, 60_000);
    await waitFor(() => getJson('txn', fixed.xid) === undefined, `Transaction ${fixed.xid}, fixed while the apiserver was down, deleted`, 60_000);
  });
});
