import { describe, expect, it } from 'vitest';
import { useEtcd } from './helpers/harness.js';

const env = useEtcd({ members: 3 });

describe('invariant 3 across etcd member loss (3-member cluster)', () => {
  it('SIGKILL of an etcd member mid-run: every transaction still reaches its decided outcome, and the member rejoins', async () => {
    const { h } = env.fresh('cluster');
    const confirms = new Map<string, number>();
    const p = h.service({ app: 'acct' }).resource('r', {
      try: () => undefined,
      confirm: ({ branchId }) => void confirms.set(branchId, (confirms.get(branchId) ?? 0) + 1),
      cancel: () => undefined,
    });
    const init = h.service({ app: 'shop' });
    await Promise.all([p.start(), init.start()]);

    const xids: { xid: string; outcome: 'commit' | 'rollback' }[] = [];
    const runOne = async (i: number): Promise<void> => {
      // A member dying mid-call can fail a call; the caller retries as any client would.
      for (let attempt = 0; ; attempt++) {
        try {
          const tx = await init.begin({ name: `member-loss ${i}`, timeoutMs: 30_000 });
          await p.tryBranch(tx.context, 'r', { i });
          const outcome = i % 3 === 0 ? 'rollback' : 'commit';
          await tx[outcome]();
          xids.push({ xid: tx.xid, outcome });
          return;
        } catch (err) {
          if (attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    };
    for (let i = 0; i < 10; i++) await runOne(i);
    const victim = env.members[0]!;
    await victim.kill('SIGKILL');
    for (let i = 10; i < 25; i++) await runOne(i);

    for (const { xid, outcome } of xids) {
      const done = await init.waitForCompletion(xid, { timeoutMs: 30_000 });
      expect(done.status).toBe(outcome === 'commit' ? 'COMMITTED' : 'ROLLED_BACK');
    }
    // Every committed branch was confirmed at least once (at-least-once, never dropped).
    const committed = xids.filter((x) => x.outcome === 'commit').length;
    expect(confirms.size).toBeGreaterThanOrEqual(committed);

    await victim.restart();
    const tx = await init.begin({ name: 'after rejoin', timeoutMs: 30_000 });
    await p.tryBranch(tx.context, 'r', {});
    await tx.commit();
    expect((await init.waitForCompletion(tx.xid)).status).toBe('COMMITTED');
  });
});
