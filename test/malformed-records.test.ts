import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { MalformedRecords } from '../src/runtime/index.js';

describe('invariant 9: the malformed-record tally is bounded and deduplicated', () => {
  it('past its limit it keeps counting each bad key once, however often a resync reports it, and forgets a deleted one', () => {
    const m = new MalformedRecords(pino({ level: 'silent' }), 2);
    const keys = ['a', 'b', 'c', 'd'];
    for (let resync = 0; resync < 3; resync++) for (const k of keys) m.report(k, 'branch', 'bad', '7');
    expect(m.counts().branch).toBe(2);
    expect(m.counts().unknown).toBe(2); // c and d, once each
    m.seen('d', undefined);
    expect(m.counts().unknown).toBe(1);
    m.seen('a', undefined);
    expect(m.counts().branch).toBe(1);
  });

  it('a record is reported once per value: a resync of the same revision is silent, a new bad value is reported again', () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const m = new MalformedRecords(logger);
    m.report('k', 'gtx', 'not JSON', '5');
    m.report('k', 'gtx', 'not JSON', '5');
    m.report('k', 'gtx', 'orphan', '5');
    expect(lines.filter((l) => l.includes('malformed record skipped'))).toHaveLength(1);
    m.seen('k', '5'); // the same value again (resync): nothing forgotten
    expect(m.counts().gtx).toBe(1);
    m.seen('k', '9'); // rewritten: judged again
    m.report('k', 'gtx', 'still not JSON', '9');
    expect(lines.filter((l) => l.includes('malformed record skipped'))).toHaveLength(2);
  });
});
