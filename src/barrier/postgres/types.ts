/**
 * What the PostgreSQL barrier needs from `pg` (node-postgres), as shapes: the barrier imports
 * nothing from `pg`, so it works with the pg version you installed, and a `pg.Pool` fits as it is.
 * The client your handler gets is your pool's own client type (`pg.PoolClient` for a `pg.Pool`).
 */

export interface PgQueryResult {
  rows: any[];
  rowCount: number | null;
}

/** A client of a pool, checked out: pg's `PoolClient`. */
export interface PgClient {
  query(text: string, values?: unknown[]): Promise<PgQueryResult>;
  /** Only clients from a pool have it; the barrier releases what it checked out, and only that. */
  release?(err?: Error | boolean): void;
}

/** A pool: pg's `Pool`. */
export interface PgPool {
  connect(): Promise<PgClient>;
}

/**
 * The client type a pool hands out. pg's Pool declares `connect()` twice (a Promise and a callback
 * form); the first pattern reads the Promise form out of that pair.
 */
export type PgClientOf<P> = P extends { connect(): Promise<infer C extends PgClient>; connect(callback: never): void }
  ? C
  : P extends { connect(): Promise<infer C extends PgClient> }
    ? C
    : PgClient;
