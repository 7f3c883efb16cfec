/** Output helpers shared by every command: kubectl-style tables, ages, and JSON/YAML documents. */
import { stringify as toYaml } from 'yaml';
import { displayWidth, padToWidth } from '../table.js';

export const NONE = '<none>';

/**
 * A duration the way kubectl prints AGE (k8s.io/apimachinery duration.HumanDuration): `45s`, `5m3s`,
 * `2h10m`, `3d4h`, `2y30d`. Precision drops as the duration grows.
 */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const d = Math.floor(hours / 24) % 365;
    return d === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${d}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

/** AGE of something created at `at` (epoch ms). */
export function age(at: number | undefined, now = Date.now()): string {
  return at === undefined ? NONE : humanDuration(now - at);
}

/** A point in time relative to now: `in 3s`, `12s ago`, or `now`. */
export function relative(at: number | undefined, now = Date.now()): string {
  if (at === undefined) return NONE;
  const d = at - now;
  if (Math.abs(d) < 1000) return 'now';
  return d > 0 ? `in ${humanDuration(d)}` : `${humanDuration(-d)} ago`;
}

/** `2025-01-02T10:00:00Z (5m3s ago)`, for describe. */
export function timestamp(at: number | undefined, now = Date.now()): string {
  if (at === undefined) return NONE;
  return `${new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z')} (${relative(at, now)})`;
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * `text` cut to at most `max` terminal columns, ending in `...` when cut. Whole graphemes only: an
 * emoji sequence (👩‍💻) or a character with its accents is never split.
 */
export function truncateToWidth(text: string, max: number): string {
  if (displayWidth(text) <= max) return text;
  const room = Math.max(0, max - 3);
  let kept = '';
  let used = 0;
  for (const { segment } of graphemes.segment(text)) {
    const w = displayWidth(segment);
    if (used + w > room) break;
    kept += segment;
    used += w;
  }
  return `${kept}...`;
}

/** One line, at most `max` terminal columns, for a table cell. */
export function cell(value: string | undefined, max = 0): string {
  if (value === undefined || value === '') return NONE;
  const flat = value.replace(/\s+/g, ' ').trim();
  if (!flat) return NONE;
  return max > 0 ? truncateToWidth(flat, max) : flat;
}

export interface Column<R> {
  header: string;
  value(row: R): string;
  /** Shown only with -o wide. */
  wide?: boolean;
  /** Width reserved in `-w` output, so later values (ROLLING_BACK) keep the columns aligned. */
  minWidth?: number;
}


export function tableCells<R>(columns: Column<R>[], rows: R[], wide: boolean, headers = true): string[][] {
  const cols = columns.filter((c) => wide || !c.wide);
  const out = rows.map((r) => cols.map((c) => c.value(r)));
  if (headers) out.unshift(cols.map((c) => c.header));
  return out;
}

/**
 * Fixed column widths for `-w`, where rows are printed one at a time: each column is as wide as its
 * header or the widest value seen so far, whichever is larger (kubectl does the same).
 */
export class StreamingTable<R> {
  private readonly widths: number[];
  private readonly cols: Column<R>[];

  constructor(columns: Column<R>[], wide: boolean) {
    this.cols = columns.filter((c) => wide || !c.wide);
    this.widths = this.cols.map((c) => Math.max(displayWidth(c.header), c.minWidth ?? 0));
  }

  header(): string {
    return this.line(this.cols.map((c) => c.header));
  }

  row(r: R): string {
    return this.line(this.cols.map((c) => c.value(r)));
  }

  /** Widens the columns to fit these rows (used for the first batch). */
  fit(rows: R[]): void {
    for (const r of rows) this.cols.forEach((c, i) => (this.widths[i] = Math.max(this.widths[i]!, displayWidth(c.value(r)))));
  }

  private line(cells: string[]): string {
    // A value wider than its column still keeps three spaces before the next one.
    return cells.map((c, i) => (i === cells.length - 1 ? c : `${padToWidth(c, this.widths[i]!)}   `)).join('').trimEnd();
  }
}

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml' | 'name';
export const OUTPUT_FORMATS = ['wide', 'json', 'yaml', 'name'] as const;

export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

export function toYamlDoc(value: unknown): string {
  return toYaml(value, { lineWidth: 0 }).trimEnd();
}

/** A list the way kubectl prints `-o json|yaml` for several objects; one object is printed alone. */
export function document(items: unknown[], single: boolean): unknown {
  if (single && items.length === 1) return items[0];
  return { kind: 'List', items };
}

export function serialize(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? toJson(value) : toYamlDoc(value);
}
