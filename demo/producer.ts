/**
 * A replica of the demo's producer `shop`, its own process, that prepares two messages and dies
 * before submitting either: order 43's local transaction committed (its order row and the outbox
 * marker), order 44's is still open when the process is SIGKILLed. It reports `ready` with both
 * xids and waits for the kill. The other `shop` replica's check-back decides both from PostgreSQL.
 *
 * usage: producer.ts --endpoints http://127.0.0.1:2379 --pg postgresql://…
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { pino } from 'pino';
import { TxloopService } from '../src/index.js';
import { PgBarrier } from '../src/barrier/postgres/index.js';
import { CHECK_AFTER_MS, orderPaid } from './scenarios/message-data.js';

const { values: args } = parseArgs({ options: { endpoints: { type: 'string' }, pg: { type: 'string' } } });
if (!args.endpoints || !args.pg) {
  process.stderr.write('usage: producer.ts --endpoints http://127.0.0.1:2379 --pg postgresql://…\n');
  process.exit(2);
}
const pool = new pg.Pool({ connectionString: args.pg, max: 2 });
const barrier = new PgBarrier(pool);
const shop = new TxloopService({ app: 'shop', identity: `shop#2/pid-${process.pid}`, etcd: { endpoints: args.endpoints.split(',') }, leaseTtlSeconds: 2, logger: pino({ level: 'warn' }, pino.destination(2)) });

const committed = await shop.prepareMessage({ ...orderPaid(43), checkAfterMs: CHECK_AFTER_MS });
await barrier.messageTransaction(committed.xid, (sql) => sql.query("INSERT INTO orders (id, state) VALUES (43, 'paid')"));
const open = await shop.prepareMessage({ ...orderPaid(44), checkAfterMs: CHECK_AFTER_MS });
const client = await pool.connect();
await client.query('BEGIN');
await client.query("INSERT INTO orders (id, state) VALUES (44, 'paid')");
await barrier.markSubmitted(client, open.xid);
process.stdout.write(`${JSON.stringify({ event: 'ready', committed: committed.xid, open: open.xid, pid: process.pid })}\n`);
setInterval(() => undefined, 60_000);
