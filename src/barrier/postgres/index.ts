/**
 * `txloop/barrier/postgres`: the branch barrier for participants whose data is in PostgreSQL
 * (node-postgres, `pg` 8). Its own subpath, so that `txloop` itself never loads anything of it;
 * it imports nothing from `pg` either: pass your `pg.Pool`.
 */
export { PgBarrier, MESSAGE_MARKER, type PgBarrierOptions, type IsolationLevel } from './barrier.js';
export { applyBarrierMigration, barrierMigrationSql, DEFAULT_BARRIER_TABLE } from './migration.js';
export type { PgClient, PgPool, PgClientOf, PgQueryResult } from './types.js';
export { BarrierRefused, BarrierDatabaseError } from '../errors.js';
export { BarrierOp, BarrierRefusal, type BarrierContext, type BarrierRecord, type BarrierResult } from '../rules.js';
export type { BarrierTccHandlers, BarrierSagaHandlers } from '../handlers.js';
