/**
 * What the CLI says about a transaction must be true, and say it once: an abort refused names the
 * xid once; a transaction whose global record is gone while its branches remain (get branches still
 * lists them) is described as exactly that, never as one that "does not exist".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TxloopService } from '../src/index.js';
import { assertBuilt, row, runCli } from './helpers/cli.js';
import { freshNamespace, ordersAndBank, useEtcd, type Harness } from './helpers/harness.js';

const env = useEtcd();
const ns = freshNamespace('messages');
let services: Harness;
let orders: TxloopService;
let bank: TxloopService;
const cli = (...args: string[]) => runCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, ...args]);
const occurrences = (text: string, part: string): number => text.split(part).length - 1;

/** A transaction with one prepared branch; returns its xid and branch id. */
async function prepared(name: string): Promise<{ xid: string; branchId: string }> {
  const t = await orders.begin({ name, timeoutMs: 600_000 });
  const { branchId } = await bank.tryBranch(t.context, 'hold', { name });
  return { xid: t.xid, branchId };
}

let committed = '';
/** Its global record deleted by hand; its member record and branch remain. */
let noGlobal = { xid: '', branchId: '' };
/** Its global record and member record deleted by hand; the branch record remains. */
let branchOnly = { xid: '', branchId: '' };

beforeAll(async () => {
  assertBuilt();
  ({ services, orders, bank } = await ordersAndBank(() => env.endpoints, ns));
  const c = await prepared('committed');
  await orders.commit(c.xid);
  await orders.waitForCompletion(c.xid, { timeoutMs: 20_000 });
  committed = c.xid;
  noGlobal = await prepared('global deleted');
  await env.client.delete().key(`${ns}orders/gtx/${noGlobal.xid}`);
  branchOnly = await prepared('global and member deleted');
  await env.client.delete().key(`${ns}orders/gtx/${branchOnly.xid}`);
  await env.client.delete().prefix(`${ns}orders/member/${branchOnly.xid}/`);
}, 60_000);

afterAll(async () => {
  await services?.closeAll();
});

describe('messages say what is true, once', () => {
  it('abort of a decided transaction names the xid once, with the decision that won', async () => {
    for (const dry of [[], ['--dry-run']]) {
      const r = await cli('abort', committed, ...dry);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(`error: cannot abort ${committed}: it was already decided: commit (by commit, now COMMITTED); only an undecided transaction (TRYING, RUNNING, PREPARED) can be aborted`);
      expect(occurrences(r.stderr, committed)).toBe(1);
    }
  });

  it('a transaction whose global record is gone is described as that, with what remains of it', async () => {
    const { xid, branchId } = noGlobal;
    expect(row((await cli('get', 'branches', xid)).stdout, `${xid}/${branchId}`)).toMatchObject({ OWNER: 'bank', STATUS: 'PREPARED' });
    const gtx = await cli('describe', 'gtx', xid);
    expect(gtx.code).toBe(1);
    expect(gtx.stderr).not.toMatch(/does not exist|collected/);
    expect(gtx.stderr.trim()).toBe(`error: transaction ${xid} has no global record, yet 1 branch record and 1 member record of it remain (get branches ${xid} lists it)`);
    const branch = await cli('describe', 'branch', `${xid}/${branchId}`);
    expect(branch.code, branch.stderr).toBe(0);
    expect(branch.stdout).toMatch(new RegExp(`^Transaction:\\s+${xid.replace('.', '\\.')} \\(no global record\\)$`, 'm'));
    expect(branch.stdout).toMatch(/^Status:\s+PREPARED$/m);
  });

  it('a branch listed by get branches whose global record and member record are gone can be described, retried and aborted truthfully', async () => {
    const { xid, branchId } = branchOnly;
    const name = `${xid}/${branchId}`;
    expect(row((await cli('get', 'branches')).stdout, name)).toMatchObject({ OWNER: 'bank', STATUS: 'PREPARED' });
    const d = await cli('describe', 'branch', name);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(new RegExp(`^Name:\\s+${name.replace('.', '\\.')}$`, 'm'));
    expect(d.stdout).toMatch(/^Transaction:\s+\S+ \(no global record, no member record of this branch\)$/m);
    expect(d.stdout).toMatch(/^Owner:\s+bank$/m);
    // The repair is refused for what the branch is, not because "the transaction does not exist".
    const retry = await cli('retry', name);
    expect(retry.code).toBe(1);
    expect(retry.stderr.trim()).toBe(`error: branch ${branchId} of ${xid} is not parked (it is PREPARED); only parked branches can be retried`);
    for (const args of [['abort', xid], ['retry', xid], ['describe', 'gtx', xid]]) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim(), args.join(' ')).toBe(`error: transaction ${xid} has no global record, yet 1 branch record of it remains (get branches ${xid} lists it)`);
    }
  });

  it('what does not exist is still reported as not existing', async () => {
    const ghost = 'orders.0000000000000000';
    const gone = await cli('describe', 'branch', `${ghost}/abcdabcdabcd`);
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toBe(`error: transaction ${ghost} does not exist (never begun, or already collected after its retention)`);
    const noBranch = await cli('describe', 'branch', `${committed}/abcdabcdabcd`);
    expect(noBranch.code).toBe(1);
    expect(noBranch.stderr.trim()).toBe(`error: branch abcdabcdabcd of transaction ${committed} does not exist`);
  });
});
