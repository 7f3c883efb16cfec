import { execFile } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AbortError, DeadlineExceeded, EtcdUnavailable, ServiceClosed, TxloopError, TxloopService, ValidationError } from '../src/index.js';
import { capturingLogger, fastTimings, quietLogger, useEtcd, waitFor } from './helpers/harness.js';
import { spawnReplica, stopReplica } from './helpers/processes.js';
import { untilStopped, within } from './helpers/wait.js';

const env = useEtcd({ members: 1 });
const noop = { try: () => undefined, confirm: () => undefined, cancel: () => undefined };

/** A loopback port with nothing listening on it: etcd "down" from the first call. */
async function deadEndpoint(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return `http://127.0.0.1:${port}`;
}


describe('the SDK at its edges: start and close without etcd', () => {
  it('start() against an unreachable etcd fails within its timeout with EtcdUnavailable naming the endpoints; close() then finishes', async () => {
    const endpoint = await deadEndpoint();
    const svc = new TxloopService({ app: 'acct', logger: quietLogger, etcd: { endpoints: [endpoint], requestTimeoutMs: 500 } });
    const err = await within(svc.start({ timeoutMs: 1_500 }).catch((e: unknown) => e), 'start to give up', 20_000);
    expect(err).toBeInstanceOf(EtcdUnavailable);
    expect((err as EtcdUnavailable).endpoints).toEqual([endpoint]);
    expect((err as Error).message).toContain(endpoint);
    expect((err as Error).cause).toBeDefined();
    await within(svc.close(), 'close after a failed start', 10_000);
  });

  it('close() during a start() still waiting for etcd ends both: start rejects with ServiceClosed, close resolves', async () => {
    const svc = new TxloopService({ app: 'acct', logger: quietLogger, etcd: { endpoints: [await deadEndpoint()], requestTimeoutMs: 500 } });
    const starting = svc.start({ timeoutMs: 600_000 }).catch((e: unknown) => e);
    await within(svc.close(), 'close while starting', 10_000);
    expect(await within(starting, 'start to end', 5_000)).toBeInstanceOf(ServiceClosed);
  });

  it('start() honours its AbortSignal with AbortError', async () => {
    const svc = new TxloopService({ app: 'acct', logger: quietLogger, etcd: { endpoints: [await deadEndpoint()], requestTimeoutMs: 500 } });
    const ac = new AbortController();
    const starting = svc.start({ signal: ac.signal }).catch((e: unknown) => e);
    ac.abort(new Error('shutting down'));
    expect(await within(starting, 'start to abort', 5_000)).toBeInstanceOf(AbortError);
    await within(svc.close(), 'close', 10_000);
  });

  it('a SIGTERM handler awaiting close() exits even though etcd was never reachable (a real process)', async () => {
    const proc = spawnReplica('sigterm-close.ts', 'sigterm', { TXLOOP_ENDPOINTS: await deadEndpoint(), NS: 't-sigterm/' });
    try {
      await proc.waitForEvent((e) => e.event === 'started', 'fixture up');
      proc.kill('SIGTERM');
      await proc.waitForEvent((e) => e.event === 'closed', 'close() resolved after SIGTERM', 20_000);
      await waitFor(() => proc.exited(), { what: 'exit after close', timeoutMs: 10_000 });
      expect(proc.child.exitCode).toBe(0);
    } finally {
      await stopReplica(proc);
    }
  });
});

describe('the SDK at its edges: every failure a caller sees is a TxloopError', () => {
  it('get() after close() is ServiceClosed; begin() with etcd unreachable is EtcdUnavailable with the cause attached', async () => {
    const { ns } = env.fresh('closed');
    const svc = new TxloopService({ app: 'shop', namespace: ns, logger: quietLogger, etcd: { endpoints: env.endpoints } });
    const tx = await svc.begin({ name: 'x', timeoutMs: 10_000 });
    await svc.close();
    await expect(svc.get(tx.xid)).rejects.toBeInstanceOf(ServiceClosed);
    await expect(svc.list()).rejects.toBeInstanceOf(ServiceClosed);
    await expect(svc.waitForCompletion(tx.xid)).rejects.toBeInstanceOf(ServiceClosed);

    const endpoint = await deadEndpoint();
    const down = new TxloopService({ app: 'shop', logger: quietLogger, etcd: { endpoints: [endpoint], requestTimeoutMs: 500 } });
    try {
      const err = await down.begin({ name: 'x' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EtcdUnavailable);
      expect(err).toBeInstanceOf(TxloopError);
      expect((err as EtcdUnavailable).endpoints).toEqual([endpoint]);
      expect((err as Error).message).not.toMatch(/^14 UNAVAILABLE/);
      expect(String((err as Error).cause)).toMatch(/UNAVAILABLE|ECONNREFUSED/);
      const getErr = await down.get('shop.0000000000000000a').catch((e: unknown) => e);
      expect(getErr).toBeInstanceOf(EtcdUnavailable);
    } finally {
      await down.close();
    }
  });
});

describe('the SDK at its edges: AbortSignal means abort, not deadline', () => {
  it('get, list and waitForCompletion take a signal; an aborted caller gets AbortError, distinct from DeadlineExceeded', async () => {
    const { ns } = env.fresh('signals');
    const svc = new TxloopService({ app: 'shop', namespace: ns, logger: quietLogger, etcd: { endpoints: env.endpoints } });
    try {
      const tx = await svc.begin({ name: 'x', timeoutMs: 30_000 });
      const aborted = AbortSignal.abort(new Error('caller left'));
      for (const call of [svc.get(tx.xid, { signal: aborted }), svc.list({ signal: aborted }), svc.commit(tx.xid, { signal: aborted })]) {
        const err = await call.catch((e: unknown) => e);
        expect(err).toBeInstanceOf(AbortError);
        expect(err).not.toBeInstanceOf(DeadlineExceeded);
        expect((err as AbortError).cause).toBe(aborted.reason);
      }
      expect((await svc.get(tx.xid)).status).toBe('TRYING'); // the aborted commit wrote nothing
      const ac = new AbortController();
      const waiting = svc.waitForCompletion(tx.xid, { signal: ac.signal, timeoutMs: 60_000 }).catch((e: unknown) => e);
      // Several polls (one a second) leave no listeners behind on a long-lived signal.
      const polling = Date.now();
      await waitFor(() => Date.now() > polling + 3_500, { what: 'three polls', timeoutMs: 10_000 });
      expect(getEventListeners(ac.signal, 'abort').length).toBeLessThanOrEqual(2);
      ac.abort(new Error('stop waiting'));
      expect(await within(waiting, 'the wait to end on abort', 5_000)).toBeInstanceOf(AbortError);
      // The wait's own timeout is still DeadlineExceeded.
      await expect(svc.waitForCompletion(tx.xid, { timeoutMs: 100 })).rejects.toBeInstanceOf(DeadlineExceeded);
    } finally {
      await svc.close();
    }
  });

  it('a commit aborted while etcd hangs returns AbortError at once, saying the write may have landed', async () => {
    const { ns } = env.fresh('abort-hung');
    const svc = new TxloopService({ app: 'shop', namespace: ns, logger: quietLogger, etcd: { endpoints: env.endpoints, requestTimeoutMs: 30_000 } });
    const member = env.members[0]!;
    try {
      const tx = await svc.begin({ name: 'x', timeoutMs: 60_000 });
      await member.kill('SIGSTOP');
      // Hung for real: kill() returns before etcd's threads have stopped, and until then etcd answers.
      await untilStopped(member.pid!, 'etcd');
      const ac = new AbortController();
      const committing = svc.commit(tx.xid, { signal: ac.signal }).catch((e: unknown) => e);
      ac.abort(new Error('request cancelled'));
      const err = await within(committing, 'the commit to abort while etcd hangs', 5_000);
      expect(err).toBeInstanceOf(AbortError);
      expect((err as AbortError).maybeWritten).toBe(true);
    } finally {
      member.resume();
      await svc.close();
    }
  });
});

describe('invariant 1: a commit never lands after the deadline', () => {
  it('a commit sent before the deadline to an etcd that hangs until after it gives up with DeadlineExceeded and writes nothing', async () => {
    const { ns, h } = env.fresh('late-landing');
    const p = h.service({ app: 'acct' }).resource('r', noop);
    const init = new TxloopService({ app: 'shop', namespace: ns, logger: quietLogger, etcd: { endpoints: env.endpoints, requestTimeoutMs: 20_000 } });
    const member = env.members[0]!;
    try {
      const tx = await init.begin({ name: 'slow link', timeoutMs: 1_500 });
      await p.tryBranch(tx.context, 'r', {});
      await member.kill('SIGSTOP');
      expect(Date.now()).toBeLessThan(tx.deadline); // sent in time: only etcd is late
      const committing = init.commit(tx.xid).catch((e: unknown) => e);
      await waitFor(() => Date.now() > tx.deadline + 500, { what: 'the deadline to pass while etcd hangs', timeoutMs: 10_000 });
      member.resume();
      const err = await within(committing, 'the commit to give up', 15_000);
      expect(err).toBeInstanceOf(DeadlineExceeded);
      const view = await init.get(tx.xid);
      expect(view.status).toBe('TRYING');
      expect(await env.client.getAll().prefix(`${ns}acct/order/`).keys()).toEqual([]);
    } finally {
      member.resume();
      await init.close();
    }
  }, 60_000);
});

describe('the SDK at its edges: an etcd outage is one line, not a flood', () => {
  it('leader and standby each log one line naming the endpoints when etcd goes away and one when it is back; no circuit-breaker noise', async () => {
    const { ns } = env.fresh('outage-logs');
    const a = capturingLogger();
    const b = capturingLogger();
    // A lease the outage outlasts: the leader's stepping down and its lease are part of what is logged.
    const opts = { ...fastTimings, leaseTtlSeconds: 2, app: 'acct', namespace: ns, etcd: { endpoints: env.endpoints, requestTimeoutMs: 1_000 } };
    const leader = new TxloopService({ ...opts, logger: a.logger }).resource('r', noop);
    const standby = new TxloopService({ ...opts, logger: b.logger }).resource('r', noop);
    const member = env.members[0]!;
    try {
      await leader.start();
      await waitFor(() => leader.isLeader(), { what: 'first replica leads' });
      await standby.start();
      await member.kill('SIGKILL');
      const downAt = Date.now();
      const lost = (lines: Record<string, unknown>[]): Record<string, unknown>[] => lines.filter((l) => String(l.msg).startsWith('lost connection to etcd'));
      await waitFor(() => lost(a.lines).length > 0 && lost(b.lines).length > 0, { what: 'both replicas notice the outage', timeoutMs: 20_000 });
      // Ride out several retry rounds of every loop (election, list) with etcd gone.
      await waitFor(() => Date.now() > downAt + 4_000, { what: 'four seconds of outage', timeoutMs: 10_000 });
      await member.restart();
      const back = (lines: Record<string, unknown>[]): Record<string, unknown>[] => lines.filter((l) => String(l.msg).includes('is back after'));
      await waitFor(() => back(a.lines).length > 0 && back(b.lines).length > 0, { what: 'both replicas see etcd back', timeoutMs: 30_000 });
      for (const { lines } of [a, b]) {
        expect(lost(lines)).toHaveLength(1);
        expect(String(lost(lines)[0]!.msg)).toContain(env.endpoints[0]!);
        const warnings = lines.filter((l) => (l.level as number) >= 40 && (l.time as number) >= downAt);
        expect(warnings.filter((l) => /circuit breaker/i.test(JSON.stringify(l)))).toEqual([]);
        // etcd3's own lease text is garbled ("Lease We lost connection … is expired or revoked").
        expect(lines.filter((l) => /Lease We lost|is expired or revoked/.test(JSON.stringify(l)))).toEqual([]);
        // The lost line, and for the leader its stepping down and its lease; never a line per retry.
        expect(warnings.length, JSON.stringify(warnings.map((w) => w.msg))).toBeLessThanOrEqual(3);
      }
      await waitFor(() => leader.isLeader() || standby.isLeader(), { what: 'a leader again', timeoutMs: 20_000 });
    } finally {
      await Promise.all([leader.close(), standby.close()]);
    }
  }, 90_000);
});

describe('the SDK at its edges: attempts etcd could not record', () => {
  it('a first attempt whose outcome could not be written (the branch changed under it) is counted: the next attempt in the same term is attempt 2, written before it runs', async () => {
    const { ns, h } = env.fresh('unrecorded-outcome');
    const attempts: number[] = [];
    let branchKey = '';
    const p = h.service({ app: 'acct' }).resource('r', {
      ...noop,
      confirm: async ({ attempt }) => {
        attempts.push(attempt);
        // The first confirm runs, but its branch changes meanwhile (as a late Try's report would):
        // the outcome write's compare fails.
        if (attempts.length === 1) {
          const value = await env.client.get(branchKey).buffer();
          await env.client.put(branchKey).value(value!);
        }
      },
    });
    const init = h.service({ app: 'shop' });
    try {
      await Promise.all([p.start(), init.start()]);
      await waitFor(() => p.isLeader(), { what: 'the participant leads' });
      const tx = await init.begin({ name: 'outcome not written', timeoutMs: 60_000 });
      const { branchId } = await p.tryBranch(tx.context, 'r', {});
      branchKey = `${ns}acct/branch/${tx.xid}/${branchId}`;
      await tx.commit();
      expect((await init.waitForCompletion(tx.xid, { timeoutMs: 20_000 })).status).toBe('COMMITTED');
      expect(attempts).toEqual([1, 2]);
      const branch = JSON.parse((await env.client.get(branchKey).string())!) as { phase2: { attempts: number } };
      expect(branch.phase2.attempts).toBe(2);
    } finally {
      await Promise.all([p.close(), init.close()]);
    }
  });
});

describe('the SDK at its edges: closing', () => {
  it('a replica that wins the election while it is closing never starts leading (no handler runs in a service being shut down)', async () => {
    const { h, ns } = env.fresh('close-vs-election');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let tryStarted = false;
    const blockingTry = { ...noop, try: async () => ((tryStarted = true), await gate) };
    const leader = h.service({ app: 'acct', identity: 'replica-a' }).resource('r', noop);
    const standby = h.service({ app: 'acct', identity: 'replica-b' }).resource('r', blockingTry);
    const init = h.service({ app: 'shop' });
    const leadingEvents: boolean[] = [];
    standby.on('leader', ({ leading }) => leadingEvents.push(leading));
    await Promise.all([leader.start(), init.start()]);
    await waitFor(() => leader.isLeader(), { what: 'replica-a leads' });
    await standby.start();
    const tx = await init.begin({ name: 'held', timeoutMs: 60_000 });
    const trying = standby.tryBranch(tx.context, 'r', {}).catch((e: unknown) => e);
    await waitFor(() => tryStarted, { what: 'the standby runs a Try' });
    const closing = standby.close(); // waits for the Try in flight
    await leader.close(); // resigns: the standby's election wins now
    await waitFor(async () => (await env.client.get(`${ns}acct/leader`).string())?.includes('replica-b') ?? false, { what: 'replica-b holds the leader key', timeoutMs: 20_000 });
    release();
    await closing;
    await trying;
    expect(leadingEvents).not.toContain(true);
    await init.close();
  }, 60_000);
});

describe('the SDK at its edges: ids and options users actually have', () => {
  it('a Try accepts UUID and ULID branch ids end to end (register, commit, confirm)', async () => {
    const { h } = env.fresh('ids');
    const confirmed: string[] = [];
    const p = h.service({ app: 'acct' }).resource('r', { ...noop, confirm: ({ branchId }) => void confirmed.push(branchId) });
    const init = h.service({ app: 'shop' });
    await Promise.all([p.start(), init.start()]);
    const ids = ['3f2b8c1e-9d4a-4e7b-a1c2-5d6e7f8a9b0c', '01HZX3K9Q7V2M8N4P6R5T0W1YB'];
    const tx = await init.begin({ name: 'ids', timeoutMs: 30_000 });
    for (const branchId of ids) expect((await p.tryBranch(tx.context, 'r', {}, { branchId })).branchId).toBe(branchId);
    expect((await p.tryBranch(tx.context, 'r', {}, { branchId: ids[0]! })).replayed).toBe(true);
    await tx.commit();
    expect((await init.waitForCompletion(tx.xid, { timeoutMs: 15_000 })).status).toBe('COMMITTED');
    expect(confirmed.sort()).toEqual([...ids].sort());
    await expect(p.tryBranch(tx.context, 'r', {}, { branchId: 'has/slash' })).rejects.toBeInstanceOf(ValidationError);
  });

  it('an unknown option name is refused with the closest valid name instead of being ignored', () => {
    expect(() => new TxloopService({ app: 'acct', retryBaseMS: 5 } as never)).toThrow(/retryBaseMS: unknown option; did you mean retryBaseMs\?/);
    expect(() => new TxloopService({ app: 'acct', etcd: { endpoint: ['http://127.0.0.1:2379'] } } as never)).toThrow(/etcd\.endpoint: unknown option; did you mean etcd\.endpoints\?/);
    expect(() => new TxloopService({ app: 'acct', zzz: 1 } as never)).toThrow(ValidationError);
  });

  it('an old option name keeps working with one DeprecationWarning: deadThreshold parks after that many attempts, as maxAttempts does', async () => {
    const { h, store } = env.fresh('deprecated');
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      expect(() => h.service({ app: 'acct', deadThreshold: 2, maxAttempts: 3 })).toThrow(/deadThreshold: is the old name of maxAttempts; give only maxAttempts/);
      let calls = 0;
      const p = h.service({ app: 'acct', deadThreshold: 2 }).resource('r', {
        try: () => undefined,
        confirm: () => {
          calls++;
          throw new Error('down');
        },
        cancel: () => undefined,
      });
      h.service({ app: 'acct', deadThreshold: 2 }); // a second service: no second warning
      await p.start();
      const init = h.service({ app: 'shop' });
      const tx = await init.begin({ name: 'old option', timeoutMs: 30_000 });
      const { branchId } = await p.tryBranch(tx.context, 'r', {});
      await tx.commit();
      await waitFor(async () => (await store.branches.get('acct', tx.xid, branchId))?.record.phase2?.state === 'PARKED', { what: 'parked' });
      expect(calls).toBe(2);
      await waitFor(() => warnings.length > 0, { what: 'the warning event' });
      const deprecations = warnings.filter((w) => w.name === 'DeprecationWarning' && /deadThreshold/.test(w.message));
      expect(deprecations).toHaveLength(1);
      expect(deprecations[0]!.message).toMatch(/use maxAttempts/);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('misspelt options of the calls are refused too, before anything is written', async () => {
    const { ns, h } = env.fresh('call-options');
    const p = h.service({ app: 'acct' }).resource('r', noop);
    const init = h.service({ app: 'shop' });
    await expect(init.begin({ name: 'x', timeoutMS: 5 } as never)).rejects.toThrow(/options\.timeoutMS: unknown option; did you mean options\.timeoutMs\?/);
    const tx = await init.begin({ name: 'x', timeoutMs: 30_000 });
    // A misspelt branchId would silently make a new random branch and lose the Try's idempotency.
    await expect(p.tryBranch(tx.context, 'r', {}, { branchID: 'abcd1234' } as never)).rejects.toThrow(/did you mean options\.branchId\?/);
    await expect(init.commit(tx.xid, { reasn: 'x' } as never)).rejects.toThrow(/did you mean options\.reason\?/);
    await expect(init.waitForCompletion(tx.xid, { timeout: 5 } as never)).rejects.toThrow(ValidationError);
    await expect(init.start({ timeOutMs: 5 } as never)).rejects.toThrow(/did you mean options\.timeoutMs\?/);
    await expect(init.close({ timeOut: 5 } as never)).rejects.toThrow(ValidationError);
    expect((await init.get(tx.xid)).status).toBe('TRYING');
    expect(await env.client.getAll().prefix(`${ns}acct/branch/`).keys()).toEqual([]);
  });

  it('typed resources: a misspelt resource, a wrong payload or an unchecked replay result fails to compile', async () => {
    const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
    const project = fileURLToPath(new URL('./types/tsconfig.json', import.meta.url));
    // Every @ts-expect-error in the file must be an error, or tsc fails with "Unused directive".
    const { stdout } = await promisify(execFile)(process.execPath, [tsc, '-p', project]).catch((e: { stdout: string }) => ({ stdout: `failed: ${e.stdout}` }));
    expect(stdout).toBe('');
  }, 60_000);
});
