/**
 * What a consumer gets from `npm install txloop`: packs this checkout as npm publish would (prepack
 * included), installs the tarball into a fresh project and looks at the installed package the way
 * its user does — license, README links, install scripts, source maps, imports, binaries.
 *
 * The pack runs in a copy of the checkout: prepack starts from an empty dist/, and other test files
 * run this checkout's dist/cli/main.js at the same time.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SETUP_TIMEOUT_MS = 120_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 90_000): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}

let work = '';
let consumer = '';
let pkg = '';
let how = '';

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'txloop-pack-test-'));
  // Everything but what is built, installed or generated; node_modules is linked for tsc.
  const checkout = join(work, 'checkout');
  const skip = new Set(['node_modules', 'dist', '.git', '.txloop-demo', 'scratch', '.ci']);
  cpSync(root, checkout, { recursive: true, filter: (src) => !(dirname(src) === root && skip.has(relative(root, src))) });
  symlinkSync(join(root, 'node_modules'), join(checkout, 'node_modules'));
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], checkout);
  if (packed.code !== 0) throw new Error(`npm pack failed (${packed.code}):\n${packed.stderr}`);
  const tarball = join(work, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);

  consumer = join(work, 'consumer');
  mkdirSync(consumer);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'txloop-consumer', version: '1.0.0', private: true, type: 'module' }));
  // The dependencies are in npm's cache wherever `npm ci` ran here; only a cold cache needs the registry.
  const flags = ['install', '--no-audit', '--no-fund', '--no-update-notifier', tarball];
  let installed = await run('npm', [...flags, '--offline'], consumer);
  how = 'offline, from npm cache';
  if (installed.code !== 0) {
    installed = await run('npm', [...flags, '--prefer-offline'], consumer);
    how = 'from the npm registry (the cache lacked a dependency)';
  }
  if (installed.code !== 0) {
    throw new Error(`npm install of the packed tarball failed offline and from the registry (is the registry reachable?):\n${installed.stderr}`);
  }
  pkg = join(consumer, 'node_modules', 'txloop');
  console.info(`txloop packed and installed ${how}`);
}, SETUP_TIMEOUT_MS);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed tarball, installed into a fresh project (offline from npm cache, else from the registry)', () => {
  it('carries the Apache-2.0 LICENSE that package.json declares', () => {
    expect(how).not.toBe('');
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { license: string };
    expect(manifest.license).toBe('Apache-2.0');
    const license = readFileSync(join(pkg, 'LICENSE'), 'utf8');
    expect(license).toContain('Apache License');
    expect(license).toContain('Version 2.0, January 2004');
    expect(license).toContain('Copyright 2026 The txloop authors');
  });

  it('every relative link in its Markdown files resolves inside the installed package', () => {
    const docs = files(pkg).filter((f) => f.endsWith('.md'));
    expect(docs.map((f) => relative(pkg, f))).toContain('README.md');
    const broken: string[] = [];
    for (const doc of docs) {
      const text = readFileSync(doc, 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const target = m[1]!;
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
        const file = resolve(dirname(doc), decodeURIComponent(target.split('#')[0]!));
        if (!file.startsWith(pkg + '/') || !existsSync(file)) broken.push(`${relative(pkg, doc)}: ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('runs no script when installed (no preinstall, install, postinstall or prepare in its manifest)', () => {
    const { scripts = {} } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
    expect(Object.keys(scripts).filter((s) => ['preinstall', 'install', 'postinstall', 'prepare'].includes(s))).toEqual([]);
  });

  it("every source map's sources are shipped", () => {
    const built = files(join(pkg, 'dist')).filter((f) => f.endsWith('.js') || f.endsWith('.d.ts'));
    expect(built.length).toBeGreaterThan(10);
    const missing: string[] = [];
    let maps = 0;
    for (const file of built) {
      const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(file, 'utf8'))?.[1];
      if (!url) continue;
      const mapFile = resolve(dirname(file), url);
      if (!existsSync(mapFile)) {
        missing.push(`${relative(pkg, file)} → ${url}`);
        continue;
      }
      maps++;
      const map = JSON.parse(readFileSync(mapFile, 'utf8')) as { sources: string[]; sourceRoot?: string };
      for (const source of map.sources) {
        const path = resolve(dirname(mapFile), map.sourceRoot ?? '', source);
        if (!existsSync(path)) missing.push(`${relative(pkg, mapFile)} → ${source}`);
      }
    }
    expect(missing).toEqual([]);
    expect(maps).toBeGreaterThan(0);
  });

  it("import('txloop') and import('txloop/testing') load from the consumer's project", async () => {
    const script = `
      const txloop = await import('txloop');
      const testing = await import('txloop/testing');
      console.log(JSON.stringify({ service: typeof txloop.TxloopService, startEtcd: typeof testing.startEtcd, resolved: import.meta.resolve('txloop') }));`;
    const r = await run(process.execPath, ['--input-type=module', '-e', script], consumer);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { service: string; startEtcd: string; resolved: string };
    expect(out).toMatchObject({ service: 'function', startEtcd: 'function' });
    expect(fileURLToPath(out.resolved)).toBe(join(pkg, 'dist', 'index.js'));
  });

  it("import('txloop/barrier/postgres') loads without pg installed (the barrier needs only a pool's shape), and its migration ships", async () => {
    expect(existsSync(join(consumer, 'node_modules', 'pg'))).toBe(false); // an optional peer: not installed for those who do not use it
    const script = `
      const b = await import('txloop/barrier/postgres');
      console.log(JSON.stringify({ barrier: typeof b.PgBarrier, apply: typeof b.applyBarrierMigration, sql: b.barrierMigrationSql() }));`;
    const r = await run(process.execPath, ['--input-type=module', '-e', script], consumer);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { barrier: string; apply: string; sql: string };
    expect(out).toMatchObject({ barrier: 'function', apply: 'function' });
    expect(out.sql).toBe(readFileSync(join(pkg, 'migrations', 'postgres', '001_txloop_barrier.sql'), 'utf8'));
  });

  it('its binaries run from node_modules/.bin: txloop --help, kubectl-txloop --help, txloop-sidecar --help, txloop-ensure-etcd, txloop-ensure-postgres', async () => {
    const bin = join(consumer, 'node_modules', '.bin');
    for (const name of ['txloop', 'kubectl-txloop']) {
      const r = await run(join(bin, name), ['--help'], consumer);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect(r.stdout, name).toMatch(/Usage:/);
    }
    const sidecar = await run(join(bin, 'txloop-sidecar'), ['--help'], consumer);
    expect(sidecar.code, sidecar.stderr).toBe(0);
    expect(sidecar.stdout).toMatch(/Usage: txloop sidecar \[options\]/);
    // etcd is there on this machine (the suite needs it), so the script only confirms that.
    const ensure = await run(join(bin, 'txloop-ensure-etcd'), [], consumer);
    expect(ensure.code, ensure.stderr).toBe(0);
    const ensurePostgres = await run(join(bin, 'txloop-ensure-postgres'), [], consumer);
    expect(ensurePostgres.code, ensurePostgres.stderr).toBe(0);
  });

  it("EtcdNotInstalledError names the installed package's ensure-etcd script, which exists", async () => {
    const script = `
      const { findEtcdBinary } = await import('txloop/testing');
      try { findEtcdBinary(); } catch (err) { console.log(err.message); }`;
    const r = await run(process.execPath, ['--input-type=module', '-e', script], consumer, { TXLOOP_ETCD_BIN: '/nonexistent/etcd' });
    expect(r.stdout).toContain('npx txloop-ensure-etcd');
    const named = /\(bash (\S+)\)/.exec(r.stdout)?.[1];
    expect(named, r.stdout).toBe(join(pkg, 'scripts', 'ensure-etcd.sh'));
    expect(statSync(named!).isFile()).toBe(true);
  });
});
