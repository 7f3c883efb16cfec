/**
 * The source layout's rules (docs/architecture.md): a folder is used from outside only through its
 * index.ts, and TxloopService stays a facade. Checked on the sources, so a change that breaks a rule
 * fails here rather than in review.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function folderOf(path: string): string {
  const rel = relative(SRC, path).split(sep);
  return rel.length > 1 ? rel[0]! : '.';
}

describe('source layout', () => {
  it("nothing outside a folder imports that folder's private files: only its index.ts", () => {
    const crossings: string[] = [];
    for (const file of sources(SRC)) {
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
        const target = normalize(join(dirname(file), spec!.replace(/\.js$/, '.ts')));
        const folder = folderOf(target);
        if (folder !== '.' && folder !== folderOf(file) && relative(join(SRC, folder), target) !== 'index.ts') {
          crossings.push(`${relative(SRC, file)} imports ${relative(SRC, target)}`);
        }
      }
    }
    expect(crossings).toEqual([]);
  });

  it('src/service.ts is a facade of a few hundred lines', () => {
    expect(readFileSync(join(SRC, 'service.ts'), 'utf8').split('\n').length).toBeLessThanOrEqual(400);
  });

  it('src/index.ts is a barrel: it re-exports and defines nothing', () => {
    const code = readFileSync(join(SRC, 'index.ts'), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
    const statements = code.split(/;\s*\n/).map((s) => s.trim()).filter(Boolean);
    expect(statements.filter((s) => !/^export (type )?\{[\s\S]*\} from '/.test(s))).toEqual([]);
  });
});
