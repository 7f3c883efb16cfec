/**
 * One consumer of the message demo, its own process: it consumes `--resource` messages and reports
 * each delivery on stdout as a JSON line (a redelivery of one it already has says so: delivery is at
 * least once, so a real consumer deduplicates by xid/branchId as this one does).
 *
 * usage: consumer-service.ts --app ledger --resource credit --endpoints http://127.0.0.1:2379
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { TxloopService } from '../src/index.js';

const { values: args } = parseArgs({ options: { app: { type: 'string' }, resource: { type: 'string' }, endpoints: { type: 'string' } } });
if (!args.app || !args.resource || !args.endpoints) {
  process.stderr.write('usage: consumer-service.ts --app ledger --resource credit --endpoints http://127.0.0.1:2379\n');
  process.exit(2);
}
const app = args.app;
const emit = (event: Record<string, unknown>): void => {
  if (!process.stdout.destroyed) process.stdout.write(`${JSON.stringify({ ...event, app, pid: process.pid, at: Date.now() })}\n`);
};
const seen = new Set<string>();
const service = new TxloopService({ app, identity: `${app}#1/pid-${process.pid}`, etcd: { endpoints: args.endpoints.split(',') }, leaseTtlSeconds: 2, retryBaseMs: 200, retryMaxMs: 1_000, logger: pino({ level: process.env.TXLOOP_LOG_LEVEL ?? 'warn', base: { app } }, pino.destination(2)) });
service.consumer(args.resource, {
  deliver(ctx) {
    const id = `${ctx.xid}/${ctx.branchId}`;
    emit({ event: 'delivered', xid: ctx.xid, attempt: ctx.attempt, payload: ctx.payload, duplicate: seen.has(id) });
    seen.add(id);
  },
});
await service.start();
emit({ event: 'ready' });
const shutdown = async (): Promise<void> => {
  await service.close().catch(() => undefined);
  process.exit(0);
};
process.stdin.on('end', () => void shutdown());
process.stdin.resume();
process.on('SIGTERM', () => void shutdown());
