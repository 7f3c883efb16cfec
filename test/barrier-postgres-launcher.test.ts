/**
 * txloop/testing's startPostgres(): a throwaway PostgreSQL for the SQL barrier's tests — loopback
 * only, a password, its own temp dir (owned by the postgres user when running as root), gone after
 * stop() or after the process that started it died.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresNotInstalledError, PostgresStartError, findPostgresBinDir, startPostgres, type PostgresServer } from '../src/testing.js';
import { waitFor } from './helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(options?: Parameters<typeof startPostgres>[0]): Promise<PostgresServer> {
  const s = await startPostgres(options);
  cleanups.push(() => s.stop());
  return s;
}

async function query(connectionString: string, text: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(text)).rows as Record<string, unknown>[];
  } finally {
    await client.end();
  }
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

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

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return true;
  }
}

describe('startPostgres', () => {
  it('serves on 127.0.0.1 only, with no Unix socket, to the password it returns and no other', async () => {
    const s = await server();
    expect(s.connectionString).toBe(`postgresql://postgres:${s.password}@127.0.0.1:${s.port}/postgres`);
    const [settings] = await query(s.connectionString, "SELECT current_setting('listen_addresses') AS listen, current_setting('unix_socket_directories') AS sockets, current_user AS who, version() AS version");
    expect(settings).toMatchObject({ listen: '127.0.0.1', sockets: '', who: 'postgres' });
    expect(String(settings?.version)).toMatch(/^PostgreSQL \d+/);
    const wrong = new URL(s.connectionString);
    wrong.password = 'not-the-password';
    await expect(query(wrong.toString(), 'SELECT 1')).rejects.toMatchObject({ code: '28P01' });
  });

  it('stop() shuts it down, removes its dir and closes its port; a second stop() is harmless', async () => {
    const s = await startPostgres();
    expect(await exists(s.dataDir)).toBe(true);
    await s.stop();
    expect(processAlive(s.pid)).toBe(false);
    expect(await exists(s.dataDir)).toBe(false);
    expect(await tryConnect(s.port)).toBe('ECONNREFUSED');
    await expect(s.stop()).resolves.toBeUndefined();
  });

  it('two servers at once get their own ports and data', async () => {
    const [a, b] = await Promise.all([server(), server()]);
    expect(a.port).not.toBe(b.port);
    expect(a.dataDir).not.toBe(b.dataDir);
    await query(a.connectionString, 'CREATE TABLE only_in_a (x int)');
    await expect(query(b.connectionString, 'SELECT * FROM only_in_a')).rejects.toMatchObject({ code: '42P01' });
  });

  it.runIf(process.getuid?.() === 0)('as root, runs as the postgres user (initdb refuses root), in a dir that user owns', async () => {
    const s = await server();
    const owner = (await stat(s.dataDir)).uid;
    expect(owner).not.toBe(0);
    expect(readFileSync(`/proc/${s.pid}/status`, 'utf8')).toMatch(new RegExp(`^Uid:\\s+${owner}\\s`, 'm'));
  });

  it('a server that cannot start is a PostgresStartError quoting its output, and leaves no dir behind', async () => {
    // A temp dir of its own, so that what is left in it is this call's (other files start servers too).
    const tmp = await mkdtemp(path.join(tmpdir(), 'txloop-pg-launcher-test-'));
    await chmod(tmp, 0o755); // the postgres user, when running as root, must reach into it
    const previous = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    cleanups.push(async () => {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
      await rm(tmp, { recursive: true, force: true });
    });
    const err = await startPostgres({ settings: { shared_buffers: 'lots' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PostgresStartError);
    expect((err as Error).message).toMatch(/shared_buffers/);
    expect(await readdir(tmp)).toEqual([]);
  });
});

describe('no PostgreSQL outlives the process that started it', () => {
  async function orphanCheck(death: string): Promise<void> {
    const launcher = new URL('../src/testing.ts', import.meta.url).href;
    const script = `
      import { startPostgres } from ${JSON.stringify(launcher)};
      const pg = await startPostgres();
      console.log(JSON.stringify({ pid: pg.pid, dataDir: pg.dataDir }));
      ${death};`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    cleanups.push(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await once(child, 'close');
    const { pid, dataDir } = JSON.parse(out) as { pid: number; dataDir: string };
    await waitFor(async () => !processAlive(pid) && !(await exists(dataDir)), { what: 'postgres gone and its dir removed', timeoutMs: 30_000 });
  }

  it('exiting without stop() kills postgres and removes its dir', async () => {
    await orphanCheck('process.exit(1)');
  });

  it('being SIGKILLed without stop() still kills postgres and removes its dir', async () => {
    await orphanCheck("process.kill(process.pid, 'SIGKILL')");
  });
});

describe('findPostgresBinDir', () => {
  it("finds Debian's server binaries (the project's scripts install them)", () => {
    expect(findPostgresBinDir({ env: { PATH: '' } })).toMatch(/\/bin$/);
  });

  it('a TXLOOP_PG_BIN_DIR that holds no server is an error naming it and saying how to install one, not a silent fallback', () => {
    let err: unknown;
    try {
      findPostgresBinDir({ env: { TXLOOP_PG_BIN_DIR: '/nonexistent/bin' } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PostgresNotInstalledError);
    expect((err as Error).message).toMatch(/TXLOOP_PG_BIN_DIR=\/nonexistent\/bin/);
    expect((err as Error).message).toMatch(/npx txloop-ensure-postgres` \(bash \S+\/scripts\/ensure-postgres\.sh\)/);
  });
});
