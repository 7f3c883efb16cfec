/**
 * REST-TCC participant links through the coordinator (src/resttcc/): the links become branches of a
 * txloop transaction of the coordinator's service, confirmed by PUT and cancelled by DELETE with the
 * engine's retries, and the coordinator answers 204 / 404 / 409 from what the branches say. Real
 * etcd, real HTTP participants on loopback ports.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { ResolvedByParticipant, RestTccClient, RestTccCoordinator, RestTccHeuristic, RestTccParticipant, RestTccTooLate, type ParticipantLink, type ServiceOptions, type TransactionView, type TxloopService } from '../src/index.js';
import { LINK_RESOURCE, restTccRoutes } from '../src/resttcc/index.js';
import { parseResources, startSidecar } from '../src/sidecar/index.js';
import { assertBuilt, runCli } from './helpers/cli.js';
import { fastTimings, gate, quietLogger, useEtcd, waitFor, type Harness } from './helpers/harness.js';
import { recordingFetch, stubParticipant, type StubParticipant, type StubScript } from './helpers/rest-tcc.js';

const env = useEtcd();
let h: Harness;
let ns: string;
const stubs: StubParticipant[] = [];
const closers: (() => unknown)[] = [];

afterEach(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
  for (const c of closers.splice(0).reverse()) await c();
});

async function participant(script: StubScript): Promise<StubParticipant> {
  const s = await stubParticipant(script);
  stubs.push(s);
  return s;
}

async function coordinator(label: string, options: Partial<ServiceOptions> = {}, fetchImpl?: typeof fetch): Promise<{ svc: TxloopService; coord: RestTccCoordinator }> {
  const fresh = env.fresh(label);
  h = fresh.h;
  ns = fresh.ns;
  const svc = h.service({ app: 'coord', ...options });
  const coord = new RestTccCoordinator(svc, { waitMs: 20_000, ...(fetchImpl ? { fetch: fetchImpl } : {}) });
  await svc.start();
  return { svc, coord };
}

const branch = (view: TransactionView, id: string) => view.branches.find((b) => b.branchId === id)!;

describe('REST-TCC confirm: every link PUT once it is decided, with the engine retrying it', () => {
  it('answers confirmed (204) once every participant confirmed; each link is PUT with Accept: application/tcc, once each, a 503 retried', async () => {
    const p = await participant((method, id, n) => (id === 'b' && n === 1 ? 503 : 204));
    const { svc, coord } = await coordinator('confirm-ok');
    const result = await coord.confirm({ participantLinks: [p.link('a', 30_000), p.link('b', 30_000)] });
    expect(result.outcome).toBe('confirmed');
    expect(result.links.map((l) => l.state)).toEqual(['confirmed', 'confirmed']);
    expect(p.callsOf('a').map((c) => c.method)).toEqual(['PUT']);
    expect(p.callsOf('b').map((c) => c.method)).toEqual(['PUT', 'PUT']);
    expect(new Set(p.calls.map((c) => c.accept))).toEqual(new Set(['application/tcc']));
    const view = await svc.waitForCompletion(result.xid, { timeoutMs: 10_000 });
    expect(view).toMatchObject({ status: 'COMMITTED', heuristic: false });
    expect(branch(view, 'link-1')).toMatchObject({ resource: 'rest-tcc-link', owner: 'coord', state: 'DONE', attempts: 2 });
    expect(branch(view, 'link-1').resolution).toBeUndefined();
  });

  it('many confirms at once each get their own answer, and waiting on them adds no listener per call to the service', async () => {
    const p = await participant(() => 204);
    const { svc, coord } = await coordinator('confirm-many');
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const results = await Promise.all(Array.from({ length: 15 }, (_, i) => coord.confirm([p.link(`l${i}`, 30_000)])));
      expect(results.map((r) => r.outcome)).toEqual(Array(15).fill('confirmed'));
      expect(new Set(results.map((r) => r.xid)).size).toBe(15);
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).not.toContain('MaxListenersExceededWarning');
    expect(svc.listenerCount('phase2')).toBe(1);
    expect(p.calls).toHaveLength(15);
  });

  it('a confirm answered 500 is retried with backoff until the participant confirms it', async () => {
    const p = await participant((method, _id, n) => (method === 'PUT' && n <= 2 ? 500 : 204));
    const { coord } = await coordinator('confirm-500');
    const result = await coord.confirm([p.link('a', 30_000)]);
    expect(result.outcome).toBe('confirmed');
    expect(result.links[0]).toMatchObject({ state: 'confirmed', attempts: 3 });
    expect(p.callsOf('a', 'PUT')).toHaveLength(3);
    const [first, second, third] = p.callsOf('a', 'PUT');
    // The service's backoff (fastTimings: 20 ms doubling) between the attempts.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(15);
    expect(third!.at - second!.at).toBeGreaterThanOrEqual(35);
  });
});

describe('REST-TCC confirm that comes too late (404): no link confirmed', () => {
  it('every link expired already: nothing is PUT (nor DELETEd), the transaction is rolled back and the confirm answers too-late', async () => {
    const p = await participant(() => 204);
    const { svc, coord } = await coordinator('all-expired');
    const result = await coord.confirm([p.link('a', -1_000), p.link('b', -5)]);
    expect(result.outcome).toBe('too-late');
    expect(p.calls).toEqual([]);
    const view = await svc.waitForCompletion(result.xid, { timeoutMs: 10_000 });
    expect(view.status).toBe('ROLLED_BACK');
    expect(view.decision?.reason).toMatch(/every link had expired/);
    expect(view.heuristic).toBe(false);
    for (const l of result.links) expect(l).toMatchObject({ state: 'cancelled', reason: expect.stringMatching(/expired .*no DELETE sent/) });
  });

  it('every PUT answered 404 (the participants cancelled or let them expire): too-late, recorded as resolved by the participants, not retried', async () => {
    const p = await participant(() => 404);
    const { svc, coord } = await coordinator('all-404');
    const result = await coord.confirm([p.link('a', 30_000), p.link('b', 30_000)]);
    expect(result.outcome).toBe('too-late');
    expect(p.calls.map((c) => c.method)).toEqual(['PUT', 'PUT']);
    const view = await svc.waitForCompletion(result.xid, { timeoutMs: 10_000 });
    expect(view).toMatchObject({ status: 'COMMITTED', heuristic: true });
    for (const b of view.branches) expect(b).toMatchObject({ state: 'DONE', resolution: 'cancelled', attempts: 1 });
  });
});

describe('REST-TCC heuristic outcome (409): some links confirmed and some not, recorded as such', () => {
  it('a link answering its PUT with 404 is resolved as cancelled by its participant at once; the others confirmed; get and describe show the heuristic outcome', async () => {
    assertBuilt();
    const p = await participant((_m, id) => (id === 'gone' ? 404 : 204));
    const { svc, coord } = await coordinator('put-404');
    const result = await coord.confirm([p.link('ok', 30_000), p.link('gone', 30_000)]);
    expect(result.outcome).toBe('heuristic');
    expect(result.links).toMatchObject([
      { branchId: 'link-0', state: 'confirmed' },
      { branchId: 'link-1', state: 'cancelled', attempts: 1, reason: expect.stringMatching(/^PUT answered 404/) },
    ]);
    expect(p.callsOf('gone')).toHaveLength(1);
    const view = await svc.waitForCompletion(result.xid, { timeoutMs: 10_000 });
    expect(view).toMatchObject({ status: 'COMMITTED', heuristic: true });
    expect(branch(view, 'link-1')).toMatchObject({ state: 'DONE', action: 'confirm', resolution: 'cancelled' });
    expect((await svc.get(result.xid)).heuristic).toBe(true);

    const out = await runCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, 'describe', 'gtx', result.xid]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^Status:\s+COMMITTED \(heuristic\)$/m);
    const gone = out.stdout.slice(out.stdout.indexOf('  link-1:'));
    expect(gone).toMatch(/Status:\s+RESOLVED_CANCELLED/);
    expect(gone).toMatch(new RegExp(`Resolution:\\s+cancelled by participant:${p.host.replace(/\./g, '\\.')} at .*: PUT answered 404`));
    expect(out.stdout).toMatch(/Resolved\s+\S+\s+coord\/link-1\s+confirm attempt 1: resolved as cancelled/);
  });

  it('an expired link among live ones is never PUT: recorded as cancelled by its expiry, the rest confirmed', async () => {
    const p = await participant(() => 204);
    const { svc, coord } = await coordinator('one-expired');
    const result = await coord.confirm([p.link('late', -1), p.link('ok', 30_000)]);
    expect(result.outcome).toBe('heuristic');
    expect(p.callsOf('late')).toEqual([]);
    expect(p.callsOf('ok', 'PUT')).toHaveLength(1);
    expect(result.links[0]).toMatchObject({ state: 'cancelled', reason: expect.stringMatching(/expired at .* before its confirm; never PUT/) });
    const view = await svc.waitForCompletion(result.xid, { timeoutMs: 10_000 });
    expect(view).toMatchObject({ status: 'COMMITTED', heuristic: true });
  });

  it('a link that expires during the retries of its confirm is never PUT after its expiry: its last PUT was answered (503), so it is cancelled by its expiry', async () => {
    const p = await participant((_m, id) => (id === 'flaky' ? 503 : 204));
    const rec = recordingFetch();
    const { coord } = await coordinator('expires-retrying', { retryBaseMs: 100, retryMaxMs: 300, maxAttempts: 50 }, rec.fetch);
    const flaky = p.link('flaky', 1_200);
    const expiresAt = Date.parse(flaky.expires);
    const result = await coord.confirm([p.link('ok', 30_000), flaky]);
    expect(result.outcome).toBe('heuristic');
    const puts = rec.sent.filter((s) => s.url === flaky.uri);
    expect(puts.length).toBeGreaterThanOrEqual(3);
    for (const s of puts) expect(s.method).toBe('PUT');
    for (const s of puts) expect(s.at).toBeLessThan(expiresAt);
    expect(result.links[1]).toMatchObject({ state: 'cancelled', reason: expect.stringMatching(/expired at .* during the retries of its confirm \(last: PUT answered 503.*not PUT after its expiry/) });
  });

  it('a link that expires after a PUT that got no answer is in doubt: parked for a human, never PUT after its expiry, and the confirm answers heuristic', async () => {
    const p = await participant((_m, id) => (id === 'silent' ? 'drop' : 204));
    const rec = recordingFetch();
    const { svc, coord } = await coordinator('expires-in-doubt', { retryBaseMs: 100, retryMaxMs: 300, maxAttempts: 50 }, rec.fetch);
    const silent = p.link('silent', 1_000);
    const result = await coord.confirm([p.link('ok', 30_000), silent]);
    expect(result.outcome).toBe('heuristic');
    expect(result.links[1]).toMatchObject({ state: 'parked', reason: expect.stringMatching(/last PUT got no answer.*may or may not be confirmed/) });
    for (const s of rec.sent.filter((x) => x.url === silent.uri)) expect(s.at).toBeLessThan(Date.parse(silent.expires));
    const view = await svc.get(result.xid);
    expect(view.status).toBe('COMMITTING');
    expect(branch(view, 'link-1').state).toBe('PARKED');
  });
});

describe('REST-TCC cancel: DELETE each link; 404 and 405 are fine', () => {
  it('cancel DELETEs each live link once (204 done, 404 done, 405: relying on the participant expiry, in its timeline), sends nothing to an expired one, and the transaction is rolled back, not heuristic', async () => {
    const p = await participant((method, id) => (method !== 'DELETE' ? 500 : id === 'gone' ? 404 : id === 'nodelete' ? 405 : 204));
    const { svc, coord } = await coordinator('cancel');
    const links: ParticipantLink[] = [p.link('ok', 30_000), p.link('gone', 30_000), p.link('nodelete', 30_000), p.link('expired', -1)];
    const result = await coord.cancel({ participantLinks: links });
    expect(result.settled).toBe(true);
    expect(result.links.map((l) => l.state)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
    expect(p.calls.map((c) => `${c.method} ${c.id}`).sort()).toEqual(['DELETE gone', 'DELETE nodelete', 'DELETE ok']);
    expect(new Set(p.calls.map((c) => c.accept))).toEqual(new Set(['application/tcc']));
    expect(result.links[2]!.reason).toMatch(/DELETE answered 405.*relying on the participant's expiry/);
    const view = await svc.waitForCompletion(result.xid, { timeoutMs: 10_000 });
    expect(view).toMatchObject({ status: 'ROLLED_BACK', heuristic: false });
    expect(branch(view, 'link-0').resolution).toBeUndefined();
    expect(branch(view, 'link-1').resolution).toBeUndefined();
    expect(branch(view, 'link-2').resolution).toBe('cancelled');
  });

  it('a DELETE answered 503 is retried until the participant answers', async () => {
    const p = await participant((_m, _id, n) => (n === 1 ? 503 : 204));
    const { coord } = await coordinator('cancel-retry');
    const result = await coord.cancel([p.link('a', 30_000)]);
    expect(result.links[0]).toMatchObject({ state: 'cancelled', attempts: 2 });
    expect(p.callsOf('a', 'DELETE')).toHaveLength(2);
  });
});

describe('a REST-TCC confirm never cancels', () => {
  it("a confirm's transaction rolled back (its commit failed, or never came and its deadline passed) sends no DELETE: the links are left as they were, and the confirm sent again confirms them", async () => {
    const p = await participant(() => 204);
    const { svc, coord } = await coordinator('confirm-rolled-back');
    const link = p.link('a', 30_000);
    // What a confirm whose commit failed leaves: its transaction, with the link's branch, rolled back.
    const tx = await svc.begin({ name: 'REST-TCC confirm of 1 link', timeoutMs: 10_000 });
    await svc.tryBranch(tx.context, LINK_RESOURCE, { ...link, call: 'confirm' }, { branchId: 'link-0' });
    await tx.rollback({ reason: 'its commit failed' });
    const rolledBack = await svc.waitForCompletion(tx.xid, { timeoutMs: 10_000 });
    expect(rolledBack).toMatchObject({ status: 'ROLLED_BACK', heuristic: false });
    expect(branch(rolledBack, 'link-0')).toMatchObject({ state: 'DONE', resolution: 'cancelled', lastError: expect.stringMatching(/this confirm was not decided .*no DELETE sent/) });
    expect(p.calls).toEqual([]);
    const again = await coord.confirm([link]);
    expect(again.outcome).toBe('confirmed');
    expect(p.calls.map((c) => c.method)).toEqual(['PUT']);
  });

  it('a confirm whose transaction passed its deadline before its decision answers 503 over HTTP (send it again), and nothing is sent to the participant', async () => {
    const p = await participant(() => 204);
    const fresh = env.fresh('confirm-deadline');
    const svc = fresh.h.service({ app: 'coord' });
    const coord = new RestTccCoordinator(svc, { timeoutMs: 1 });
    await svc.start();
    const app = Fastify();
    await restTccRoutes(app, coord);
    closers.push(() => app.close());
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const res = await fetch(`${base}/coordinator/confirm`, { method: 'PUT', headers: { 'content-type': 'application/tcc+json' }, body: JSON.stringify({ participantLinks: [p.link('a', 30_000)] }) });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 503, name: 'DeadlineExceeded', detail: expect.stringMatching(/send it again$/) });
    const [view] = await svc.list();
    await svc.waitForCompletion(view!.xid, { timeoutMs: 10_000 });
    expect(p.calls).toEqual([]);
  });
});

describe('ResolvedByParticipant outside a TCC confirm or cancel', () => {
  it("thrown by a message consumer's deliver, it counts as NonRetryableError: parked at once, never recorded as a resolution", async () => {
    const fresh = env.fresh('resolved-elsewhere');
    let calls = 0;
    const bank = fresh.h.service({ app: 'bank' }).consumer('credit', {
      deliver: () => {
        calls++;
        throw new ResolvedByParticipant('cancelled', 'not a TCC branch', 'participant:bank');
      },
    });
    const shop = fresh.h.service({ app: 'shop' });
    await Promise.all([bank.start(), shop.start()]);
    const msg = await shop.prepareMessage({ name: 'paid', consumers: [{ service: 'bank', resource: 'credit', branchId: 'credit' }] });
    await msg.submit();
    const d = await waitFor(async () => (await shop.deliveries(msg.xid)).deliveries.find((x) => x.status === 'PARKED'), 'the delivery parked');
    expect(d.attempts).toBe(1);
    expect(calls).toBe(1);
    expect((await shop.get(msg.xid)).branches[0]!.resolution).toBeUndefined();
  });
});

describe('REST-TCC coordinator input', () => {
  it('refuses links that are not { uri, expires } with an http(s) URI and an RFC 3339 expiry, naming the field; writes nothing', async () => {
    const { svc, coord } = await coordinator('input');
    await expect(coord.confirm({ participantLinks: [] })).rejects.toMatchObject({ name: 'ValidationError', field: 'participantLinks' });
    await expect(coord.confirm({ participantLinks: [{ uri: 'ftp://x/y', expires: '2030-01-01T00:00:00Z' }] })).rejects.toMatchObject({ field: 'participantLinks[0].uri' });
    await expect(coord.confirm({ participantLinks: [{ uri: 'http://x/y', expires: 'tomorrow' }] })).rejects.toMatchObject({ field: 'participantLinks[0].expires' });
    await expect(coord.confirm({ participantLinks: [{ uri: 'http://x/y', expires: '2030-01-01T00:00:00' }] })).rejects.toMatchObject({ field: 'participantLinks[0].expires' });
    const twice = { uri: 'http://x/y', expires: '2030-01-01T00:00:00+01:00' };
    await expect(coord.cancel([twice, twice])).rejects.toMatchObject({ field: 'participantLinks[1].uri' });
    expect(await svc.list()).toEqual([]);
  });
});

describe('REST-TCC over HTTP: the coordinator routes, a Node initiator and Node participants end to end', () => {
  /** The coordinator's routes on a fastify 5 server; returns its base URL. */
  async function routes(coord: RestTccCoordinator): Promise<string> {
    const app = Fastify();
    await restTccRoutes(app, coord);
    closers.push(() => app.close());
    return app.listen({ port: 0, host: '127.0.0.1' });
  }

  /** A RestTccParticipant on its own server, and what its handlers did. */
  async function flights(options: { ttlMs?: number; explicitCancel?: boolean } = {}): Promise<{ url: string; booked: string[]; released: { id: string; expired: boolean }[] }> {
    const booked: string[] = [];
    const released: { id: string; expired: boolean }[] = [];
    const p = new RestTccParticipant<{ seat: string }, string>({
      path: '/part',
      ttlMs: options.ttlMs ?? 30_000,
      sweepMs: 20,
      ...(options.explicitCancel !== undefined ? { explicitCancel: options.explicitCancel } : {}),
      try: ({ body }) => body.seat,
      confirm: ({ id }) => void booked.push(id),
      cancel: ({ id, expired }) => void released.push({ id, expired }),
    });
    const server = createServer(p.listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => {
      p.close();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    });
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/part`, booked, released };
  }

  it('an initiator collects two Trys\' links and PUT /coordinator/confirm answers 204: each participant confirmed once, the transaction COMMITTED', async () => {
    const { svc, coord } = await coordinator('http-confirm');
    const swiss = await flights();
    const easyjet = await flights();
    const client = new RestTccClient(await routes(coord));
    await client.run(async (tx) => {
      await tx.try(swiss.url, { seat: '12A' });
      await tx.try(easyjet.url, { seat: '3C' });
    });
    expect(swiss.booked).toHaveLength(1);
    expect(easyjet.booked).toHaveLength(1);
    const [view] = await svc.list();
    expect(view).toMatchObject({ status: 'COMMITTED', heuristic: false });
    expect(view!.branches).toHaveLength(2);
  });

  it('409 over HTTP: one participant let its reservation expire: RestTccHeuristic with the xid and each link, the expired link never PUT, recorded as heuristic', async () => {
    const { svc, coord } = await coordinator('http-409');
    const swiss = await flights();
    const easyjet = await flights({ ttlMs: 100 });
    const client = new RestTccClient(await routes(coord));
    const tx = client.begin();
    await tx.try(swiss.url, { seat: '12A' });
    const late = await tx.try(easyjet.url, { seat: '3C' });
    await waitFor(() => easyjet.released.length === 1, 'easyjet to release its expired reservation');
    const err = (await tx.confirm().catch((e: unknown) => e)) as RestTccHeuristic;
    expect(err).toBeInstanceOf(RestTccHeuristic);
    expect(err.links.map((l) => [l.uri, l.state])).toEqual([
      [tx.links[0]!.uri, 'confirmed'],
      [late.uri, 'cancelled'],
    ]);
    expect(swiss.booked).toHaveLength(1);
    expect(easyjet.booked).toEqual([]);
    expect(await svc.waitForCompletion(err.xid!, { timeoutMs: 10_000 })).toMatchObject({ status: 'COMMITTED', heuristic: true });
  });

  it('404 over HTTP: every link expired: an RFC 9457 problem (type, title, status, detail, name, xid); application/json bodies are taken too; a bad body is a 422 naming the field', async () => {
    const { coord } = await coordinator('http-404');
    const base = await routes(coord);
    const expired = { uri: 'http://127.0.0.1:1/part/x', expires: new Date(Date.now() - 1_000).toISOString() };
    for (const type of ['application/tcc+json', 'application/json']) {
      const res = await fetch(`${base}/coordinator/confirm`, { method: 'PUT', headers: { 'content-type': type }, body: JSON.stringify({ participantLinks: [expired] }) });
      expect(res.status, type).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await res.json()).toMatchObject({ type: 'https://txloop.dev/problems/RestTccTooLate', title: 'Too late', status: 404, name: 'RestTccTooLate', xid: expect.stringMatching(/^coord\./), detail: expect.stringMatching(/none was confirmed/) });
    }
    await expect(new RestTccClient(base).confirm([expired])).rejects.toBeInstanceOf(RestTccTooLate);
    const bad = await fetch(`${base}/coordinator/cancel`, { method: 'PUT', headers: { 'content-type': 'application/tcc+json' }, body: JSON.stringify({ participantLinks: [{ uri: 'x' }] }) });
    expect(bad.status).toBe(422);
    expect(await bad.json()).toMatchObject({ status: 422, name: 'ValidationError', field: 'participantLinks[0].uri' });
  });

  it('cancel over HTTP answers 204: a participant without explicit cancel (405) keeps its reservation until its expiry, one cancelled already is cancelled again harmlessly', async () => {
    const { svc, coord } = await coordinator('http-cancel');
    const noDelete = await flights({ explicitCancel: false, ttlMs: 800 });
    const swiss = await flights();
    const client = new RestTccClient(await routes(coord));
    const tx = client.begin();
    await tx.try(noDelete.url, { seat: '1A' });
    const cancelled = await tx.try(swiss.url, { seat: '2B' });
    expect((await fetch(cancelled.uri, { method: 'DELETE' })).status).toBe(204);
    await tx.cancel();
    const [view] = await svc.list();
    expect(view).toMatchObject({ status: 'ROLLED_BACK', heuristic: false });
    expect(swiss.released).toHaveLength(1);
    expect(noDelete.released).toEqual([]);
    expect(view!.branches.find((b) => b.branchId === 'link-0')).toMatchObject({ state: 'DONE', resolution: 'cancelled', lastError: expect.stringMatching(/DELETE answered 405.*relying on the participant's expiry/) });
    await waitFor(() => noDelete.released.length === 1, "the participant's own expiry to release it");
    expect(noDelete.released[0]!.expired).toBe(true);
  });
});

describe('REST-TCC recovery: the links are branches like any other', () => {
  it("a confirm whose coordinator replica stops leading mid-PUT is finished by the standby replica's coordinator", async () => {
    const fresh = env.fresh('failover');
    const first = fresh.h.service({ app: 'coord', identity: 'first' });
    const c1 = new RestTccCoordinator(first, { waitMs: 20_000 });
    const second = fresh.h.service({ app: 'coord', identity: 'second' });
    new RestTccCoordinator(second);
    await first.start();
    await waitFor(() => first.isLeader(), 'the first replica to lead');
    await second.start();
    const held: ServerResponse[] = [];
    const reached = gate();
    const p = await participant(() => 204);
    // The first PUT never gets an answer: its replica is closed meanwhile.
    const slow = createServer((req, res) => {
      if (held.length === 0) {
        held.push(res);
        reached.open();
        return;
      }
      req.resume();
      res.writeHead(204).end();
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    closers.push(() => {
      slow.closeAllConnections();
      return new Promise((resolve) => slow.close(resolve));
    });
    const uri = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/part/a`;
    const confirming = c1.confirm([{ uri, expires: new Date(Date.now() + 60_000).toISOString() }, p.link('b', 60_000)]).catch((e: unknown) => e);
    await reached.wait;
    await first.close();
    await confirming;
    const [view] = await second.list();
    const done = await second.waitForCompletion(view!.xid, { timeoutMs: 20_000 });
    expect(done).toMatchObject({ status: 'COMMITTED', heuristic: false });
    expect(done.branches.find((b) => b.branchId === 'link-0')!.attempts).toBeGreaterThanOrEqual(2);
    expect(second.isLeader()).toBe(true);
  });
});

describe('REST-TCC through the sidecar', () => {
  it("every sidecar serves /coordinator/confirm and /coordinator/cancel (restTccPlugin, built in) with the sidecar's token and its openapi.yaml request schemas", async () => {
    const { ns: namespace } = env.fresh('sidecar');
    const sidecar = await startSidecar({
      app: 'booking',
      namespace,
      etcd: { endpoints: env.endpoints },
      listen: { host: '127.0.0.1', port: 0 },
      serviceUrl: 'http://127.0.0.1:1',
      token: 's3cret',
      resources: parseResources({ resources: {} }, 'test'),
      logger: quietLogger,
      service: fastTimings,
    });
    closers.push(() => sidecar.close());
    const p = await participant((method, id) => (method === 'PUT' && id === 'gone' ? 404 : 204));
    const client = new RestTccClient(sidecar.url, { headers: { authorization: 'Bearer s3cret' } });
    await client.confirm([p.link('a', 30_000)]);
    const err = (await client.confirm([p.link('b', 30_000), p.link('gone', 30_000)]).catch((e: unknown) => e)) as RestTccHeuristic;
    expect(err).toBeInstanceOf(RestTccHeuristic);
    expect(err.xid).toMatch(/^booking\./);
    await client.cancel([p.link('c', 30_000)]);
    expect(p.calls.map((c) => `${c.method} ${c.id}`).sort()).toEqual(['DELETE c', 'PUT a', 'PUT b', 'PUT gone']);
    // The sidecar's token and its schemas guard the routes.
    expect((await new RestTccClient(sidecar.url).cancel([p.link('d', 30_000)]).catch((e: unknown) => e)) as { status?: number }).toMatchObject({ status: 401 });
    const invalid = await fetch(`${sidecar.url}/coordinator/confirm`, { method: 'PUT', headers: { authorization: 'Bearer s3cret', 'content-type': 'application/tcc+json' }, body: JSON.stringify({ participantLinks: [] }) });
    expect(invalid.status).toBe(422);
    expect(await invalid.json()).toMatchObject({ name: 'ValidationError', field: expect.stringMatching(/^body\.participantLinks/) });
    expect(p.callsOf('d')).toEqual([]);
  });
});
