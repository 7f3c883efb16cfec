import { describe, expect, it } from 'vitest';
import { Keys, appOfXid, newBranchId, newXid, replicaIdOf, validateApp, validateBranchId, validateReplicaId, validateXid } from '../src/store/index.js';

describe('key layout and ids', () => {
  it('xids name their initiator app, validate, are unique, and sort by creation time', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => newXid('pay-svc', 1_700_000_000_000 + i));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids.slice(0, 100)) {
      expect(validateXid(id)).toBe(id);
      expect(appOfXid(id)).toBe('pay-svc');
    }
    expect([...ids].sort()).toEqual(ids);
    const branches = Array.from({ length: 20_000 }, () => newBranchId());
    expect(new Set(branches).size).toBe(branches.length);
    for (const b of branches.slice(0, 100)) expect(validateBranchId(b)).toBe(b);
  });

  it('a key of app "pay" never parses as app "payments" and vice versa; foreign keys are ignored', () => {
    const keys = new Keys('txloop/');
    const xid = newXid('pay');
    expect(keys.parse(keys.global(xid))).toEqual({ kind: 'global', app: 'pay', xid });
    expect(keys.parse(keys.branch('payments', xid, 'abcd1234'))).toEqual({ kind: 'branch', app: 'payments', owner: 'payments', xid, branchId: 'abcd1234' });
    expect(keys.app('pay')).toBe('txloop/pay/');
    expect(keys.parse(keys.member(xid, 'payments', 'abcd1234'))).toMatchObject({ kind: 'member', app: 'pay', owner: 'payments' });
    // Member records written before 0.2 (under link/) are still members.
    expect(keys.parse(`txloop/pay/link/${xid}/payments/abcd1234`)).toMatchObject({ kind: 'member', app: 'pay', owner: 'payments' });
    expect(keys.parse('txloop/pay/gtx/not-an-xid')).toBeUndefined();
    expect(keys.parse('other/pay/gtx/' + xid)).toBeUndefined();
    expect(keys.parse('txloop/Pay/leader')).toBeUndefined();
  });

  it('app names follow Kubernetes DNS-label rules, with an error that says what to fix', () => {
    for (const ok of ['a', 'bank-a', 'x1', 'a'.repeat(63)]) expect(validateApp(ok)).toBe(ok);
    for (const bad of ['', '-a', 'a-', 'A', 'a_b', 'a.b', 'a/b', 'a'.repeat(64), 42]) {
      expect(() => validateApp(bad)).toThrow(/use 1-63 lowercase letters, digits and '-'/);
    }
  });

  it("a replica's presence key is named by its lease id in hex, and only such a key parses as one", () => {
    const keys = new Keys('txloop/');
    const lease = '7587868470380693516'; // as etcd3 returns lease ids: decimal
    const id = replicaIdOf(lease);
    expect(id).toBe(BigInt(lease).toString(16));
    expect(validateReplicaId(id)).toBe(id);
    expect(keys.replica('pay', id)).toBe(`txloop/pay/replica/${id}`);
    expect(keys.parse(keys.replica('pay', id))).toEqual({ kind: 'replica', app: 'pay', replicaId: id });
    expect(keys.replica('pay', id).startsWith(keys.replicasOf('pay'))).toBe(true);
    expect(replicaIdOf(String(2n ** 63n - 1n))).toBe('7fffffffffffffff');
    for (const bad of ['', 'NOTHEX', 'ABC', '1'.repeat(17), 'a/b']) expect(keys.parse(`txloop/pay/replica/${bad}`)).toBeUndefined();
    expect(keys.parse('txloop/pay/replica')).toBeUndefined();
    expect(() => validateReplicaId('host-1')).toThrow(/not a replica id/);
  });
});
