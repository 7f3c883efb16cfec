import { describe, expect, it } from 'vitest';
import { TxloopService } from '../src/index.js';
import { gate, quietLogger, useEtcd, waitFor } from './helpers/harness.js';
import { untilStopped } from './helpers/wait.js';

const env = useEtcd({ members: 1 });

describe('invariant 3 across a full etcd outage', () => {
  it('work decided before etcd went down is finished after it comes back, and the loops resume without a restart', async () => {
    const { h } = env.fresh('outage');
    const release = gate();
    const running = gate();
    const confirmed: string[] = [];
    // A short lease, so that the outage outlasts it: the loops must resume after losing leadership.
    const p = h.service({ app: 'acct', leaseTtlSeconds: 2 }).resource('r', {
      try: () => undefined,
      confirm: async ({ branchId }) => {
        running.open();
        await release.wait;
        confirmed.push(branchId);
      },
      cancel: () => undefined,
    });
    const init = h.service({ app: 'shop', leaseTtlSeconds: 2 });
    await Promise.all([p.start(), init.start()]);
    const tx = await init.begin({ name: 'across outage', timeoutMs: 60_000 });
    const { branchId } = await p.tryBranch(tx.context, 'r', {});
    await tx.commit();
    // A handler starts only once its attempt is recorded: let it start before etcd goes away.
    await running.wait;

    const member = env.members[0]!;
    await member.kill('SIGKILL');
    // The confirm finishes while etcd is down: its progress cannot be recorded yet.
    release.open();
    await waitFor(() => confirmed.length >= 1, { what: 'confirm ran during the outage' });
    await expect(init.begin({ name: 'during outage', timeoutMs: 1_000 })).rejects.toThrow();
    // Longer than the lease TTL: leadership is lost (on a loaded machine a fixed 2.5 s may not be).
    await waitFor(() => !p.isLeader() && !init.isLeader(), { what: 'both services to lose leadership during the outage', timeoutMs: 20_000 });
    await member.restart();

    const done = await init.waitForCompletion(tx.xid, { timeoutMs: 30_000 });
    expect(done.status).toBe('COMMITTED');
    expect(confirmed).toContain(branchId);
    await waitFor(() => p.isLeader() && init.isLeader(), { what: 'both services lead again', timeoutMs: 15_000 });

    const after = await init.begin({ name: 'after outage', timeoutMs: 30_000 });
    await p.tryBranch(after.context, 'r', {});
    await after.commit();
    expect((await init.waitForCompletion(after.xid, { timeoutMs: 15_000 })).status).toBe('COMMITTED');
  });

  it('a hung (SIGSTOPped) etcd fails calls after etcd.requestTimeoutMs instead of hanging them', async () => {
    const { ns } = env.fresh('hung');
    const init = new TxloopService({ app: 'shop', namespace: ns, logger: quietLogger, etcd: { endpoints: env.endpoints, requestTimeoutMs: 500 } });
    const member = env.members[0]!;
    try {
      await init.begin({ name: 'warm up the connection', timeoutMs: 5_000 });
      await member.kill('SIGSTOP');
      // kill() returns before etcd's threads have stopped; until they have, etcd still answers.
      await untilStopped(member.pid!, 'etcd');
      // Without a request deadline this call never settles and the test times out.
      const err = await init.begin({ name: 'while hung', timeoutMs: 5_000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
    } finally {
      member.resume();
      await init.close();
    }
  }, 20_000);
});
