/**
 * txloop's CRDs (crds/) on a real kube-apiserver: both kinds Established, listed together by their
 * category (`kubectl get txloop`), short names, printer columns as the mirror will fill them, the
 * status subresource kept apart from spec, and spec.repair validated (an action, a reason; resolve
 * naming its branch and outcome) with a Transaction's xid fixed once set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installCrds, startKubeApiserver, type KubeApiserver } from '../helpers/kube.js';

let kube: KubeApiserver;
beforeAll(async () => {
  kube = await startKubeApiserver();
  installCrds(kube);
});
afterAll(async () => {
  await kube?.stop();
});

const txn = (name: string, spec: string) => `apiVersion: txloop.io/v1alpha1\nkind: Transaction\nmetadata: { name: ${name}, namespace: default }\nspec: ${spec}\n`;

describe('txloop CRDs', () => {
  it('kubectl get txloop lists Participants and Transactions with their columns, as the mirror fills their status', () => {
    expect(kube.kubectl(['apply', '-f', '-'], 'apiVersion: txloop.io/v1alpha1\nkind: Participant\nmetadata: { name: bank-a, namespace: default }\nspec: { app: bank-a }\n').status).toBe(0);
    expect(kube.kubectl(['apply', '-f', '-'], txn('orders-m3x9k2a7f1c0q8wz', '{ xid: orders.m3x9k2a7f1c0q8wz }')).status).toBe(0);
    const p = kube.kubectl(['patch', 'txp', 'bank-a', '-n', 'default', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { leader: { identity: 'host/42/ab', since: '2026-12-01T20:00:00Z' }, queueDepth: 3, parkedBranches: 1, conditions: [{ type: 'Ready', status: 'True' }, { type: 'Degraded', status: 'True', reason: 'Parked' }] } })]);
    expect(p.status, p.stderr).toBe(0);
    const t = kube.kubectl(['patch', 'txn', 'orders-m3x9k2a7f1c0q8wz', '-n', 'default', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { xid: 'orders.m3x9k2a7f1c0q8wz', mode: 'tcc', status: 'COMMITTING', branchesDone: '1/2', parked: 1, stuckSince: new Date(Date.now() - 3_600_000).toISOString(), branches: [{ branchId: 'b1', owner: 'bank-a', state: 'PARKED', attempts: 10, lastError: 'ledger locked' }] } })]);
    expect(t.status, t.stderr).toBe(0);
    const all = kube.kubectl(['get', 'txloop', '-n', 'default']);
    expect(all.status, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/participant\.txloop\.io\/bank-a/);
    expect(all.stdout).toMatch(/transaction\.txloop\.io\/orders-m3x9k2a7f1c0q8wz/);
    expect(kube.kubectl(['get', 'txp', '-n', 'default']).stdout).toMatch(/^NAME\s+APP\s+LEADER\s+QUEUE\s+PARKED\s+READY\s+AGE\nbank-a\s+bank-a\s+host\/42\/ab\s+3\s+1\s+True\s+\S+\n$/);
    expect(kube.kubectl(['get', 'txn', '-n', 'default']).stdout).toMatch(/^NAME\s+XID\s+MODE\s+STATUS\s+BRANCHES\s+PARKED\s+STUCK FOR\s+AGE\norders-m3x9k2a7f1c0q8wz\s+orders\.m3x9k2a7f1c0q8wz\s+tcc\s+COMMITTING\s+1\/2\s+1\s+(59m|60m|61m)\s+\S+\n$/);
  });

  it('spec.repair is validated: an action and a reason; resolve names its branch and outcome; a Transaction keeps its xid', () => {
    const refused = (yaml: string, why: RegExp) => {
      const r = kube.kubectl(['apply', '-f', '-'], yaml);
      expect(r.status, yaml).not.toBe(0);
      expect(r.stderr).toMatch(why);
    };
    refused(txn('t1', '{ xid: orders.m3x9k2a7f1c0q8w1, repair: { action: reboot, reason: x } }'), /spec\.repair\.action: Unsupported value: "reboot"/);
    refused(txn('t2', '{ xid: orders.m3x9k2a7f1c0q8w2, repair: { action: retry } }'), /spec\.repair\.reason: Required value/);
    refused(txn('t3', '{ xid: orders.m3x9k2a7f1c0q8w3, repair: { action: resolve, reason: by hand } }'), /resolve needs a branch and as/);
    refused(txn('t4', '{ xid: not-an-xid }'), /spec\.xid/);
    expect(kube.kubectl(['apply', '-f', '-'], txn('t5', '{ xid: orders.m3x9k2a7f1c0q8w5, repair: { action: resolve, branch: b1, as: cancelled, reason: refunded by hand } }')).status).toBe(0);
    refused(txn('t5', '{ xid: orders.zzzzzzzzzzzzzzzz }'), /the xid of a Transaction never changes/);
  });
});
