/**
 * The initiator of the deployment layout, in its own process: one TxloopService (`orders`) that, on
 * a `run` command, drives 2-step sagas (`mode: 'saga'`: submit, then the participants run their
 * steps in turn, until its leader sees the saga SUCCEEDED) or committed 2-branch transactions: begin, the two Trys over HTTP keep-alive
 * to the participants' processes (in parallel), commit; a transaction is done when this service's
 * leader emits `completed` (COMMITTED), i.e. both confirms ran and the global was marked finished.
 */
import { Agent, request } from 'node:http';
import { GlobalStatus, injectHeaders, type TxContext } from '../../src/index.js';
import { summarize } from '../stats.js';
import { runWorkers, withTimeout } from '../workers.js';
import { childConfig, leading, send, serveCommands, serviceOf, setUp } from './child.js';

const config = childConfig();
const child = setUp(config);
const service = serviceOf(child, { defaultTimeoutMs: 120_000 });
const urls = Object.values(config.participants ?? {});
if (urls.length !== 2) throw new Error('the initiator needs two participants');
const agent = new Agent({ keepAlive: true, maxSockets: 1024 });

const waiters = new Map<string, (status: GlobalStatus) => void>();
const early = new Map<string, { at: number; status: GlobalStatus }>();
const completedAt = new Map<string, number>();
service.on('completed', ({ xid, status }) => {
  const at = performance.now();
  completedAt.set(xid, at);
  const w = waiters.get(xid);
  if (w) {
    waiters.delete(xid);
    w(status);
  } else early.set(xid, { at, status });
});

/** Resolves with the status `xid` finished with, as this service's leader reports it. */
function doneOf(xid: string): Promise<GlobalStatus> {
  return new Promise<GlobalStatus>((resolve) => {
    const e = early.get(xid);
    if (e) {
      early.delete(xid);
      resolve(e.status);
    } else waiters.set(xid, resolve);
  });
}

function tryOver(url: string, ctx: TxContext, payload: unknown): Promise<void> {
  const body = JSON.stringify({ payload });
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: injectHeaders(ctx, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`Try at ${url}: ${res.statusCode} ${Buffer.concat(chunks).toString()}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * `count` transactions: closed loop at `concurrency` (a worker begins its next one once the last is
 * done, or once commit() returned when `pipelined`), or, with `ratePerSec`, open loop: one begun every
 * 1/rate seconds whatever is still in flight.
 */
async function run(count: number, concurrency: number, pipelined: boolean, mode: string, ratePerSec?: number) {
  const beginToCommit: number[] = [];
  const commitCall: number[] = [];
  const decisionToDone: number[] = [];
  const beginToDone: number[] = [];
  const pending: Promise<void>[] = [];
  const t0run = performance.now();
  const one = mode === 'saga' ? oneSaga : mode === 'message' ? oneMessage : async (i: number): Promise<void> => {
    const t0 = performance.now();
    const tx = await service.begin({ name: `bench ${i}` });
    const done = doneOf(tx.xid);
    await Promise.all([tryOver(urls[0]!, tx.context, { account: `a-${i % 100}`, amount: 1 }), tryOver(urls[1]!, tx.context, { account: `b-${i % 100}`, amount: 1 })]);
    const t1 = performance.now();
    await tx.commit();
    const t2 = performance.now();
    beginToCommit.push(t2 - t0);
    commitCall.push(t2 - t1);
    const finish = done.then((status) => {
      if (status !== GlobalStatus.COMMITTED) throw new Error(`transaction ${tx.xid} ended ${status}, not COMMITTED`);
      const at = completedAt.get(tx.xid)!;
      completedAt.delete(tx.xid);
      decisionToDone.push(at - t2);
      beginToDone.push(at - t0);
    });
    if (pipelined) pending.push(finish);
    else await finish;
  };
  // A 2-phase message to both participants: prepare, (the producer's local transaction), submit.
  async function oneMessage(i: number): Promise<void> {
    const t0 = performance.now();
    const msg = await service.prepareMessage({ name: 'bench', consumers: [{ service: 'bank-a', resource: 'inbox', payload: { account: `a-${i % 100}`, amount: 1 } }, { service: 'bank-b', resource: 'inbox', payload: { account: `b-${i % 100}`, amount: 1 } }] });
    const t1 = performance.now();
    await msg.submit();
    const t2 = performance.now();
    beginToCommit.push(t2 - t0);
    commitCall.push(t2 - t1);
    const finish = doneOf(msg.xid).then((status) => {
      if (status !== GlobalStatus.DELIVERED) throw new Error(`message ${msg.xid} ended ${status}, not DELIVERED`);
      const at = completedAt.get(msg.xid)!;
      completedAt.delete(msg.xid);
      decisionToDone.push(at - t2);
      beginToDone.push(at - t0);
    });
    if (pipelined) pending.push(finish);
    else await finish;
  }
  // A 2-step saga: submit (the one call an initiator makes), then each participant's step in turn.
  async function oneSaga(i: number): Promise<void> {
    const t0 = performance.now();
    const { xid } = await service.saga({ name: `bench ${i}`, steps: [{ service: 'bank-a', resource: 'step', payload: { account: `a-${i % 100}`, amount: 1 } }, { service: 'bank-b', resource: 'step', payload: { account: `b-${i % 100}`, amount: 1 } }] });
    const t2 = performance.now();
    beginToCommit.push(t2 - t0);
    commitCall.push(t2 - t0);
    const finish = doneOf(xid).then((status) => {
      if (status !== GlobalStatus.SUCCEEDED) throw new Error(`saga ${xid} ended ${status}, not SUCCEEDED`);
      const at = completedAt.get(xid)!;
      completedAt.delete(xid);
      decisionToDone.push(at - t2);
      beginToDone.push(at - t0);
    });
    if (pipelined) pending.push(finish);
    else await finish;
  }
  if (ratePerSec === undefined) await runWorkers(count, concurrency, one);
  else {
    for (let i = 0; i < count; i++) {
      const due = t0run + (i * 1000) / ratePerSec - performance.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
      pending.push(one(i));
    }
  }
  await Promise.all(pending);
  const seconds = (performance.now() - t0run) / 1000;
  return {
    seconds,
    beginToCommitMs: summarize(beginToCommit),
    commitCallMs: summarize(commitCall),
    decisionToDoneMs: summarize(decisionToDone),
    beginToDoneMs: summarize(beginToDone),
  };
}

await service.start();
await leading(service);
serveCommands(
  child,
  async (c) => {
    if (c.cmd !== 'run') throw new Error(`unknown command ${c.cmd}`);
    const count = Number(c.count);
    const rate = c.ratePerSec === undefined ? undefined : Number(c.ratePerSec);
    return withTimeout(run(count, Number(c.concurrency), c.pipelined === true, String(c.mode ?? 'tcc'), rate), 600_000, `the ${count} transactions did not all complete within 10 minutes`);
  },
  async () => {
    agent.destroy();
    await service.close();
  },
);
send({ event: 'ready', pid: process.pid });
