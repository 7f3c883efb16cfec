/** A throwaway local PostgreSQL server for tests (txloop/testing's startPostgres). */
export { findPostgresBinDir, startPostgres, type FindPostgresOptions, type PostgresServer, type StartPostgresOptions } from './launcher.js';
export { PostgresNotInstalledError, PostgresStartError } from './errors.js';
