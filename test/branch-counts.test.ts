/**
 * The branches by status the leader publishes for `txloop top` are counted as keys change, not by a
 * scan of the cache: they must stay what a scan says (each branch's mode's status word, MALFORMED
 * for one that does not parse or whose mode is not run here) through puts, changes and deletes, and
 * a DONE branch, cached as its summary, counts as what it is.
 */
import { describe, expect, it } from 'vitest';
import { useEtcd, waitFor } from './helpers/harness.js';

const env = useEtcd();

describe("the leader's published branch counts", () => {
  it('follow every change of the branches (put, change, delete; DONE, resolved, PARKED, malformed, a mode not run) as a scan would count them', async () => {
    const { ns, h } = env.fresh('branch-counts');
    const now = Date.now();
    const branch = (i: number, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      v: 1, mode: 'tcc', xid: `shop.${now.toString(36).padStart(9, '0')}${String(i).padStart(8, '0')}`, app: 'shop', branchId: `b${i}`, owner: 'bank', resource: 'r', payload: { i },
      createdAt: now, deadline: now + 3_600_000, tryState: 'SUCCEEDED', updatedAt: now, writeId: `w${i}`, keyLayout: 2, events: [{ at: now, type: 'TrySucceeded', message: 'try succeeded' }], ...extra,
    });
    const key = (i: number): string => `${ns}bank/branch/shop.${now.toString(36).padStart(9, '0')}${String(i).padStart(8, '0')}/b${i}`;
    const put = async (i: number, value: unknown): Promise<void> => void (await env.client.put(key(i)).value(typeof value === 'string' ? value : JSON.stringify(value)));
    const done = (action: string, resolution?: Record<string, unknown>): Record<string, unknown> => ({ phase2: { action, state: 'DONE', attempts: 1, doneAt: now, ...(resolution ? { resolution } : {}) } });
    for (let i = 0; i < 5; i++) await put(i, branch(i));
    await put(5, branch(5, done('confirm')));
    await put(6, branch(6, done('cancel', { as: 'cancelled', reason: 'by hand', at: now, by: 'operator:test' })));
    await put(7, branch(7, { phase2: { action: 'confirm', state: 'PARKED', attempts: 10, lastError: 'down' } }));
    await put(8, '{ not json');
    await put(9, branch(9, { mode: 'xa' }));

    const svc = h.service({ app: 'bank' }).resource('r', { try: () => undefined, confirm: () => undefined, cancel: () => undefined });
    await svc.start();
    const published = async (): Promise<Record<string, number> | undefined> => {
      const raw = await env.client.get(`${ns}bank/stats`).string();
      return raw === null ? undefined : (JSON.parse(raw) as { branches: Record<string, number> }).branches;
    };
    const publishedAs = (want: Record<string, number>, what: string): Promise<unknown> => waitFor(async () => JSON.stringify(sorted(await published())) === JSON.stringify(sorted(want)), { what, timeoutMs: 20_000 });
    await publishedAs({ PREPARED: 5, CONFIRMED: 1, RESOLVED_CANCELLED: 1, PARKED: 1, MALFORMED: 2 }, 'the first counts');

    await env.client.delete().key(key(0)); // a PREPARED one collected
    await put(1, branch(1, done('confirm'))); // a PREPARED one done
    await put(8, branch(8)); // the malformed one repaired
    await put(7, '[]'); // the PARKED one broken
    await put(10, branch(10)); // a new one
    await publishedAs({ PREPARED: 5, CONFIRMED: 2, RESOLVED_CANCELLED: 1, MALFORMED: 2 }, 'the counts after the changes');
    const words = (await published())!;
    expect(Object.values(words).reduce((n, c) => n + c, 0)).toBe((await env.client.getAll().prefix(`${ns}bank/branch/`).keys()).length);
  });
});

function sorted(o: Record<string, number> | undefined): [string, number][] {
  return Object.entries(o ?? {}).sort(([a], [b]) => a.localeCompare(b));
}
