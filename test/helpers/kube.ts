/**
 * A real kube-apiserver on loopback for the Kubernetes tests (built by scripts/ensure-kube.sh, on
 * its own etcd): self-signed serving certificate, one admin bearer token, RBAC, no controllers
 * (CRUD, CRDs with status subresources and printer columns, RBAC, watches and helm installs work
 * without them; pods never run). Stopped, with its
 * state directory removed, by `stop()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd, type EtcdServer } from '../../src/testing.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface KubeApiserver {
  readonly url: string;
  readonly token: string;
  /** A kubeconfig file for kubectl and client libraries. */
  readonly kubeconfig: string;
  readonly binDir: string;
  kubectl(args: string[], input?: string): { status: number | null; stdout: string; stderr: string };
  /** Stops the apiserver (SIGTERM; its etcd keeps its data), runs `meanwhile`, starts it again on the same port and waits until it is ready. */
  restart(meanwhile?: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The built binaries' directory (building them the first time: minutes). */
export function kubeBinDir(): string {
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'ensure-kube.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error('scripts/ensure-kube.sh failed (see its output above)');
  return r.stdout.trim();
}

export async function startKubeApiserver(): Promise<KubeApiserver> {
  const binDir = kubeBinDir();
  const state = mkdtempSync(join(tmpdir(), 'txloop-kube-'));
  const pki = join(state, 'pki');
  spawnSync('mkdir', ['-p', pki]);
  const token = randomBytes(24).toString('hex');
  writeFileSync(join(pki, 'tokens.csv'), `${token},admin,admin,system:masters\n`);
  const key = spawnSync('openssl', ['genrsa', '-out', join(pki, 'sa.key'), '2048'], { encoding: 'utf8' });
  if (key.status !== 0) throw new Error(`openssl genrsa failed: ${key.stderr}`);
  let etcd: EtcdServer | undefined;
  let proc: ChildProcess | undefined;
  const halt = async (): Promise<void> => {
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc!.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (proc.exitCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
    }
  };
  const stop = async (): Promise<void> => {
    await halt();
    await etcd?.stop();
    rmSync(state, { recursive: true, force: true });
  };
  try {
    etcd = await startEtcd();
    const port = await freePort();
    const log: string[] = [];
    const args = [
      `--etcd-servers=${etcd.endpoints.join(',')}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${pki}`,
      `--token-auth-file=${join(pki, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(pki, 'sa.key')}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--disable-admission-plugins=ServiceAccount,StorageObjectInUseProtection',
      '--allow-privileged=true',
      '--endpoint-reconciler-type=none',
      '--enable-aggregator-routing=true',
      '--profiling=false',
    ];
    const launch = (): void => {
      proc = spawn(join(binDir, 'kube-apiserver'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
      proc.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
    };
    launch();
    const url = `https://127.0.0.1:${port}`;
    const kubeconfig = join(state, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      ['apiVersion: v1', 'kind: Config', 'clusters:', '- name: test', '  cluster:', `    server: ${url}`, `    certificate-authority: ${join(pki, 'apiserver.crt')}`, 'users:', '- name: admin', '  user:', `    token: ${token}`, 'contexts:', '- name: test', '  context: { cluster: test, user: admin }', 'current-context: test', ''].join('\n'),
    );
    const kubectl = (args: string[], input?: string) => {
      const r = spawnSync('kubectl', ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', input, timeout: 60_000 });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const ready = async (): Promise<void> => {
      const deadline = Date.now() + 90_000;
      for (;;) {
        if (proc!.exitCode !== null) throw new Error(`kube-apiserver exited (${proc!.exitCode}): ${log.join('').slice(-2000)}`);
        if (kubectl(['get', '--raw', '/readyz']).stdout.trim() === 'ok') break;
        if (Date.now() > deadline) throw new Error(`kube-apiserver not ready within 90s: ${log.join('').slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    await ready();
    const restart = async (meanwhile?: () => Promise<void>): Promise<void> => {
      await halt();
      await meanwhile?.();
      launch();
      await ready();
    };
    return { url, token, kubeconfig, binDir, kubectl, restart, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

const CRDS = join(ROOT, 'crds');

/** Applies crds/ and waits until both are Established, then creates `namespace` (when given) for a test's objects. */
export function installCrds(kube: KubeApiserver, namespace?: string): void {
  for (const f of readdirSync(CRDS)) {
    const r = kube.kubectl(['apply', '-f', join(CRDS, f)]);
    if (r.status !== 0) throw new Error(`kubectl apply ${f}: ${r.stderr}`);
  }
  for (const crd of ['participants.txloop.io', 'transactions.txloop.io']) {
    const r = kube.kubectl(['wait', '--for=condition=Established', `crd/${crd}`, '--timeout=60s']);
    if (r.status !== 0) throw new Error(`${crd} not Established: ${r.stderr}`);
  }
  if (namespace !== undefined) {
    const r = kube.kubectl(['create', 'namespace', namespace]);
    if (r.status !== 0) throw new Error(`kubectl create namespace ${namespace}: ${r.stderr}`);
  }
}

/** An object as `kubectl get -o json` returns it, or undefined when it does not exist. */
export function kubeObject(kube: KubeApiserver, namespace: string, kind: string, name: string): Record<string, any> | undefined { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = kube.kubectl(['get', kind, name, '-n', namespace, '-o', 'json']);
  return r.status === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
}
