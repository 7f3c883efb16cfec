import { describe, expect, it } from 'vitest';
import { Registry, TxloopService } from '../src/index.js';
import { newBranchId, newXid } from '../src/store/index.js';
import { capturingLogger, fastTimings, useEtcd, waitFor } from './helpers/harness.js';

const env = useEtcd();


describe('invariant 9: every record the engine cannot use is reported once', () => {
  it('poison records under every prefix are each logged once naming the key, counted per prefix (gauge and stats), not logged again at resync, and forgotten once deleted', async () => {
    const { ns } = env.fresh('poison');
    const p = (rest: string): string => `${ns}acct/${rest}`;
    const xid = newXid('acct');
    const good = JSON.stringify({ v: 1, xid, owner: 'acct', branchId: 'b1234', resource: 'r', tryState: 'PENDING' });
    const poison: Record<string, string> = {
      [p(`gtx/${newXid('acct')}`)]: 'not json',
      [p(`gtx/${newXid('acct')}`)]: JSON.stringify({ v: 1 }),
      [p(`gtx/${newXid('acct')}`)]: JSON.stringify({ v: 1, xid: 'x', app: 'acct', name: 'n', mode: 'xa', status: 'TRYING', createdAt: 1, timeoutMs: 1, deadline: 1 }),
      [p(`link/${newXid('acct')}/acct/${newBranchId()}`)]: '[]',
      [p(`link/${xid}/acct/b1234`)]: good, // valid, but its global does not exist
      [p(`branch/${newXid('shop')}/${newBranchId()}`)]: '{"v":1,"xid":3}',
      [p(`branch/${newXid('shop')}/${newBranchId()}`)]: 'null',
      [p(`order/${newXid('shop')}/${newBranchId()}`)]: '{"v":2}',
      [p(`order/${newXid('shop')}/${newBranchId()}`)]: JSON.stringify({ v: 1, xid: 'shop.x', branchId: 'b', action: 'cancel', decidedAt: 1, by: 'x' }), // no branch
      [p('leader')]: 'garbage leader without a lease',
      [p('stats')]: '{"identity":5}',
      [p('gtx/not-an-xid')]: '{}',
      [p('weird')]: 'x',
      [p('branch/a/b/c')]: 'x',
    };
    for (const [k, v] of Object.entries(poison)) await env.client.put(k).value(v);

    const { logger, lines } = capturingLogger();
    const metrics = new Registry();
    const svc = new TxloopService({ ...fastTimings, app: 'acct', namespace: ns, etcd: { endpoints: env.endpoints }, logger, metrics, resyncMs: 200 });
    try {
      await svc.start();
      // The lease-less leader record is removed, so this replica can still lead.
      await waitFor(() => svc.isLeader(), { what: 'the service leads despite the poison leader key' });
      const reported = (): Map<string, number> => {
        const m = new Map<string, number>();
        for (const l of lines) if (l.msg === 'malformed record skipped; it is ignored until it is repaired or deleted') m.set(l.key as string, (m.get(l.key as string) ?? 0) + 1);
        return m;
      };
      await waitFor(() => Object.keys(poison).every((k) => reported().has(k)), { what: `every poison key logged (missing: ${Object.keys(poison).filter((k) => !reported().has(k)).join(', ')})` });
      // Several resyncs later, still one line each.
      const informer = (svc as unknown as { manager: { informer: { relists: number } } }).manager.informer;
      const relists = informer.relists;
      await waitFor(() => informer.relists >= relists + 3, { what: 'three more resyncs' });
      for (const [k, n] of reported()) expect({ k, n }).toEqual({ k, n: 1 });

      const gauge = async (kind: string): Promise<number> => {
        const text = await metrics.metrics();
        return Number(new RegExp(`^txloop_malformed_records\\{app="acct",kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
      };
      expect(await gauge('gtx')).toBe(3);
      expect(await gauge('member')).toBe(2);
      expect(await gauge('branch')).toBe(2);
      expect(await gauge('order')).toBe(2);
      expect(await gauge('unknown')).toBe(3);
      // A stats record published after the counts above were complete: one published earlier (the
      // leader publishes every statsIntervalMs) can carry gtx 3 while other kinds are still being
      // counted, and on a loaded machine that earlier one is what a first look finds.
      const countedBy = Date.now();
      const stats = await waitFor(async () => {
        const raw = await env.client.get(p('stats')).string();
        const s = raw ? (JSON.parse(raw) as { at: number; malformed?: Record<string, number> }) : undefined;
        return s && s.at >= countedBy && s.malformed?.gtx === 3 ? s.malformed : undefined;
      }, { what: 'stats carrying the malformed counts' });
      expect(stats).toMatchObject({ gtx: 3, member: 2, branch: 2, order: 2, unknown: 3 });

      // Deleting the bad records forgets them.
      for (const k of Object.keys(poison)) if (k.includes('/gtx/')) await env.client.delete().key(k);
      await waitFor(async () => (await gauge('gtx')) === 0, { what: 'gtx count back to 0' });
    } finally {
      await svc.close();
    }
  });
});
