/**
 * `npm run demo -- message`: an "order paid" message from the shop to two consumers (ledger,
 * mailer), each its own process, with the shop's orders and its outbox in a throwaway PostgreSQL.
 *
 *   1. Order 42 is paid while the mailer is down: the message commits with the order row in one
 *      local transaction and is submitted; the ledger gets it at once, the mailer once it is back.
 *   2. A second shop replica (its own process) prepares orders 43 and 44 and is SIGKILLed before
 *      submitting either: 43's local transaction had committed, 44's was still open. This shop's
 *      check-back answers from PostgreSQL: 43 committed → delivered, 44 rolled back → discarded.
 *
 * Passes when 42 and 43 are DELIVERED to both consumers, 44 DISCARDED and delivered to nobody.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { pino } from 'pino';
import { TxloopService } from '../../src/index.js';
import { PgBarrier, applyBarrierMigration } from '../../src/barrier/postgres/index.js';
import { startPostgres } from '../../src/testing.js';
import { JsonLineProcess } from '../../tools/processes.js';
import { expect, problems } from '../checks.js';
import { LEASE_TTL_SECONDS, logDir, root, startDemoEtcd } from '../cluster.js';
import { onCleanup } from '../lifecycle.js';
import { note, say } from '../print.js';
import { CHECK_AFTER_MS, orderPaid } from './message-data.js';

const here = fileURLToPath(new URL('..', import.meta.url));

type DemoEvent = { event: string; app?: string; xid?: string; attempt?: number; duplicate?: boolean; committed?: string; open?: string };

function child(name: string, script: string, args: string[]): JsonLineProcess<DemoEvent> {
  const p = new JsonLineProcess<DemoEvent>({ name, script: join(here, script), args, cwd: root, stderrFile: join(logDir, `${name}.log`), stdin: 'pipe' });
  onCleanup(`${name} (pid ${p.pid})`, async () => void (await p.stop()));
  return p;
}

export async function messageScenario(): Promise<number> {
  say('txloop demo: "order paid" as a 2-phase message to two consumers, the outbox in PostgreSQL');
  say('  (delivered at least once to every consumer, whenever it is up; a prepare nobody submitted is asked about)');
  say();
  const etcd = await startDemoEtcd();
  if (!etcd) return 1;
  const { endpoints } = etcd;
  const db = await startPostgres();
  onCleanup(`PostgreSQL (pid ${db.pid})`, () => db.stop());
  note(`PostgreSQL started: 127.0.0.1:${db.port} (pid ${db.pid}, data in ${db.dataDir})`);
  const pool = new pg.Pool({ connectionString: db.connectionString, max: 4 });
  // An idle client hears the server shut down at cleanup: nothing to do about it then.
  pool.on('error', () => undefined);
  onCleanup('PostgreSQL pool', () => pool.end());
  await applyBarrierMigration(pool);
  await pool.query('CREATE TABLE orders (id integer PRIMARY KEY, state text NOT NULL)');
  const barrier = new PgBarrier(pool);

  const delivered = new Map<string, string[]>();
  const consumer = (app: string, resource: string): JsonLineProcess<DemoEvent> => {
    const p = child(app, 'consumer-service.ts', ['--app', app, '--resource', resource, '--endpoints', endpoints.join(',')]);
    p.onEvent((e) => {
      if (e.event !== 'delivered' || !e.xid) return;
      delivered.set(e.xid, [...(delivered.get(e.xid) ?? []), app]);
      note(`${app.padEnd(7)} got ${labels.get(e.xid) ?? e.xid} (attempt ${e.attempt})${e.duplicate ? ' again: a redelivery, deduplicated' : ''}`);
    });
    return p;
  };
  const labels = new Map<string, string>();
  const ledger = consumer('ledger', 'credit');
  await ledger.waitForEvent((e) => e.event === 'ready', 'ledger ready', { timeoutMs: 30_000 });
  note(`ledger  pid ${ledger.pid}; mailer not started yet (down)`);

  const shopLog = pino({ level: process.env.TXLOOP_LOG_LEVEL ?? 'warn', base: { app: 'shop' } }, pino.destination({ dest: join(logDir, 'shop.log'), sync: true }));
  const shop = new TxloopService({ app: 'shop', identity: `shop#1/pid-${process.pid}`, etcd: { endpoints }, leaseTtlSeconds: LEASE_TTL_SECONDS, logger: shopLog });
  shop.checkBack('order paid', async ({ xid }) => {
    const answer = await barrier.checkBack(xid);
    note(`shop    check-back for ${labels.get(xid) ?? xid}: ${answer} (from its own outbox table)`);
    return answer;
  });
  onCleanup('shop service', () => shop.close());
  await shop.start();

  say();
  say('1. order 42 is paid: the order row and the outbox marker in one local transaction, then submit');
  const { xid: x42 } = await shop.message(orderPaid(42), (msg) => {
    labels.set(msg.xid, 'order 42');
    return barrier.messageTransaction(msg.xid, (sql) => sql.query("INSERT INTO orders (id, state) VALUES (42, 'paid')"));
  });
  note(`message ${x42} submitted`);
  await waitUntil(() => delivered.get(x42)?.includes('ledger'), 'the ledger to get order 42');
  await sleep(1_500);
  const waiting = await shop.deliveries(x42);
  note(`while the mailer is down: ${waiting.status}; ${waiting.deliveries.map((d) => `${d.service} ${d.status}`).join(', ')}`);
  const mailer = consumer('mailer', 'receipt');
  await mailer.waitForEvent((e) => e.event === 'ready', 'mailer ready', { timeoutMs: 30_000 });
  note(`mailer  pid ${mailer.pid} started`);
  const v42 = await shop.waitForCompletion(x42, { timeoutMs: 30_000 });
  note(`order 42: ${v42.status}`);
  expect(v42.status === 'DELIVERED', `order 42's message DELIVERED (it is ${v42.status})`);

  say();
  say('2. another shop replica prepares orders 43 (its local transaction commits) and 44 (still open), then is SIGKILLed');
  const producer = child('shop-2', 'producer.ts', ['--endpoints', endpoints.join(','), '--pg', db.connectionString]);
  const ready = await producer.waitForEvent((e) => e.event === 'ready', 'the second producer', { timeoutMs: 30_000 });
  const [x43, x44] = [ready.committed!, ready.open!];
  labels.set(x43, 'order 43');
  labels.set(x44, 'order 44');
  await producer.killNow();
  note(`shop-2 (pid ${producer.pid}) killed with SIGKILL; 43 and 44 are PREPARED, nobody will submit them; check-back after ${CHECK_AFTER_MS / 1000}s`);
  const [v43, v44] = await Promise.all([shop.waitForCompletion(x43, { timeoutMs: 30_000 }), shop.waitForCompletion(x44, { timeoutMs: 30_000 })]);
  note(`order 43: ${v43.status}; order 44: ${v44.status}`);
  expect(v43.status === 'DELIVERED', `order 43's message DELIVERED by the check-back (it is ${v43.status})`);
  expect(v44.status === 'DISCARDED', `order 44's message DISCARDED by the check-back (it is ${v44.status})`);
  for (const [xid, label] of [[x42, 'order 42'], [x43, 'order 43']] as const) {
    const got = new Set(delivered.get(xid) ?? []);
    expect(got.has('ledger') && got.has('mailer'), `${label} reached both consumers (it reached ${[...got].join(', ') || 'none'})`);
  }
  expect(!delivered.has(x44), 'order 44 reached nobody');
  const rows = (await pool.query<{ id: number }>('SELECT id FROM orders ORDER BY id')).rows.map((r) => r.id);
  expect(rows.join(',') === '42,43', `the shop's orders table holds 42 and 43 only (it holds ${rows.join(', ')})`);
  say();
  if (problems.length > 0) {
    say('FAILED:');
    for (const p of problems) say(`  - ${p}`);
    return 1;
  }
  say('message demo passed: delivered to every consumer once it was up; the check-back settled what a killed producer left');
  return 0;
}

async function waitUntil(check: () => boolean | undefined, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
