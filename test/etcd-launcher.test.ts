import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  EtcdNotInstalledError,
  EtcdStartError,
  findEtcdBinary,
  startEtcd,
  startEtcdCluster,
  type EtcdCluster,
  type EtcdMember,
  type EtcdServer,
} from '../src/testing.js';
import { untilStopped } from './helpers/wait.js';

// Everything started in a test is stopped after it, even when an assertion failed halfway.
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(options?: Parameters<typeof startEtcd>[0]): Promise<EtcdServer> {
  const s = await startEtcd(options);
  cleanups.push(() => s.stop());
  return s;
}

async function cluster(): Promise<EtcdCluster> {
  const c = await startEtcdCluster({ size: 3 });
  cleanups.push(() => c.stop());
  return c;
}

function client(hosts: string[]): Etcd3 {
  const c = new Etcd3({ hosts });
  cleanups.push(() => c.close());
  return c;
}

/** Retries `fn` until it stops throwing; fails with the last error once the (generous) deadline passed. */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function privateDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'txloop-launcher-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function restoreEnv(name: string, previous: string | undefined): void {
  if (previous === undefined) delete process.env[name];
  else process.env[name] = previous;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

/** The member every given member names as leader; throws while they disagree or have none. */
async function leaderOf(members: EtcdMember[]): Promise<EtcdMember> {
  const statuses = await Promise.all(members.map((m) => client([m.clientUrl]).maintenance.status()));
  const leaderId = statuses[0]!.leader;
  const index = statuses.findIndex((st) => st.header.member_id === leaderId);
  if (leaderId === '0' || index < 0 || statuses.some((st) => st.leader !== leaderId)) throw new Error('no agreed leader');
  return members[index]!;
}

function portOf(endpoint: string): number {
  return Number(new URL(endpoint).port);
}

/** Resolves to the connect error code, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** A killed process whose new parent has not reaped it yet (a zombie) counts as dead. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

describe('startEtcd', () => {
  it('serves on loopback and a put/get round-trips through the etcd3 client', async () => {
    const etcd = await server();
    expect(etcd.endpoints).toHaveLength(1);
    expect(new URL(etcd.endpoints[0]!).hostname).toBe('127.0.0.1');
    expect(path.basename(etcd.dataDir)).toMatch(/^txloop-etcd-/);
    expect(processAlive(etcd.pid)).toBe(true);

    const etcd3 = client(etcd.endpoints);
    await etcd3.put('greeting').value('hello');
    expect(await etcd3.get('greeting').string()).toBe('hello');
  });

  it('stop() removes the data dir and closes the port, and a second stop() is harmless', async () => {
    const etcd = await startEtcd();
    const port = portOf(etcd.endpoints[0]!);
    expect(await exists(etcd.dataDir)).toBe(true);
    expect(await tryConnect(port)).toBe('connected');

    await etcd.stop();
    expect(await exists(etcd.dataDir)).toBe(false);
    expect(await tryConnect(port)).toBe('ECONNREFUSED');
    expect(processAlive(etcd.pid)).toBe(false);
    await expect(etcd.stop()).resolves.toBeUndefined();
  });

  it('two servers at once get different ports and data dirs and do not share data', async () => {
    const [a, b] = await Promise.all([server(), server()]);
    expect(a.endpoints[0]).not.toBe(b.endpoints[0]);
    expect(a.dataDir).not.toBe(b.dataDir);

    await client(a.endpoints).put('only-in-a').value('1');
    expect(await client(b.endpoints).get('only-in-a').string()).toBeNull();
  });

  it('applies maxTxnOps: a Txn with more operations than allowed is refused', async () => {
    const etcd = await server({ maxTxnOps: 4 });
    const etcd3 = client(etcd.endpoints);
    const txn = (ops: number) =>
      etcd3.if('x', 'Version', '==', 0).then(...Array.from({ length: ops }, (_, i) => etcd3.put(`k${i}`).value('v'))).commit();
    await expect(txn(4)).resolves.toBeDefined();
    await expect(txn(5)).rejects.toThrow(/too many operations/);
  });

  it('a start failure is an EtcdStartError quoting etcd stderr, and leaves no data dir behind', async () => {
    // A private TMPDIR so that servers started by other test files cannot look like leaks.
    const tmp = await privateDir();
    const previous = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    cleanups.push(() => restoreEnv('TMPDIR', previous));

    const err = await startEtcd({ extraArgs: ['--no-such-flag'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdStartError);
    expect((err as Error).name).toBe('EtcdStartError');
    expect((err as Error).message).toMatch(/flag provided but not defined/);
    expect(await readdir(tmp)).toEqual([]);
  });

  it('writes etcd output to logFile when asked', async () => {
    const dir = await privateDir();
    const logFile = path.join(dir, 'etcd.log');
    const etcd = await startEtcd({ logFile });
    await etcd.stop();
    expect(await readFile(logFile, 'utf8')).toMatch(/^\[etcd-0\] .*serving client traffic/m);
  });
});

describe('startEtcdCluster', () => {
  it('keeps serving writes after its leader is SIGKILLed, and the member rejoins after restart() and sees them', async () => {
    const c = await cluster();
    expect(c.members).toHaveLength(3);
    expect(new Set(c.endpoints).size).toBe(3);

    const leader = await eventually(() => leaderOf(c.members));
    const pid = leader.pid!;
    await client(c.endpoints).put('before').value('1');

    await leader.kill();
    expect(leader.running).toBe(false);
    expect(leader.pid).toBeUndefined();
    expect(processAlive(pid)).toBe(false);

    // Writes proposed while there is no leader at all stall for etcd's request timeout (~6s), so wait
    // for the survivors to elect a new leader, then every write must go through.
    const survivors = c.members.filter((m) => m !== leader);
    await eventually(() => leaderOf(survivors));
    const writer = client(survivors.map((m) => m.clientUrl));
    for (let i = 0; i < 20; i++) await writer.put(`after-${i}`).value('v');

    await leader.restart();
    expect(leader.running).toBe(true);
    expect(leader.pid).not.toBe(pid);
    const rejoined = client([leader.clientUrl]);
    expect(await rejoined.get('before').string()).toBe('1');
    expect(await rejoined.get('after-19').string()).toBe('v');
  });

  it("kill('SIGSTOP') freezes a member until resume(), and stop() still cleans up a frozen member", async () => {
    const c = await cluster();
    const member = c.members[1]!;
    const pid = member.pid!;
    await member.kill('SIGSTOP');
    expect(member.running).toBe(true);
    // kill() resolves as the signal is sent; etcd's threads stop when the kernel gets round to them.
    await untilStopped(pid, 'the member');
    await expect(fetch(`${member.clientUrl}/health`, { signal: AbortSignal.timeout(300) })).rejects.toThrow();

    member.resume();
    await eventually(async () => {
      const res = await fetch(`${member.clientUrl}/health`, { signal: AbortSignal.timeout(1_000) });
      expect(await res.json()).toMatchObject({ health: 'true' });
    });

    await member.kill('SIGSTOP');
    await c.stop();
    expect(processAlive(pid)).toBe(false);
    expect(c.members.every((m) => !m.running)).toBe(true);
    await expect(c.stop()).resolves.toBeUndefined();
    await expect(member.restart()).rejects.toBeInstanceOf(EtcdStartError);
  });
});

describe('no etcd outlives the process that started it', () => {
  // A child Node process starts a server, prints its pid and data dir, then dies in the given way.
  // It runs in its own process group, so that a signal to "its group" (a Ctrl-C) stays away from us.
  async function orphanCheck(death: string, start = 'const etcd = await startEtcd();'): Promise<void> {
    const launcher = new URL('../src/testing.ts', import.meta.url).href;
    const script = `
      import { startEtcd, startEtcdCluster } from ${JSON.stringify(launcher)};
      ${start}
      console.log(JSON.stringify({ pid: etcd.pid, dataDir: etcd.dataDir }));
      ${death};`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    cleanups.push(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await once(child, 'close');
    const { pid, dataDir } = JSON.parse(out) as { pid: number; dataDir: string };
    await eventually(async () => {
      expect(processAlive(pid)).toBe(false);
      expect(await exists(dataDir)).toBe(false);
    });
  }

  it('exiting without stop() kills etcd and removes its data dir', async () => {
    await orphanCheck('process.exit(1)');
  });

  it('being SIGKILLed without stop() still kills etcd and removes its data dir', async () => {
    await orphanCheck("process.kill(process.pid, 'SIGKILL')");
  });

  it('a Ctrl-C to the whole process group (Node, etcd and the watchdog) still removes the data dir', async () => {
    // Node has no SIGINT handler here, so it dies at once and runs no exit hook; etcd exits on its
    // own SIGINT. Only the watchdog is left to remove the data dir, so it must not die of the same SIGINT.
    await orphanCheck("process.kill(0, 'SIGINT')");
  });

  it('etcd exiting on its own first, then being SIGKILLed, still removes the data dir', async () => {
    // kill() resolves once the launcher saw etcd exit: the watchdog has been told, not dismissed.
    await orphanCheck(
      "await etcd.member.kill('SIGTERM'); process.kill(process.pid, 'SIGKILL')",
      `const c = await startEtcdCluster({ size: 1 });
      const member = c.members[0];
      const argv = (await import('node:fs')).readFileSync('/proc/' + member.pid + '/cmdline', 'utf8').split('\\0');
      const etcd = { member, pid: member.pid, dataDir: argv[argv.indexOf('--data-dir') + 1] };`,
    );
  });
});

describe('findEtcdBinary', () => {
  it('honours TXLOOP_ETCD_BIN before PATH', async () => {
    const dir = await privateDir();
    const fake = path.join(dir, 'my-etcd');
    await writeFile(fake, '#!/bin/sh\n');
    await chmod(fake, 0o755);
    expect(findEtcdBinary({ env: { TXLOOP_ETCD_BIN: fake, PATH: process.env.PATH } })).toBe(fake);
  });

  it('finds etcd on PATH', async () => {
    const dir = await privateDir();
    await writeFile(path.join(dir, 'etcd'), '#!/bin/sh\n');
    await chmod(path.join(dir, 'etcd'), 0o755);
    expect(findEtcdBinary({ env: { PATH: dir }, fallbackPaths: [] })).toBe(path.join(dir, 'etcd'));
  });

  it('throws EtcdNotInstalledError saying what to install when no etcd is anywhere', async () => {
    const emptyDir = await privateDir();
    const err = thrown(() => findEtcdBinary({ env: { PATH: emptyDir }, fallbackPaths: [path.join(emptyDir, 'etcd')] }));
    expect(err).toBeInstanceOf(EtcdNotInstalledError);
    expect((err as Error).name).toBe('EtcdNotInstalledError');
    expect((err as Error).message).toContain('apt-get install etcd-server');
    expect((err as Error).message).toContain('TXLOOP_ETCD_BIN');
    // A consumer of the installed package has no repository to run a relative path in: the message
    // names the bin and the script's absolute path, which exists.
    expect((err as Error).message).toContain('npx txloop-ensure-etcd');
    const script = /\(bash (\/\S+\/scripts\/ensure-etcd\.sh)\)/.exec((err as Error).message)?.[1];
    expect(script, (err as Error).message).toBeDefined();
    expect((await stat(script!)).isFile()).toBe(true);
  });

  it('a TXLOOP_ETCD_BIN that points nowhere is an error, not a silent fallback', () => {
    expect(() => findEtcdBinary({ env: { TXLOOP_ETCD_BIN: '/nonexistent/etcd', PATH: process.env.PATH } })).toThrow(
      /TXLOOP_ETCD_BIN=\/nonexistent\/etcd/,
    );
  });

  it('startEtcd reports a missing binary as EtcdNotInstalledError', async () => {
    const previous = process.env.TXLOOP_ETCD_BIN;
    process.env.TXLOOP_ETCD_BIN = '/nonexistent/etcd';
    cleanups.push(() => restoreEnv('TXLOOP_ETCD_BIN', previous));
    await expect(startEtcd()).rejects.toBeInstanceOf(EtcdNotInstalledError);
  });
});
