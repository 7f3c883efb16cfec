/**
 * `txloop/testing`: real etcd servers and clusters for your tests, started from the local etcd binary
 * ($TXLOOP_ETCD_BIN, `etcd` on PATH, or /usr/bin/etcd — `apt-get install etcd-server`).
 *
 * @example
 * ```ts
 * import { Etcd3 } from 'etcd3';
 * import { startEtcd } from 'txloop/testing';
 *
 * const etcd = await startEtcd();                     // loopback, free ports, fresh temp data dir
 * const client = new Etcd3({ hosts: etcd.endpoints });
 * try {
 *   await client.put('k').value('v');
 * } finally {
 *   client.close();
 *   await etcd.stop();                                // kills etcd and removes its data dir
 * }
 * ```
 *
 * `startEtcdCluster({ size: 3 })` gives members you can `kill()`, `kill('SIGSTOP')`/`resume()` and `restart()`.
 *
 * `startPostgres()` gives a throwaway PostgreSQL server (Debian's PostgreSQL 15 by default —
 * `apt-get install postgresql-15`, or `npx txloop-ensure-postgres`) for the SQL branch barrier:
 * `new pg.Pool({ connectionString: server.connectionString })`, then `await server.stop()`.
 */
export { EtcdNotInstalledError, EtcdStartError } from './errors.js';
export {
  findEtcdBinary,
  startEtcd,
  startEtcdCluster,
  type EtcdCluster,
  type EtcdMember,
  type EtcdServer,
  type FindEtcdBinaryOptions,
  type StartEtcdOptions,
} from './etcd/index.js';
export {
  findPostgresBinDir,
  startPostgres,
  PostgresNotInstalledError,
  PostgresStartError,
  type FindPostgresOptions,
  type PostgresServer,
  type StartPostgresOptions,
} from './postgres/index.js';
