/** Shared test plumbing: fresh namespaces, quiet services against a real etcd, condition waits. */
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { TxloopService, type ServiceOptions } from '../../src/index.js';
import { Store } from '../../src/store/index.js';
import { startEtcd, startEtcdCluster, type EtcdCluster, type EtcdMember, type EtcdServer, type StartEtcdOptions } from '../../src/testing.js';

export function freshNamespace(label: string): string {
  return `t-${label}-${randomBytes(4).toString('hex')}/`;
}

/** Logs only errors unless TXLOOP_TEST_LOG is set, so failing tests stay readable. */
export const quietLogger = pino({ level: process.env.TXLOOP_TEST_LOG ?? 'silent' });

export interface Harness {
  service(options: Omit<ServiceOptions, 'etcd' | 'namespace'> & Partial<Pick<ServiceOptions, 'namespace'>>): TxloopService;
  closeAll(): Promise<void>;
}

/**
 * Fast timings for tests; each test may override them. Not the lease: a leader steps down once no
 * keep-alive was confirmed for the TTL minus a margin, which with a 2 s TTL is a stall of under a
 * second — a loaded machine's GC pause or scheduling delay — and a spurious change of leader re-runs
 * handlers and moves work between replicas mid-test. Only tests that need a lease to expire (an
 * etcd outage outlasting it) ask for a short one.
 */
export const fastTimings = {
  leaseTtlSeconds: 10,
  retryBaseMs: 20,
  retryMaxMs: 200,
  graceMs: 300,
  resyncMs: 5_000,
  statsIntervalMs: 500,
} satisfies Partial<ServiceOptions>;

export function harness(endpoints: () => string[], namespace: string): Harness {
  const services: TxloopService[] = [];
  return {
    service(options) {
      const s = new TxloopService({ ...fastTimings, logger: quietLogger, namespace, ...options, etcd: { endpoints: endpoints() } });
      services.push(s);
      return s;
    },
    async closeAll() {
      await Promise.all(services.splice(0).map((s) => s.close()));
    },
  };
}

export { waitFor } from './wait.js';

/** A promise you can resolve from outside: holds a handler until the test lets it go. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

export interface EtcdTestEnv {
  readonly endpoints: string[];
  /** A plain etcd3 client for inspecting and corrupting state behind the SDK's back. */
  readonly client: Etcd3;
  /** The members, to kill, pause and restart (only with `members`). */
  readonly members: EtcdMember[];
  /** A fresh namespace with its own services (closed after the test) and a store over it. */
  fresh(label: string): { ns: string; h: Harness; store: Store };
}

/**
 * Starts one real etcd for the test file (stopped after it) — a cluster of `members` members when
 * given, so tests can kill them — and closes each test's services after the test.
 */
export function useEtcd(options: StartEtcdOptions & { members?: number } = {}): EtcdTestEnv {
  let etcd: EtcdServer | EtcdCluster | undefined;
  let client: Etcd3 | undefined;
  let current: Harness | undefined;
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('etcd is not started yet (use the env inside tests or hooks)');
    return v;
  };
  beforeAll(async () => {
    const { members, ...rest } = options;
    etcd = members === undefined ? await startEtcd(rest) : await startEtcdCluster({ ...rest, size: members });
    client = new Etcd3({ hosts: etcd.endpoints });
  });
  afterEach(async () => {
    await current?.closeAll();
    current = undefined;
  });
  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });
  const env: EtcdTestEnv = {
    get endpoints() {
      return started(etcd).endpoints;
    },
    get client() {
      return started(client);
    },
    get members() {
      const e = started(etcd);
      if (!('members' in e)) throw new Error('useEtcd({ members }) starts a cluster with members to kill');
      return e.members;
    },
    fresh(label) {
      const ns = freshNamespace(label);
      current = harness(() => env.endpoints, ns);
      return { ns, h: current, store: new Store(env.client, ns) };
    },
  };
  return env;
}

/** A pino logger whose JSON lines a test can read back. */
export function capturingLogger(level = 'info'): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

/**
 * An initiator `orders` and a participant `bank` with a no-op resource `hold`, both started, for a
 * whole test file (env.fresh() would close them after the first test); close with `closeAll()`.
 */
export async function ordersAndBank(endpoints: () => string[], ns: string): Promise<{ services: Harness; orders: TxloopService; bank: TxloopService }> {
  const services = harness(endpoints, ns);
  const orders = services.service({ app: 'orders' });
  const bank = services.service({ app: 'bank' });
  bank.resource('hold', { try: () => 'held', confirm: () => undefined, cancel: () => undefined });
  await orders.start();
  await bank.start();
  return { services, orders, bank };
}
