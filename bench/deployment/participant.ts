/**
 * A participant of the deployment layout, in its own process: one TxloopService with a no-op
 * TCC resource (and a no-op saga step and message consumer, for --mode saga and message), and the HTTP endpoint its initiator calls for the Try (POST /try, the transaction context
 * in txloop's headers, `{ payload }` as the body), the way a service receives a Try in production.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extractContext, TxloopError } from '../../src/index.js';
import { childConfig, leading, send, serveCommands, serviceOf, setUp } from './child.js';

const config = childConfig();
const child = setUp(config);
const service = serviceOf(child);
const RESOURCE = 'account';
service.resource(RESOURCE, {
  try: async () => ({ frozen: true }),
  confirm: async () => undefined,
  cancel: async () => undefined,
});
// --mode saga: each participant owns one step of every saga; --mode message: each consumes every message.
service.sagaStep('step', { action: async () => undefined, compensate: async () => undefined });
service.consumer('inbox', { deliver: async () => undefined });

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

const server = createServer({ keepAlive: true }, (req, res) => {
  void (async () => {
    try {
      const ctx = extractContext(req.headers);
      if (req.method !== 'POST' || req.url !== '/try' || !ctx) {
        res.writeHead(404).end();
        return;
      }
      const { payload } = (await body(req)) as { payload: unknown };
      await service.tryBranch(ctx, RESOURCE, payload);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    } catch (err) {
      const status = err instanceof TxloopError ? 409 : 500;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    }
  })();
});

await service.start();
await leading(service);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
serveCommands(
  child,
  async (c) => {
    throw new Error(`unknown command ${c.cmd}`);
  },
  async () => {
    server.close();
    server.closeAllConnections();
    await service.close();
  },
);
send({ event: 'ready', pid: process.pid, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/try` });
