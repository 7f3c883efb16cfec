/**
 * The `txloop` binary on bad input: usage errors (exit 2), unreachable etcd (exit 1 within seconds),
 * malformed records in etcd (shown, never a crash), credentials (never printed), --help everywhere.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '../src/testing.js';
import { CLI, assertBuilt, row, runCli, spawnCli, table, waitFor } from './helpers/cli.js';
import { sleep, untilStopped } from './helpers/wait.js';

let etcd: EtcdServer;
const NS = `cli-err-${randomBytes(4).toString('hex')}/`;
const cli = (...args: string[]) => runCli(['--endpoints', etcd.endpoints.join(','), '--namespace', NS, ...args]);

/** One line on stderr, no stack trace. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at /);
  return lines[0]!;
}

beforeAll(async () => {
  assertBuilt();
  etcd = await startEtcd();
});

afterAll(async () => {
  await etcd?.stop();
});

describe('usage errors exit 2 with one line on stderr', () => {
  it.each([
    ['an unknown flag', ['get', 'gtx', '--bogus'], /unknown option '--bogus'/],
    ['an unknown command', ['gett', 'gtx'], /unknown command 'gett'/],
    ['an unknown resource type', ['get', 'pods'], /unknown resource type "pods"/],
    ['a bad -o value', ['get', 'gtx', '-o', 'xml'], /argument 'xml' is invalid/],
    ['a bad --status', ['get', 'gtx', '--status', 'stuckish'], /invalid --status "stuckish"/],
    ['an empty --status', ['get', 'branches', '--status', ''], /--status needs a value: use one of trying, /],
    ['a --status of commas only', ['get', 'gtx', '--status', ' , '], /--status needs a value/],
    ['a bad --sort-by', ['get', 'gtx', '--sort-by', 'color'], /invalid --sort-by "color"/],
    ['a malformed xid', ['describe', 'gtx', 'not-an-xid'], /invalid transaction id "not-an-xid"/],
    ['a branch given where an xid is expected', ['abort', 'orders.0000000000000000/abcdabcdabcd'], /expected an XID/],
    ['an xid given where a branch is expected', ['resolve', 'orders.0000000000000000', '--as', 'confirmed', '--reason', 'x'], /expected XID\/BRANCHID/],
    ['a missing argument', ['describe', 'gtx'], /missing required argument/],
    ['a bad --dial-timeout', ['--dial-timeout', 'soon', 'get', 'gtx'], /invalid --dial-timeout "soon": use a duration like 500ms, 3s or 1m30s/],
    ['a duration missing its last unit', ['--dial-timeout', '1m30', 'get', 'gtx'], /invalid --dial-timeout "1m30": use a duration like/],
    ['a duration out of range', ['get', 'gtx', '--command-timeout', '1h30m'], /invalid --command-timeout "1h30m": must be between 1ms and 1h/],
    ['a duration under a millisecond', ['get', 'gtx', '--command-timeout', '100us'], /must be between 1ms and 1h/],
    ['--cert without --key', ['--cert', '/tmp/c.pem', 'get', 'gtx'], /--cert and --key must be given together/],
    ['--app with -A', ['get', 'gtx', '--app', 'orders', '-A'], /cannot be combined/],
  ])('%s', async (_what, args, message) => {
    const r = await cli(...args);
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(message);
    // One pointer to the help, at the end, never two.
    expect(r.stderr.match(/\(see /g), r.stderr).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(/\(see 'txloop( \w+)? --help'\)$/);
    expect(r.stdout).toBe('');
  });
});

it('--dial-timeout and --command-timeout take Go-style durations, as etcdctl does: 1m30s, 1h, 500ms, 1.5s', async () => {
  for (const [dial, command] of [['1m30s', '1h'], ['500ms', '1.5s'], ['2', '1h0m0s']] as const) {
    const r = await cli('--dial-timeout', dial, '--command-timeout', command, 'get', 'gtx');
    expect(r.code, `${dial} ${command}: ${r.stderr}`).toBe(0);
  }
});

describe('--help', () => {
  it.each([[[]], [['get']], [['describe']], [['top']], [['retry']], [['abort']], [['resolve']]])('txloop %j --help prints usage and exits 0', async (cmd) => {
    const r = await runCli([...cmd, '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: txloop${cmd.length ? ` ${cmd[0]}` : ''} `));
    // The connection flags are listed by every command's help, not only the top level's.
    expect(r.stdout).toMatch(/--endpoints <urls>[\s\S]*--dial-timeout <duration>[\s\S]*--command-timeout <duration>/);
  });

  it('run as the kubectl plugin kubectl-txloop, help names the command "kubectl txloop"', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kubectl-plugin-'));
    try {
      const plugin = path.join(dir, 'kubectl-txloop');
      symlinkSync(CLI, plugin);
      const r = await runCli(['get', '--help'], {}, { argv0: plugin });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Usage: kubectl txloop get /);
      expect(r.stdout).toMatch(/kubectl txloop get branches --status parked/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('etcd unreachable: exit 1, one line, within a few seconds', () => {
  let refusedPort = 0;
  let silent: Server;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    // A port nobody listens on: connection refused.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    refusedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    // A listener that accepts TCP and never answers: only the dial timeout ends the wait.
    silent = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  it('connection refused', async () => {
    const r = await runCli(['get', 'gtx', '--endpoints', `http://127.0.0.1:${refusedPort}`]);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`^error: cannot reach etcd at http://127\\.0\\.0\\.1:${refusedPort}: .*ECONNREFUSED`));
    expect(r.ms).toBeLessThan(5_000);
  });

  it('an endpoint that accepts connections but never answers fails at --dial-timeout', async () => {
    const port = (silent.address() as AddressInfo).port;
    const r = await runCli(['describe', 'gtx', 'orders.0000000000000000', '--endpoints', `127.0.0.1:${port}`, '--dial-timeout', '1s']);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/^error: cannot reach etcd at http:\/\/127\.0\.0\.1:\d+: no answer within 1s/);
    expect(r.ms).toBeLessThan(5_000);
  });

  it('the same for a repair, for -w and for several targets (TXLOOP_ENDPOINTS)', async () => {
    const two = ['orders.0000000000000000', 'orders.0000000000000001'];
    for (const args of [['abort', 'orders.0000000000000000'], ['get', 'gtx', '-w'], ['describe', 'gtx', ...two], ['retry', ...two]]) {
      const r = await runCli(args, { TXLOOP_ENDPOINTS: `http://127.0.0.1:${refusedPort}` });
      expect(r.code, args.join(' ')).toBe(1);
      expect(oneLine(r.stderr)).toMatch(/^error: cannot reach etcd at /);
    }
  });
});

describe('get -w when etcd goes away', () => {
  let own: EtcdServer;

  beforeAll(async () => {
    own = await startEtcd();
  });

  afterAll(async () => {
    await own?.stop();
  });

  it('rides out a pause of a few seconds, and exits 1 with one line once etcd is gone for good', async () => {
    const ns = `cli-gone-${randomBytes(4).toString('hex')}/`;
    const w = spawnCli(['--endpoints', own.endpoints.join(','), '--namespace', ns, 'get', 'leaders', '-w']);
    const client = new Etcd3({ hosts: own.endpoints });
    try {
      await w.waitForLine((l) => l.startsWith('APP'), 'the header');
      // A hung etcd for 3s: fewer failed health checks than it takes to give up.
      process.kill(own.pid, 'SIGSTOP');
      await untilStopped(own.pid, 'etcd');
      await sleep(3_000); // the pause itself, not a wait for something
      process.kill(own.pid, 'SIGCONT');
      await client.put(`${ns}orders/leader`).value(JSON.stringify({ identity: 'orders#1/pid-1', since: Date.now() }));
      await w.waitForLine((l) => /^orders\s+orders#1\/pid-1\s/.test(l), 'a change made after the pause');

      process.kill(own.pid, 'SIGKILL');
      const killed = Date.now();
      // Three health checks a --dial-timeout (2s) apart, not the informer retrying quietly forever.
      expect(await w.exit(20_000)).toBe(1);
      expect(Date.now() - killed).toBeLessThan(12_000);
      expect(oneLine(w.stderr())).toMatch(new RegExp(`^error: lost connection to etcd at ${own.endpoints[0]!.replace(/\./g, '\\.')}: 3 health checks failed over \\d+s \\(last error: .*ECONNREFUSED`));
    } finally {
      client.close();
      await w.interrupt();
    }
  });
});

describe('malformed records', () => {
  const MNS = `cli-bad-${randomBytes(4).toString('hex')}/`;
  const badXid = 'orders.0000000000000001';
  let client: Etcd3;

  beforeAll(async () => {
    client = new Etcd3({ hosts: etcd.endpoints });
    await client.put(`${MNS}orders/gtx/${badXid}`).value('{"v":1,"xid":');
    await client.put(`${MNS}orders/link/${badXid}/bank/abcdabcdabcd`).value('{"v":2}');
    await client.put(`${MNS}bank/branch/${badXid}/abcdabcdabcd`).value(JSON.stringify({ v: 1, xid: badXid, tryState: 'MAYBE' }));
    await client.put(`${MNS}bank/leader`).value('[]');
    await client.put(`${MNS}bank/unrelated/key`).value('ignored');
  });

  afterAll(() => client.close());

  const mcli = (...args: string[]) => runCli(['--endpoints', etcd.endpoints.join(','), '--namespace', MNS, ...args]);

  it('a malformed global is a MALFORMED row with a warning on stderr; the command still succeeds', async () => {
    const r = await mcli('get', 'gtx');
    expect(r.code, r.stderr).toBe(0);
    expect(row(r.stdout, badXid)).toMatchObject({ STATUS: 'MALFORMED', BRANCHES: '0/1' });
    expect(r.stderr).toMatch(new RegExp(`^warning: malformed record at ${MNS}orders/gtx/${badXid}: not JSON`, 'm'));
    expect(r.stderr).toMatch(/warning: malformed record at .*\/link\/.*unsupported record version 2/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a malformed branch is a MALFORMED row; -o json shows its key, problem and raw value', async () => {
    const r = await mcli('get', 'branches');
    expect(r.code, r.stderr).toBe(0);
    expect(row(r.stdout, `${badXid}/abcdabcdabcd`)).toMatchObject({ OWNER: 'bank', STATUS: 'MALFORMED' });
    expect(r.stderr).toMatch(/warning: malformed record at .*bank\/branch\/.*: (resource must be|app must be|branchId must be)/);
    const j = JSON.parse((await mcli('get', 'branches', '-o', 'json')).stdout) as { items: Record<string, unknown>[] };
    expect(j.items[0]).toMatchObject({ key: `${MNS}bank/branch/${badXid}/abcdabcdabcd`, status: 'MALFORMED' });
    expect(j.items[0]?.raw).toContain('MAYBE');
  });

  it('describe, get leaders and -w show malformed records instead of crashing', async () => {
    const d = await mcli('describe', 'gtx', badXid);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/^Status:\s+MALFORMED$/m);
    expect(d.stdout).toMatch(/^Problem:\s+not JSON/m);
    const l = await mcli('get', 'leaders');
    expect(l.code, l.stderr).toBe(0);
    expect(row(l.stdout, 'bank')?.LEADER).toBe('MALFORMED');
    const w = spawnCli(['--endpoints', etcd.endpoints.join(','), '--namespace', MNS, 'get', 'gtx', '-w']);
    try {
      await w.waitForLine((line) => line.startsWith(badXid) && line.includes('MALFORMED'), 'the malformed row');
      // Change things only once the watch is live: -w prints the list it read first and starts
      // watching after, and a key deleted in between is never shown as DELETED (a loaded machine
      // widens that gap past the time the test takes to react). A record written now is reported.
      await client.put(`${MNS}bank/weird/ready`).value('x');
      await waitFor(() => w.stderr().includes(`${MNS}bank/weird/ready`), 'the watch to report a record written after its list');
      await client.put(`${MNS}orders/gtx/${badXid}`).value('still not json');
      await client.delete().key(`${MNS}orders/gtx/${badXid}`);
      await w.waitForLine((line) => line.startsWith(badXid) && line.includes('DELETED'), 'the deleted row');
      expect(await w.interrupt()).toBe(0);
      expect(w.stderr()).toMatch(/warning: malformed record/);
    } finally {
      await w.interrupt();
      await client.delete().key(`${MNS}bank/weird/ready`);
    }
  });

  it('a repair on a malformed record is refused with exit 1 and one line naming the record', async () => {
    await client.put(`${MNS}orders/gtx/${badXid}`).value('{"v":1,"xid":');
    const r = await mcli('abort', badXid);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`^error: malformed record at ${MNS}orders/gtx/${badXid}: not JSON`));
  });
});

describe('credentials', () => {
  let authEtcd: EtcdServer;
  const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
  const WRONG = `wrong-${randomBytes(6).toString('hex')}`;

  beforeAll(async () => {
    authEtcd = await startEtcd();
    const c = new Etcd3({ hosts: authEtcd.endpoints });
    try {
      await c.role('root').create();
      await c.user('root').create(PASSWORD);
      await c.user('root').addRole('root');
      await c.auth.authEnable();
    } finally {
      c.close();
    }
  });

  afterAll(async () => {
    await authEtcd?.stop();
  });

  it('--user name:password authenticates; a wrong password fails with one line that never contains it', async () => {
    const ok = await runCli(['get', 'gtx', '--endpoints', authEtcd.endpoints.join(','), '--user', `root:${PASSWORD}`]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/No transactions found/);
    expect(ok.stdout + ok.stderr).not.toContain(PASSWORD);

    const bad = await runCli(['get', 'gtx', '--endpoints', authEtcd.endpoints.join(','), '--user', `root:${WRONG}`]);
    expect(bad.code).toBe(1);
    expect(oneLine(bad.stderr)).toMatch(/^error: etcd rejected the credentials at /);
    expect(bad.stdout + bad.stderr).not.toContain(WRONG);
  });

  it('TXLOOP_USER and TXLOOP_PASSWORD work too, and no access without them', async () => {
    const ok = await runCli(['get', 'leaders'], { TXLOOP_ENDPOINTS: authEtcd.endpoints.join(','), TXLOOP_USER: 'root', TXLOOP_PASSWORD: PASSWORD });
    expect(ok.code, ok.stderr).toBe(0);
    const anon = await runCli(['get', 'gtx', '--endpoints', authEtcd.endpoints.join(',')]);
    expect(anon.code).toBe(1);
    expect(oneLine(anon.stderr)).toMatch(/^error: etcd at \S+ requires authentication: use --user name:password/);
    const noPw = await runCli(['get', 'gtx', '--endpoints', authEtcd.endpoints.join(','), '--user', 'root']);
    expect(noPw.code).toBe(2);
    expect(oneLine(noPw.stderr)).toMatch(/--user root has no password/);
  });
});

it('an empty namespace is not an error: a table-less notice on stderr, an empty List for -o json', async () => {
  const r = await cli('get', 'gtx');
  expect(r.code).toBe(0);
  expect(r.stdout).toBe('');
  expect(r.stderr.trim()).toBe(`No transactions found in namespace ${NS}.`);
  const j = await cli('get', 'branches', '-o', 'json');
  expect(JSON.parse(j.stdout)).toEqual({ kind: 'List', items: [] });
  expect(table((await cli('get', 'leaders', '--no-headers')).stdout).rows).toEqual([]);
});
