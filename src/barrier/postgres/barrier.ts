/**
 * The branch barrier for participants that keep their data in PostgreSQL: the barrier row of a
 * branch and the handler's own statements are one local transaction.
 *
 *   BEGIN
 *   INSERT … ON CONFLICT DO UPDATE … RETURNING   the branch's row, created if new, locked either way
 *   rules.decide()                               duplicate / refused → ROLLBACK, the handler never runs
 *   the handler's statements                     on the same client
 *   UPDATE the row … WHERE (fencing_token, attempt) <= (this attempt's)
 *   COMMIT                                       both land, or neither
 *
 * The row lock serialises the attempts of one branch: a second attempt waits for the first to
 * commit or roll back, then reads what it left (a duplicate, or nothing).
 */
import { AbortError, ValidationError } from '../../errors.js';
import type { SagaStep, TccResource } from '../../resource.js';
import { BarrierDatabaseError, BarrierRefused } from '../errors.js';
import { sagaStep, tccResource, type BarrierSagaHandlers, type BarrierTccHandlers } from '../handlers.js';
import { BarrierRefusal, barrierCall, decide, type BarrierCall, type BarrierContext, type BarrierOp, type BarrierRecord, type BarrierResult } from '../rules.js';
import { validateXid } from '../../store/index.js';
import { DEFAULT_BARRIER_TABLE, validateTable } from './migration.js';
import type { PgClient, PgClientOf, PgPool, PgQueryResult } from './types.js';

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

export interface PgBarrierOptions {
  /** The barrier's table, as `applyBarrierMigration` created it. @default 'txloop_barrier' */
  table?: string;
  /**
   * The isolation level of the transactions `run()` begins. Under the stricter two, a concurrent
   * attempt of the same branch may fail with a serialization error (SQLSTATE 40001): nothing is
   * written, and the attempt is retried as any failed one. @default 'read committed'
   */
  isolation?: IsolationLevel;
  /**
   * How long an attempt waits for the branch's row while another attempt of the same branch holds
   * it (a handler still running past its timeout, say) before it fails with SQLSTATE 55P03 and is
   * retried. @default PostgreSQL's lock_timeout (0: no limit)
   */
  lockTimeoutMs?: number;
}

const ISOLATION: readonly IsolationLevel[] = ['read committed', 'repeatable read', 'serializable'];
/**
 * The branch id of a 2-phase message's submit marker row, `(xid, MESSAGE_MARKER)`: no branch can
 * have it (a branch id has no ':'). Its `phase1_state` says `applied` (the local transaction
 * committed it) or `blocked` (the check-back came first, so the message is discarded); the
 * migration's table holds it as it is.
 */
export const MESSAGE_MARKER = 'txloop:msg';
const COLUMNS = 'xid, branch_id, phase1, phase1_state, phase2, empty_rollback, fencing_token::text AS fencing_token, attempt, created_at, updated_at';

/** What an error names: a branch and its op, or the table-wide call. */
type ErrorSubject = Pick<BarrierDatabaseError, 'xid' | 'branchId' | 'op'>;

interface Row {
  xid: string;
  branch_id: string;
  phase1: string | null;
  phase1_state: string | null;
  phase2: string | null;
  empty_rollback: boolean;
  fencing_token: string;
  attempt: number;
  created_at: Date | string;
  updated_at: Date | string;
}

/**
 * The branch barrier over PostgreSQL. One per participant; pass the `pg.Pool` your handlers write
 * their data through, after `applyBarrierMigration(pool)`.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * import { PgBarrier, applyBarrierMigration } from 'txloop/barrier/postgres';
 *
 * const pool = new pg.Pool({ connectionString });
 * await applyBarrierMigration(pool);
 * const barrier = new PgBarrier(pool);
 * bank.resource('debit', barrier.tcc({
 *   try: (ctx, sql) => sql.query('UPDATE account SET frozen = frozen + $2 WHERE id = $1 AND balance - frozen >= $2', [ctx.payload.account, ctx.payload.amount]).then(mustHit),
 *   confirm: (ctx, sql) => sql.query('UPDATE account SET balance = balance - $2, frozen = frozen - $2 WHERE id = $1', [ctx.payload.account, ctx.payload.amount]),
 *   cancel: (ctx, sql) => sql.query('UPDATE account SET frozen = frozen - $2 WHERE id = $1', [ctx.payload.account, ctx.payload.amount]),
 * }));
 * ```
 */
/** How long a check-back waits for a local transaction holding its message's marker, by default. */
const CHECK_BACK_LOCK_TIMEOUT_MS = 5_000;

export class PgBarrier<P extends PgPool = PgPool> {
  readonly table: string;
  private readonly begin: string;
  private readonly lockTimeoutMs: number | undefined;

  constructor(
    private readonly pool: P,
    options: PgBarrierOptions = {},
  ) {
    this.table = validateTable(options.table ?? DEFAULT_BARRIER_TABLE);
    const isolation = options.isolation ?? 'read committed';
    if (!ISOLATION.includes(isolation)) throw new ValidationError('isolation', `use one of ${ISOLATION.join(', ')}`);
    const lockTimeoutMs = options.lockTimeoutMs;
    if (lockTimeoutMs !== undefined && (!Number.isSafeInteger(lockTimeoutMs) || lockTimeoutMs < 1)) throw new ValidationError('lockTimeoutMs', `${JSON.stringify(lockTimeoutMs)} is not a positive integer of ms`);
    // One round trip: a simple query may carry both statements.
    this.lockTimeoutMs = lockTimeoutMs;
    this.begin = `BEGIN ISOLATION LEVEL ${isolation.toUpperCase()}` + (lockTimeoutMs ? `; SET LOCAL lock_timeout = ${lockTimeoutMs}` : '');
  }

  /**
   * Runs `fn` under the barrier for `op` (`'try' | 'confirm' | 'cancel'`, or a saga's
   * `'action' | 'compensate'`) in one transaction on a client of the pool: run your statements on
   * the client `fn` gets (do not commit, roll back or release it). `fn` is not called for a
   * duplicate or an empty rollback (the result says which). Refusals throw {@link BarrierRefused};
   * `fn`'s own errors (a constraint violated, say) roll everything back and are thrown as they are;
   * the barrier's own SQL failing is {@link BarrierDatabaseError}. Once the context's signal has
   * fired, nothing commits: a refusal or a duplicate is still reported as such, any other call
   * fails with AbortError.
   */
  async run<T>(ctx: BarrierContext, op: BarrierOp, fn: (client: PgClientOf<P>) => Promise<T> | T): Promise<BarrierResult<T>> {
    const call = barrierCall(ctx, op);
    return this.transaction(call, (client) => this.within(call, client, ctx.signal, fn));
  }

  /**
   * The barrier inside a transaction you opened yourself on `client` (an ORM's, say): it locks and
   * reads the branch's row, runs `fn` if the rules say so and writes the row — you commit, or roll
   * back on a throw. A duplicate or empty rollback returns without calling `fn`; commit anyway
   * (it records the empty rollback).
   */
  async inTransaction<C extends PgClient, T>(client: C, ctx: BarrierContext, op: BarrierOp, fn: (client: C) => Promise<T> | T): Promise<BarrierResult<T>> {
    return this.within(barrierCall(ctx, op), client, ctx.signal, fn);
  }

  /** Wraps TCC handlers: each gets the transaction's client; register the result with `service.resource(name, …)`. */
  tcc<Payload = unknown, R = unknown>(handlers: BarrierTccHandlers<Payload, R, PgClientOf<P>>): TccResource<Payload, R | undefined> {
    return tccResource<Payload, R, PgClientOf<P>>((ctx, op, fn) => this.run(ctx, op, fn), handlers);
  }

  /** A saga step whose action and compensation write through this barrier (`service.sagaStep(name, barrier.saga({…}))`). */
  saga<Payload = unknown>(handlers: BarrierSagaHandlers<Payload, PgClientOf<P>>): SagaStep<Payload> {
    return sagaStep<Payload, PgClientOf<P>>((ctx, op, fn) => this.run(ctx, op, fn), handlers);
  }

  /** A branch's barrier row, or undefined when nothing was recorded for it. */
  async get(xid: string, branchId: string): Promise<BarrierRecord | undefined> {
    const call = { xid, branchId, op: 'get' } as const;
    const client = await this.connect(call);
    try {
      const { rows } = await this.sql(call, client, `SELECT ${COLUMNS} FROM ${this.table} WHERE xid = $1 AND branch_id = $2`, [xid, branchId]);
      return rows[0] ? recordOf(rows[0] as Row) : undefined;
    } finally {
      client.release?.();
    }
  }

  /**
   * Deletes the rows last written more than `olderThanMs` ago, and returns how many. A row is what
   * refuses a Try arriving after its cancel, so keep rows well past the longest time a Try may
   * still be on its way (its transaction's timeout, plus the handler's own delays): a day is a
   * safe choice.
   */
  async prune(options: { olderThanMs: number }): Promise<number> {
    const { olderThanMs } = options;
    if (!Number.isFinite(olderThanMs) || olderThanMs < 0) throw new ValidationError('olderThanMs', `${JSON.stringify(olderThanMs)} is not a duration in ms`);
    const call = { xid: undefined, branchId: undefined, op: 'prune' } as const;
    const client = await this.connect(call);
    try {
      const res = await this.sql(call, client, `DELETE FROM ${this.table} WHERE updated_at < now() - make_interval(secs => $1::double precision / 1000)`, [olderThanMs]);
      return res.rowCount ?? 0;
    } finally {
      client.release?.();
    }
  }

  /**
   * Writes the submit marker of the 2-phase message `xid` inside the local transaction you opened
   * on `client` — `BEGIN`, your statements (the outbox row), `markSubmitted`, `COMMIT` — so your
   * data and the marker commit together or not at all, and {@link checkBack} can answer from them.
   * Write it early: from then on a check-back of this message waits for your transaction's outcome.
   * Throws {@link BarrierRefused}: `hanging` when the check-back already answered rolled-back (roll
   * back: the message is discarded), `conflict` when this message's marker already committed (its
   * local transaction ran twice). Under repeatable read or serializable, a check-back's marker
   * committed after your transaction began fails it with SQLSTATE 40001 instead.
   */
  async markSubmitted(client: PgClient, xid: string): Promise<void> {
    const call = { xid: validateXid(xid), branchId: MESSAGE_MARKER, op: 'msg' } as const;
    const inserted = await this.sql(call, client, `INSERT INTO ${this.table} (xid, branch_id, phase1_state) VALUES ($1, $2, 'applied') ON CONFLICT (xid, branch_id) DO NOTHING`, [xid, MESSAGE_MARKER]);
    if (inserted.rowCount === 1) return;
    // The conflicting row committed (an insert waits for an uncommitted one): read what it says.
    const { rows } = await this.sql(call, client, `SELECT phase1_state FROM ${this.table} WHERE xid = $1 AND branch_id = $2`, [xid, MESSAGE_MARKER]);
    if ((rows[0] as { phase1_state?: string } | undefined)?.phase1_state === 'blocked') {
      throw new BarrierRefused(xid, MESSAGE_MARKER, 'msg', BarrierRefusal.HANGING, `message ${xid}: its check-back already answered rolled-back, so the message is discarded; roll this local transaction back`);
    }
    throw new BarrierRefused(xid, MESSAGE_MARKER, 'msg', BarrierRefusal.CONFLICT, `message ${xid}: its submit marker is already committed (its local transaction ran twice); roll this one back`);
  }

  /**
   * Runs `fn` (your statements, on the client it gets) and the submit marker of message `xid` as
   * one local transaction on a client of the pool, the marker first. Returns what `fn` returns once
   * it committed; throws as {@link markSubmitted} does, `fn`'s own errors as they are (everything
   * rolled back), {@link BarrierDatabaseError} when the barrier's SQL fails.
   */
  async messageTransaction<T>(xid: string, fn: (client: PgClientOf<P>) => Promise<T> | T): Promise<T> {
    const call = { xid: validateXid(xid), branchId: MESSAGE_MARKER, op: 'msg' } as const;
    return this.transaction(call, async (client) => {
      await this.markSubmitted(client, xid);
      return fn(client);
    });
  }

  /**
   * A check-back for 2-phase messages whose local transactions write their marker with
   * {@link markSubmitted} (or {@link messageTransaction}), answering from this table, definitively:
   * `committed` when the marker committed; otherwise it writes a blocking marker, insert-if-absent,
   * so a local transaction still running can no longer commit its own (its insert conflicts), and
   * answers `rolled-back`. A local transaction holding an uncommitted marker makes it wait for that
   * transaction to commit or roll back — for `lockTimeoutMs` at most (default 5 s, or the barrier's
   * own), then it answers `unknown` (asked again later) rather than hold a connection of your pool
   * behind a local transaction that hangs. Register it with
   * `service.checkBack(name, ({ xid }) => barrier.checkBack(xid))`. Keep markers (prune) well past
   * the longest a message may stay unsubmitted: a pruned marker reads as never committed.
   */
  async checkBack(xid: string, options: { lockTimeoutMs?: number } = {}): Promise<'committed' | 'rolled-back' | 'unknown'> {
    const call = { xid: validateXid(xid), branchId: MESSAGE_MARKER, op: 'check-back' } as const;
    const waitMs = options.lockTimeoutMs ?? this.lockTimeoutMs ?? CHECK_BACK_LOCK_TIMEOUT_MS;
    if (!Number.isSafeInteger(waitMs) || waitMs < 1) throw new ValidationError('options.lockTimeoutMs', `${JSON.stringify(waitMs)} is not a positive integer of ms`);
    const client = await this.connect(call);
    try {
      // The blocking insert in a transaction of its own, bounded by the lock timeout; then the
      // SELECT, whose snapshot comes after that insert waited out a concurrent marker, so it sees
      // what that transaction committed.
      await this.sql(call, client, `BEGIN; SET LOCAL lock_timeout = ${waitMs}`);
      try {
        await client.query(`INSERT INTO ${this.table} (xid, branch_id, phase1_state) VALUES ($1, $2, 'blocked') ON CONFLICT (xid, branch_id) DO NOTHING`, [xid, MESSAGE_MARKER]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        // lock_not_available: the local transaction is still open; it is not for us to guess.
        if ((err as { code?: unknown }).code === '55P03') return 'unknown';
        throw new BarrierDatabaseError(call.xid, call.branchId, call.op, err, false);
      }
      const { rows } = await this.sql(call, client, `SELECT phase1_state FROM ${this.table} WHERE xid = $1 AND branch_id = $2`, [xid, MESSAGE_MARKER]);
      return (rows[0] as { phase1_state?: string } | undefined)?.phase1_state === 'applied' ? 'committed' : 'rolled-back';
    } finally {
      client.release?.();
    }
  }

  /** Runs `fn` in one transaction (this barrier's isolation and lock timeout) on a client of the pool, and commits it. */
  private async transaction<T>(call: ErrorSubject, fn: (client: PgClientOf<P>) => Promise<T>): Promise<T> {
    const client = await this.connect(call);
    let broken: Error | undefined;
    try {
      await this.sql(call, client, this.begin);
      let open = true;
      try {
        const result = await fn(client as PgClientOf<P>);
        open = false;
        try {
          await client.query('COMMIT');
        } catch (err) {
          // An answer with a SQLSTATE means PostgreSQL rolled the transaction back; no answer, who knows.
          const answered = hasSqlState(err);
          if (!answered) broken = err instanceof Error ? err : new Error(String(err));
          throw new BarrierDatabaseError(call.xid, call.branchId, call.op, err, !answered);
        }
        return result;
      } finally {
        if (open) {
          await client.query('ROLLBACK').catch((err: unknown) => {
            broken = err instanceof Error ? err : new Error(String(err));
          });
        }
      }
    } finally {
      // A connection that failed mid-transaction is discarded, not handed to the next caller.
      client.release?.(broken);
    }
  }

  private async within<C extends PgClient, T>(call: BarrierCall, client: C, signal: AbortSignal | undefined, fn: (client: C) => Promise<T> | T): Promise<BarrierResult<T>> {
    // Creates the row if new and locks it either way (DO UPDATE, unlike DO NOTHING, returns and locks an existing row).
    const { rows } = await this.sql(
      call,
      client,
      `INSERT INTO ${this.table} AS b (xid, branch_id) VALUES ($1, $2)
       ON CONFLICT (xid, branch_id) DO UPDATE SET xid = b.xid
       RETURNING ${COLUMNS}`,
      [call.xid, call.branchId],
    );
    const decision = decide(recordOf(rows[0] as Row), call, Date.now());
    if (decision.kind === 'refuse') throw new BarrierRefused(call.xid, call.branchId, call.op, decision.reason, decision.message);
    if (decision.kind === 'duplicate') return { outcome: 'duplicate', applied: false };
    // What the row says is answered whatever the signal; from here on, the handler's time being up
    // (timeout, deadline, leadership lost) means its effect must not land.
    if (signal?.aborted) throw new AbortError(call.xid, signal.reason);
    let value: T | undefined;
    if (decision.kind === 'run') value = await fn(client);
    if (signal?.aborted) throw new AbortError(call.xid, signal.reason);
    const n = decision.next;
    const updated = await this.sql(
      call,
      client,
      `UPDATE ${this.table} SET phase1 = $3, phase1_state = $4, phase2 = $5, empty_rollback = $6, fencing_token = $7, attempt = $8, updated_at = now()
       WHERE xid = $1 AND branch_id = $2 AND (fencing_token, attempt) <= ($7::bigint, $8::integer)`,
      [call.xid, call.branchId, n.phase1 ?? null, n.phase1State ?? null, n.phase2 ?? null, n.emptyRollback ?? false, n.fencingToken, n.attempt],
    );
    if (updated.rowCount !== 1) {
      // The row is locked since it was read, so only a writer that ignores the lock gets here.
      throw new BarrierRefused(call.xid, call.branchId, call.op, BarrierRefusal.STALE_TERM, `${call.op} of branch ${call.branchId} in ${call.xid} refused: a newer fencing token wrote its barrier row`);
    }
    return decision.kind === 'run' ? { outcome: 'applied', applied: true, value: value as T } : { outcome: 'empty-rollback', applied: false };
  }

  private async connect(call: ErrorSubject): Promise<PgClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw new BarrierDatabaseError(call.xid, call.branchId, call.op, err);
    }
  }

  private async sql(call: ErrorSubject, client: PgClient, text: string, values?: unknown[]): Promise<PgQueryResult> {
    try {
      return await client.query(text, values);
    } catch (err) {
      throw new BarrierDatabaseError(call.xid, call.branchId, call.op, err);
    }
  }
}

function hasSqlState(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

const ms = (v: Date | string): number => (v instanceof Date ? v.getTime() : Date.parse(v));

function recordOf(row: Row): BarrierRecord {
  return {
    xid: row.xid,
    branchId: row.branch_id,
    ...(row.phase1 ? { phase1: row.phase1 as BarrierRecord['phase1'] } : {}),
    ...(row.phase1_state ? { phase1State: row.phase1_state as BarrierRecord['phase1State'] } : {}),
    ...(row.phase2 ? { phase2: row.phase2 as BarrierRecord['phase2'], emptyRollback: row.empty_rollback } : {}),
    fencingToken: row.fencing_token,
    attempt: row.attempt,
    createdAt: ms(row.created_at),
    updatedAt: ms(row.updated_at),
  };
}
