/**
 * One service of the saga demo, its own process: it runs one saga step (`--step`) whose effect is a
 * record in etcd written through the branch barrier, in the same Txn as the barrier's record (so a
 * compensation whose action never applied does nothing, and says so). `--declines` makes its action
 * fail for good (a card declined). Reports each action and compensation on stdout as a JSON line.
 *
 * usage: step-service.ts --app payment --step charge --endpoints http://127.0.0.1:2379 [--declines]
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { EtcdBarrier, NonRetryableError, TxloopService, type BarrierTxn, type StepContext } from '../src/index.js';
import { createEtcdClient } from '../src/etcd/index.js';

const { values: args } = parseArgs({ options: { app: { type: 'string' }, step: { type: 'string' }, endpoints: { type: 'string' }, declines: { type: 'boolean', default: false } } });
if (!args.app || !args.step || !args.endpoints) {
  process.stderr.write('usage: step-service.ts --app payment --step charge --endpoints http://127.0.0.1:2379 [--declines]\n');
  process.exit(2);
}
const app = args.app;
const step = args.step;
const emit = (event: Record<string, unknown>): void => {
  if (!process.stdout.destroyed) process.stdout.write(`${JSON.stringify({ ...event, app, pid: process.pid, at: Date.now() })}\n`);
};

const client = createEtcdClient({ endpoints: args.endpoints.split(','), dialTimeoutMs: 5_000 });
const service = new TxloopService({ app, client, identity: `${app}#1/pid-${process.pid}`, leaseTtlSeconds: 2, retryBaseMs: 100, retryMaxMs: 1_000, logger: pino({ level: process.env.TXLOOP_LOG_LEVEL ?? 'warn', base: { app } }, pino.destination(2)) });
// The step's own data: one key per saga under demo/<app>/, written with the barrier's record.
const barrier = new EtcdBarrier(client, { prefix: `demo/${app}/barrier/`, leaderKey: `txloop/${app}/leader` });
const dataKey = (ctx: StepContext): string => `demo/${app}/${step}/${ctx.xid}`;

service.sagaStep(step, {
  async action(ctx) {
    emit({ event: 'action', xid: ctx.xid, branchId: ctx.branchId, attempt: ctx.attempt, payload: ctx.payload });
    if (args.declines) throw new NonRetryableError('card declined by the issuer');
    const r = await barrier.run(ctx, 'action', (txn: BarrierTxn) => void txn.put(dataKey(ctx), JSON.stringify({ done: step, payload: ctx.payload })));
    emit({ event: 'action-done', xid: ctx.xid, applied: r.applied });
  },
  async compensate(ctx) {
    const r = await barrier.run(ctx, 'compensate', (txn: BarrierTxn) => void txn.delete(dataKey(ctx)));
    // An empty compensation: the action never applied (here: it failed for good), nothing to undo.
    emit({ event: 'compensated', xid: ctx.xid, branchId: ctx.branchId, attempt: ctx.attempt, actionState: ctx.actionState, empty: r.outcome === 'empty-rollback' });
  },
});

await service.start();
emit({ event: 'ready' });
const shutdown = async (): Promise<void> => {
  await service.close().catch(() => undefined);
  client.close();
  process.exit(0);
};
process.stdin.on('end', () => void shutdown());
process.stdin.resume();
process.on('SIGTERM', () => void shutdown());
