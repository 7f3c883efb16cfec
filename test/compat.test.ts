/**
 * Records as version 0.1 wrote them (no `mode` on branches and orders, member records under
 * `link/`, a parked branch as phase-2 state FAILED) are read and finished by this version: a
 * transaction in flight during an upgrade completes, and a parked one can be retried.
 */
import { describe, expect, it } from 'vitest';
import { BranchesNotPrepared } from '../src/index.js';
import { newBranchId, newXid } from '../src/store/index.js';
import { useEtcd, waitFor } from './helpers/harness.js';

const env = useEtcd();

/** What 0.1's store wrote for a committed 2-phase transaction whose confirm has not run yet. */
async function writeCommittingV01(ns: string, xid: string, branchId: string, phase2?: Record<string, unknown>): Promise<void> {
  const now = Date.now();
  const put = async (key: string, value: unknown): Promise<void> => void (await env.client.put(`${ns}${key}`).value(JSON.stringify(value)));
  await put(`shop/gtx/${xid}`, {
    v: 1, xid, app: 'shop', name: 'written by 0.1', mode: 'tcc', status: 'COMMITTING', createdAt: now - 1_000, timeoutMs: 60_000, deadline: now + 59_000,
    decision: { outcome: 'commit', by: 'commit', at: now - 500, writeId: 'w01' }, fannedOut: true, events: [],
  });
  await put(`acct/branch/${xid}/${branchId}`, {
    v: 1, xid, app: 'shop', branchId, owner: 'acct', resource: 'r', payload: { n: 1 }, createdAt: now - 900, deadline: now + 59_000, tryState: 'SUCCEEDED',
    ...(phase2 ? { phase2 } : {}), updatedAt: now - 600, writeId: 'b01', events: [],
  });
  await put(`shop/link/${xid}/acct/${branchId}`, {
    v: 1, xid, owner: 'acct', branchId, resource: 'r', tryState: 'SUCCEEDED', ...(phase2 ? { action: phase2.action, state: phase2.state, attempts: phase2.attempts } : {}),
  });
  await put(`acct/order/${xid}/${branchId}`, { v: 1, xid, branchId, action: 'confirm', decidedAt: now - 500, by: 'commit' });
}

describe('records written by version 0.1', () => {
  it('a transaction 0.1 decided (no mode on its branch and order, its member under link/) is confirmed, completed and collected by this version', async () => {
    const { ns, h } = env.fresh('v01-flight');
    const xid = newXid('shop');
    const branchId = newBranchId();
    await writeCommittingV01(ns, xid, branchId);
    const confirmed: string[] = [];
    const p = h.service({ app: 'acct' }).resource('r', { try: () => undefined, confirm: ({ branchId: b }) => void confirmed.push(b), cancel: () => undefined });
    const init = h.service({ app: 'shop', retentionMs: 200 });
    await Promise.all([p.start(), init.start()]);
    await waitFor(() => confirmed.includes(branchId), { what: 'the 0.1 branch confirmed' });
    const done = await init.waitForCompletion(xid, { timeoutMs: 20_000 });
    expect(done.status).toBe('COMMITTED');
    expect(done.mode).toBe('tcc');
    expect(done.branches).toEqual([expect.objectContaining({ branchId, owner: 'acct', state: 'DONE' })]);
    // The member stayed where 0.1 put it and was kept current there; no second one was written.
    expect(await env.client.getAll().prefix(`${ns}shop/member/${xid}/`).keys()).toEqual([]);
    await waitFor(async () => (await env.client.getAll().prefix(ns).keys()).every((k) => !k.includes(xid)), { what: 'collection of every key of it, the legacy member included' });
  });

  it('a branch 0.1 parked as FAILED reads as PARKED and can be retried to completion', async () => {
    const { ns, h, store } = env.fresh('v01-parked');
    const xid = newXid('shop');
    const branchId = newBranchId();
    await writeCommittingV01(ns, xid, branchId, { action: 'confirm', state: 'FAILED', attempts: 10, lastError: 'down in 0.1' });
    const init = h.service({ app: 'shop' });
    expect((await init.get(xid)).branches[0]).toMatchObject({ state: 'PARKED', attempts: 10 });
    const p = h.service({ app: 'acct' }).resource('r', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    await Promise.all([p.start(), init.start()]);
    await store.repairs.retryBranch('acct', xid, branchId, 'test');
    expect((await init.waitForCompletion(xid, { timeoutMs: 20_000 })).status).toBe('COMMITTED');
  });

  it('a 0.1 TRYING global joined by a 0.2 participant is committed, confirmed, completed and collected by 0.2', async () => {
    const { ns, h } = env.fresh('v01-trying');
    const xid = newXid('shop');
    const now = Date.now();
    await env.client.put(`${ns}shop/gtx/${xid}`).value(JSON.stringify({ v: 1, xid, app: 'shop', name: 'begun by 0.1', mode: 'tcc', status: 'TRYING', createdAt: now, timeoutMs: 60_000, deadline: now + 60_000, events: [] }));
    const confirmed: string[] = [];
    const p = h.service({ app: 'acct' }).resource('r', { try: () => undefined, confirm: ({ branchId }) => void confirmed.push(branchId), cancel: () => undefined });
    const init = h.service({ app: 'shop', retentionMs: 200 });
    await Promise.all([p.start(), init.start()]);
    const { branchId } = await p.tryBranch({ xid, deadline: now + 60_000 }, 'r', {});
    await init.commit(xid);
    expect((await init.waitForCompletion(xid, { timeoutMs: 20_000 })).status).toBe('COMMITTED');
    expect(confirmed).toEqual([branchId]);
    await waitFor(async () => (await env.client.getAll().prefix(ns).keys()).every((k) => !k.includes(xid)), { what: 'collection of every key of it' });
  });

  it('a 0.1 TRYING global whose 0.1 member is still PENDING is rolled back by 0.2 at its deadline', async () => {
    const { ns, h } = env.fresh('v01-expired');
    const xid = newXid('shop');
    const branchId = newBranchId();
    const now = Date.now();
    const put = async (key: string, value: unknown): Promise<void> => void (await env.client.put(`${ns}${key}`).value(JSON.stringify(value)));
    await put(`shop/gtx/${xid}`, { v: 1, xid, app: 'shop', name: 'begun by 0.1', mode: 'tcc', status: 'TRYING', createdAt: now, timeoutMs: 1_500, deadline: now + 1_500, events: [] });
    await put(`acct/branch/${xid}/${branchId}`, { v: 1, xid, app: 'shop', branchId, owner: 'acct', resource: 'r', payload: {}, createdAt: now, deadline: now + 1_500, tryState: 'PENDING', updatedAt: now, writeId: 'b01', events: [] });
    await put(`shop/link/${xid}/acct/${branchId}`, { v: 1, xid, owner: 'acct', branchId, resource: 'r', tryState: 'PENDING' });
    const cancelled: string[] = [];
    const p = h.service({ app: 'acct', graceMs: 100 }).resource('r', { try: () => undefined, confirm: () => undefined, cancel: ({ branchId: b }) => void cancelled.push(b) });
    const init = h.service({ app: 'shop' });
    await Promise.all([p.start(), init.start()]);
    expect((await init.waitForCompletion(xid, { timeoutMs: 20_000 })).status).toBe('ROLLED_BACK');
    expect(cancelled).toEqual([branchId]);
  });
});

describe('services of 0.1 and 0.2 side by side (a rolling upgrade)', () => {
  it('a 0.1 participant joining a global begun by 0.2 is seen: commit refuses while its Try is PENDING (one decision, invariant 1 and 4)', async () => {
    const { ns, h } = env.fresh('mixed-01-participant');
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'begun by 0.2', timeoutMs: 60_000 });
    const branchId = newBranchId();
    const now = Date.now();
    // What a 0.1 participant writes when it registers: its branch and the member under link/.
    await env.client.put(`${ns}acct/branch/${tx.xid}/${branchId}`).value(JSON.stringify({ v: 1, xid: tx.xid, app: 'shop', branchId, owner: 'acct', resource: 'r', payload: {}, createdAt: now, deadline: tx.context.deadline, tryState: 'PENDING', updatedAt: now, writeId: 'b01', events: [] }));
    await env.client.put(`${ns}shop/link/${tx.xid}/acct/${branchId}`).value(JSON.stringify({ v: 1, xid: tx.xid, owner: 'acct', branchId, resource: 'r', tryState: 'PENDING' }));
    await expect(tx.commit()).rejects.toBeInstanceOf(BranchesNotPrepared);
  });

  it("legacyLinks puts a 0.2 participant's member record under link/, where a 0.1 initiator looks; by default it is under member/ only", async () => {
    const { ns, h } = env.fresh('mixed-legacy-links');
    const init = h.service({ app: 'shop' });
    const legacy = h.service({ app: 'acct', legacyLinks: true }).resource('r', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    const current = h.service({ app: 'bank' }).resource('r', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    await Promise.all([init.start(), legacy.start(), current.start()]);
    const tx = await init.begin({ name: 'mixed', timeoutMs: 60_000 });
    const a = await legacy.tryBranch(tx.context, 'r', {});
    const b = await current.tryBranch(tx.context, 'r', {});
    const keys = (prefix: string): Promise<string[]> => env.client.getAll().prefix(`${ns}shop/${prefix}/${tx.xid}/`).keys();
    expect(await keys('link')).toEqual([`${ns}shop/link/${tx.xid}/acct/${a.branchId}`]);
    expect(await keys('member')).toEqual([`${ns}shop/member/${tx.xid}/bank/${b.branchId}`]);
    await tx.commit();
    const done = await init.waitForCompletion(tx.xid, { timeoutMs: 20_000 });
    expect(done.status).toBe('COMMITTED');
    expect(done.branches.map((m) => m.state)).toEqual(['DONE', 'DONE']);
  });
});
