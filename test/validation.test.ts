import { describe, expect, it } from 'vitest';
import {
  AbortError,
  DeadlineExceeded,
  PayloadError,
  ServiceClosed,
  TxloopService,
  UnknownResource,
  ValidationError,
  extractContext,
} from '../src/index.js';
import { quietLogger, useEtcd, waitFor, type Harness } from './helpers/harness.js';

const env = useEtcd();
let h: Harness;
let ns: string;

function setup(label: string): void {
  ({ h, ns } = env.fresh(label));
}

const noop = { try: () => undefined, confirm: () => undefined, cancel: () => undefined };

async function keysUnder(prefix: string): Promise<string[]> {
  return env.client.getAll().prefix(prefix).keys();
}

describe('invariant 9: API input is validated with clear errors and nothing half-written', () => {
  it('service options: a bad app name, namespace or number names the option', () => {
    const make = (o: object) => () => new TxloopService({ app: 'ok', logger: quietLogger, etcd: { endpoints: env.endpoints }, ...o });
    expect(make({ app: 'Bad_Name' })).toThrow(/app: "Bad_Name" is not a valid service name/);
    expect(make({ app: '' })).toThrow(ValidationError);
    expect(make({ app: 'txloop-mirror' })).toThrow(/app: "txloop-mirror" is reserved/);
    expect(make({ namespace: 'no-slash' })).toThrow(/namespace: .*must be a non-empty key prefix ending in '\/'/);
    expect(make({ leaseTtlSeconds: 0 })).toThrow(/leaseTtlSeconds: must be an integer from 1/);
    expect(make({ deadThreshold: -1 })).toThrow(/deadThreshold/);
    expect(make({ etcd: { endpoints: ['not a url'] } })).toThrow(/etcd.endpoints: "not a url" is not a URL/);
  });

  it('begin: empty names and non-positive or non-integer timeouts are refused before anything is written', async () => {
    setup('begin');
    const s = h.service({ app: 'shop' });
    await expect(s.begin({ name: '' })).rejects.toThrow(/name: must be 1-128 printable characters/);
    await expect(s.begin({ name: 'x', timeoutMs: -5 })).rejects.toThrow(/timeoutMs: must be a whole number of milliseconds/);
    await expect(s.begin({ name: 'x', timeoutMs: 1.5 })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.begin(undefined as never)).rejects.toBeInstanceOf(ValidationError);
    const aborted = AbortSignal.abort(new Error('client went away'));
    await expect(s.begin({ name: 'x', signal: aborted })).rejects.toBeInstanceOf(AbortError);
    expect(await keysUnder(ns)).toEqual([]);
  });

  it('tryBranch: payloads that are not JSON-serialisable or too large are refused and no branch is written', async () => {
    setup('payload');
    const p = h.service({ app: 'acct', maxPayloadBytes: 1024 }).resource('r', noop);
    const init = h.service({ app: 'shop' });
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expect(p.tryBranch(tx.context, 'r', circular)).rejects.toThrow(/payload: is not JSON-serialisable/);
    await expect(p.tryBranch(tx.context, 'r', { n: 10n })).rejects.toBeInstanceOf(PayloadError);
    await expect(p.tryBranch(tx.context, 'r', () => 1)).rejects.toThrow(/not JSON-serialisable \(got function\)/);
    await expect(p.tryBranch(tx.context, 'r', { blob: 'x'.repeat(2000) })).rejects.toThrow(/over the 1024-byte limit \(maxPayloadBytes\)/);
    await expect(p.tryBranch(tx.context, 'nope', {})).rejects.toBeInstanceOf(UnknownResource);
    await expect(p.tryBranch({ xid: 'garbage', deadline: Date.now() + 1000 }, 'r', {})).rejects.toThrow(/ctx.xid: "garbage" is not a txloop transaction id/);
    await expect(p.tryBranch({ xid: tx.xid, deadline: Date.now() - 1 }, 'r', {})).rejects.toBeInstanceOf(DeadlineExceeded);
    expect((await keysUnder(`${ns}acct/`)).filter((k) => k.includes('/branch/'))).toEqual([]);
    expect((await init.get(tx.xid)).branches).toEqual([]);
  });

  it('resource registration: missing handlers and duplicate names are refused', () => {
    setup('resource');
    const s = h.service({ app: 'acct' });
    expect(() => s.resource('r', { try: () => undefined, confirm: () => undefined } as never)).toThrow(/handlers.cancel: resource r needs a cancel function/);
    expect(() => s.resource('bad name', noop)).toThrow(/name: "bad name" is not a valid resource name/);
    s.resource('r', noop);
    expect(() => s.resource('r', noop)).toThrow(/already registered/);
    // TCC resources, saga steps and message consumers share one namespace.
    expect(() => s.sagaStep('r', { action: () => undefined, compensate: () => undefined })).toThrow(/saga step r is already registered as a resource/);
    expect(() => s.sagaStep('s', { action: () => undefined } as never)).toThrow(/handlers.compensate: saga step s needs a compensate function/);
  });

  it('commit/rollback/get: malformed xids are refused with ValidationError; calls after close() get ServiceClosed', async () => {
    setup('xid');
    const s = h.service({ app: 'shop' });
    await expect(s.commit('')).rejects.toBeInstanceOf(ValidationError);
    await expect(s.rollback('shop/../x')).rejects.toThrow(/is not a txloop transaction id/);
    await expect(s.get('UPPER.case')).rejects.toBeInstanceOf(ValidationError);
    await s.close();
    await s.close(); // twice is fine
    await expect(s.begin({ name: 'x' })).rejects.toBeInstanceOf(ServiceClosed);
  });

  it('extractContext: a request without an xid has no context; a bad xid or deadline header is a ValidationError', () => {
    expect(extractContext({})).toBeUndefined();
    expect(extractContext({ 'txloop-xid': 'shop.0123456789abcdefg', 'txloop-deadline': '1700000000000' })).toEqual({ xid: 'shop.0123456789abcdefg', deadline: 1700000000000 });
    expect(() => extractContext({ 'txloop-xid': 'shop.0123456789abcdefg', 'txloop-deadline': 'soon' })).toThrow(/header txloop-deadline: must be epoch milliseconds/);
    expect(() => extractContext({ 'txloop-xid': 'x y' })).toThrow(ValidationError);
  });
});

describe('invariant 9: malformed records in etcd never stop the control loop', () => {
  it('garbage under a service prefix is logged and skipped; real transactions keep completing', async () => {
    setup('malformed');
    const p = h.service({ app: 'acct' }).resource('r', noop);
    const init = h.service({ app: 'shop' });
    // Written before the services start, so the initial list meets them too.
    await env.client.put(`${ns}acct/branch/shop.0000000000000000a/abcd1234`).value('{not json');
    await env.client.put(`${ns}acct/branch/shop.0000000000000000b/abcd1234`).value(JSON.stringify({ v: 1, xid: 'x' }));
    await env.client.put(`${ns}acct/order/shop.0000000000000000b/abcd1234`).value(JSON.stringify({ v: 99 }));
    await env.client.put(`${ns}shop/gtx/shop.0000000000000000c`).value(JSON.stringify({ v: 1, status: 'WHATEVER' }));
    await env.client.put(`${ns}shop/link/shop.0000000000000000c/acct/abcd1234`).value('[]');
    await env.client.put(`${ns}shop/unexpected/key/shape`).value('hello');
    await Promise.all([p.start(), init.start()]);
    // And after start, through the watch.
    await env.client.put(`${ns}acct/branch/shop.0000000000000000d/abcd1234`).value('\u0000\u0001');
    await env.client.put(`${ns}shop/gtx/shop.0000000000000000e`).value('null');
    for (let i = 0; i < 3; i++) {
      const tx = await init.begin({ name: `ok ${i}`, timeoutMs: 30_000 });
      await p.tryBranch(tx.context, 'r', {});
      await tx.commit();
      expect((await init.waitForCompletion(tx.xid)).status).toBe('COMMITTED');
    }
    // The malformed records are still there for a human to inspect: nothing deleted them.
    expect(await env.client.get(`${ns}acct/branch/shop.0000000000000000a/abcd1234`).string()).toBe('{not json');
  });

  it('a malformed global is reported by get() as an error naming the key, not a crash', async () => {
    setup('malformed-get');
    const s = h.service({ app: 'shop' });
    await env.client.put(`${ns}shop/gtx/shop.0000000000000000f`).value('{"v":1,"xid":"shop.0000000000000000f"}');
    await expect(s.get('shop.0000000000000000f')).rejects.toThrow(/malformed record at .*shop\/gtx\/shop.0000000000000000f/);
  });

  it('a malformed member record does not block the deadline rollback of its transaction; the real branches are cancelled', async () => {
    setup('malformed-link');
    const cancels: string[] = [];
    const p = h.service({ app: 'acct' }).resource('r', { ...noop, cancel: ({ branchId }) => void cancels.push(branchId) });
    const init = h.service({ app: 'shop' });
    await Promise.all([p.start(), init.start()]);
    // Short, but long enough for the Try to register before the leader expires it on a loaded machine.
    const tx = await init.begin({ name: 'x', timeoutMs: 2_000 });
    const { branchId } = await p.tryBranch(tx.context, 'r', {});
    await env.client.put(`${ns}shop/member/${tx.xid}/acct/zzzz9999`).value('garbage');
    await waitFor(() => cancels.includes(branchId), { what: 'real branch cancelled' });
    // get() still works and shows the bad member for what it is.
    const view = await init.get(tx.xid);
    expect(view.branches.map((b) => b.resource).sort()).toEqual(['(malformed member)', 'r']);
    const global = JSON.parse((await env.client.get(`${ns}shop/gtx/${tx.xid}`).string())!) as { status: string; decision: { by: string } };
    expect(global.status).toBe('ROLLING_BACK');
    expect(global.decision.by).toBe('deadline');
  });
});
