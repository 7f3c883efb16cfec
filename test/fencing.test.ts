import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { LeaderElector } from '../src/etcd/index.js';
import { GlobalStatus, TryState } from '../src/states.js';
import { type BranchRecord } from '../src/store/index.js';
import { LeadershipLost } from '../src/errors.js';
import type { Fence } from '../src/etcd/index.js';
import { Store } from '../src/store/index.js';
import { newBranchId, newWriteId, newXid } from '../src/store/index.js';
import { startEtcd, type EtcdServer } from '../src/testing.js';
import { freshNamespace, quietLogger, waitFor } from './helpers/harness.js';

let etcd: EtcdServer;
let clientA: Etcd3;
let clientB: Etcd3;

beforeAll(async () => {
  etcd = await startEtcd();
  clientA = new Etcd3({ hosts: etcd.endpoints });
  clientB = new Etcd3({ hosts: etcd.endpoints });
});
afterAll(async () => {
  clientA?.close();
  clientB?.close();
  await etcd?.stop();
});

function elector(client: Etcd3, key: string, identity: string): { e: LeaderElector; fences: Fence[] } {
  // No test here waits for a lease to expire (leaders resign or lose their key), and a 1 s lease is
  // lost to a stall of under a second: a loaded machine would hand leadership around mid-test.
  const e = new LeaderElector({ client, key, identity, ttlSeconds: 10, logger: quietLogger });
  const fences: Fence[] = [];
  e.on('started', (f) => fences.push(f));
  return { e, fences };
}

async function seedBranch(store: Store, owner: string): Promise<{ key: string; record: BranchRecord; modRevision: string }> {
  const now = Date.now();
  const xid = newXid('shop');
  await store.globals.create({ v: 1, xid, app: 'shop', name: 'x', mode: 'tcc', status: GlobalStatus.TRYING, createdAt: now, timeoutMs: 60_000, deadline: now + 60_000, events: [] });
  const branch: BranchRecord = { v: 1, mode: 'tcc', xid, app: 'shop', branchId: newBranchId(), owner, resource: 'r', payload: null, createdAt: now, deadline: now + 60_000, tryState: TryState.SUCCEEDED, updatedAt: now, writeId: newWriteId(), events: [] };
  return store.branches.register(branch);
}

describe('invariant 5: fencing — only the current leader records phase-2 progress', () => {
  it('exactly one of two campaigning replicas leads; the standby takes over when the leader resigns', async () => {
    const ns = freshNamespace('elect');
    const key = `${ns}acct/leader`;
    const a = elector(clientA, key, 'a');
    const b = elector(clientB, key, 'b');
    a.e.start();
    b.e.start();
    await waitFor(() => a.e.isLeader() || b.e.isLeader(), { what: 'a leader' });
    expect(a.e.isLeader() && b.e.isLeader()).toBe(false);
    const [leader, standby] = a.e.isLeader() ? [a, b] : [b, a];
    await leader.e.stop();
    await waitFor(() => standby.e.isLeader(), { what: 'standby takes over' });
    await standby.e.stop();
  });

  it("a deposed leader's progress write is refused inside the same Txn (LeadershipLost), the new leader's succeeds", async () => {
    const ns = freshNamespace('fence');
    const storeA = new Store(clientA, ns);
    const storeB = new Store(clientB, ns);
    const key = storeA.keys.leader('acct');
    const a = elector(clientA, key, 'a');
    a.e.start();
    await waitFor(() => a.fences[0], { what: 'a leads' });
    const oldFence = a.fences[0]!;
    const branch = await seedBranch(storeA, 'acct');

    // A is deposed: its key is gone (as when its lease expires while it is paused) and B wins. A
    // paused A does not campaign; a running one would, racing B for the vacant key, so A's elector
    // is stopped first (A keeps its old fence, as a paused process does).
    const b = elector(clientB, key, 'b');
    await a.e.stop();
    await clientA.delete().key(key);
    expect(await clientA.get(key).string()).toBeNull();
    b.e.start();
    await waitFor(() => b.fences[0], { what: 'b leads' });
    expect(b.fences[0]!.createRevision).not.toBe(oldFence.createRevision);
    const next = { ...branch.record, phase2: { action: 'confirm' as const, state: 'DONE' as const, attempts: 1 } };
    await expect(storeA.branches.recordProgress(oldFence, branch, next)).rejects.toBeInstanceOf(LeadershipLost);
    const unchanged = await storeA.branches.get('acct', branch.record.xid, branch.record.branchId);
    expect(unchanged?.record.phase2).toBeUndefined();
    const written = await storeB.branches.recordProgress(b.fences[0], branch, next);
    expect(written.record.phase2?.state).toBe('DONE');
    await a.e.stop();
    await b.e.stop();
  });

  it('a replica whose leader key vanished stops counting itself as leader (and aborts its work signal)', async () => {
    const ns = freshNamespace('stepdown');
    const key = `${ns}acct/leader`;
    const a = elector(clientA, key, 'a');
    let aborted = false;
    a.e.on('started', (_f, signal) => signal.addEventListener('abort', () => (aborted = true)));
    a.e.start();
    await waitFor(() => a.e.isLeader(), { what: 'a leads' });
    await clientB.delete().key(key);
    await waitFor(() => aborted, { what: 'work signal aborted' });
    // It campaigns again and, being alone, leads again with a new fence.
    await waitFor(() => a.fences.length >= 2, { what: 're-elected' });
    expect(a.fences[1]!.createRevision).not.toBe(a.fences[0]!.createRevision);
    await a.e.stop();
  });
});
