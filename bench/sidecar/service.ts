/**
 * The service beside the sidecars of `--via sidecar`, its own process: what a Go (or any) service
 * is to its sidecar, reduced to answering — its Try (200, a small JSON body) and its confirm/cancel
 * callbacks (204). Prints `{"event":"ready","url":…}`; exits when its stdin closes.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const server = createServer({ keepAlive: true }, (req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.url?.endsWith('/try')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"frozen":true}');
    else res.writeHead(204).end();
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ event: 'ready', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
