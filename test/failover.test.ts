import { afterEach, describe, expect, it } from 'vitest';
import { useEtcd, waitFor, type Harness } from './helpers/harness.js';
import { spawnReplica, stopReplica, type Replica } from './helpers/processes.js';
import { untilStopped } from './helpers/wait.js';

const env = useEtcd();
let h: Harness;
let replicas: Replica[] = [];

afterEach(async () => {
  await Promise.all(replicas.map(stopReplica));
  replicas = [];
});

const noop = { try: () => undefined, confirm: () => undefined, cancel: () => undefined };

/** A standby takes over once the dead leader's lease (4 s in the fixture) expired; generous for a loaded machine. */
const TAKEOVER_MS = 30_000;

/**
 * Two replicas whose first confirm attempt holds (ignoring its signal) until the replica gets
 * SIGUSR2: the test acts in the middle of it however long a loaded machine takes to react.
 */
async function twoReplicas(ns: string, extra: Record<string, string> = {}): Promise<{ leader: Replica; standby: Replica }> {
  const replicaEnv = { TXLOOP_ENDPOINTS: env.endpoints.join(','), NS: ns, APP: 'acct', PHASE2_HOLD_FIRST: '1', ...extra };
  const r1 = spawnReplica('participant.ts', 'replica-1', replicaEnv);
  const r2 = spawnReplica('participant.ts', 'replica-2', replicaEnv);
  replicas.push(r1, r2);
  await Promise.all([r1.waitForEvent((e) => e.event === 'started', 'start'), r2.waitForEvent((e) => e.event === 'started', 'start')]);
  const leader = await waitFor(() => [r1, r2].find((r) => r.events.some((e) => e.event === 'leader' && e.leading === true)), { what: 'a leader replica' });
  return { leader, standby: leader === r1 ? r2 : r1 };
}

async function probes(ns: string, xid: string): Promise<{ identity: string; action: string }[]> {
  const all = await env.client.getAll().prefix(`${ns}probe/${xid}/`).strings();
  return Object.entries(all).map(([k, action]) => ({ identity: k.split('/').at(-2)!, action }));
}

describe('leader failover with real processes (invariants 3 and 5)', () => {
  it('SIGKILL of the leader replica mid-confirm: the standby takes over within the lease TTL and finishes the branch', async () => {
    const fresh = env.fresh('kill');
    const ns = fresh.ns;
    h = fresh.h;
    const { leader, standby } = await twoReplicas(ns);
    const tryer = h.service({ app: 'acct' }).resource('r', noop); // runs the Try; not a control-loop replica
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'failover', timeoutMs: 60_000 });
    await tryer.tryBranch(tx.context, 'r', {});
    await tx.commit();
    await leader.waitForEvent((e) => e.event === 'phase2-start' && e.xid === tx.xid, 'confirm started on the leader');
    leader.kill('SIGKILL');
    await waitFor(() => leader.exited(), { what: 'leader process gone' });
    await standby.waitForEvent((e) => e.event === 'leader' && e.leading === true, 'standby becomes leader', TAKEOVER_MS);
    const done = await init.waitForCompletion(tx.xid, { timeoutMs: 30_000 });
    expect(done.status).toBe('COMMITTED');
    expect(done.branches[0]?.state).toBe('DONE');
    const executed = await probes(ns, tx.xid);
    expect(executed.some((p) => p.identity === standby.identity && p.action === 'confirm')).toBe(true);
    expect(executed.some((p) => p.identity === leader.identity)).toBe(false); // killed before it could finish
  });

  it('a SIGSTOPped leader loses its lease, the standby finishes the work, and on SIGCONT the old leader steps down without writing', async () => {
    const fresh = env.fresh('pause');
    const ns = fresh.ns;
    h = fresh.h;
    const { leader, standby } = await twoReplicas(ns);
    const tryer = h.service({ app: 'acct' }).resource('r', noop);
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'pause', timeoutMs: 60_000 });
    const { branchId } = await tryer.tryBranch(tx.context, 'r', {});
    await tx.commit();
    await leader.waitForEvent((e) => e.event === 'phase2-start' && e.xid === tx.xid, 'confirm started on the leader');
    leader.kill('SIGSTOP');
    await untilStopped(leader.child.pid!, 'the leader replica');
    await standby.waitForEvent((e) => e.event === 'leader' && e.leading === true, 'standby becomes leader', TAKEOVER_MS);
    const done = await init.waitForCompletion(tx.xid, { timeoutMs: 30_000 });
    expect(done.status).toBe('COMMITTED');
    // Its confirm finishes the moment it resumes (the SIGUSR2 waits for SIGCONT, like a timer that
    // expired while it was stopped), so it has its chance to record a stale success.
    leader.kill('SIGUSR2');
    leader.kill('SIGCONT');
    await leader.waitForEvent((e) => e.event === 'leader' && e.leading === false, 'old leader steps down after resuming', 20_000);
    // Both done: the handler returned, and the term's reconciles have settled (the step-down is
    // reported after them), so a stale write would have been attempted by now; it must not land.
    await leader.waitForEvent((e) => e.event === 'phase2-end' && e.xid === tx.xid, "the old leader's confirm handler to return");
    expect(leader.events.some((e) => e.event === 'phase2' && e.xid === tx.xid && e.result === 'succeeded')).toBe(false);
    const branch = JSON.parse((await env.client.get(`${ns}acct/branch/${tx.xid}/${branchId}`).string())!) as { events: { type: string }[]; phase2: { state: string } };
    expect(branch.phase2.state).toBe('DONE');
    expect(branch.events.filter((e) => e.type === 'Confirmed')).toHaveLength(1);
  });

  it('a handler that kills its own process every time is still counted (attempts recorded before inherited work) and parked after deadThreshold', async () => {
    const fresh = env.fresh('crashloop');
    const ns = fresh.ns;
    h = fresh.h;
    const replicaEnv = { TXLOOP_ENDPOINTS: env.endpoints.join(','), NS: ns, APP: 'acct', PHASE2_EXIT: '1', DEAD_THRESHOLD: '2' };
    let spawned = 0;
    // Like a Deployment: two replicas, each restarted when it dies.
    const keepTwo = (): void => {
      while (replicas.filter((r) => !r.exited()).length < 2) replicas.push(spawnReplica('participant.ts', `replica-${++spawned}`, replicaEnv));
    };
    keepTwo();
    const supervisor = setInterval(keepTwo, 200);
    try {
      const tryer = h.service({ app: 'acct' }).resource('r', noop);
      const init = h.service({ app: 'shop' });
      const tx = await init.begin({ name: 'crash loop', timeoutMs: 60_000 });
      const { branchId } = await tryer.tryBranch(tx.context, 'r', {});
      await tx.commit();
      const parked = await waitFor(async () => {
        const raw = await env.client.get(`${ns}acct/branch/${tx.xid}/${branchId}`).string();
        const b = raw ? (JSON.parse(raw) as { phase2?: { state: string; attempts: number; lastError?: string } }) : undefined;
        return b?.phase2?.state === 'PARKED' ? b.phase2 : undefined;
      }, { what: 'crash-looping branch parked', timeoutMs: 45_000 });
      expect(parked.attempts).toBe(2);
      expect(parked.lastError).toMatch(/never reported back/);
      // Two handler runs, each in its own term (the first unrecorded, counted through the leader key's history): four replicas.
      expect(spawned).toBe(4);
    } finally {
      clearInterval(supervisor);
    }
  }, 60_000);
});

describe('invariant 5: a deposed leader never starts a handler, and handlers get a fencing token', () => {
  it('a leader frozen right after recording its attempt for inherited work resumes after the standby finished the branch and does not start the handler; attempts are numbered across terms and the AttemptStarted event is kept', async () => {
    const fresh = env.fresh('freeze-attempt');
    const ns = fresh.ns;
    h = fresh.h;
    const replicaEnv = { TXLOOP_ENDPOINTS: env.endpoints.join(','), NS: ns, APP: 'acct' };
    // Term 1: a replica that dies inside its confirm, so the work is inherited by the next term.
    const dying = spawnReplica('participant.ts', 'replica-dying', { ...replicaEnv, PHASE2_DELAY_MS: '60000' });
    replicas.push(dying);
    await dying.waitForEvent((e) => e.event === 'leader' && e.leading === true, 'first replica leads');
    // Term 2: a replica that freezes itself between recording its attempt and starting the handler.
    const frozen = spawnReplica('participant.ts', 'replica-frozen', { ...replicaEnv, FREEZE_BEFORE_HANDLER: '1' });
    replicas.push(frozen);
    await frozen.waitForEvent((e) => e.event === 'started', 'second replica up');
    const tryer = h.service({ app: 'acct' }).resource('r', noop);
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'freeze', timeoutMs: 60_000 });
    const { branchId } = await tryer.tryBranch(tx.context, 'r', {});
    await tx.commit();
    await dying.waitForEvent((e) => e.event === 'phase2-start' && e.xid === tx.xid, 'confirm started in term 1');
    dying.kill('SIGKILL');
    await frozen.waitForEvent((e) => e.event === 'freezing', 'term 2 froze after recording its attempt', TAKEOVER_MS);
    // Term 3: the standby takes the frozen leader's expired lease and finishes the branch.
    const standby = spawnReplica('participant.ts', 'replica-standby', replicaEnv);
    replicas.push(standby);
    await standby.waitForEvent((e) => e.event === 'leader' && e.leading === true, 'standby takes the expired lease', TAKEOVER_MS);
    const done = await init.waitForCompletion(tx.xid, { timeoutMs: 30_000 });
    expect(done.status).toBe('COMMITTED');
    frozen.kill('SIGCONT');
    await frozen.waitForEvent((e) => e.event === 'resumed', 'frozen leader resumes');
    await frozen.waitForEvent((e) => e.event === 'leader' && e.leading === false, 'resumed leader steps down', 20_000);
    // The resumed replica decided at its first instruction after the freeze: no handler started.
    expect(frozen.events.filter((e) => e.event === 'phase2-start' && e.xid === tx.xid)).toEqual([]);
    const attempts = [...dying.events, ...standby.events].filter((e) => e.event === 'phase2-start' && e.xid === tx.xid).map((e) => e.attempt);
    expect(attempts).toEqual([1, 3]); // attempt 2 was recorded by the frozen term and never ran
    const branch = JSON.parse((await env.client.get(`${ns}acct/branch/${tx.xid}/${branchId}`).string())!) as { events: { type: string; message: string }[]; phase2: { state: string; attempts: number } };
    expect(branch.phase2).toMatchObject({ state: 'DONE', attempts: 3 });
    const types = branch.events.map((e) => e.type);
    expect(types.filter((t) => t === 'AttemptStarted')).toHaveLength(2);
    expect(types.lastIndexOf('AttemptStarted')).toBeLessThan(types.indexOf('Confirmed'));
  }, 90_000);

  it("a handler still running in a deposed leader (it ignores its signal) is refused by its own write guarded on the fencing token; the new term's token is larger and its write lands", async () => {
    const fresh = env.fresh('token');
    const ns = fresh.ns;
    h = fresh.h;
    const { leader, standby } = await twoReplicas(ns, { GUARDED: '1' });
    const tryer = h.service({ app: 'acct' }).resource('r', noop);
    const init = h.service({ app: 'shop' });
    await init.start();
    const tx = await init.begin({ name: 'token', timeoutMs: 60_000 });
    await tryer.tryBranch(tx.context, 'r', {});
    await tx.commit();
    const first = await leader.waitForEvent((e) => e.event === 'phase2-start' && e.xid === tx.xid, 'confirm started on the leader');
    leader.kill('SIGSTOP');
    await untilStopped(leader.child.pid!, 'the leader replica');
    const second = await standby.waitForEvent((e) => e.event === 'phase2-start' && e.xid === tx.xid, 'standby runs the confirm', TAKEOVER_MS);
    expect(BigInt(second.fencingToken as string)).toBeGreaterThan(BigInt(first.fencingToken as string));
    const landed = await standby.waitForEvent((e) => e.event === 'guarded-write' && e.xid === tx.xid, "new leader's guarded write");
    expect(landed.landed).toBe(true);
    expect((await init.waitForCompletion(tx.xid, { timeoutMs: 30_000 })).status).toBe('COMMITTED');
    // The deposed leader's handler, ignoring its signal, goes on to its write as soon as it resumes.
    leader.kill('SIGUSR2');
    leader.kill('SIGCONT');
    const stale = await leader.waitForEvent((e) => e.event === 'guarded-write' && e.xid === tx.xid, "deposed leader's guarded write", 20_000);
    expect(stale.landed).toBe(false);
    const executed = await probes(ns, tx.xid);
    expect(executed.map((p) => p.identity)).toEqual([standby.identity]);
  });
});
