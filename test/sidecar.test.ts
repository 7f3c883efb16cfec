/**
 * `txloop sidecar` as a real process against a real etcd, with a real HTTP service beside it: every
 * route of api/openapi.yaml, the callback contract (2xx done, 409 refused for good, 410 nothing to
 * do, anything else retried), problem documents for every error, nothing written for a bad request,
 * loopback only unless a token, the token both ways.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { useEtcd, waitFor } from './helpers/harness.js';
import { assertBuilt } from './helpers/cli.js';
import { CLI, FakeService, startSidecarProcess, type SidecarProcess } from './helpers/sidecar.js';

const env = useEtcd();
const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.allSettled(running.splice(0).map((r) => r.stop()));
});
beforeAll(() => assertBuilt());

const TCC = { debit: { try: '/debit/try', confirm: '/debit/confirm', cancel: '/debit/cancel' } };

async function setup(label: string, resources: Record<string, unknown> = { resources: TCC }, extra: { token?: string; args?: string[] } = {}): Promise<{ ns: string; sc: SidecarProcess; svc: FakeService }> {
  const { ns } = env.fresh(label);
  const svc = await new FakeService().start();
  running.push(svc);
  const sc = await startSidecarProcess({ endpoints: env.endpoints, ns, app: 'bank', serviceUrl: svc.url, resources, ...extra });
  running.push(sc);
  return { ns, sc, svc };
}

/** The records under `prefix`: the leader's election and stats keys, and each replica's presence, come and go on their own. */
async function keysUnder(prefix: string): Promise<string[]> {
  return (await env.client.getAll().prefix(prefix).keys()).filter((k) => !/\/(leader|stats|replica\/[0-9a-f]+)$/.test(k));
}

describe('sidecar: the initiator and participant routes, end to end', () => {
  it('begin → register → report → commit: the leader sidecar calls confirm on the service with the documented headers and body; get, list and wait show it COMMITTED', async () => {
    const { sc, svc } = await setup('sc-commit');
    const begun = await sc.call('POST', '/v1/transactions', { name: 'pay 30', timeoutMs: 30_000 });
    expect(begun.status).toBe(201);
    expect(begun.body.headers).toEqual({ 'txloop-xid': begun.body.xid, 'txloop-deadline': String(begun.body.deadline) });
    const { xid, deadline } = begun.body;
    const reg = await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'debit', payload: { amount: 30 }, branchId: 'req-1' });
    expect(reg).toMatchObject({ status: 201, body: { branchId: 'req-1', existed: false, tryState: 'PENDING' } });
    // A retried registration with the same id joins once: it is told the branch exists.
    expect((await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'debit', payload: { amount: 30 }, branchId: 'req-1' })).body).toMatchObject({ branchId: 'req-1', existed: true, tryState: 'PENDING' });
    expect((await sc.call('POST', `/v1/branches/${xid}/req-1/report`, { outcome: 'succeeded' })).status).toBe(204);
    expect((await sc.call('POST', `/v1/transactions/${xid}/commit`, { reason: 'paid' })).status).toBe(204);
    const done = await sc.call('POST', `/v1/transactions/${xid}/wait`, { timeoutMs: 20_000 });
    expect(done.body).toMatchObject({ xid, status: 'COMMITTED', branches: [{ branchId: 'req-1', owner: 'bank', state: 'DONE', action: 'confirm' }] });
    const [confirm] = svc.to('/debit/confirm');
    expect(confirm!.headers).toMatchObject({ 'txloop-xid': xid, 'txloop-branch-id': 'req-1', 'txloop-attempt': '1', 'idempotency-key': `${xid}/req-1/confirm` });
    expect(confirm!.headers['txloop-fencing-token']).toMatch(/^[1-9][0-9]*$/);
    expect(confirm!.body).toMatchObject({ xid, branchId: 'req-1', resource: 'debit', action: 'confirm', payload: { amount: 30 }, attempt: 1, tryState: 'SUCCEEDED' });
    expect((await sc.call('GET', `/v1/transactions/${xid}`)).body.status).toBe('COMMITTED');
    expect((await sc.call('GET', '/v1/transactions?status=committed')).body.items.map((t: { xid: string }) => t.xid)).toContain(xid);
    expect(svc.to('/debit/cancel')).toEqual([]);
  });

  it('rollback: cancel is called with the Try\'s state; a failed Try reported as failed is cancelled with tryState FAILED (empty rollback)', async () => {
    const { sc, svc } = await setup('sc-rollback');
    const { xid, deadline } = (await sc.call('POST', '/v1/transactions', { name: 'x' })).body;
    const a = (await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'debit', payload: 1 })).body.branchId;
    const b = (await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'debit', payload: 2 })).body.branchId;
    await sc.call('POST', `/v1/branches/${xid}/${a}/report`, { outcome: 'succeeded' });
    await sc.call('POST', `/v1/branches/${xid}/${b}/report`, { outcome: 'failed', error: 'insufficient funds' });
    const refused = await sc.call('POST', `/v1/transactions/${xid}/commit`);
    expect(refused).toMatchObject({ status: 409, body: { name: 'BranchesNotPrepared', xid, branchIds: [b] } });
    expect((await sc.call('POST', `/v1/transactions/${xid}/rollback`, {})).status).toBe(204);
    expect((await sc.call('POST', `/v1/transactions/${xid}/wait`, {})).body.status).toBe('ROLLED_BACK');
    const states = Object.fromEntries(svc.to('/debit/cancel').map((c) => [c.body.branchId, c.body.tryState]));
    expect(states).toEqual({ [a]: 'SUCCEEDED', [b]: 'FAILED' });
  });

  it('anti-hanging: a branch registered after the decision is refused with a 409 BranchRegistrationRefused problem, and nothing is written for it', async () => {
    const { sc, ns } = await setup('sc-hanging');
    const { xid, deadline } = (await sc.call('POST', '/v1/transactions', { name: 'x' })).body;
    await sc.call('POST', `/v1/transactions/${xid}/rollback`);
    const late = await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'debit', branchId: 'late' });
    expect(late).toMatchObject({ status: 409, type: expect.stringMatching(/^application\/problem\+json/), body: { name: 'BranchRegistrationRefused', xid, transactionStatus: expect.stringMatching(/^ROLL(ING_BACK|ED_BACK)$/) } });
    expect((await keysUnder(`${ns}bank/branch/`)).filter((k) => k.endsWith('/late'))).toEqual([]);
  });

  it("POST /v1/tries calls the service's Try path: its JSON answer is the result; a failing Try is 424 TryFailed naming the service's status and is recorded FAILED; a replay does not call it again", async () => {
    const { sc, svc } = await setup('sc-tries');
    svc.answer = (c) => (c.path === '/debit/try' ? (c.body.amount > 50 ? { status: 422, body: { error: 'insufficient funds' } } : { status: 200, body: { frozen: c.body.amount } }) : { status: 204 });
    const { xid, deadline } = (await sc.call('POST', '/v1/transactions', { name: 'x' })).body;
    const ok = await sc.call('POST', '/v1/tries', { xid, deadline, resource: 'debit', payload: { amount: 30 }, branchId: 'b1' });
    expect(ok).toMatchObject({ status: 200, body: { branchId: 'b1', replayed: false, result: { frozen: 30 } } });
    const [tryCall] = svc.to('/debit/try');
    expect(tryCall!.headers).toMatchObject({ 'txloop-xid': xid, 'txloop-deadline': String(deadline), 'txloop-branch-id': 'b1' });
    expect((await sc.call('POST', '/v1/tries', { xid, deadline, resource: 'debit', payload: { amount: 30 }, branchId: 'b1' })).body).toMatchObject({ branchId: 'b1', replayed: true });
    expect(svc.to('/debit/try')).toHaveLength(1);
    const failed = await sc.call('POST', '/v1/tries', { xid, deadline, resource: 'debit', payload: { amount: 60 }, branchId: 'b2' });
    expect(failed).toMatchObject({ status: 424, body: { name: 'TryFailed', xid, branchId: 'b2', resource: 'debit' } });
    expect(failed.body.detail).toMatch(/422.*insufficient funds/);
    const view = (await sc.call('GET', `/v1/transactions/${xid}`)).body;
    expect(Object.fromEntries(view.branches.map((b: { branchId: string; tryState: string }) => [b.branchId, b.tryState]))).toEqual({ b1: 'SUCCEEDED', b2: 'FAILED' });
    expect((await sc.call('POST', '/v1/tries', { xid, deadline, resource: 'nope', payload: {} })).body).toMatchObject({ name: 'UnknownResource' });
  });
});

describe('sidecar: the callback contract', () => {
  it('a confirm answering 500 is retried with backoff until it answers 204; 409 parks the branch at once; 410 counts as done; the last error names the status and the body', async () => {
    const { sc, svc } = await setup('sc-callbacks', { resources: { debit: TCC.debit, refund: { confirm: '/refund/confirm', cancel: '/refund/cancel' }, note: { confirm: '/note/confirm', cancel: '/note/cancel' } } }, { args: ['--max-attempts', '5'] });
    let debitCalls = 0;
    svc.answer = (c) => {
      if (c.path === '/debit/confirm') return ++debitCalls < 3 ? { status: 500, body: { error: 'database restarting' } } : { status: 204 };
      if (c.path === '/refund/confirm') return { status: 409, body: { error: 'account closed' } };
      if (c.path === '/note/confirm') return { status: 410 };
      return { status: 204 };
    };
    const { xid, deadline } = (await sc.call('POST', '/v1/transactions', { name: 'x' })).body;
    for (const resource of ['debit', 'refund', 'note']) {
      const id = (await sc.call('POST', '/v1/branches', { xid, deadline, resource, branchId: resource })).body.branchId;
      await sc.call('POST', `/v1/branches/${xid}/${id}/report`, { outcome: 'succeeded' });
    }
    await sc.call('POST', `/v1/transactions/${xid}/commit`);
    const branch = async (id: string) => ((await sc.call('GET', `/v1/transactions/${xid}`)).body.branches as { branchId: string; state?: string; lastError?: string; attempts: number }[]).find((b) => b.branchId === id)!;
    await waitFor(async () => (await branch('debit')).state === 'DONE', 'debit confirmed after its retries');
    expect(svc.to('/debit/confirm').map((c) => c.body.attempt)).toEqual([1, 2, 3]);
    await waitFor(async () => (await branch('refund')).state === 'PARKED', 'refund parked at once');
    expect(svc.to('/refund/confirm')).toHaveLength(1);
    expect((await branch('refund')).lastError).toMatch(/confirm callback \/refund\/confirm answered 409: \{"error":"account closed"\}/);
    await waitFor(async () => (await branch('note')).state === 'DONE', 'note done on 410');
    expect(svc.to('/note/confirm')).toHaveLength(1);
  });

  it('a callback that hangs past the handler timeout is retried, not lost', async () => {
    const { sc, svc } = await setup('sc-down', { resources: TCC }, { args: ['--handler-timeout', '300ms'] });
    let calls = 0;
    svc.answer = async () => (++calls === 1 ? new Promise((r) => setTimeout(() => r({ status: 204 }), 2_000)) : { status: 204 });
    const { xid, deadline } = (await sc.call('POST', '/v1/transactions', { name: 'x' })).body;
    const id = (await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'debit' })).body.branchId;
    await sc.call('POST', `/v1/branches/${xid}/${id}/report`, { outcome: 'succeeded' });
    await sc.call('POST', `/v1/transactions/${xid}/commit`);
    expect((await sc.call('POST', `/v1/transactions/${xid}/wait`, { timeoutMs: 20_000 })).body.status).toBe('COMMITTED');
    expect(svc.to('/debit/confirm').map((c) => c.body.attempt)).toEqual([1, 2]);
  });
});

describe('sidecar: bad requests get problem documents and write nothing', () => {
  it('unknown fields, wrong types, bad ids, malformed and oversized JSON, a wrong content type and an unknown route: each its 4xx problem; etcd holds nothing of them', async () => {
    const { sc, ns } = await setup('sc-bad');
    const before = await keysUnder(ns);
    const cases: [string, string, unknown, number, string, RegExp?][] = [
      ['POST', '/v1/transactions', { name: 'x', colour: 'red' }, 422, 'ValidationError', /body\.colour/],
      ['POST', '/v1/transactions', { name: 7 }, 422, 'ValidationError', /body\.name/],
      ['POST', '/v1/transactions', {}, 422, 'ValidationError', /body\.name/],
      ['POST', '/v1/transactions', { name: 'x', timeoutMs: -1 }, 422, 'ValidationError', /body\.timeoutMs/],
      ['POST', '/v1/transactions', '{"name": ', 400, 'BadRequest'],
      ['GET', '/v1/transactions/not-an-xid', undefined, 422, 'ValidationError', /params\.xid/],
      ['POST', '/v1/branches', { xid: 'bank.0000000000000000a', deadline: 1, resource: 'bad name' }, 422, 'ValidationError', /body\.resource/],
      ['POST', '/v1/branches/bank.0000000000000000a/b1/report', { outcome: 'maybe' }, 422, 'ValidationError', /body\.outcome/],
      ['POST', '/v1/sagas', { name: 'x', steps: [] }, 422, 'ValidationError', /body\.steps/],
      ['POST', '/v1/messages', { name: 'x', consumers: [{ service: 'Bad' }] }, 422, 'ValidationError'],
      ['GET', '/v1/nope', undefined, 404, 'NotFound'],
      ['GET', '/v1/transactions/bank.0000000000000000a', undefined, 404, 'TransactionNotFound'],
    ];
    for (const [method, path, body, status, name, detail] of cases) {
      const r = await sc.call(method, path, body);
      expect(r.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(status);
      expect(r.type).toMatch(/^application\/problem\+json/);
      expect(r.body).toMatchObject({ type: `https://txloop.dev/problems/${name}`, status, name });
      if (detail) expect(r.body.detail).toMatch(detail);
    }
    const big = await sc.call('POST', '/v1/transactions', JSON.stringify({ name: 'x', pad: 'x'.repeat(1_200_000) }));
    expect(big).toMatchObject({ status: 413, body: { name: 'PayloadTooLarge' } });
    const text = await sc.call('POST', '/v1/transactions', 'name=x', { 'content-type': 'text/plain' });
    expect(text).toMatchObject({ status: 415, body: { name: 'UnsupportedMediaType' } });
    expect(await keysUnder(ns)).toEqual(before);
  });
});

describe('sidecar: where it listens, and the token', () => {
  it('refuses a non-loopback --listen without a token or --listen-unsafe-any, saying why', () => {
    const r = spawnSync(process.execPath, [CLI, 'sidecar', '--endpoints', env.endpoints.join(','), '--app', 'bank', '--listen', '0.0.0.0:0', '--service-url', 'http://127.0.0.1:1', '--resources', '/dev/null'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--listen: 0\.0\.0\.0 is not a loopback address: .* unless it has a token \(--token-file\) or --listen-unsafe-any/);
  });

  it('with a token: every route but /healthz, /readyz and /openapi.json needs it (401 problem), and the callbacks carry it', async () => {
    const token = 'a-long-shared-secret-1234';
    const { sc, svc } = await setup('sc-token', { resources: TCC }, { token });
    const bare = async (path: string, init: RequestInit = {}) => fetch(`${sc.url}${path}`, init);
    const denied = await bare('/v1/transactions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"x"}' });
    expect(denied.status).toBe(401);
    expect(await denied.json()).toMatchObject({ name: 'Unauthorized' });
    expect((await bare('/v1/transactions', { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer wrong-token-of-same-len' }, body: '{"name":"x"}' })).status).toBe(401);
    expect((await bare('/metrics')).status).toBe(401);
    for (const open of ['/healthz', '/readyz', '/openapi.json']) expect((await bare(open)).status, open).toBe(200);
    const { xid, deadline } = (await sc.call('POST', '/v1/transactions', { name: 'x' })).body;
    const id = (await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'debit' })).body.branchId;
    await sc.call('POST', `/v1/branches/${xid}/${id}/report`, { outcome: 'succeeded' });
    await sc.call('POST', `/v1/transactions/${xid}/commit`);
    await waitFor(() => svc.to('/debit/confirm').length > 0, 'the confirm callback');
    expect(svc.to('/debit/confirm')[0]!.headers.authorization).toBe(`Bearer ${token}`);
  });
});

describe('sidecar: probes, metrics and the contract it serves', () => {
  it('/healthz and /readyz answer 200; /metrics has the SDK\'s series and the HTTP histogram; /openapi.json is api/openapi.yaml', async () => {
    const { sc } = await setup('sc-probes');
    expect((await sc.call('GET', '/healthz')).status).toBe(200);
    expect((await sc.call('GET', '/readyz')).body).toEqual({ status: 'ready' });
    await sc.call('POST', '/v1/transactions', { name: 'x' });
    const metrics = String((await sc.call('GET', '/metrics')).body);
    expect(metrics).toMatch(/txloop_leader\{app="bank"\} 1/);
    expect(metrics).toMatch(/txloop_sidecar_http_request_duration_seconds_count\{method="POST",route="\/v1\/transactions",status="201"\} 1/);
    const doc = (await sc.call('GET', '/openapi.json')).body;
    expect(doc).toEqual(parseYaml(readFileSync(new URL('../api/openapi.yaml', import.meta.url), 'utf8')));
  });

  it('SIGTERM stops it gracefully: exit 0, and its leadership is handed on at once', async () => {
    const { sc, ns } = await setup('sc-sigterm');
    await waitFor(async () => (await env.client.get(`${ns}bank/leader`).string()) !== null, 'leading');
    sc.proc.kill('SIGTERM');
    const exit = await sc.proc.exit;
    expect(exit.code).toBe(0);
    expect(await env.client.get(`${ns}bank/leader`).string()).toBeNull();
  });
});

describe('sidecar: sagas and 2-phase messages through it', () => {
  it("a saga submitted through the sidecar runs its steps on the services' sidecars: action callbacks in order, then compensations in reverse when one refuses (409)", async () => {
    const { ns } = env.fresh('sc-saga');
    const svc = await new FakeService().start();
    running.push(svc);
    svc.answer = (c) => (c.path === '/pay/action' ? { status: 409, body: { error: 'card declined' } } : { status: 204 });
    const steps = { resources: { order: { action: '/order/action', compensate: '/order/compensate' }, pay: { action: '/pay/action', compensate: '/pay/compensate' } } };
    const orderSc = await startSidecarProcess({ endpoints: env.endpoints, ns, app: 'order', serviceUrl: svc.url, resources: { resources: { create: steps.resources.order } } });
    running.push(orderSc);
    const paySc = await startSidecarProcess({ endpoints: env.endpoints, ns, app: 'pay', serviceUrl: svc.url, resources: { resources: { charge: steps.resources.pay } } });
    running.push(paySc);
    const saga = await orderSc.call('POST', '/v1/sagas', { name: 'checkout', steps: [{ service: 'order', resource: 'create', payload: { order: 42 } }, { service: 'pay', resource: 'charge', payload: { amount: 10 } }] });
    expect(saga.status).toBe(201);
    const done = await orderSc.call('POST', `/v1/transactions/${saga.body.xid}/wait`, { timeoutMs: 20_000 });
    expect(done.body.status).toBe('COMPENSATED');
    expect(svc.calls.map((c) => c.path)).toEqual(['/order/action', '/pay/action', '/pay/compensate', '/order/compensate']);
    expect(svc.to('/order/compensate')[0]!.body).toMatchObject({ action: 'compensate', tryState: 'SUCCEEDED', payload: { order: 42 } });
  });

  it('a message prepared through the sidecar: a consumer sidecar delivers it after submit; a prepare left alone is decided by the check-back callback', async () => {
    const { ns } = env.fresh('sc-msg');
    const svc = await new FakeService().start();
    running.push(svc);
    svc.answer = (c) => (c.path === '/checkback' ? { status: 200, body: { answer: 'committed' } } : { status: 204 });
    const shop = await startSidecarProcess({ endpoints: env.endpoints, ns, app: 'shop', serviceUrl: svc.url, resources: { resources: {}, checkBacks: { 'order paid': '/checkback' } } });
    running.push(shop);
    const mail = await startSidecarProcess({ endpoints: env.endpoints, ns, app: 'mail', serviceUrl: svc.url, resources: { resources: { receipt: { deliver: '/receipt' } } } });
    running.push(mail);
    const consumers = [{ service: 'mail', resource: 'receipt', payload: { order: 42 } }];
    const submitted = (await shop.call('POST', '/v1/messages', { name: 'order paid', consumers })).body;
    expect((await shop.call('POST', `/v1/messages/${submitted.xid}/submit`)).status).toBe(204);
    const orphan = (await shop.call('POST', '/v1/messages', { name: 'order paid', consumers, checkAfterMs: 300 })).body;
    for (const xid of [submitted.xid, orphan.xid]) expect((await shop.call('POST', `/v1/transactions/${xid}/wait`, { timeoutMs: 20_000 })).body.status).toBe('DELIVERED');
    expect(svc.to('/checkback').map((c) => c.body.xid)).toEqual([orphan.xid]);
    expect(svc.to('/receipt').map((c) => c.body.xid).sort()).toEqual([submitted.xid, orphan.xid].sort());
    expect((await shop.call('GET', `/v1/messages/${submitted.xid}/deliveries`)).body).toMatchObject({ status: 'DELIVERED', deliveries: [{ service: 'mail', status: 'DELIVERED' }] });
  });
});

describe('sidecar: fencing across two sidecars of one app', () => {
  it("a leader sidecar SIGSTOPped in the middle of a confirm loses its lease; the standby runs the confirm again as attempt 2 with a newer fencing token; resumed, the old one's answer is fenced off and it calls nothing more", async () => {
    const { ns } = env.fresh('sc-fence');
    const svc = await new FakeService().start();
    running.push(svc);
    let releaseFirst: (() => void) | undefined;
    // The first confirm call is held (the leader is stopped in the middle of it); the rest answer.
    svc.answer = () => (releaseFirst === undefined ? new Promise((r) => (releaseFirst = () => r({ status: 204 }))) : { status: 204 });
    const spec = { endpoints: env.endpoints, ns, app: 'bank', serviceUrl: svc.url, resources: { resources: TCC } };
    const first = await startSidecarProcess({ ...spec, identity: 'sidecar-1', args: ['--lease-ttl', '2', '--handler-timeout', '60s'] });
    running.push(first);
    const leaderPid = async (): Promise<number | undefined> => {
      const raw = await env.client.get(`${ns}bank/leader`).string();
      return raw ? Number(/\/(\d+)\//.exec(String(JSON.parse(raw).identity))?.[1]) : undefined;
    };
    await waitFor(async () => (await leaderPid()) === first.proc.pid, 'sidecar-1 leading');
    const second = await startSidecarProcess({ ...spec, identity: 'sidecar-2', args: ['--lease-ttl', '2'] });
    running.push(second);
    const { xid, deadline } = (await second.call('POST', '/v1/transactions', { name: 'x', timeoutMs: 60_000 })).body;
    const id = (await second.call('POST', '/v1/branches', { xid, deadline, resource: 'debit' })).body.branchId;
    await second.call('POST', `/v1/branches/${xid}/${id}/report`, { outcome: 'succeeded' });
    await second.call('POST', `/v1/transactions/${xid}/commit`);
    await waitFor(() => svc.to('/debit/confirm').length === 1, 'attempt 1 on the leader, held');
    first.proc.kill('SIGSTOP');
    try {
      await waitFor(() => svc.to('/debit/confirm').length === 2, { what: 'the standby to run the confirm again', timeoutMs: 30_000 });
      expect((await second.call('POST', `/v1/transactions/${xid}/wait`, { timeoutMs: 20_000 })).body.status).toBe('COMMITTED');
    } finally {
      first.proc.kill('SIGCONT');
    }
    const [one, two] = svc.to('/debit/confirm');
    expect([one!.body.attempt, two!.body.attempt]).toEqual([1, 2]);
    expect(BigInt(two!.headers['txloop-fencing-token'] as string)).toBeGreaterThan(BigInt(one!.headers['txloop-fencing-token'] as string));
    // The held attempt answers now, to a replica that no longer leads: nothing of it lands.
    releaseFirst?.();
    const later = (await second.call('POST', '/v1/transactions', { name: 'later' })).body;
    const id2 = (await second.call('POST', '/v1/branches', { xid: later.xid, deadline: later.deadline, resource: 'debit' })).body.branchId;
    await second.call('POST', `/v1/branches/${later.xid}/${id2}/report`, { outcome: 'succeeded' });
    await second.call('POST', `/v1/transactions/${later.xid}/commit`);
    expect((await second.call('POST', `/v1/transactions/${later.xid}/wait`, { timeoutMs: 20_000 })).body.status).toBe('COMMITTED');
    const view = (await second.call('GET', `/v1/transactions/${xid}`)).body;
    expect(view.branches[0]).toMatchObject({ state: 'DONE', attempts: 2 });
    expect(svc.to('/debit/confirm').filter((c) => c.body.xid === xid)).toHaveLength(2);
  });
});

describe('sidecar: what the review found', () => {
  it("a Try's outcome is reported once: the same again is a no-op, another is refused (409), even after the commit — which confirms as decided", async () => {
    const { sc, svc } = await setup('sc-report-once');
    const { xid, deadline } = (await sc.call('POST', '/v1/transactions', { name: 'x' })).body;
    const id = (await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'debit' })).body.branchId;
    expect((await sc.call('POST', `/v1/branches/${xid}/${id}/report`, { outcome: 'succeeded' })).status).toBe(204);
    expect((await sc.call('POST', `/v1/branches/${xid}/${id}/report`, { outcome: 'succeeded' })).status).toBe(204);
    await sc.call('POST', `/v1/transactions/${xid}/commit`);
    const flip = await sc.call('POST', `/v1/branches/${xid}/${id}/report`, { outcome: 'failed', error: 'second thoughts' });
    expect(flip).toMatchObject({ status: 409, body: { name: 'OperationRefused', reason: 'already-reported', xid, branchId: id } });
    expect((await sc.call('POST', `/v1/transactions/${xid}/wait`, {})).body.status).toBe('COMMITTED');
    expect(svc.to('/debit/confirm').map((c) => c.body.tryState)).toEqual(['SUCCEEDED']);
  });

  it('a proxied Try that gets no answer stays PENDING (504 TryOutcomeUnknown): its cancel is told PENDING, not FAILED; one whose service refuses the connection failed (424)', async () => {
    const { sc, svc } = await setup('sc-try-unknown');
    svc.answer = (c) => (c.path === '/debit/try' ? new Promise(() => undefined) : { status: 204 });
    const { xid, deadline } = (await sc.call('POST', '/v1/transactions', { name: 'x', timeoutMs: 1_500 })).body;
    const unknown = await sc.call('POST', '/v1/tries', { xid, deadline, resource: 'debit', branchId: 'slow' });
    expect(unknown).toMatchObject({ status: 504, body: { name: 'TryOutcomeUnknown', xid, branchId: 'slow' } });
    await sc.call('POST', `/v1/transactions/${xid}/rollback`);
    await waitFor(() => svc.to('/debit/cancel').length > 0, { what: 'the cancel', timeoutMs: 20_000 });
    expect(svc.to('/debit/cancel')[0]!.body).toMatchObject({ branchId: 'slow', tryState: 'PENDING' });
    expect(svc.to('/debit/cancel')[0]!.headers['txloop-try-state']).toBe('PENDING');

    const { ns } = env.fresh('sc-try-refused');
    const closed = await new FakeService().start();
    await closed.stop(); // a port nothing listens on any more
    const down = await startSidecarProcess({ endpoints: env.endpoints, ns, app: 'bank', serviceUrl: closed.url, resources: { resources: TCC } });
    running.push(down);
    const t = (await down.call('POST', '/v1/transactions', { name: 'x' })).body;
    const refused = await down.call('POST', '/v1/tries', { xid: t.xid, deadline: t.deadline, resource: 'debit', branchId: 'b' });
    expect(refused).toMatchObject({ status: 424, body: { name: 'TryFailed' } });
    expect(refused.body.detail).toMatch(/ECONNREFUSED/);
  });

  it("only the resources file's TCC resources can be registered: not REST-TCC's own link resource", async () => {
    const { sc } = await setup('sc-register-own');
    const { xid, deadline } = (await sc.call('POST', '/v1/transactions', { name: 'x' })).body;
    const r = await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'rest-tcc-link', payload: { uri: 'http://127.0.0.1:1/x', expires: '2030-01-01T00:00:00Z' } });
    expect(r).toMatchObject({ status: 422, body: { name: 'UnknownResource', resource: 'rest-tcc-link' } });
  });

  it('a report after the transaction was rolled back and collected: a failed Try had nothing to undo (204); a succeeded one is refused (409) for the service to release itself', async () => {
    const { sc } = await setup('sc-report-collected', { resources: TCC }, { args: ['--retention', '1ms', '--handler-timeout', '100ms'] });
    const { xid, deadline } = (await sc.call('POST', '/v1/transactions', { name: 'x', timeoutMs: 300 })).body;
    const a = (await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'debit' })).body.branchId;
    const b = (await sc.call('POST', '/v1/branches', { xid, deadline, resource: 'debit' })).body.branchId;
    await waitFor(async () => (await sc.call('GET', `/v1/transactions/${xid}`)).status === 404, { what: 'rolled back and collected', timeoutMs: 20_000 });
    expect((await sc.call('POST', `/v1/branches/${xid}/${a}/report`, { outcome: 'failed' })).status).toBe(204);
    expect(await sc.call('POST', `/v1/branches/${xid}/${b}/report`, { outcome: 'succeeded' })).toMatchObject({ status: 409, body: { name: 'TransactionAlreadyDecided', outcome: 'rollback' } });
  });

  it('SIGTERM answers a pending wait at once (503) and exits 0, instead of waiting it out', async () => {
    const { sc } = await setup('sc-sigterm-wait');
    const { xid } = (await sc.call('POST', '/v1/transactions', { name: 'x', timeoutMs: 600_000 })).body;
    const waiting = sc.call('POST', `/v1/transactions/${xid}/wait`, { timeoutMs: 600_000 });
    await waitFor(async () => /txloop_sidecar_http_requests_in_flight\{route="\/v1\/transactions\/:xid\/wait"\} 1/.test(String((await sc.call('GET', '/metrics')).body)), 'the wait in flight');
    sc.proc.kill('SIGTERM');
    expect(await waiting).toMatchObject({ status: 503 });
    expect((await sc.proc.exit).code).toBe(0);
  });

  it('with etcd unreachable it says so on stderr and exits 1 after --start-timeout, not silently', () => {
    const r = spawnSync(process.execPath, [CLI, 'sidecar', '--endpoints', 'http://127.0.0.1:1', '--app', 'bank', '--listen', '127.0.0.1:0', '--service-url', 'http://127.0.0.1:2', '--resources', '/dev/null', '--start-timeout', '1s', '--log-level', 'silent'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error: .*127\.0\.0\.1:1/m);
  });

  it('a failure that is not a request problem (a malformed record) is a generic 500, its detail kept in the log', async () => {
    const { sc, ns } = await setup('sc-500');
    await env.client.put(`${ns}bank/gtx/bank.zzzzzzzzzzzz1`).value('{"v":1}');
    const r = await sc.call('GET', '/v1/transactions/bank.zzzzzzzzzzzz1');
    expect(r).toMatchObject({ status: 500, body: { name: 'InternalError', detail: 'the sidecar failed to handle the request (see its log)' } });
  });

  it("the bearer scheme is case-insensitive; a --service-url with credentials is refused at start", async () => {
    const token = 'another-long-secret-5678';
    const { sc } = await setup('sc-bearer', { resources: TCC }, { token });
    const r = await fetch(`${sc.url}/v1/transactions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `bearer ${token}` }, body: '{"name":"x"}' });
    expect(r.status).toBe(201);
    const bad = spawnSync(process.execPath, [CLI, 'sidecar', '--endpoints', env.endpoints.join(','), '--app', 'bank', '--listen', '127.0.0.1:0', '--service-url', 'http://user:pw@127.0.0.1:2', '--resources', '/dev/null'], { encoding: 'utf8', timeout: 30_000 });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--service-url: must not carry credentials/);
    expect(bad.stderr).not.toMatch(/pw/);
  });
});
