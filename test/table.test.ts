/** src/table.ts: the one table renderer of the CLI, the demo and the bench. */
import { describe, expect, it } from 'vitest';
import { renderRows } from '../src/table.js';

describe('renderRows', () => {
  it('by default pads columns three spaces apart, left-aligned, the last cell unpadded (the CLI)', () => {
    expect(renderRows([['XID', 'STATUS', 'AGE'], ['transfer.1', 'COMMITTED', '5s'], ['t.2', 'TRYING', '']])).toEqual([
      'XID          STATUS      AGE',
      'transfer.1   COMMITTED   5s',
      't.2          TRYING',
    ]);
  });

  it('measures display width: wide characters take two columns, combining marks none', () => {
    expect(renderRows([['名前', 'x'], ['ab', 'y'], ['é', 'z']])).toEqual(['名前   x', 'ab     y', 'é      z']);
  });

  it('right-aligns numbers in any column and the columns given, header included (the bench and the demo)', () => {
    expect(
      renderRows(
        [
          ['THROUGHPUT', 'COUNT', 'PER SECOND'],
          ['raw', 10000, '4601.2'],
          ['tcc', 200, '336.0'],
        ],
        { gap: 2 },
      ),
    ).toEqual(['THROUGHPUT  COUNT  PER SECOND', 'raw         10000  4601.2', 'tcc           200  336.0']);
    expect(
      renderRows(
        [
          ['ACCOUNT', 'BALANCE', 'AVAILABLE'],
          ['A', '45', '45'],
          ['total', '200', '200'],
        ],
        { gap: 2, alignRight: [1, 2] },
      ),
    ).toEqual(['ACCOUNT  BALANCE  AVAILABLE', 'A             45         45', 'total        200        200']);
  });
});
