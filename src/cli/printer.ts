/**
 * `get`'s output, printed as the listing is read: rows are held until CHUNK_ROWS of them (or the end
 * of the listing), sorted oldest first, and printed, so a listing of up to CHUNK_ROWS rows prints
 * exactly what sorting the whole list gave. A table's columns are sized from its first chunk and
 * widen when a later chunk holds a wider cell (kubectl prints per chunk too). `-o json|yaml` of a
 * List prints its items as they come, inside one valid document.
 *
 * With --sort-by, and for named objects (one is printed alone, not as a List), every row is held
 * until the end: only what is printed (table cells, the name, the object's JSON or YAML text) and
 * what it sorts by, not the records behind it.
 */
import type { Kind } from './commands/kinds.js';
import { displayWidth, padToWidth } from '../table.js';
import { document, serialize, toJson } from './format.js';
import type { Io } from './runtime.js';
import { compare } from './views.js';
import { stringify as toYaml } from 'yaml';

/** Rows printed at a time; a listing of at most this many rows is sorted whole. */
export const CHUNK_ROWS = 500;
/** Text of `-o json|yaml` items printed at a time, however few they are. */
export const CHUNK_TEXT_BYTES = 8 * 1024 * 1024;

const GAP = 3;

interface Row {
  createdAt: number;
  key: string;
  sortKey?: unknown;
  /** Table cells, a `-o name` line, a List item's text, or (named) the object for document(). */
  out: string[] | string | unknown;
}

export interface PrintFlags {
  output?: 'wide' | 'json' | 'yaml' | 'name';
  headers?: boolean;
}

export class ListPrinter<R> {
  private pending: Row[] = [];
  private pendingBytes = 0;
  private count = 0;
  private widths: number[] | undefined;
  private readonly hold: boolean;
  private readonly format: PrintFlags['output'];

  constructor(
    private readonly io: Io,
    private readonly kind: Kind<R>,
    private readonly flags: PrintFlags,
    private readonly named: boolean,
    private readonly sortKey?: (r: R) => unknown,
  ) {
    this.format = flags.output;
    this.hold = sortKey !== undefined || (named && (this.format === 'json' || this.format === 'yaml'));
  }

  /** Rows printed so far. */
  get rows(): number {
    return this.count;
  }

  async add(items: R[]): Promise<void> {
    for (const item of items) {
      const row = this.row(item);
      if (typeof row.out === 'string') this.pendingBytes += row.out.length;
      this.pending.push(row);
    }
    if (!this.hold && (this.pending.length >= CHUNK_ROWS || this.pendingBytes >= CHUNK_TEXT_BYTES)) await this.flush(false);
  }

  /** Prints what is left; a table with no rows at all says so on stderr (kubectl's "No resources found"). */
  async end(): Promise<void> {
    await this.flush(true);
    if (this.count === 0 && !this.named && this.format !== 'json' && this.format !== 'yaml' && this.format !== 'name') {
      this.io.warn(`No ${this.kind.plural} found in namespace ${this.io.config.namespace}.`);
    }
  }

  private row(item: R): Row {
    // Services have neither: they keep the order they come in (by name).
    const { createdAt, key } = item as { createdAt?: number; key?: string };
    const base = { createdAt: createdAt ?? 0, key: key ?? '', ...(this.sortKey ? { sortKey: this.sortKey(item) } : {}) };
    switch (this.format) {
      case 'name':
        return { ...base, out: `${this.kind.name}/${this.kind.id(item)}` };
      case 'json':
        return { ...base, out: this.hold && this.named ? this.kind.json(item) : indent(toJson(this.kind.json(item)), '    ') };
      case 'yaml':
        return { ...base, out: this.hold && this.named ? this.kind.json(item) : indent(toYaml([this.kind.json(item)], { lineWidth: 0 }).replace(/\n$/, ''), '  ') };
      default:
        return { ...base, out: this.cols().map((c) => c.value(item)) };
    }
  }

  private cols() {
    return this.kind.columns.filter((c) => this.format === 'wide' || !c.wide);
  }

  private async flush(final: boolean): Promise<void> {
    // Oldest first, then by key (byCreation); then, once every row is in, --sort-by (a stable sort).
    const rows = this.pending.sort((a, b) => a.createdAt - b.createdAt || a.key.localeCompare(b.key));
    if (final && this.sortKey) rows.sort((a, b) => compare(a.sortKey, b.sortKey));
    this.pending = [];
    this.pendingBytes = 0;
    if (this.format === 'json' || this.format === 'yaml') return this.flushDocument(rows, final);
    if (rows.length === 0) return;
    if (this.format === 'name') {
      this.count += rows.length;
      return this.io.write(rows.map((r) => `${r.out as string}\n`).join(''));
    }
    const cells = rows.map((r) => r.out as string[]);
    const lines: string[] = [];
    if (!this.widths) {
      const header = this.cols().map((c) => c.header);
      const withHeader = this.flags.headers !== false;
      this.widths = header.map((h) => (withHeader ? displayWidth(h) : 0));
      if (withHeader) cells.unshift(header);
    }
    for (const row of cells) row.forEach((c, i) => (this.widths![i] = Math.max(this.widths![i]!, displayWidth(c))));
    for (const row of cells) lines.push(`${row.map((c, i) => (i === row.length - 1 ? c : padToWidth(c, this.widths![i]! + GAP))).join('').trimEnd()}\n`);
    this.count += rows.length;
    await this.io.write(lines.join(''));
  }

  /** `{kind: List, items: […]}` item by item; named objects as document() prints them (one alone). */
  private async flushDocument(rows: Row[], final: boolean): Promise<void> {
    const format = this.format as 'json' | 'yaml';
    if (this.hold && this.named) {
      if (final) this.io.out(serialize(document(rows.map((r) => r.out), true), format));
      this.count += rows.length;
      return;
    }
    // The last item waits for the next flush: the document's end is trimmed, as serialize() trims it.
    if (!final && rows.length > 0) {
      const last = rows.pop()!;
      this.pending.push(last);
      this.pendingBytes = (last.out as string).length;
    }
    let text = '';
    for (const r of rows) {
      if (this.count === 0) text += format === 'json' ? '{\n  "kind": "List",\n  "items": [\n' : 'kind: List\nitems:\n';
      else text += format === 'json' ? ',\n' : '\n';
      text += r.out as string;
      this.count++;
    }
    if (final) {
      if (this.count === 0) text += `${serialize(document([], false), format)}\n`;
      else text = format === 'json' ? `${text}\n  ]\n}\n` : `${text.trimEnd()}\n`;
    }
    if (text) await this.io.write(text);
  }
}

/** Each non-empty line of `text` indented, as a nested value is by JSON.stringify and YAML. */
function indent(text: string, by: string): string {
  return text
    .split('\n')
    .map((l) => (l ? by + l : l))
    .join('\n');
}
