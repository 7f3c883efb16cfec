/**
 * Aligned text tables, shared by the CLI (`txloop get …`), the demo and the benchmark. Columns are
 * sized and padded by terminal display width (CJK characters and most emoji take two columns,
 * combining marks none), not by `.length`, so they line up whatever the cells hold.
 *
 * The defaults are the CLI's kubectl-style tables: columns three spaces apart, left-aligned.
 */
import stringWidth from 'string-width';

/** Terminal columns `text` takes (see the header). */
export function displayWidth(text: string): number {
  return stringWidth(text);
}

/** `text` followed by spaces up to `width` terminal columns. */
export function padToWidth(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - displayWidth(text)));
}

/** Spaces up to `width` terminal columns, then `text` (right-aligned). */
export function padStartToWidth(text: string, width: number): string {
  return ' '.repeat(Math.max(0, width - displayWidth(text))) + text;
}

/** A table cell: a number is printed with `String()` and right-aligned in whatever column it is in. */
export type Cell = string | number;

export interface RenderOptions {
  /** Spaces between columns; 3 (kubectl's tabwriter output) by default. */
  gap?: number;
  /** Columns (0-based) right-aligned in every row, their header included. */
  alignRight?: readonly number[];
}

/**
 * Rows padded into columns, one string per row, no trailing spaces. Each column is as wide as its
 * widest cell; the last cell of a row is not padded unless it is right-aligned.
 */
export function renderRows(cells: readonly (readonly Cell[])[], options: RenderOptions = {}): string[] {
  const gap = options.gap ?? 3;
  const right = new Set(options.alignRight ?? []);
  const widths: number[] = [];
  for (const row of cells) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, displayWidth(String(c)))));
  return cells.map((row) =>
    row
      .map((c, i) => {
        const text = String(c);
        const last = i === row.length - 1;
        if (typeof c === 'number' || right.has(i)) return padStartToWidth(text, widths[i]!) + (last ? '' : ' '.repeat(gap));
        return last ? text : padToWidth(text, widths[i]! + gap);
      })
      .join('')
      .trimEnd(),
  );
}
