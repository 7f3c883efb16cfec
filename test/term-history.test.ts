import { describe, expect, it } from 'vitest';
import { TermHistory } from '../src/runtime/index.js';
import { useEtcd } from './helpers/harness.js';

const env = useEtcd();

describe('term history: whether a term led when an order was written (counting unrecorded first attempts)', () => {
  it('no leader key at that revision: no term could have run the attempt; a leader key: one could; a compacted revision: assume one did', async () => {
    const { ns, store } = env.fresh('term-history');
    const leaderKey = store.keys.leader('acct');
    const before = (await env.client.put(`${ns}acct/noise`).value('1').exec()).header.revision;
    await env.client.put(leaderKey).value('{}');
    const during = (await env.client.put(`${ns}acct/noise`).value('2').exec()).header.revision;
    await env.client.delete().key(leaderKey);
    const history = new TermHistory(store, leaderKey);
    expect(await history.ledAt(before)).toBe(false);
    expect(await history.ledAt(during)).toBe(true);
    const now = (await env.client.put(`${ns}acct/noise`).value('3').exec()).header.revision;
    await env.client.kv.compact({ revision: now });
    expect(await new TermHistory(store, leaderKey).ledAt(before)).toBe(true);
  });

  it('past its lookup limit (a large inherited backlog) it answers yes without asking etcd: an attempt is over-counted, never missed', async () => {
    const { ns, store } = env.fresh('term-history-limit');
    const leaderKey = store.keys.leader('acct');
    const r1 = (await env.client.put(`${ns}acct/noise`).value('1').exec()).header.revision;
    const r2 = (await env.client.put(`${ns}acct/noise`).value('2').exec()).header.revision;
    const history = new TermHistory(store, leaderKey, 1);
    expect(await history.ledAt(r1)).toBe(false);
    expect(await history.ledAt(r2)).toBe(true);
  });
});
