/**
 * The `txloop` binary on 2-phase messages made through the SDK against a real etcd: what get and
 * describe show of a prepared, a submitted and a parked message, and the repairs the mode allows
 * (abort of a prepared message discards it; retry and resolve --as delivered of a parked delivery)
 * and refuses (abort of a submitted message, resolving a delivery as anything but delivered).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { TxloopService } from '../src/index.js';
import { assertBuilt, row, runCli, spawnCli, waitFor } from './helpers/cli.js';
import { useEtcd, type Harness } from './helpers/harness.js';

const env = useEtcd();
let h: Harness;
let ns: string;
let shop: TxloopService;
let healed = false;

const cli = (...args: string[]) => runCli(['--endpoints', env.endpoints.join(','), '--namespace', ns, ...args]);

beforeAll(() => assertBuilt());

async function setup(label: string): Promise<void> {
  ({ h, ns } = env.fresh(label));
  healed = false;
  const bank = h.service({ app: 'bank', maxAttempts: 1 }).consumer('credit', {
    deliver: () => {
      if (!healed) throw new Error('ledger down');
    },
  });
  shop = h.service({ app: 'shop' });
  await Promise.all([bank.start(), shop.start()]);
}

async function parkedMessage(): Promise<string> {
  const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', branchId: 'credit', payload: { amount: 30 } }] });
  await msg.submit();
  await waitFor(async () => (await shop.deliveries(msg.xid)).deliveries[0]!.status === 'PARKED', 'the delivery parked');
  return msg.xid;
}

describe('txloop get and describe show a message and its deliveries', () => {
  it('a prepared message: get gtx shows MSG PREPARED (active); describe shows its consumers and its check-back time', async () => {
    await setup('cli-prepared');
    const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', branchId: 'credit', payload: { amount: 30 } }], checkAfterMs: 600_000 });
    const got = await cli('get', 'gtx', '--status', 'active');
    expect(got.code, got.stderr).toBe(0);
    expect(row(got.stdout, msg.xid)).toMatchObject({ MODE: 'MSG', STATUS: 'PREPARED', BRANCHES: '0/0' });
    expect((await cli('get', 'gtx', '--status', 'prepared', '-o', 'name')).stdout.trim()).toBe(`gtx/${msg.xid}`);
    const d = await cli('describe', 'gtx', msg.xid);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/^Mode:\s+MSG$/m);
    expect(d.stdout).toMatch(/^Check After:\s+600000ms$/m);
    expect(d.stdout).toMatch(/^Check-back At:\s+\S/m);
    expect(d.stdout).toMatch(/^ {2}credit:\n {4}Owner:\s+bank\n {4}Resource:\s+credit\n {4}Status:\s+not submitted yet\n {4}Payload:\s+\{"amount":30\}$/m);
  });

  it('a submitted message with a parked delivery: get branches shows deliver / PARKED with its error, describe shows no Try of its own, and the message stays SUBMITTED', async () => {
    await setup('cli-parked');
    const xid = await parkedMessage();
    const br = await cli('get', 'branches', xid);
    expect(br.code, br.stderr).toBe(0);
    expect(row(br.stdout, `${xid}/credit`)).toMatchObject({ OWNER: 'bank', RESOURCE: 'credit', ACTION: 'deliver', STATUS: 'PARKED', ATTEMPTS: '1', 'LAST ERROR': 'ledger down' });
    expect((await cli('get', 'branches', '--status', 'parked', '-o', 'name')).stdout.trim()).toBe(`branch/${xid}/credit`);
    const d = await cli('describe', 'gtx', xid);
    expect(d.stdout).toMatch(/^Status:\s+SUBMITTED$/m);
    expect(d.stdout).toMatch(/^Decision:\s+commit by submit at /m);
    expect(d.stdout).toMatch(/^Check-back At:\s+<none>$/m);
    expect(d.stdout).toMatch(/^Branches:\s+0\/1 done, 1 parked$/m);
    expect(d.stdout).not.toMatch(/^\s+Try:/m);
    expect(d.stdout).toMatch(/Received\s+\S+\s+bank\/credit\s+consumer of message "order paid" from shop, submitted by submit/);
  });
});

describe('txloop get -w follows a message', () => {
  it('get gtx -w and get branches -w print a message as it goes PREPARED → SUBMITTED and its delivery DELIVERING → PARKED → DELIVERED after a retry', async () => {
    await setup('cli-watch');
    const args = ['--endpoints', env.endpoints.join(','), '--namespace', ns, 'get'];
    const globals = spawnCli([...args, 'gtx', '-w']);
    const branches = spawnCli([...args, 'branches', '-w']);
    try {
      await globals.waitForLine((l) => l.startsWith('XID'), 'the globals header');
      await branches.waitForLine((l) => l.startsWith('BRANCH'), 'the branches header');
      const msg = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit', branchId: 'credit' }] });
      await globals.waitForLine((l) => l.startsWith(msg.xid) && /\sMSG\s+PREPARED\s/.test(l), 'the message PREPARED');
      await msg.submit();
      await globals.waitForLine((l) => l.startsWith(msg.xid) && /\sSUBMITTED\s/.test(l), 'the message SUBMITTED');
      await branches.waitForLine((l) => l.startsWith(`${msg.xid}/credit`) && /\sPARKED\s/.test(l), 'its delivery PARKED');
      healed = true;
      expect((await cli('retry', `${msg.xid}/credit`)).code).toBe(0);
      await branches.waitForLine((l) => l.startsWith(`${msg.xid}/credit`) && /\sDELIVERED\s/.test(l), 'its delivery DELIVERED');
      await globals.waitForLine((l) => l.startsWith(msg.xid) && /\sDELIVERED\s+1\/1\s/.test(l), 'the message DELIVERED 1/1');
    } finally {
      await globals.interrupt();
      await branches.interrupt();
    }
  });
});

describe('txloop repairs on messages: what the mode allows and what it refuses', () => {
  it('abort of a prepared message is refused without --force (its check-back decides it); with --force it is discarded (dry run first); a submitted message cannot be aborted: it is never rolled back', async () => {
    await setup('cli-abort');
    const prepared = await shop.prepareMessage({ name: 'order paid', consumers: [{ service: 'bank', resource: 'credit' }] });
    const unforced = await cli('abort', prepared.xid);
    expect(unforced.code).toBe(1);
    expect(unforced.stderr).toMatch(/it is a PREPARED message, which its producer's check-back decides from its own data .* pass --force only when you know it did not/);
    expect((await shop.deliveries(prepared.xid)).status).toBe('PREPARED');
    const dry = await cli('abort', prepared.xid, '--dry-run', '--force');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.trim()).toBe(`gtx/${prepared.xid} would be discarded: nothing is delivered to its 1 consumer(s) (dry run)`);
    const r = await cli('abort', prepared.xid, '--reason', 'order cancelled', '--force');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`gtx/${prepared.xid} aborted: DISCARDED, nothing is delivered`);
    expect((await shop.deliveries(prepared.xid)).decision).toMatchObject({ outcome: 'rollback', reason: 'order cancelled', by: expect.stringMatching(/^operator/) });

    const xid = await parkedMessage();
    for (const args of [[xid], [xid, '--dry-run']]) {
      const refused = await cli('abort', ...args);
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim()).toBe(`error: cannot abort ${xid}: it is a 2-phase message already submitted (by submit, now SUBMITTED); a submitted message is delivered, never rolled back: retry or resolve its parked deliveries instead`);
    }
    const again = await cli('abort', prepared.xid, '--force');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/the message was already discarded/);
    expect((await shop.deliveries(xid)).status).toBe('SUBMITTED');
  });

  it('a parked delivery: resolve --as confirmed is refused for a message; --as delivered resolves it and the message is DELIVERED', async () => {
    await setup('cli-resolve');
    const xid = await parkedMessage();
    const wrong = await cli('resolve', `${xid}/credit`, '--as', 'confirmed', '--reason', 'x');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim()).toBe(`error: branch credit of ${xid} is parked in its deliver; it can be resolved as delivered, not confirmed`);
    const r = await cli('resolve', `${xid}/credit`, '--as', 'delivered', '--reason', 'credited by hand, OPS-9');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`branch/${xid}/credit resolved as delivered`);
    expect(r.stderr).toBe('');
    await waitFor(async () => (await shop.deliveries(xid)).status === 'DELIVERED', 'DELIVERED after the resolution');
    expect(row((await cli('get', 'branches', xid)).stdout, `${xid}/credit`)).toMatchObject({ STATUS: 'RESOLVED_DELIVERED' });
    expect((await cli('get', 'gtx', '--status', 'done', '-o', 'name')).stdout.trim()).toBe(`gtx/${xid}`);
  });

  it('retry re-queues a parked delivery with a fresh budget, and it is delivered', async () => {
    await setup('cli-retry');
    const xid = await parkedMessage();
    healed = true;
    const r = await cli('retry', xid);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`branch/${xid}/credit re-queued for deliver`);
    await waitFor(async () => (await shop.deliveries(xid)).status === 'DELIVERED', 'delivered after the retry');
    expect((await shop.deliveries(xid)).deliveries[0]).toMatchObject({ status: 'DELIVERED', attempts: 2 });
  });
});
