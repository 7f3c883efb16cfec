/** Sidecar test plumbing: `txloop sidecar` as a real process, and a fake service it calls back. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { JsonLineProcess } from '../../tools/processes.js';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface SidecarProcess {
  readonly url: string;
  readonly proc: JsonLineProcess;
  /** `fetch` on the sidecar: JSON in, status + parsed body out. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; type: string }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  stop(): Promise<void>;
}

export interface SidecarSpec {
  endpoints: string[];
  ns: string;
  app: string;
  serviceUrl: string;
  resources: Record<string, unknown>;
  token?: string;
  args?: string[];
  identity?: string;
}

/** Starts `txloop sidecar` and resolves once it printed its ready line. */
export async function startSidecarProcess(s: SidecarSpec): Promise<SidecarProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'txloop-sidecar-'));
  const file = join(dir, 'resources.yaml');
  writeFileSync(file, stringify(s.resources));
  const tokenArgs: string[] = [];
  if (s.token) {
    writeFileSync(join(dir, 'token'), s.token);
    tokenArgs.push('--token-file', join(dir, 'token'));
  }
  const proc = new JsonLineProcess({
    name: s.identity ?? `sidecar-${s.app}`,
    script: CLI,
    javascript: true,
    args: ['sidecar', '--endpoints', s.endpoints.join(','), '--namespace', s.ns, '--app', s.app, '--listen', '127.0.0.1:0', '--service-url', s.serviceUrl, '--resources', file, '--lease-ttl', '10', '--log-level', process.env.TXLOOP_TEST_LOG ?? 'warn', ...tokenArgs, ...(s.args ?? [])],
  });
  let ready: Record<string, unknown>;
  try {
    ready = await proc.waitForEvent((e) => e.event === 'ready', 'the sidecar ready', { timeoutMs: 30_000 });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const url = String(ready.url);
  return {
    url,
    proc,
    async call(method, path, body, headers = {}) {
      const res = await fetch(`${url}${path}`, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(s.token ? { authorization: `Bearer ${s.token}` } : {}), ...headers }, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON: keep the text
      }
      return { status: res.status, body: parsed, type: res.headers.get('content-type') ?? '' };
    },
    async stop() {
      await proc.stop('SIGTERM', 10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  at: number;
}

/** A service the sidecar calls back: records each call and answers with `answer` (default 204). */
export class FakeService {
  readonly calls: Received[] = [];
  answer: (call: Received) => { status: number; body?: unknown } | Promise<{ status: number; body?: unknown }> = () => ({ status: 204 });
  private server: Server | undefined;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void (async () => {
          const text = Buffer.concat(chunks).toString();
          const call: Received = { path: req.url ?? '', headers: req.headers, body: text ? JSON.parse(text) : undefined, at: Date.now() };
          this.calls.push(call);
          const { status, body } = await this.answer(call);
          res.writeHead(status, body !== undefined ? { 'content-type': 'application/json' } : {}).end(body !== undefined ? JSON.stringify(body) : undefined);
        })();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  to(path: string): Received[] {
    return this.calls.filter((c) => c.path === path);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
