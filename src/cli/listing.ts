/**
 * What `get` and `top` read, and only that: per service, the prefixes of the record types they show
 * (`<ns><app>/gtx/` with its member records for transactions, `<ns><app>/branch/` with its orders for
 * branches, `<ns><app>/leader`, `stats` and `replica/` for services), streamed in chunks of whole groups (a
 * global with its members, a branch with its order) so nothing holds more than a chunk of records.
 *
 * Which services: `--app`'s, the one a transaction's name implies, or, for the whole namespace, the
 * first path segments under it (found by skipping from one service's prefix to the next). Under each
 * service's prefix a command covers whole, the keys outside every record type's prefix (`<ns>bank/
 * weird/x`) are listed too (keys only; normally none), as are keys of the namespace that belong to
 * no service, so that a command still names every record it finds but cannot use.
 */
import type { IKeyValue } from 'etcd3';
import { MAX_RECEIVE_MESSAGE_BYTES, op, prefixEnd } from '../etcd/index.js';
import { Keys, appOfXid, validateApp } from '../store/index.js';
import { Model } from './model.js';
import { Snapshot, mergeGroups, prefixSpan, type Span } from './scan.js';

/** Groups (globals with their members, branches with their orders) per chunk, and the value bytes that end one sooner. */
export const CHUNK_GROUPS = 500;
export const CHUNK_BYTES = 4 * 1024 * 1024;

/** Keys read from each gap between record types' prefixes: normally there are none. */
const GAP_KEYS = 1_000;

const EMPTY = Buffer.alloc(0);

const tooLarge = (model: () => Model) => (key: Buffer) =>
  model().unreadable(key.toString(), `value larger than the ${MAX_RECEIVE_MESSAGE_BYTES / 1024 / 1024} MiB etcd response the CLI accepts`);

/** A key's first path segment after `prefix`, as the name of its group: `<xid>/` for gtx/member/link keys. */
const firstSegment = (prefix: string) => (key: string): string => {
  const rest = key.slice(prefix.length);
  const slash = rest.indexOf('/');
  return `${slash < 0 ? rest : rest.slice(0, slash)}/`;
};
/** A branch or order key's `<xid>/<branchId>`: a branch and its order share it. */
const suffix = (prefix: string) => (key: string): string => key.slice(prefix.length);

/**
 * Every service in the namespace (each first path segment that is a service name), in order. Each
 * step is one keys-only read of one key after the last service's prefix. A key whose first segment
 * is no service name is recorded in `strays` and skipped by itself.
 */
export async function discoverApps(snap: Snapshot, keys: Keys, strays: Model): Promise<string[]> {
  const apps: string[] = [];
  const end = prefixEnd(keys.ns);
  let cursor: Buffer = Buffer.from(keys.ns);
  for (;;) {
    const res = await snap.range({ key: cursor, end, keysOnly: true, limit: 1 });
    const kv = res.kvs[0];
    if (!kv) return apps;
    const key = kv.key.toString();
    const rest = key.slice(keys.ns.length);
    const slash = rest.indexOf('/');
    const app = slash > 0 ? rest.slice(0, slash) : undefined;
    if (app !== undefined && isApp(app)) {
      apps.push(app);
      cursor = prefixEnd(keys.app(app));
    } else {
      strays.set(key, EMPTY);
      cursor = Buffer.concat([kv.key, Buffer.from([0])]);
    }
  }
}

function isApp(s: string): boolean {
  try {
    validateApp(s);
    return true;
  } catch {
    return false;
  }
}

/** Does the service have any key in the namespace? (One keys-only read of one key of its prefix.) */
export async function hasKeys(snap: Snapshot, keys: Keys, app: string): Promise<boolean> {
  const res = await snap.range({ ...prefixSpan(keys.app(app)), keysOnly: true, limit: 1 });
  return res.kvs.length > 0;
}

/** The record types' prefixes under a service's, in key order; everything between them is no txloop key. */
function typePrefixes(keys: Keys, app: string): string[] {
  const p = keys.app(app);
  // `leader` and `stats` are single keys, read as prefixes so that `<app>/leader/x` is seen with them.
  return [`${p}branch/`, `${p}gtx/`, `${p}leader`, `${p}link/`, `${p}member/`, `${p}order/`, `${p}replica/`, `${p}stats`];
}

/** Records in `strays` the keys under the service's prefix that are under no record type's prefix. */
export async function readGaps(snap: Snapshot, keys: Keys, app: string, strays: Model): Promise<void> {
  const spans: Span[] = [];
  let from: Buffer = Buffer.from(keys.app(app));
  for (const prefix of typePrefixes(keys, app)) {
    spans.push({ key: from, end: Buffer.from(prefix) });
    from = prefixEnd(prefix);
  }
  spans.push({ key: from, end: prefixEnd(keys.app(app)) });
  const found = await Promise.all(spans.map((s) => snap.range({ ...s, keysOnly: true, limit: GAP_KEYS })));
  for (const res of found) for (const kv of res.kvs) strays.set(kv.key.toString(), EMPTY);
}

/** Chunks of whole groups: a new Model every CHUNK_GROUPS groups or CHUNK_BYTES of values; the first holds `first`'s keys too. */
async function* chunked(first: Model, groups: (current: () => Model) => AsyncIterable<IKeyValue[]>, complete?: (m: Model) => Promise<void>): AsyncGenerator<Model> {
  let model = first;
  let n = 0;
  let bytes = 0;
  for await (const group of groups(() => model)) {
    for (const kv of group) {
      model.set(kv.key.toString(), kv.value);
      bytes += kv.value.length;
    }
    if (++n >= CHUNK_GROUPS || bytes >= CHUNK_BYTES) {
      await complete?.(model);
      yield model;
      model = new Model(first.keys.ns);
      n = 0;
      bytes = 0;
    }
  }
  await complete?.(model);
  yield model;
}

export interface Coverage {
  /** The services read, each one's prefix covered whole (the gaps between record types read too). */
  apps: string[];
  /** Keys found outside every record type (and outside every service), for the first chunk. */
  strays: Model;
}

/**
 * The services a listing covers: `app`, or every service of the namespace; for each one read whole,
 * the keys in the gaps between record types.
 */
export async function coverage(snap: Snapshot, keys: Keys, app: string | undefined): Promise<Coverage> {
  const strays = new Model(keys.ns);
  await snap.pin(keys.ns);
  const apps = app !== undefined ? [app] : await discoverApps(snap, keys, strays);
  for (const a of apps) await readGaps(snap, keys, a, strays);
  return { apps, strays };
}

/**
 * Globals with their member records, per chunk. With `withBranches` (for -o json|yaml), each chunk
 * also holds the branch records and orders its members point to (read by key after the chunk's
 * globals, so at the revision of that moment).
 */
export function globalChunks(snap: Snapshot, keys: Keys, cover: Coverage, withBranches: boolean): AsyncGenerator<Model> {
  return chunked(
    cover.strays,
    (current) =>
      (async function* () {
        for (const app of cover.apps) {
          const [legacy, members] = keys.membersOf(app).reverse() as [string, string];
          const prefixes = [keys.globalsOf(app), members, legacy];
          yield* mergeGroups(prefixes.map((p) => ({ scan: snap.scan(prefixSpan(p), { onTooLarge: tooLarge(current) }), groupOf: firstSegment(p) })));
        }
      })(),
    withBranches ? (m) => readBranchesOf(snap, keys, m) : undefined,
  );
}

/** The globals named (xids), each with its members: a point read and two small prefixes each, under the xid's service only. */
export async function namedGlobals(snap: Snapshot, keys: Keys, xids: string[], withBranches: boolean): Promise<Model> {
  const model = new Model(keys.ns);
  await snap.pin(keys.ns);
  for (const xid of new Set(xids)) {
    const reads = [snap.range({ key: Buffer.from(keys.global(xid)) }).then((r) => r.kvs), ...keys.members(xid).map((p) => snap.all(prefixSpan(p)))];
    for (const kvs of await Promise.all(reads)) set(model, kvs);
  }
  if (withBranches) await readBranchesOf(snap, keys, model);
  return model;
}

/** Adds to `model` the branch and order records its member records point to. */
async function readBranchesOf(snap: Snapshot, keys: Keys, model: Model): Promise<void> {
  const gets: string[] = [];
  for (const key of model.memberKeys()) {
    const p = keys.parse(key);
    if (p?.kind === 'member') gets.push(keys.branch(p.owner, p.xid, p.branchId), keys.order(p.owner, p.xid, p.branchId));
  }
  // 100 reads per Txn (etcd refuses more than --max-txn-ops, 128 by default), a few Txns at a time.
  const txns: string[][] = [];
  for (let i = 0; i < gets.length; i += 100) txns.push(gets.slice(i, i + 100));
  for (let i = 0; i < txns.length; i += 4) {
    const done = await Promise.all(txns.slice(i, i + 4).map((batch) => snap.client.kv.txn({ success: batch.map((k) => op.get(k)) })));
    for (const res of done) for (const r of res.responses) set(model, r.response_range.kvs);
  }
}

/** Branches with their orders, per chunk. */
export function branchChunks(snap: Snapshot, keys: Keys, cover: Coverage): AsyncGenerator<Model> {
  return chunked(cover.strays, (current) =>
    (async function* () {
      for (const app of cover.apps) {
        const prefixes = [`${keys.app(app)}branch/`, `${keys.app(app)}order/`];
        yield* mergeGroups(prefixes.map((p) => ({ scan: snap.scan(prefixSpan(p), { onTooLarge: tooLarge(current) }), groupOf: suffix(p) })));
      }
    })(),
  );
}

/**
 * The branches named (`xid` or `xid/branchId`) with their orders, under each covered service: a
 * small prefix (or one key) each, wherever their owners keep them (a name does not say its owner).
 */
export async function namedBranches(snap: Snapshot, keys: Keys, apps: string[], names: string[]): Promise<Model> {
  const model = new Model(keys.ns);
  for (const app of apps) {
    await Promise.all(
      [...new Set(names)].flatMap((n) => {
        const [xid, branchId] = n.split('/') as [string, string | undefined];
        return (['branch', 'order'] as const).map(async (type) => {
          const key = branchId !== undefined ? keys[type](app, xid, branchId) : `${keys.app(app)}${type}/${xid}/`;
          set(model, branchId !== undefined ? (await snap.range({ key: Buffer.from(key) })).kvs : await snap.all(prefixSpan(key)));
        });
      }),
    );
  }
  return model;
}

/** Each service's leader, stats and presence records (and whatever else is under the leader and stats keys' prefixes). */
export async function readServices(snap: Snapshot, keys: Keys, apps: string[], into: Model): Promise<void> {
  for (const app of apps) {
    const found = await Promise.all([keys.leader(app), keys.stats(app), keys.replicasOf(app)].map((p) => snap.all(prefixSpan(p))));
    for (const kvs of found) set(into, kvs);
  }
}

/** The service a named transaction belongs to. */
export function appsOfXids(xids: string[]): string[] {
  return [...new Set(xids.map(appOfXid))];
}

function set(model: Model, kvs: IKeyValue[]): void {
  for (const kv of kvs) model.set(kv.key.toString(), kv.value);
}
