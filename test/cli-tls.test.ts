/**
 * --cacert/--cert/--key against a real etcd serving TLS with client-certificate auth. The launcher in
 * src/testing.ts only serves plain HTTP, so this file starts its own etcd (and stops it in afterAll);
 * certificates come from openssl into a temp dir.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findEtcdBinary } from '../src/testing.js';
import { assertBuilt, runCli, waitFor } from './helpers/cli.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function openssl(dir: string, ...args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

describe.skipIf(!hasOpenssl)('TLS (etcd with client-certificate auth)', () => {
  let dir: string;
  let etcd: ChildProcess | undefined;
  let endpoint: string;
  const file = (name: string): string => path.join(dir, name);
  const readFile = (name: string): Buffer => readFileSync(file(name));

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(path.join(tmpdir(), 'txloop-cli-tls-'));
    writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=txloop-test-ca');
    for (const who of ['server', 'client']) {
      openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? '127.0.0.1' : 'txloop-cli'}`);
      openssl(dir, 'x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '1', '-extfile', 'san.ext');
    }
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    endpoint = `https://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    etcd = spawn(
      findEtcdBinary(),
      [
        '--name', 'tls',
        '--data-dir', file('data'),
        '--listen-client-urls', endpoint,
        '--advertise-client-urls', endpoint,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `tls=${peer}`,
        '--cert-file', file('server.crt'),
        '--key-file', file('server.key'),
        '--trusted-ca-file', file('ca.crt'),
        '--client-cert-auth',
      ],
      { stdio: 'ignore' },
    );
    const client = new Etcd3({
      hosts: [endpoint],
      credentials: { rootCertificate: readFile('ca.crt'), privateKey: readFile('client.key'), certChain: readFile('client.crt') },
    });
    try {
      await waitFor(async () => (await client.maintenance.status()).version !== '', 'the TLS etcd to serve', 20_000);
      await client.put('txloop/orders/leader').value(JSON.stringify({ identity: 'orders-1', host: 'h', pid: 1, since: Date.now(), lease: '1' }));
    } finally {
      client.close();
    }
  });

  afterAll(async () => {
    if (etcd && etcd.exitCode === null) {
      const exited = new Promise((r) => etcd!.once('exit', r));
      etcd.kill('SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('--cacert, --cert and --key reach an etcd that requires a client certificate', async () => {
    const r = await runCli(['get', 'leaders', '--endpoints', endpoint, '--cacert', file('ca.crt'), '--cert', file('client.crt'), '--key', file('client.key')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^orders\s+orders-1\s+/m);
  });

  it('TLS material from TXLOOP_CACERT/TXLOOP_CERT/TXLOOP_KEY makes a scheme-less endpoint https', async () => {
    const r = await runCli(['get', 'leaders'], {
      TXLOOP_ENDPOINTS: endpoint.replace('https://', ''),
      TXLOOP_CACERT: file('ca.crt'),
      TXLOOP_CERT: file('client.crt'),
      TXLOOP_KEY: file('client.key'),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/orders-1/);
  });

  it('without a client certificate, or without the CA, it fails with one line and exit 1 within seconds', async () => {
    const cases: [string[], RegExp][] = [
      [['--cacert', file('ca.crt')], /^error: etcd at https:\S+ refused the TLS client certificate \(.+\): check --cert and --key$/],
      [[], /^error: etcd's TLS certificate at https:\S+ is not trusted \(.+\): pass its CA with --cacert$/],
    ];
    for (const [flags, message] of cases) {
      const r = await runCli(['get', 'gtx', '--endpoints', endpoint, ...flags]);
      expect(r.code, flags.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(message);
      expect(r.ms).toBeLessThan(8_000);
    }
  });

  it('an unreadable --cacert file is one clear line, exit 1', async () => {
    const r = await runCli(['get', 'gtx', '--endpoints', endpoint, '--cacert', file('missing.crt')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`error: cannot read --cacert file ${file('missing.crt')}: ENOENT`);
  });
});
