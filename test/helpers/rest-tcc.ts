/** A scripted REST-TCC participant on a loopback port, and links to it, for the REST-TCC tests. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ParticipantLink } from '../../src/index.js';

export interface StubCall {
  method: string;
  id: string;
  accept: string | undefined;
  at: number;
}

/** What the stub answers the n-th call (1-based) of `method` on link `id`: a status, or 'drop' (close the connection, no answer). */
export type StubScript = (method: string, id: string, n: number) => number | 'drop';

export interface StubParticipant {
  base: string;
  host: string;
  calls: StubCall[];
  /** The calls of one link, optionally of one method. */
  callsOf(id: string, method?: string): StubCall[];
  link(id: string, expiresInMs: number): ParticipantLink;
  close(): Promise<void>;
}

export async function stubParticipant(script: StubScript): Promise<StubParticipant> {
  const calls: StubCall[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const id = (req.url ?? '').replace(/^\/part\//, '');
    const n = calls.filter((c) => c.method === req.method && c.id === id).length + 1;
    calls.push({ method: req.method ?? '', id, accept: req.headers.accept, at: Date.now() });
    req.resume();
    const answer = script(req.method ?? '', id, n);
    if (answer === 'drop') {
      req.socket.destroy();
      return;
    }
    res.writeHead(answer, answer === 204 ? {} : { 'content-type': 'text/plain' }).end(answer === 204 ? undefined : `stub says ${answer}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    host: `127.0.0.1:${port}`,
    calls,
    callsOf: (id, method) => calls.filter((c) => c.id === id && (method === undefined || c.method === method)),
    link: (id, expiresInMs) => ({ uri: `${base}/part/${id}`, expires: new Date(Date.now() + expiresInMs).toISOString() }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A fetch that records when each request to a participant was sent, and its method. */
export function recordingFetch(): { fetch: typeof fetch; sent: { method: string; url: string; at: number }[] } {
  const sent: { method: string; url: string; at: number }[] = [];
  return {
    sent,
    fetch: (input, init) => {
      sent.push({ method: init?.method ?? 'GET', url: String(input), at: Date.now() });
      return fetch(input, init);
    },
  };
}
