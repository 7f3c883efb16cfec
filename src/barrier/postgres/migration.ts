/**
 * The barrier's table. The same SQL ships as migrations/postgres/001_txloop_barrier.sql for teams
 * that run their own migration tool (test/barrier-postgres.test.ts checks the two agree).
 */
import { ValidationError } from '../../errors.js';
import type { PgClient, PgPool } from './types.js';

export const DEFAULT_BARRIER_TABLE = 'txloop_barrier';

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

/** `table` or `schema.table`, lowercase unquoted identifiers (so they are safe to put into SQL as they are). */
export function validateTable(table: unknown): string {
  const parts = typeof table === 'string' ? table.split('.') : [];
  if (parts.length < 1 || parts.length > 2 || !parts.every((p) => IDENT.test(p))) {
    throw new ValidationError('table', `${JSON.stringify(table)} is not a table name: use lowercase letters, digits and '_' ("txloop_barrier", or "schema.table")`);
  }
  return table as string;
}

/** The SQL that creates the barrier's table (idempotent: IF NOT EXISTS). */
export function barrierMigrationSql(table: string = DEFAULT_BARRIER_TABLE): string {
  const t = validateTable(table);
  const name = t.split('.').pop()!;
  return `-- txloop branch barrier, schema 1: one row per branch, written in the same transaction as the
-- participant's own statements (see "The branch barrier" in txloop's README).
CREATE TABLE IF NOT EXISTS ${t} (
  xid            text        NOT NULL,
  branch_id      text        NOT NULL,
  -- the first phase (TCC try, saga action): applied, or blocked by a rollback that came first
  phase1         text        CHECK (phase1 IN ('try', 'action')),
  phase1_state   text        CHECK (phase1_state IN ('applied', 'blocked')),
  -- the second-phase op applied; empty_rollback: it had nothing to undo
  phase2         text        CHECK (phase2 IN ('confirm', 'cancel', 'compensate')),
  empty_rollback boolean     NOT NULL DEFAULT false,
  -- the highest (fencing token, attempt) that wrote this row: older attempts are refused
  fencing_token  bigint      NOT NULL DEFAULT 0,
  attempt        integer     NOT NULL DEFAULT 0,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (xid, branch_id)
);
CREATE INDEX IF NOT EXISTS ${name}_updated_at ON ${t} (updated_at);
COMMENT ON TABLE ${t} IS 'txloop branch barrier, schema 1';
`;
}

/**
 * Creates the barrier's table if it is not there. Safe to run at every start, from every replica at
 * once (an advisory lock serialises them). Takes a pool or a connected client.
 */
export async function applyBarrierMigration(db: PgPool | PgClient, options: { table?: string } = {}): Promise<void> {
  const table = validateTable(options.table ?? DEFAULT_BARRIER_TABLE);
  const pooled = 'connect' in db && typeof db.connect === 'function';
  const client: PgClient = pooled ? await (db as PgPool).connect() : (db as PgClient);
  let broken: unknown;
  try {
    await client.query('BEGIN');
    try {
      // One lock for every barrier migration: the same table may be named two ways
      // (`txloop_barrier`, `public.txloop_barrier`), and two CREATE TABLE IF NOT EXISTS of it at
      // once fail on PostgreSQL's catalog.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', ['txloop barrier migration']);
      await client.query(barrierMigrationSql(table));
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch((e: unknown) => (broken = e));
      throw err;
    }
  } finally {
    if (pooled) client.release?.(broken instanceof Error ? broken : undefined);
  }
}
