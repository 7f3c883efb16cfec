/**
 * The REST-TCC SDK helpers on their own, over real loopback HTTP: RestTccParticipant (a resource
 * served as participant links, reservations expiring by themselves) and RestTccClient (an
 * initiator's Trys and its coordinator's answers mapped to typed results). No etcd: the coordinator
 * here is a scripted server; test/resttcc.test.ts runs them against the real one.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RestTccClient, RestTccCoordinatorError, RestTccHeuristic, RestTccParticipant, RestTccPending, RestTccTooLate, RestTccTryFailed, type RestTccParticipantOptions } from '../src/index.js';
import { waitFor } from './helpers/wait.js';

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface Seats {
  held: Map<string, number>;
  booked: string[];
  released: { id: string; expired: boolean }[];
}

/** A seat-booking participant served by RestTccParticipant, and what its handlers did. */
async function seats(options: Partial<RestTccParticipantOptions<{ seats: number }, number>> = {}): Promise<{ url: string; p: RestTccParticipant<{ seats: number }, number>; did: Seats }> {
  const did: Seats = { held: new Map(), booked: [], released: [] };
  const p = new RestTccParticipant<{ seats: number }, number>({
    path: '/bookings',
    ttlMs: 30_000,
    try: ({ id, body }) => {
      if (body.seats > 9) throw Object.assign(new Error('not that many seats'), { status: 409 });
      did.held.set(id, body.seats);
      return body.seats;
    },
    confirm: ({ id }) => void did.booked.push(id),
    cancel: ({ id, expired }) => void did.released.push({ id, expired }),
    ...options,
  });
  closers.push(() => p.close());
  const url = await listen(createServer(p.listener));
  return { url: `${url}/bookings`, p, did };
}

const put = (uri: string) => fetch(uri, { method: 'PUT', headers: { accept: 'application/tcc' } });
const del = (uri: string) => fetch(uri, { method: 'DELETE', headers: { accept: 'application/tcc' } });
const tryAt = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('RestTccParticipant: a resource served as REST-TCC participant links', () => {
  it('a Try answers 201 with a participant link under its path, expiring ttlMs later; PUT confirms once (204), and a repeated PUT answers 204 without confirming again', async () => {
    const { url, did } = await seats({ ttlMs: 60_000 });
    const before = Date.now();
    const res = await tryAt(url, { seats: 2 });
    expect(res.status).toBe(201);
    const { participantLink: link } = (await res.json()) as { participantLink: { uri: string; expires: string } };
    expect(link.uri).toMatch(new RegExp(`^${url}/[0-9a-f-]{36}$`));
    expect(res.headers.get('location')).toBe(link.uri);
    expect(link.expires).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Date.parse(link.expires)).toBeGreaterThanOrEqual(before + 60_000);
    expect([...did.held.values()]).toEqual([2]);
    expect((await put(link.uri)).status).toBe(204);
    expect((await put(link.uri)).status).toBe(204);
    expect(did.booked).toHaveLength(1);
    expect(await (await fetch(link.uri)).json()).toMatchObject({ state: 'confirmed' });
    // A confirmed reservation cannot be cancelled any more.
    expect((await del(link.uri)).status).toBe(409);
    expect(did.released).toEqual([]);
  });

  it('DELETE releases a reservation (204, cancel once); a PUT after it answers 404; a DELETE again answers 204 without releasing twice', async () => {
    const { url, did } = await seats();
    const { participantLink: link } = (await (await tryAt(url, { seats: 1 })).json()) as { participantLink: { uri: string } };
    expect((await del(link.uri)).status).toBe(204);
    expect((await put(link.uri)).status).toBe(404);
    expect((await del(link.uri)).status).toBe(204);
    expect(did.released).toEqual([{ id: link.uri.split('/').pop(), expired: false }]);
    expect(did.booked).toEqual([]);
  });

  it('a reservation not confirmed by its expiry is released by the participant itself; its PUT and DELETE then answer 404', async () => {
    const { url, did } = await seats({ ttlMs: 150, sweepMs: 20 });
    const { participantLink: link } = (await (await tryAt(url, { seats: 1 })).json()) as { participantLink: { uri: string } };
    await waitFor(() => did.released.length === 1, 'the sweep to release the expired reservation');
    expect(did.released[0]!.expired).toBe(true);
    expect((await put(link.uri)).status).toBe(404);
    expect((await del(link.uri)).status).toBe(404);
    expect(did.booked).toEqual([]);
    expect(did.released).toHaveLength(1);
  });

  it('a PUT that arrives after the expiry, before any sweep, answers 404 and releases the reservation then', async () => {
    const { url, did } = await seats({ ttlMs: 50, sweepMs: 3_600_000 });
    const { participantLink: link } = (await (await tryAt(url, { seats: 1 })).json()) as { participantLink: { uri: string; expires: string } };
    await waitFor(() => Date.now() > Date.parse(link.expires), 'the link to expire');
    expect((await put(link.uri)).status).toBe(404);
    expect(did.booked).toEqual([]);
    expect(did.released).toMatchObject([{ expired: true }]);
  });

  it('explicitCancel: false answers DELETE with 405 (Allow: GET, PUT) and still releases the reservation at its expiry', async () => {
    const { url, did } = await seats({ explicitCancel: false, ttlMs: 150, sweepMs: 20 });
    const { participantLink: link } = (await (await tryAt(url, { seats: 1 })).json()) as { participantLink: { uri: string } };
    const res = await del(link.uri);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, PUT');
    expect(did.released).toEqual([]);
    await waitFor(() => did.released.length === 1, 'the expiry to release it');
    expect(did.released[0]!.expired).toBe(true);
  });

  it('a confirm handler that throws answers 500 and leaves the reservation reserved, so the next PUT confirms it', async () => {
    let fail = true;
    const booked: string[] = [];
    const { url } = await seats({
      confirm: ({ id }) => {
        if (fail) throw new Error('ledger busy');
        booked.push(id);
      },
    });
    const { participantLink: link } = (await (await tryAt(url, { seats: 1 })).json()) as { participantLink: { uri: string } };
    const first = await put(link.uri);
    expect(first.status).toBe(500);
    expect(await first.json()).toMatchObject({ status: 500, detail: 'ledger busy' });
    expect(await (await fetch(link.uri)).json()).toMatchObject({ state: 'reserved' });
    fail = false;
    expect((await put(link.uri)).status).toBe(204);
    expect(booked).toHaveLength(1);
  });

  it('a cancel handler that fails at the expiry is retried by the sweep until it succeeds', async () => {
    let failures = 2;
    const released: string[] = [];
    const { url } = await seats({
      ttlMs: 50,
      sweepMs: 20,
      cancel: ({ id }) => {
        if (failures-- > 0) throw new Error('release failed');
        released.push(id);
      },
    });
    await tryAt(url, { seats: 1 });
    await waitFor(() => released.length === 1, 'the release to succeed on a later sweep');
    expect(failures).toBe(-1);
  });

  it("a Try that throws with a status answers it as a problem; a body that is not JSON answers 400; other paths are left to the server's own handler", async () => {
    const { url } = await seats();
    const refused = await tryAt(url, { seats: 10 });
    expect(refused.status).toBe(409);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
    expect(await refused.json()).toMatchObject({ status: 409, detail: 'not that many seats' });
    expect((await fetch(url, { method: 'POST', body: '{nope' })).status).toBe(400);
    expect((await fetch(url.replace('/bookings', '/elsewhere'), { method: 'POST' })).status).toBe(404);
    expect((await fetch(url)).status).toBe(405);
  });
});

describe('RestTccClient: an initiator collects links and asks a coordinator to confirm or cancel them', () => {
  /** A scripted coordinator: answers `status` with `body`, and records what it was sent. */
  async function coordinatorAnswering(status: number, body?: Record<string, unknown>): Promise<{ url: string; got: { path: string; type: string | undefined; auth: string | undefined; body: unknown }[] }> {
    const got: { path: string; type: string | undefined; auth: string | undefined; body: unknown }[] = [];
    const url = await listen(
      createServer((req, res) => {
        let text = '';
        req.on('data', (d: Buffer) => (text += d.toString()));
        req.on('end', () => {
          got.push({ path: `${req.method} ${req.url}`, type: req.headers['content-type'], auth: req.headers.authorization, body: JSON.parse(text) as unknown });
          res.writeHead(status, body ? { 'content-type': 'application/problem+json' } : {}).end(body ? JSON.stringify(body) : undefined);
        });
      }),
    );
    return { url, got };
  }

  it('run() collects each Try\'s link and confirms them in one PUT /coordinator/confirm (application/tcc+json); 204 resolves', async () => {
    const a = await seats();
    const b = await seats();
    const coord = await coordinatorAnswering(204);
    const client = new RestTccClient(coord.url, { headers: { authorization: 'Bearer t0ken' } });
    const result = await client.run(async (tx) => {
      await tx.try(a.url, { seats: 1 });
      await tx.try(b.url, { seats: 2 });
      return 'booked';
    });
    expect(result).toBe('booked');
    expect(coord.got).toHaveLength(1);
    const [call] = coord.got;
    expect(call).toMatchObject({ path: 'PUT /coordinator/confirm', type: 'application/tcc+json', auth: 'Bearer t0ken' });
    const links = (call!.body as { participantLinks: { uri: string; expires: string }[] }).participantLinks;
    expect(links.map((l) => l.uri.slice(0, a.url.length + 1))).toEqual([`${a.url}/`, `${b.url}/`]);
    for (const l of links) expect(Object.keys(l).sort()).toEqual(['expires', 'uri']);
  });

  it('run() cancels the links collected when its function throws, and rethrows', async () => {
    const a = await seats();
    const coord = await coordinatorAnswering(204);
    const client = new RestTccClient(coord.url);
    await expect(
      client.run(async (tx) => {
        await tx.try(a.url, { seats: 1 });
        await tx.try(a.url, { seats: 10 }); // refused: 409
      }),
    ).rejects.toMatchObject({ name: 'RestTccTryFailed', status: 409 });
    expect(coord.got.map((g) => g.path)).toEqual(['PUT /coordinator/cancel']);
    expect((coord.got[0]!.body as { participantLinks: unknown[] }).participantLinks).toHaveLength(1);
  });

  it('a confirm answered 404 throws RestTccTooLate, 409 RestTccHeuristic, the txloop coordinator\'s pending answer RestTccPending, each with the xid and the links; anything else RestTccCoordinatorError', async () => {
    const links = [{ uri: 'http://127.0.0.1:1/part/a', expires: '2030-01-01T00:00:00Z' }];
    const detail = [{ uri: links[0]!.uri, expires: links[0]!.expires, branchId: 'link-0', state: 'cancelled', attempts: 1, reason: 'PUT answered 404' }];
    const cases: [number, Record<string, unknown> | undefined, unknown][] = [
      [404, { name: 'RestTccTooLate', xid: 'coord.x1', links: detail, detail: 'too late' }, RestTccTooLate],
      [409, { name: 'RestTccHeuristic', xid: 'coord.x2', links: detail, detail: 'mixed' }, RestTccHeuristic],
      [504, { name: 'RestTccPending', xid: 'coord.x3', links: detail, detail: 'still retrying' }, RestTccPending],
      [500, { name: 'EtcdError', detail: 'etcd said no' }, RestTccCoordinatorError],
      [404, undefined, RestTccTooLate], // a coordinator other than txloop's, with no body
    ];
    for (const [status, body, cls] of cases) {
      const coord = await coordinatorAnswering(status, body);
      const err = await new RestTccClient(coord.url).confirm(links).catch((e: unknown) => e);
      expect(err, `${status}`).toBeInstanceOf(cls);
      if (body?.xid) expect(err).toMatchObject({ xid: body.xid, links: detail, message: body.detail });
    }
    const e500 = (await new RestTccClient((await coordinatorAnswering(500, { name: 'EtcdError', detail: 'etcd said no' })).url).confirm(links).catch((e: unknown) => e)) as RestTccCoordinatorError;
    expect(e500).toMatchObject({ status: 500, problem: { name: 'EtcdError' } });
  });

  it('a coordinator that does not answer is RestTccCoordinatorError with no status (the confirm may have been decided: send it again); a Try with no link is RestTccTryFailed', async () => {
    const dead = await listen(createServer((req) => req.socket.destroy()));
    const err = await new RestTccClient(dead).confirm([{ uri: 'http://127.0.0.1:1/x', expires: '2030-01-01T00:00:00Z' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestTccCoordinatorError);
    expect((err as RestTccCoordinatorError).status).toBeUndefined();
    expect((err as Error).message).toMatch(/send it again/);
    const noLink = await listen(createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')));
    await expect(new RestTccClient(dead).try(noLink, {})).rejects.toBeInstanceOf(RestTccTryFailed);
  });
});
