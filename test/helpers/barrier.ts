/** Shared plumbing of the barrier tests: branch contexts as txloop hands them to handlers, and a throwaway PostgreSQL. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { applyBarrierMigration } from '../../src/barrier/postgres/index.js';
import { startPostgres, type PostgresServer } from '../../src/testing.js';

export interface Branch {
  readonly xid: string;
  readonly branchId: string;
}

/** A fresh branch of a fresh transaction of the initiator `shop`. */
export function newBranch(): Branch {
  return { xid: `shop.${randomBytes(8).toString('hex')}`, branchId: randomBytes(6).toString('hex') };
}

/** What a Try handler gets (no fencing token: a Try runs on the caller's request). */
export function tryCtx(b: Branch, signal?: AbortSignal): Branch & { signal?: AbortSignal } {
  return signal ? { ...b, signal } : { ...b };
}

/** What a phase-2 handler gets: its action, the term's fencing token and the attempt. */
export function phase2Ctx(b: Branch, action: 'confirm' | 'cancel', fencingToken = '100', attempt = 1, signal?: AbortSignal) {
  return { ...b, action, fencingToken, attempt, ...(signal ? { signal } : {}) };
}

export interface PostgresTestEnv {
  readonly server: PostgresServer;
  /** A pool on the server, the barrier's table migrated. */
  readonly pool: pg.Pool;
}

/** One real PostgreSQL for the test file (started before it, stopped and removed after). */
export function usePostgres(): PostgresTestEnv {
  let server: PostgresServer | undefined;
  let pool: pg.Pool | undefined;
  beforeAll(async () => {
    server = await startPostgres();
    pool = new pg.Pool({ connectionString: server.connectionString, max: 8 });
    // An idle client the server drops at stop() must not crash the test worker.
    pool.on('error', () => undefined);
    await applyBarrierMigration(pool);
  });
  afterAll(async () => {
    await pool?.end();
    await server?.stop();
  });
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('PostgreSQL is not started yet (use the env inside tests or hooks)');
    return v;
  };
  return {
    get server() {
      return started(server);
    },
    get pool() {
      return started(pool);
    },
  };
}
