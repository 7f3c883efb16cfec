/**
 * `npm run demo -- saga`: a checkout as a saga across three services, each its own process
 * (demo/step-service.ts): order → inventory → payment. Payment declines for good, so the saga
 * compensates in reverse — payment's compensation is empty (its charge never applied), then
 * inventory's, then order's — each printed as its service reports it. Passes when the saga ended
 * COMPENSATED, the compensations came in that order, and no step's data is left behind.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { TxloopService } from '../../src/index.js';
import { JsonLineProcess } from '../../tools/processes.js';
import { expect, problems } from '../checks.js';
import { LEASE_TTL_SECONDS, logDir, root, startDemoEtcd } from '../cluster.js';
import { onCleanup } from '../lifecycle.js';
import { note, say } from '../print.js';

const here = fileURLToPath(new URL('..', import.meta.url));

type StepEvent = { event: string; app: string; xid?: string; attempt?: number; empty?: boolean; actionState?: string; payload?: unknown };

function stepService(app: string, step: string, endpoints: string[], extra: string[] = []): JsonLineProcess<StepEvent> {
  const p = new JsonLineProcess<StepEvent>({
    name: app,
    script: join(here, 'step-service.ts'),
    args: ['--app', app, '--step', step, '--endpoints', endpoints.join(','), ...extra],
    cwd: root,
    stderrFile: join(logDir, `${app}.log`),
    stdin: 'pipe',
  });
  onCleanup(`${app} (pid ${p.pid})`, async () => void (await p.stop()));
  return p;
}

export async function sagaScenario(): Promise<number> {
  say('txloop demo: a checkout saga across three services, no coordinator');
  say('  (each service runs its own step; a step failing for good makes the owners compensate in reverse)');
  say();
  const etcd = await startDemoEtcd();
  if (!etcd) return 1;
  const { endpoints, client } = etcd;
  const services = [stepService('order', 'create', endpoints), stepService('inventory', 'reserve', endpoints), stepService('payment', 'charge', endpoints, ['--declines'])];
  await Promise.all(services.map((s) => s.waitForEvent((e) => e.event === 'ready', 'ready', { timeoutMs: 30_000 })));
  for (const s of services) note(`${s.name.padEnd(9)} pid ${s.pid}`);
  const compensations: string[] = [];
  for (const s of services) {
    s.onEvent((e) => {
      if (e.event === 'action') note(`${e.app.padEnd(9)} action       (attempt ${e.attempt})`);
      if (e.event === 'action-done') note(`${e.app.padEnd(9)} action done`);
      if (e.event === 'compensated') {
        compensations.push(e.app);
        note(`${e.app.padEnd(9)} compensated  ${e.empty ? '(empty: its action never applied, nothing to undo)' : `(undid its ${e.actionState === 'SUCCEEDED' ? 'action' : 'partial action'})`}`);
      }
    });
  }

  const shopLog = pino({ level: process.env.TXLOOP_LOG_LEVEL ?? 'warn', base: { app: 'shop' } }, pino.destination({ dest: join(logDir, 'shop.log'), sync: true }));
  const shop = new TxloopService({ app: 'shop', identity: `shop#1/pid-${process.pid}`, etcd: { endpoints }, leaseTtlSeconds: LEASE_TTL_SECONDS, logger: shopLog });
  onCleanup('shop service', () => shop.close());
  await shop.start();
  say();
  say('1. checkout of order 42: create the order, reserve 2 lamps, charge 59.90 (the card is declined)');
  const { xid } = await shop.saga({
    name: 'checkout order 42',
    timeoutMs: 30_000,
    steps: [
      { service: 'order', resource: 'create', payload: { order: 42, customer: 'c-7' } },
      { service: 'inventory', resource: 'reserve', payload: { sku: 'lamp', units: 2 } },
      { service: 'payment', resource: 'charge', payload: { amount: '59.90', card: '**** 4242' } },
    ],
  });
  note(`saga ${xid} submitted: etcd holds it; the services take it from here`);
  const view = await shop.waitForCompletion(xid, { timeoutMs: 30_000 });
  note(`saga ${view.status} (decided by ${view.decision?.by ?? 'nobody'}: ${view.decision?.reason ?? ''})`);
  expect(view.status === 'COMPENSATED', `the saga ended COMPENSATED (it is ${view.status})`);
  expect(compensations.join(',') === 'payment,inventory,order', `compensations in reverse order: payment, inventory, order (they were ${compensations.join(', ') || 'none'})`);
  const left = await client.getAll().prefix('demo/').keys();
  const data = left.filter((k) => !k.includes('/barrier/'));
  expect(data.length === 0, `no step left its data behind (${data.join(', ') || 'none'})`);
  for (const b of view.branches) note(`  ${b.branchId}  ${b.owner.padEnd(9)} ${b.resource.padEnd(8)} ${b.action ?? ''} ${b.state ?? ''}${b.resolution ? ` (${b.resolution})` : ''}`);
  say();
  if (problems.length > 0) {
    say('FAILED:');
    for (const p of problems) say(`  - ${p}`);
    return 1;
  }
  say('saga demo passed: compensated in reverse order, nothing left behind');
  return 0;
}
