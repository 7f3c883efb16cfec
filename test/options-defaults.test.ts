/** One DEFAULTS object feeds the resolver and the docs: the `@default` tags and the README's table say the same. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/index.js';
import { resolveOptions } from '../src/options.js';

const source = readFileSync(new URL('../src/options.ts', import.meta.url), 'utf8');
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const normalize = (text: string): string => text.trim().replace(/_/g, '').replace(/^'(.*)'$/, '$1').replace(/^`(.*)`$/, '$1');

describe('option defaults', () => {
  it('the resolver applies DEFAULTS', () => {
    const resolved = resolveOptions({ app: 'a' }) as unknown as Record<string, unknown>;
    for (const [name, value] of Object.entries(DEFAULTS)) expect({ name, value: resolved[name] }).toEqual({ name, value });
  });

  it("every option's @default tag in ServiceOptions equals DEFAULTS", () => {
    for (const [name, value] of Object.entries(DEFAULTS)) {
      const doc = new RegExp(`@default ([^*\\n]+?)\\s*(?:\\*/|\\n)[\\s\\S]{0,40}?\\b${name}\\?:`).exec(source);
      expect({ name, doc: doc ? normalize(doc[1]!) : undefined }).toEqual({ name, doc: String(value) });
    }
  });

  it("the README's options table lists every default as DEFAULTS has it", () => {
    for (const [name, value] of Object.entries(DEFAULTS)) {
      const row = new RegExp(`^\\| \`${name}\` \\| ([^|]+) \\|`, 'm').exec(readme);
      expect({ name, readme: row ? normalize(row[1]!) : undefined }).toEqual({ name, readme: String(value) });
    }
  });
});
