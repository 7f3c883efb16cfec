import { describe, expect, it } from 'vitest';
import * as txloop from '../src/index.js';
import * as testing from '../src/testing.js';
import { AbortError, EtcdUnavailable, LeadershipLost, TxloopError } from '../src/index.js';

describe('errors a caller can see', () => {
  it('every exported error class extends TxloopError and has a stable name of its own', () => {
    const classes = Object.entries({ ...txloop, ...testing } as Record<string, unknown>).filter(
      (e): e is [string, new (...a: unknown[]) => Error] => typeof e[1] === 'function' && /(Error|Exceeded|NotFound|Decided|Refused|Failed|Resource|Closed|Unavailable|Conflict|Lost|Prepared|Record)$/.test(e[0]),
    );
    expect(classes.length).toBeGreaterThan(15);
    for (const [name, cls] of classes) {
      if (cls === TxloopError) continue;
      expect(cls.prototype, name).toBeInstanceOf(TxloopError);
      // Constructors take strings, or lists where they name several things.
      const make = (...args: unknown[]): Error | undefined => {
        try {
          return new cls(...args);
        } catch {
          return undefined;
        }
      };
      const instance = make('x', 'y', 'z', 'w') ?? make('x', ['y'], 'z', 'w') ?? make(['x'], 'y', 'z', 'w');
      expect(instance?.name, name).toBe(name);
    }
  });

  it('LeadershipLost says a write was refused only when etcd refused one', () => {
    expect(new LeadershipLost('txloop/acct/leader', true).message).toBe('no longer the leader (txloop/acct/leader changed); etcd refused the fenced write');
    const noticed = new LeadershipLost('txloop/acct/leader');
    expect(noticed.message).toBe('no longer the leader (txloop/acct/leader); stopped before acting');
    expect(noticed.message).not.toMatch(/refused/);
    expect(noticed.writeRefused).toBe(false);
  });

  it("EtcdUnavailable names the endpoints and keeps the library's error as cause, in one short clause", () => {
    const cause = new Error('14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379. Resolution note: ');
    const err = new EtcdUnavailable(['http://127.0.0.1:2379'], cause, 'begin');
    expect(err.message).toBe('begin failed: etcd at http://127.0.0.1:2379 is unavailable (connect ECONNREFUSED 127.0.0.1:2379)');
    expect(err.cause).toBe(cause);
    expect(new AbortError('shop.x', new Error('gone'), true).message).toMatch(/may have landed/);
  });
});
