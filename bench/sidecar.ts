/**
 * `npm run bench -- --via sidecar`: committed 2-branch TCC transactions through sidecars next to the
 * same through the SDK, on one etcd in one run; the ratio is what the sidecar costs.
 *
 * - SDK: the deployment layout's initiator and two participants (bench/deployment/), each its own
 *   process, the Trys over HTTP to the participants' processes.
 * - Sidecar: a `txloop sidecar` process for each of the three apps and one service process they call
 *   back (bench/sidecar/service.ts). The driver (this process, standing in for the initiator's
 *   service) begins on the initiator's sidecar, runs each participant's Try through its sidecar
 *   (`POST /v1/tries`, which calls the service's Try path), commits, and waits (`/wait`).
 * Both closed loop at each of --concurrencies. Prints the load average; asserts nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd } from '../src/testing.js';
import { JsonLineProcess } from '../tools/processes.js';
import type { Args } from './args.js';
import type { ChildConfig } from './deployment/child.js';
import { summarize, type LatencySummary } from './stats.js';
import { runWorkers } from './workers.js';

const HERE = new URL('.', import.meta.url).pathname;
const CLI = join(HERE, '..', 'dist', 'cli', 'main.js');

interface Row {
  concurrency: number;
  sdkTxPerSec: number;
  sidecarTxPerSec: number;
  sdkDoneMs: LatencySummary;
  sidecarDoneMs: LatencySummary;
}

export async function sidecarBench(args: Args, say: (s: string) => void): Promise<void> {
  const loadAtStart = loadavg()[0] ?? 0;
  const etcd = await startEtcd();
  const dir = mkdtempSync(join(tmpdir(), 'txloop-bench-sidecar-'));
  const procs: JsonLineProcess[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 1024 });
  try {
    const ready = async (p: JsonLineProcess, what: string) => p.waitForEvent((e) => e.event === 'ready', what, { timeoutMs: 60_000 });
    say('starting the SDK layout: initiator and two participants, each its own process…');
    const base: Omit<ChildConfig, 'app'> = { endpoints: etcd.endpoints, retentionMs: args.retentionMs };
    const child = (script: string, config: ChildConfig) => {
      const p = new JsonLineProcess({ name: config.app, script: join(HERE, 'deployment', script), args: [JSON.stringify(config)], stdin: 'pipe' });
      procs.push(p);
      return p;
    };
    const [a, b] = [child('participant.ts', { ...base, app: 'bank-a' }), child('participant.ts', { ...base, app: 'bank-b' })];
    const [ra, rb] = await Promise.all([ready(a, 'bank-a'), ready(b, 'bank-b')]);
    const initiator = child('initiator.ts', { ...base, app: 'orders', participants: { 'bank-a': String(ra.url), 'bank-b': String(rb.url) } });
    await ready(initiator, 'initiator');
    let nextId = 1;
    const ask = async (cmd: Record<string, unknown>) => {
      const id = nextId++;
      const from = initiator.events.length;
      initiator.send({ id, ...cmd });
      const reply = await initiator.waitForEvent((e) => e.reply === id, `${String(cmd.cmd)} reply`, { timeoutMs: 660_000, from });
      if (typeof reply.error === 'string') throw new Error(reply.error);
      return reply;
    };

    say('starting the sidecar layout: three sidecars and the service they call back…');
    const service = new JsonLineProcess({ name: 'service', script: join(HERE, 'sidecar', 'service.ts'), stdin: 'pipe' });
    procs.push(service);
    const serviceUrl = String((await ready(service, 'service')).url);
    const resources = join(dir, 'resources.yaml');
    writeFileSync(resources, 'resources:\n  account: { try: /account/try, confirm: /account/confirm, cancel: /account/cancel }\n');
    const sidecar = (app: string) => {
      const p = new JsonLineProcess({ name: `${app}-sidecar`, script: CLI, javascript: true, stdin: 'pipe', args: ['sidecar', '--endpoints', etcd.endpoints.join(','), '--namespace', 'sc/', '--app', app, '--listen', '127.0.0.1:0', '--service-url', serviceUrl, '--resources', resources, '--retention', `${Math.max(1, args.retentionMs)}ms`, '--log-level', 'warn'] });
      procs.push(p);
      return p;
    };
    const [so, sa, sb] = [sidecar('orders'), sidecar('bank-a'), sidecar('bank-b')];
    const [uo, ua, ub] = (await Promise.all([ready(so, 'orders sidecar'), ready(sa, 'bank-a sidecar'), ready(sb, 'bank-b sidecar')])).map((e) => String(e.url)) as [string, string, string];
    const post = (url: string, body: unknown): Promise<{ status: number; body: any }> => // eslint-disable-line @typescript-eslint/no-explicit-any
      new Promise((resolve, reject) => {
        const data = JSON.stringify(body);
        const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
          });
        });
        req.on('error', reject);
        req.end(data);
      });
    const one = async (i: number, done: number[]): Promise<void> => {
      const t0 = performance.now();
      const begun = await post(`${uo}/v1/transactions`, { name: `bench ${i}` });
      if (begun.status !== 201) throw new Error(`begin: ${begun.status} ${JSON.stringify(begun.body)}`);
      const { xid, deadline } = begun.body as { xid: string; deadline: number };
      const tries = await Promise.all([post(`${ua}/v1/tries`, { xid, deadline, resource: 'account', payload: { account: `a-${i % 100}`, amount: 1 } }), post(`${ub}/v1/tries`, { xid, deadline, resource: 'account', payload: { account: `b-${i % 100}`, amount: 1 } })]);
      for (const t of tries) if (t.status !== 200) throw new Error(`try: ${t.status} ${JSON.stringify(t.body)}`);
      const committed = await post(`${uo}/v1/transactions/${xid}/commit`, {});
      if (committed.status !== 204) throw new Error(`commit: ${committed.status} ${JSON.stringify(committed.body)}`);
      const finished = await post(`${uo}/v1/transactions/${xid}/wait`, { timeoutMs: 120_000 });
      if (finished.body?.status !== 'COMMITTED') throw new Error(`${xid} ended ${JSON.stringify(finished.body)}`);
      done.push(performance.now() - t0);
    };
    const viaSidecar = async (count: number, concurrency: number) => {
      const done: number[] = [];
      const t0 = performance.now();
      await runWorkers(count, concurrency, (i) => one(i, done));
      return { txPerSec: count / ((performance.now() - t0) / 1000), doneMs: summarize(done) };
    };

    say(`warming up (${args.warmup} transactions each way)…`);
    if (args.warmup > 0) {
      await ask({ cmd: 'run', count: args.warmup, concurrency: 16 });
      await viaSidecar(args.warmup, 16);
    }
    const rows: Row[] = [];
    for (const c of args.concurrencies) {
      say(`${args.tx} transactions at ${c} in flight through the SDK, then through sidecars…`);
      const sdk = await ask({ cmd: 'run', count: args.tx, concurrency: c });
      const sc = await viaSidecar(args.tx, c);
      rows.push({ concurrency: c, sdkTxPerSec: args.tx / Number(sdk.seconds), sidecarTxPerSec: sc.txPerSec, sdkDoneMs: sdk.beginToDoneMs as LatencySummary, sidecarDoneMs: sc.doneMs });
    }
    const loadAtEnd = loadavg()[0] ?? 0;
    if (!args.jsonOnly) {
      console.error(`via sidecar: SDK (initiator, bank-a, bank-b processes) vs sidecars (3 sidecars + 1 service process, driven over HTTP); load average at start ${loadAtStart.toFixed(2)}, at end ${loadAtEnd.toFixed(2)}`);
      console.error('in flight  SDK tx/s  sidecar tx/s  sidecar/SDK  SDK done p50/p99 ms  sidecar done p50/p99 ms');
      for (const r of rows) console.error(`${String(r.concurrency).padEnd(10)} ${r.sdkTxPerSec.toFixed(1).padStart(8)}  ${r.sidecarTxPerSec.toFixed(1).padStart(12)}  ${(r.sidecarTxPerSec / r.sdkTxPerSec).toFixed(2).padStart(11)}  ${`${r.sdkDoneMs.p50}/${r.sdkDoneMs.p99}`.padStart(19)}  ${`${r.sidecarDoneMs.p50}/${r.sidecarDoneMs.p99}`.padStart(23)}`);
    }
    console.log(JSON.stringify({ bench: 'txloop-tcc-2branch-via-sidecar', loadAverage: loadAtStart, loadAverageAtEnd: loadAtEnd, levels: rows.map((r) => ({ ...r, ratio: r.sidecarTxPerSec / r.sdkTxPerSec })) }));
  } finally {
    agent.destroy();
    for (const p of procs) p.endInput();
    await Promise.allSettled(procs.map((p) => p.stop('SIGTERM', 10_000)));
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
