/**
 * What every process of the deployment layout shares: its configuration (one JSON argument), its
 * etcd client with request counting, its SDK log tally, and the command loop on stdin — one JSON
 * line per command, answered with `{ reply: <id>, … }` on stdout. When stdin closes (the bench is
 * done, or died) the process closes its service and exits 0, so a `--cpu-prof` profile is written.
 */
import { createInterface } from 'node:readline';
import type { Etcd3 } from 'etcd3';
import { pino, type Logger } from 'pino';
import { TxloopService, type ServiceOptions } from '../../src/index.js';
import { createEtcdClient, DEFAULT_NAMESPACE, Keys } from '../internals.js';
import { LogTally } from '../logs.js';
import { RequestCounter } from '../requests.js';

export interface ChildConfig {
  endpoints: string[];
  app: string;
  /** ServiceOptions.concurrency (phase-2 workers). */
  workers?: number;
  retentionMs: number;
  /** initiator only: the participants' Try URLs, by app. */
  participants?: Record<string, string>;
}

export type Command = { id: number; cmd: string } & Record<string, unknown>;

export interface Child {
  config: ChildConfig;
  client: Etcd3;
  rpc: RequestCounter;
  logs: LogTally;
  logger: Logger;
}

export function childConfig(): ChildConfig {
  const raw = process.argv[2];
  if (!raw) throw new Error('usage: <script> <config JSON>');
  return JSON.parse(raw) as ChildConfig;
}

export function setUp(config: ChildConfig): Child {
  const rpc = new RequestCounter(new Keys(DEFAULT_NAMESPACE));
  const client = createEtcdClient({ endpoints: config.endpoints }, { grpcOptions: rpc.grpcOptions });
  const logs = new LogTally(false);
  const logger = pino({ level: process.env.TXLOOP_LOG_LEVEL ?? 'warn' }, logs);
  return { config, client, rpc, logs, logger };
}

/** The child's TxloopService, on its client and logger, with the bench's retention and workers. */
export function serviceOf(child: Child, extra: Partial<ServiceOptions> = {}): TxloopService {
  const { config } = child;
  return new TxloopService({
    app: config.app,
    client: child.client,
    logger: child.logger,
    retentionMs: config.retentionMs,
    ...(config.workers !== undefined ? { concurrency: config.workers } : {}),
    ...extra,
  });
}

export function send(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/**
 * Runs `handle` for each command (one at a time, in order); `snapshot` and `logs` are answered here.
 * `close` runs once stdin ends, then the process exits.
 */
export function serveCommands(child: Child, handle: (c: Command) => Promise<Record<string, unknown>>, close: () => Promise<void>): void {
  let chain = Promise.resolve();
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const c = JSON.parse(line) as Command;
    chain = chain.then(async () => {
      try {
        if (c.cmd === 'snapshot') send({ reply: c.id, rpc: child.rpc.snapshot() });
        else if (c.cmd === 'logs') {
          send({ reply: c.id, warnings: child.logs.entries() });
          child.logs.reset();
        } else send({ reply: c.id, ...(await handle(c)) });
      } catch (err) {
        send({ reply: c.id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      }
    });
  });
  lines.on('close', () => {
    void chain
      .then(close)
      .then(() => child.client.close())
      .finally(() => process.exit(0));
  });
  process.on('SIGTERM', () => process.stdin.destroy());
}

/** Resolves once `service` leads its app. */
export async function leading(service: { isLeader(): boolean; on(e: 'leader', l: (x: { leading: boolean }) => void): unknown; off(e: 'leader', l: (x: { leading: boolean }) => void): unknown }): Promise<void> {
  if (service.isLeader()) return;
  await new Promise<void>((resolve) => {
    const on = ({ leading: l }: { leading: boolean }): void => {
      if (!l) return;
      service.off('leader', on);
      resolve();
    };
    service.on('leader', on);
  });
}
