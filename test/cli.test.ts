/**
 * The `txloop` binary against a real etcd holding real transactions made through the SDK: one
 * committed, one with a branch whose confirm always throws (parked), one whose confirm fails
 * until the test "heals" it (for retry), and one left TRYING (for abort).
 */
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TxloopService, type GlobalTransaction } from '../src/index.js';
import { startEtcd, type EtcdServer } from '../src/testing.js';
import { assertBuilt, row, runCli, spawnCli, table, waitFor } from './helpers/cli.js';

const NS = `cli-${randomBytes(4).toString('hex')}/`;
const quiet = pino({ level: process.env.TXLOOP_TEST_LOG ?? 'silent' });

let etcd: EtcdServer;
let orders: TxloopService;
let bank: TxloopService;
let refundHealed = false;

/** xids of the fixture transactions */
const tx = { committed: '', stuck: '', healing: '', trying: '' };
let stuckCredit = '';
let stuckDebit = '';

const cli = (...args: string[]) => runCli(['--endpoints', etcd.endpoints.join(','), '--namespace', NS, ...args]);

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function globalJson(xid: string): Promise<Json> {
  const r = await cli('get', 'gtx', xid, '-o', 'json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Json;
}

async function parked(xid: string): Promise<boolean> {
  return (await orders.get(xid)).branches.some((b) => b.state === 'PARKED');
}

async function begin(name: string, resources: string[], timeoutMs = 600_000): Promise<{ t: GlobalTransaction; branches: string[] }> {
  const t = await orders.begin({ name, timeoutMs });
  const branches: string[] = [];
  for (const r of resources) branches.push((await bank.tryBranch(t.context, r, { order: name, amount: 30 })).branchId);
  return { t, branches };
}

beforeAll(async () => {
  assertBuilt();
  etcd = await startEtcd();
  const common = {
    namespace: NS,
    etcd: { endpoints: etcd.endpoints },
    // Long enough that a loaded machine's stall does not cost a leader its lease mid-test.
    leaseTtlSeconds: 10,
    deadThreshold: 2,
    retryBaseMs: 20,
    retryMaxMs: 100,
    graceMs: 200,
    statsIntervalMs: 200,
    logger: quiet,
  };
  orders = new TxloopService({ app: 'orders', ...common });
  bank = new TxloopService({ app: 'bank', ...common });
  const ok = { try: () => 'reserved', confirm: () => undefined, cancel: () => undefined };
  bank.resource('debit', ok);
  bank.resource('credit', { ...ok, confirm: () => Promise.reject(new Error('credit ledger unavailable')) });
  bank.resource('refund', {
    ...ok,
    confirm: () => {
      if (!refundHealed) throw new Error('refund gateway down');
    },
  });
  await orders.start();
  await bank.start();

  const committed = await begin('pay order 1', ['debit']);
  await committed.t.commit();
  tx.committed = committed.t.xid;

  const stuck = await begin('pay order 2', ['debit', 'credit']);
  await stuck.t.commit();
  tx.stuck = stuck.t.xid;
  [stuckDebit, stuckCredit] = stuck.branches as [string, string];

  const healing = await begin('refund order 3', ['refund']);
  await healing.t.commit();
  tx.healing = healing.t.xid;

  const trying = await begin('pay order 4', ['debit']);
  tx.trying = trying.t.xid;

  await orders.waitForCompletion(tx.committed, { timeoutMs: 15_000 });
  await waitFor(() => parked(tx.stuck), 'the credit branch to be parked');
  await waitFor(() => parked(tx.healing), 'the refund branch to be parked');
});

afterAll(async () => {
  await orders?.close();
  await bank?.close();
  await etcd?.stop();
});

describe('reading', () => {
  it('get gtx prints a CAPS-header table with each transaction, its status, done/total branches and a kubectl-style AGE', async () => {
    const r = await cli('get', 'gtx');
    expect(r.code, r.stderr).toBe(0);
    expect(table(r.stdout).header).toEqual(['XID', 'APP', 'MODE', 'STATUS', 'BRANCHES', 'AGE']);
    expect(row(r.stdout, tx.committed)).toMatchObject({ APP: 'orders', MODE: 'TCC', STATUS: 'COMMITTED', BRANCHES: '1/1' });
    expect(row(r.stdout, tx.stuck)).toMatchObject({ STATUS: 'COMMITTING', BRANCHES: '1/2' });
    expect(row(r.stdout, tx.healing)).toMatchObject({ STATUS: 'COMMITTING', BRANCHES: '0/1' });
    expect(row(r.stdout, tx.trying)).toMatchObject({ STATUS: 'TRYING', BRANCHES: '0/1' });
    expect(row(r.stdout, tx.committed)?.AGE).toMatch(/^\d+s$/);
    // The alias `globals` and -A are the same listing.
    const all = await cli('get', 'globals', '-A');
    expect(table(all.stdout).rows.map((c) => c[0]).sort()).toEqual(table(r.stdout).rows.map((c) => c[0]).sort());
  });

  it('get gtx --status filters by status, `failed` meaning "has a parked branch"; --app filters by initiator', async () => {
    const failed = await cli('get', 'gtx', '--status', 'failed');
    expect(table(failed.stdout).rows.map((c) => c[0]).sort()).toEqual([tx.stuck, tx.healing].sort());
    const trying = await cli('get', 'gtx', '--status', 'trying');
    expect(table(trying.stdout).rows.map((c) => c[0])).toEqual([tx.trying]);
    const none = await cli('get', 'gtx', '--app', 'bank');
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/No transactions found/);
  });

  it('get branches shows OWNER, RESOURCE, ACTION, STATUS, ATTEMPTS, NEXT RETRY, LAST ERROR and AGE; --status failed keeps the parked one', async () => {
    const r = await cli('get', 'branches', '--status', 'failed');
    expect(r.code, r.stderr).toBe(0);
    expect(table(r.stdout).header).toEqual(['BRANCH', 'OWNER', 'RESOURCE', 'ACTION', 'STATUS', 'ATTEMPTS', 'NEXT RETRY', 'LAST ERROR', 'AGE']);
    expect(row(r.stdout, `${tx.stuck}/${stuckCredit}`)).toMatchObject({
      OWNER: 'bank',
      RESOURCE: 'credit',
      ACTION: 'confirm',
      STATUS: 'PARKED',
      ATTEMPTS: '2',
      'NEXT RETRY': '<none>',
      'LAST ERROR': 'credit ledger unavailable',
    });
    expect(row(r.stdout, `${tx.stuck}/${stuckDebit}`)).toBeUndefined();
    const pending = await cli('get', 'br', '--status', 'pending', '--app', 'bank');
    const rows = table(pending.stdout).rows;
    expect(rows).toHaveLength(1);
    expect(rows[0]?.[0]?.startsWith(`${tx.trying}/`)).toBe(true);
    expect(rows[0]?.[3]).toBe('<none>'); // ACTION: not decided yet
    expect(rows[0]?.[4]).toBe('PREPARED');
  });

  it('get gtx XID -o json prints the full global record with its branch records', async () => {
    const g = await globalJson(tx.stuck);
    expect(g).toMatchObject({ xid: tx.stuck, app: 'orders', name: 'pay order 2', mode: 'tcc', status: 'COMMITTING', decision: { outcome: 'commit', by: 'commit' } });
    expect(g.events.map((e: Json) => e.type)).toContain('Decided');
    const credit = (g.branches as Json[]).find((b) => b.branchId === stuckCredit)!;
    expect(credit).toMatchObject({ owner: 'bank', resource: 'credit', status: 'PARKED', tryState: 'SUCCEEDED', payload: { order: 'pay order 2', amount: 30 } });
    expect(credit.phase2).toMatchObject({ action: 'confirm', state: 'PARKED', attempts: 2, lastError: 'credit ledger unavailable' });
    // Several objects come as a kubectl List.
    const list = JSON.parse((await cli('get', 'gtx', '-o', 'json')).stdout) as Json;
    expect(list.kind).toBe('List');
    expect(list.items).toHaveLength(4);
  });

  it('get -o yaml prints the same records as YAML, -o name prints gtx/<xid> lines', async () => {
    const y = await cli('get', 'gtx', tx.committed, '-o', 'yaml');
    expect(y.code, y.stderr).toBe(0);
    expect(parseYaml(y.stdout)).toMatchObject({ xid: tx.committed, status: 'COMMITTED', branches: [{ resource: 'debit', status: 'CONFIRMED' }] });
    const n = await cli('get', 'gtx', '--status', 'failed', '-o', 'name', '--sort-by', '.createdAt');
    expect(n.stdout.trim().split('\n')).toEqual([`gtx/${tx.stuck}`, `gtx/${tx.healing}`]);
  });

  it('every -o name line is accepted back: describe gtx/X and branch/X/B, get gtx/X, get leaders leader/APP', async () => {
    const lines = async (...args: string[]): Promise<string[]> => {
      const r = await cli(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout.trim().split('\n');
    };
    const gtx = await lines('get', 'gtx', tx.stuck, '-o', 'name');
    expect(gtx).toEqual([`gtx/${tx.stuck}`]);
    const described = await lines('describe', ...gtx);
    expect(described.join('\n')).toMatch(new RegExp(`^Name:\\s+${tx.stuck.replace('.', '\\.')}$`, 'm'));

    const branch = await lines('get', 'branches', `${tx.stuck}/${stuckCredit}`, '-o', 'name');
    expect(branch).toEqual([`branch/${tx.stuck}/${stuckCredit}`]);
    const both = (await lines('describe', ...gtx, ...branch)).join('\n');
    expect(both).toMatch(new RegExp(`^Name:\\s+${tx.stuck.replace('.', '\\.')}/${stuckCredit}$`, 'm'));
    expect(both.match(/^Name:/gm)).toHaveLength(2);

    // kubectl's `get TYPE/NAME`: the same rows as `get TYPE NAME`.
    expect(await lines('get', `gtx/${tx.stuck}`, '-o', 'name')).toEqual(gtx);
    expect(row((await cli('get', ...gtx)).stdout, tx.stuck)).toMatchObject({ STATUS: 'COMMITTING' });
    expect(row((await cli('get', ...branch)).stdout, `${tx.stuck}/${stuckCredit}`)).toMatchObject({ STATUS: 'PARKED' });

    const leaders = await lines('get', 'leaders', '-o', 'name');
    expect(leaders).toEqual(expect.arrayContaining(['leader/bank', 'leader/orders']));
    expect(await lines('get', 'leaders', ...leaders, '-o', 'name')).toEqual(leaders);
    expect(await lines('get', ...leaders, '-o', 'name')).toEqual(leaders);

    // Names of two types in one get, or a typed name next to a bare one, are usage errors.
    for (const args of [['get', ...gtx, ...branch], ['get', ...gtx, tx.committed], ['describe', ...leaders], ['get', 'gtx', ...leaders]]) {
      const r = await cli(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('get gtx -o wide adds the deadline of a TRYING transaction and who decided the others', async () => {
    const r = await cli('get', 'gtx', '-o', 'wide', '--sort-by', 'status');
    expect(table(r.stdout).header).toEqual(['XID', 'APP', 'MODE', 'STATUS', 'BRANCHES', 'PARKED', 'NAME', 'DECIDED BY', 'DEADLINE', 'AGE']);
    expect(row(r.stdout, tx.trying)?.DEADLINE).toMatch(/^in \d+m/);
    expect(row(r.stdout, tx.stuck)).toMatchObject({ PARKED: '1', NAME: 'pay order 2', 'DECIDED BY': 'commit' });
    expect(table(r.stdout).rows.map((c) => c[3])).toEqual(['COMMITTED', 'COMMITTING', 'COMMITTING', 'TRYING']);
  });

  it('describe gtx shows the global, every branch with attempts, error and next retry, and Events last', async () => {
    const r = await cli('describe', 'gtx', tx.stuck);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(new RegExp(`^Name:\\s+${tx.stuck.replace('.', '\\.')}$`, 'm'));
    expect(out).toMatch(/^Status:\s+COMMITTING$/m);
    expect(out).toMatch(/^Decision:\s+commit by commit at /m);
    expect(out).toMatch(/^Branches:\s+1\/2 done, 1 parked$/m);
    const creditSection = out.slice(out.indexOf(`  ${stuckCredit}:`));
    expect(creditSection).toMatch(/Status:\s+PARKED/);
    expect(creditSection).toMatch(/Attempts:\s+2/);
    expect(creditSection).toMatch(/Next Retry:\s+<none>/);
    expect(creditSection).toMatch(/Last Error:\s+credit ledger unavailable/);
    // Events at the bottom, in time order, kubectl columns.
    const events = out.slice(out.indexOf('\nEvents:'));
    expect(events).toMatch(/Type\s+Reason\s+Age\s+From\s+Message/);
    const at = (type: string): number => events.indexOf(`  ${type}  `);
    const last = (type: string): number => events.lastIndexOf(`  ${type}  `);
    for (const t of ['Began', 'Registered', 'TrySucceeded', 'Decided', 'Confirmed', 'AttemptFailed', 'Parked']) expect(at(t), t).toBeGreaterThan(0);
    expect(at('Began')).toBeLessThan(at('Registered'));
    expect(last('TrySucceeded')).toBeLessThan(at('Decided'));
    expect(at('Decided')).toBeLessThan(at('Confirmed'));
    expect(at('Decided')).toBeLessThan(at('AttemptFailed'));
    expect(at('AttemptFailed')).toBeLessThan(at('Parked'));
    expect(events).toMatch(new RegExp(`Warning\\s+Parked\\s+\\S+\\s+bank/${stuckCredit}\\s+confirm failed 2 times`));
    expect(out.indexOf('\nEvents:')).toBeGreaterThan(out.indexOf(`  ${stuckCredit}:`));
  });

  it('describe of several transactions prints each one found and reports the others, exit 1', async () => {
    const ghost = 'orders.0000000000000000';
    for (const names of [[tx.committed, ghost], [ghost, tx.committed]]) {
      const r = await cli('describe', 'gtx', ...names);
      expect(r.code, names.join(' ')).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`^Name:\\s+${tx.committed.replace('.', '\\.')}$`, 'm'));
      expect(r.stderr.trim()).toMatch(new RegExp(`^error: transaction ${ghost.replace('.', '\\.')} does not exist`));
    }
    const two = await cli('describe', 'gtx', tx.committed, tx.stuck);
    expect(two.code, two.stderr).toBe(0);
    expect(two.stdout).toMatch(/\n\nName: /);
    expect(two.stdout.match(/^Name:/gm)).toHaveLength(2);
  });

  it("get leaders and top show each service's current leader, its queue depth, requeues and failures", async () => {
    const leaders = await cli('get', 'leaders');
    expect(leaders.code, leaders.stderr).toBe(0);
    expect(table(leaders.stdout).header).toEqual(['APP', 'LEADER', 'HOST', 'PID', 'REPLICAS', 'AGE']);
    expect(row(leaders.stdout, 'bank')?.REPLICAS).toBe('1');
    expect(row(leaders.stdout, 'bank')?.PID).toBe(String(process.pid));
    expect(row(leaders.stdout, 'orders')?.LEADER).not.toBe('<none>');
    // -o wide: the lease in hex, as etcdctl prints lease ids; -o json keeps the record's decimal.
    const wide = await cli('get', 'leaders', 'bank', '-o', 'wide');
    const lease = (JSON.parse((await cli('get', 'leaders', 'bank', '-o', 'json')).stdout) as Json).leader.lease as string;
    expect(row(wide.stdout, 'bank')?.LEASE).toBe(BigInt(lease).toString(16));
    const top = await waitFor(async () => {
      const r = await cli('top');
      const bankRow = row(r.stdout, 'bank');
      return bankRow && bankRow.PARKED === '2' ? r : undefined;
    }, 'the bank leader to publish stats counting its 2 parked branches');
    expect(table(top.stdout).header).toEqual(['APP', 'LEADER', 'REPLICAS', 'QUEUE', 'PROCESSING', 'WAITING', 'REQUEUES', 'SUCCEEDED', 'FAILED', 'PARKED', 'MALFORMED', 'UPDATED']);
    const bankRow = row(top.stdout, 'bank')!;
    expect(Number(bankRow.QUEUE)).toBeGreaterThanOrEqual(0);
    expect(Number(bankRow.FAILED)).toBeGreaterThanOrEqual(2);
    expect(Number(bankRow.REQUEUES)).toBeGreaterThan(0);
    expect((await cli('top', '--sort-by', 'requeues')).code).toBe(0);
  });

  it('TXLOOP_ENDPOINTS and TXLOOP_NAMESPACE stand in for --endpoints and --namespace', async () => {
    const r = await runCli(['get', 'gtx', tx.committed, '-o', 'name'], { TXLOOP_ENDPOINTS: etcd.endpoints.join(','), TXLOOP_NAMESPACE: NS.slice(0, -1) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`gtx/${tx.committed}`);
  });
});

describe('watch', () => {
  it('get gtx -w prints the header once, then a row per change, until SIGINT', async () => {
    const w = spawnCli(['--endpoints', etcd.endpoints.join(','), '--namespace', NS, 'get', 'gtx', '-w']);
    try {
      await w.waitForLine((l) => l.startsWith(tx.committed), 'the initial rows');
      const { t } = await begin('watched order', ['debit']);
      await w.waitForLine((l) => l.startsWith(t.xid) && /\sTRYING\s/.test(l), 'the new transaction as TRYING');
      await t.commit();
      await w.waitForLine((l) => l.startsWith(t.xid) && /\sCOMMITTED\s+1\/1\s/.test(l), 'the new transaction as COMMITTED 1/1');
      expect(await w.interrupt()).toBe(0);
      const lines = w.lines();
      expect(lines.filter((l) => l.startsWith('XID'))).toHaveLength(1);
      expect(lines[0]).toMatch(/^XID\s+APP\s+MODE\s+STATUS\s+BRANCHES\s+AGE$/);
      expect(lines.filter((l) => l.startsWith(t.xid)).length).toBeGreaterThanOrEqual(2);
      // Nothing else changed: the fixture transactions are not printed twice.
      expect(lines.filter((l) => l.startsWith(tx.committed))).toHaveLength(1);
      expect(w.stderr()).toBe('');
    } finally {
      await w.interrupt();
    }
  });

  it('-w keeps rows under their headers when the first list was empty', async () => {
    /** Where each column starts: cells are separated by two or more spaces. */
    const starts = (line: string): number[] => [...line.matchAll(/\S+(?: \S+)*/g)].map((m) => m.index);
    const args = ['--endpoints', etcd.endpoints.join(','), '--namespace', NS];
    const globals = spawnCli([...args, 'get', 'gtx', '--status', 'rolled_back', '-w']);
    const branches = spawnCli([...args, 'get', 'branches', '--status', 'cancelled', '-w']);
    try {
      const gHeader = await globals.waitForLine((l) => l.startsWith('XID'), 'the globals header');
      const bHeader = await branches.waitForLine((l) => l.startsWith('BRANCH'), 'the branches header');
      const { t } = await begin('rolled back order', ['debit']);
      await t.rollback();
      const gRow = await globals.waitForLine((l) => l.startsWith(t.xid) && /\sROLLED_BACK\s/.test(l), 'the rolled back transaction');
      const bRow = await branches.waitForLine((l) => l.startsWith(`${t.xid}/`) && /\sCANCELLED\s/.test(l), 'the cancelled branch');
      expect(starts(gRow), `${gHeader}\n${gRow}`).toEqual(starts(gHeader));
      expect(starts(bRow), `${bHeader}\n${bRow}`).toEqual(starts(bHeader));
    } finally {
      await globals.interrupt();
      await branches.interrupt();
    }
  });
});

describe('repairs', () => {
  it('retry --dry-run changes nothing; retry XID re-queues its parked branch and its service confirms it', async () => {
    const dry = await cli('retry', tx.healing, '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would be re-queued for confirm \(dry run\)/);
    expect((await globalJson(tx.healing)).branches[0].phase2.state).toBe('PARKED');

    // A watch on parked branches sees it leave: one more row in its new state.
    const w = spawnCli(['--endpoints', etcd.endpoints.join(','), '--namespace', NS, 'get', 'branches', '--status', 'failed', '-w']);
    try {
      await w.waitForLine((l) => l.startsWith(`${tx.healing}/`) && /\sPARKED\s/.test(l), 'the parked refund branch');
      refundHealed = true;
      const r = await cli('retry', tx.healing);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^branch/${tx.healing.replace('.', '\\.')}/\\w+ re-queued for confirm$`, 'm'));
      await w.waitForLine((l) => l.startsWith(`${tx.healing}/`) && /\s(CONFIRMING|CONFIRMED)\s/.test(l), 'the branch leaving PARKED');
    } finally {
      expect(await w.interrupt()).toBe(0);
    }
    const done = await waitFor(async () => {
      const g = await globalJson(tx.healing);
      return g.status === 'COMMITTED' ? g : undefined;
    }, 'the retried transaction to commit');
    expect(done.branches[0].events.map((e: Json) => e.type)).toEqual(expect.arrayContaining(['Parked', 'Retried', 'Confirmed']));
  });

  it('retry of a branch that is not parked is refused with exit 1, naming the status the tables show, and changes nothing', async () => {
    const r = await cli('retry', `${tx.stuck}/${stuckDebit}`);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/not parked \(it is CONFIRMED\)/);
    const none = await cli('retry', tx.committed);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/\(COMMITTED\) has no parked branch/);
  });

  it('retry of a branch whose owner is down after the decision names it CONFIRMING, as get branches does', async () => {
    // The owner tried its branch and went away; the commit's order waits for it, with no progress recorded.
    const vault = new TxloopService({ app: 'vault', namespace: NS, etcd: { endpoints: etcd.endpoints }, leaseTtlSeconds: 10, logger: quiet });
    vault.resource('hold', { try: () => 'held', confirm: () => undefined, cancel: () => undefined });
    await vault.start();
    const t = await orders.begin({ name: 'vault order', timeoutMs: 600_000 });
    const { branchId } = await vault.tryBranch(t.context, 'hold', {});
    await vault.close();
    await t.commit();
    const branch = `${t.xid}/${branchId}`;
    const listed = await cli('get', 'branches', branch);
    expect(row(listed.stdout, branch)?.STATUS).toBe('CONFIRMING');
    const r = await cli('retry', branch);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/not parked \(it is CONFIRMING\); only parked branches can be retried$/);
    // Before the decision, the same refusal says PREPARED.
    const open = await begin('open order', ['debit']);
    const pending = await cli('retry', `${open.t.xid}/${open.branches[0]}`);
    expect(pending.code).toBe(1);
    expect(pending.stderr).toMatch(/\(it is PREPARED\)/);
    await open.t.rollback();
  });

  it('abort --dry-run checks only; abort rolls back a TRYING transaction as the operator, with the reason', async () => {
    const dry = await cli('abort', tx.trying, '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would be rolled back/);
    expect((await globalJson(tx.trying)).status).toBe('TRYING');

    const r = await cli('abort', tx.trying, '--reason', 'customer cancelled by phone');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/aborted: ROLLING_BACK, cancel ordered for 1\/1/);
    await waitFor(async () => (await globalJson(tx.trying)).status === 'ROLLED_BACK', 'the aborted transaction to roll back');
    const d = await cli('describe', 'gtx', tx.trying);
    // The same operator identity as retry and resolve record.
    expect(d.stdout).toMatch(new RegExp(`^Decision:\\s+rollback by operator:${userInfo().username} at `, 'm'));
    expect(d.stdout).toMatch(/^Reason:\s+customer cancelled by phone$/m);
  });

  it('abort of a decided transaction is refused: exit 1 with one line naming the outcome', async () => {
    const r = await cli('abort', tx.committed);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(/^error: cannot abort .*already decided: commit \(by commit, now COMMITTED\); only an undecided transaction \(TRYING, RUNNING, PREPARED\) can be aborted$/);
    expect((await globalJson(tx.committed)).status).toBe('COMMITTED');
  });

  it('resolve refuses a branch that is not parked (exit 1) and needs --as and --reason (exit 2)', async () => {
    const done = await cli('resolve', `${tx.stuck}/${stuckDebit}`, '--as', 'confirmed', '--reason', 'x');
    expect(done.code).toBe(1);
    expect(done.stderr).toMatch(/already done \(confirm\); nothing to resolve/);
    const noReason = await cli('resolve', `${tx.stuck}/${stuckCredit}`, '--as', 'confirmed');
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/--reason is required/);
    const badAs = await cli('resolve', `${tx.stuck}/${stuckCredit}`, '--as', 'maybe', '--reason', 'x');
    expect(badAs.code).toBe(2);
    const noAs = await cli('resolve', `${tx.stuck}/${stuckCredit}`, '--reason', 'x');
    expect(noAs.code).toBe(2);
    expect((await globalJson(tx.stuck)).status).toBe('COMMITTING');
  });

  it("resolve records a human's decision on a parked branch; describe shows it and the transaction completes", async () => {
    const branch = `${tx.stuck}/${stuckCredit}`;
    const dry = await cli('resolve', branch, '--as', 'confirmed', '--reason', 'credited by hand, ticket OPS-42', '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would be resolved as confirmed \(dry run\)/);
    expect((await globalJson(tx.stuck)).status).toBe('COMMITTING');

    const r = await cli('resolve', `branch/${branch}`, '--as', 'confirmed', '--reason', 'credited by hand, ticket OPS-42');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`branch/${branch} resolved as confirmed`);
    await waitFor(async () => (await globalJson(tx.stuck)).status === 'COMMITTED', 'the resolved transaction to complete');
    const d = await cli('describe', 'gtx', tx.stuck);
    const credit = d.stdout.slice(d.stdout.indexOf(`  ${stuckCredit}:`));
    expect(credit).toMatch(/Status:\s+RESOLVED_CONFIRMED/);
    expect(credit).toMatch(/Resolution:\s+confirmed by operator:\S+ at .*: credited by hand, ticket OPS-42/);
    expect(d.stdout).toMatch(/Warning\s+Resolved\s+.*resolved as confirmed by operator:\S+: credited by hand/);
    const again = await cli('resolve', branch, '--as', 'confirmed', '--reason', 'twice');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already done \(resolved as confirmed\)/);
  });

  it('an unknown but well-formed xid is exit 1 with one line, for get (also with -w, instead of waiting), describe, abort, retry and resolve', async () => {
    const ghost = 'orders.0000000000000000';
    for (const args of [['get', 'gtx', ghost], ['get', 'gtx', ghost, '-w'], ['get', 'branches', `${ghost}/abcdabcdabcd`, '-w'], ['describe', 'gtx', ghost], ['abort', ghost], ['retry', ghost], ['resolve', `${ghost}/abcdabcdabcd`, '--as', 'cancelled', '--reason', 'x']]) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toMatch(/not found|does not exist/);
    }
  });
});
