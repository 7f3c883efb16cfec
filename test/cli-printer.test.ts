/**
 * `get` prints as it reads (src/cli/printer.ts), and what it prints is what printing the whole list
 * at once gave: the same bytes for a listing of up to one chunk, and one valid JSON or YAML
 * document for a List of any length. Records are parsed by the CLI's own model from the JSON the
 * services write; output goes to a buffer instead of stdout.
 */
import { describe, expect, it } from 'vitest';
import { globalsKind } from '../src/cli/commands/kinds.js';
import { document, serialize, tableCells } from '../src/cli/format.js';
import { Model } from '../src/cli/model.js';
import { CHUNK_ROWS, ListPrinter } from '../src/cli/printer.js';
import type { Io } from '../src/cli/runtime.js';
import { renderRows } from '../src/table.js';

const NS = 'p/';
const now = Date.now();

/** `n` globals of two services with names of varying width (and one malformed record), in one model. */
function model(n: number): Model {
  const m = new Model(NS);
  for (let i = 0; i < n; i++) {
    const app = i % 3 === 0 ? 'a-much-longer-app' : 'shop';
    const xid = `${app}.${(now - 1_000_000 + i * 7).toString(36).padStart(9, '0')}${String(i).padStart(8, '0')}`;
    const g = { v: 1, xid, app, name: i % 2 ? `t ${i}` : `transfer ${'x'.repeat(i % 30)} 合計 ${i}`, mode: 'tcc', status: i % 5 === 0 ? 'COMMITTED' : 'TRYING', createdAt: now - 1_000_000 + (i % 17) * 1000, timeoutMs: 1000, deadline: now + 60_000, events: [] };
    m.set(`${NS}${app}/gtx/${xid}`, Buffer.from(JSON.stringify(g)));
  }
  m.set(`${NS}shop/gtx/shop.zzzzzzzzzzzzzzzzz`, Buffer.from('{"v":1,\n"raw": "trailing"}   '));
  return m;
}

function capture(): { io: Io; text: () => string } {
  let out = '';
  const io = {
    config: { namespace: NS, endpoints: [], dialTimeoutMs: 1, commandTimeoutMs: 1 },
    out: (t: string) => void (out += `${t}\n`),
    write: async (t: string) => void (out += t),
    warn: () => undefined,
    malformed: () => undefined,
    connect: () => Promise.reject(new Error('no etcd here')),
    close: () => undefined,
  } as unknown as Io;
  return { io, text: () => out };
}

/** Feeds the printer the items in pieces of `piece` (as chunks of a listing arrive). */
async function printed(items: ReturnType<typeof globalsKind.list>, flags: ConstructorParameters<typeof ListPrinter>[2], piece: number): Promise<string> {
  const { io, text } = capture();
  const p = new ListPrinter(io, globalsKind, flags, false);
  for (let i = 0; i < items.length; i += piece) await p.add(items.slice(i, i + piece));
  await p.end();
  return text();
}

const listOf = (n: number) => globalsKind.list(model(n), { statuses: [], names: [] });

describe('printing as the listing is read', () => {
  it.each([1, 37, CHUNK_ROWS])('a table of %i rows is byte for byte the table of the whole list (widths from every row)', async (n) => {
    const items = listOf(n - 1);
    for (const wide of [false, true]) {
      for (const headers of [true, false]) {
        const whole = `${renderRows(tableCells(globalsKind.columns, items, wide, headers)).join('\n')}\n`;
        expect(await printed(items, { ...(wide ? { output: 'wide' } : {}), headers }, 7)).toBe(whole);
      }
    }
  });

  it.each(['json', 'yaml'] as const)('-o %s of a List is the document of the whole list, for one chunk or many', async (format) => {
    for (const n of [0, 1, 20, 2 * CHUNK_ROWS + 3]) {
      const items = listOf(n);
      const whole = `${serialize(document(items.map(globalsKind.json), false), format)}\n`;
      expect(await printed(items, { output: format }, 50), `${n} items`).toBe(whole);
    }
  });

  it('a table longer than a chunk has one header, and columns sized by the first chunk that widen for a wider row later', async () => {
    const items = listOf(3 * CHUNK_ROWS);
    // The wide NAME cells only after the first chunk.
    const narrow = items.filter((g) => (g.entry.record?.name.length ?? 0) < 10);
    const wide = items.filter((g) => (g.entry.record?.name.length ?? 0) >= 10);
    expect(narrow.length).toBeGreaterThan(CHUNK_ROWS);
    const lines = (await printed([...narrow.slice(0, CHUNK_ROWS), ...wide], { output: 'wide' }, CHUNK_ROWS)).trimEnd().split('\n');
    expect(lines.filter((l) => l.startsWith('XID '))).toHaveLength(1);
    const deadlineAt = (l: string) => l.lastIndexOf(' in ') + 1;
    const first = lines.slice(1, 1 + CHUNK_ROWS).filter((l) => l.includes(' in ')).map(deadlineAt);
    const later = lines.slice(1 + CHUNK_ROWS).filter((l) => l.includes(' in ')).map(deadlineAt);
    expect(new Set(first).size).toBe(1);
    expect(Math.min(...later)).toBeGreaterThan(first[0]!);
  });
});
