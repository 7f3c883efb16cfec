/**
 * Serves a resource as a REST-TCC participant over plain node:http (no framework): `POST <path>`
 * runs its Try and answers `201 { participantLink: { uri, expires } }`; `PUT <uri>` confirms (204,
 * or 404 once cancelled or expired); `DELETE <uri>` cancels (204; 404 once expired; 405 when the
 * participant takes no explicit cancel); `GET <uri>` shows the reservation, for diagnosis. A
 * reservation not confirmed by its expiry is cancelled by the participant itself, as the protocol
 * requires.
 *
 * Each reservation moves reserved → confirming → confirmed, or reserved → cancelled, each move a
 * compare-and-set on the store (ReservationStore.write), so a confirm and a cancel or the expiry
 * never both win. A reservation is cancelled only while reserved; once a confirm claimed it, it is
 * never cancelled. Within one process, the requests and the sweep of one reservation also take
 * turns.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ValidationError, errorMessage } from '../errors.js';

export type ReservationState = 'reserved' | 'confirming' | 'confirmed' | 'cancelled';

export interface Reservation<R = unknown> {
  id: string;
  state: ReservationState;
  /** What the Try returned: handed to confirm and cancel. */
  data: R;
  /** Epoch ms: a reservation still reserved then is cancelled by the participant. */
  expiresAt: number;
  /** cancelled: its cancel handler has run to success (else the sweep runs it again). */
  applied: boolean;
  /** cancelled: by a DELETE, or by its expiry. */
  cancelledBy?: 'request' | 'expiry';
  updatedAt: number;
  /** Grows with every write; a write names the revision it read (compare-and-set). */
  rev: number;
}

/**
 * Where the reservations are kept. The default keeps them in this process's memory: they are lost
 * when it exits (the coordinator's PUTs then get 404, its confirm answers 404 or 409). Give a store
 * over your database to keep them across restarts; several processes may share one as long as
 * `write` is a compare-and-set on `rev`.
 */
export interface ReservationStore<R = unknown> {
  get(id: string): Promise<Reservation<R> | undefined> | Reservation<R> | undefined;
  /** Writes `next` only if the stored reservation is at revision `rev` (0: none stored yet); whether it wrote. */
  write(next: Reservation<R>, rev: number): Promise<boolean> | boolean;
  /**
   * What the sweep looks at: reservations still reserved with `expiresAt <= now`, cancelled ones
   * not applied, and finished ones (confirmed, or cancelled and applied) updated before `finishedBefore`.
   */
  due(now: number, finishedBefore: number): Promise<Reservation<R>[]> | Reservation<R>[];
  delete(id: string): Promise<void> | void;
}

/** The in-memory ReservationStore. */
export class MemoryReservations<R = unknown> implements ReservationStore<R> {
  private readonly byId = new Map<string, Reservation<R>>();

  get(id: string): Reservation<R> | undefined {
    const r = this.byId.get(id);
    return r && { ...r };
  }

  write(next: Reservation<R>, rev: number): boolean {
    if ((this.byId.get(next.id)?.rev ?? 0) !== rev) return false;
    this.byId.set(next.id, { ...next });
    return true;
  }

  due(now: number, finishedBefore: number): Reservation<R>[] {
    return [...this.byId.values()]
      .filter((r) => (r.state === 'reserved' && r.expiresAt <= now) || (r.state === 'cancelled' && !r.applied) || (finished(r) && r.updatedAt < finishedBefore))
      .map((r) => ({ ...r }));
  }

  delete(id: string): void {
    this.byId.delete(id);
  }

  get size(): number {
    return this.byId.size;
  }
}

export interface RestTccTryRequest<B> {
  /** The reservation's id: the last segment of its link. */
  id: string;
  /** The POST's JSON body (undefined when empty). */
  body: B;
  req: IncomingMessage;
}

export interface RestTccParticipantOptions<B, R> {
  /** Where the Try is served (`POST /bookings`); links are `<publicUrl><path>/<id>`. */
  path: string;
  /** The origin (and any prefix) links are built on, e.g. `https://swiss.example`. @default http:// and the request's Host */
  publicUrl?: string;
  /** How long a reservation waits for its confirm. */
  ttlMs: number;
  /** Reserves (a thrown error with a numeric `status` answers that status; anything else 500). */
  try(ctx: RestTccTryRequest<B>): Promise<R> | R;
  /** Applies a reservation; must be idempotent (a confirm interrupted by a crash runs again). */
  confirm(ctx: { id: string; data: R }): Promise<void> | void;
  /** Releases a reservation, on a DELETE or at its expiry; must be idempotent (retried until it succeeds). */
  cancel(ctx: { id: string; data: R; expired: boolean }): Promise<void> | void;
  /** false: DELETE answers 405 and reservations are released only at their expiry. @default true */
  explicitCancel?: boolean;
  store?: ReservationStore<R>;
  /** How often expired reservations are cancelled (and failed cancels retried). @default 1000 */
  sweepMs?: number;
  /**
   * How long a finished reservation is remembered, so that a late PUT of a confirmed one still
   * answers 204 (after that, 404): keep it well beyond the coordinator's retries. @default 86_400_000
   */
  keepMs?: number;
  /** Largest Try body. @default 1_048_576 */
  maxBodyBytes?: number;
}

const ID = /^[A-Za-z0-9-]{1,64}$/;

/**
 * A resource served as REST-TCC links. `handle(req, res)` answers the requests under `path` and
 * resolves false for any other (serve them yourself); `listener` answers those 404, for
 * `http.createServer(participant.listener)`. `close()` stops the expiry sweep.
 */
export class RestTccParticipant<B = unknown, R = unknown> {
  readonly store: ReservationStore<R>;
  private readonly path: string;
  private readonly keepMs: number;
  private readonly turns = new Map<string, Promise<unknown>>();
  private readonly timer: NodeJS.Timeout;
  private sweeping: Promise<void> | undefined;

  constructor(private readonly o: RestTccParticipantOptions<B, R>) {
    if (typeof o.path !== 'string' || !o.path.startsWith('/')) throw new ValidationError('path', `must start with "/", got ${JSON.stringify(o.path)}`);
    if (!Number.isInteger(o.ttlMs) || o.ttlMs <= 0) throw new ValidationError('ttlMs', `must be a positive whole number of milliseconds, got ${JSON.stringify(o.ttlMs)}`);
    for (const fn of ['try', 'confirm', 'cancel'] as const) if (typeof o[fn] !== 'function') throw new ValidationError(fn, 'must be a function');
    this.path = o.path.replace(/\/+$/, '') || '/';
    this.store = o.store ?? new MemoryReservations<R>();
    this.keepMs = o.keepMs ?? 86_400_000;
    this.timer = setInterval(() => void this.sweep(), o.sweepMs ?? 1000).unref();
  }

  readonly listener = (req: IncomingMessage, res: ServerResponse): void => {
    void this.handle(req, res).then((handled) => {
      if (!handled) problem(res, 404, 'Not Found', `nothing at ${req.url}`);
    });
  };

  /** Answers a request under `path`; false (nothing answered) for any other. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '') || '/';
    const id = pathname.startsWith(`${this.path === '/' ? '' : this.path}/`) ? pathname.slice(this.path === '/' ? 1 : this.path.length + 1) : undefined;
    try {
      if (pathname === this.path && req.method === 'POST') await this.try(req, res);
      else if (pathname === this.path) problem(res, 405, 'Method Not Allowed', `${req.method} ${pathname}: the Try is POST`, { allow: 'POST' });
      else if (id === undefined || !ID.test(id)) return false;
      else if (req.method === 'PUT') await this.confirm(id, res);
      else if (req.method === 'DELETE') await this.cancel(id, res);
      else if (req.method === 'GET') await this.show(id, res);
      else problem(res, 405, 'Method Not Allowed', `${req.method} on a participant link`, { allow: this.o.explicitCancel === false ? 'GET, PUT' : 'GET, PUT, DELETE' });
    } catch (err) {
      if (!res.headersSent) problem(res, statusOf(err) ?? 500, 'Participant error', errorMessage(err));
      else res.destroy();
    }
    return true;
  }

  /** Cancels the reservations past their expiry, retries failed cancels, forgets old finished ones. */
  sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      const now = Date.now();
      try {
        for (const r of await this.store.due(now, now - this.keepMs)) {
          await this.turn(r.id, async () => {
            const cur = await this.store.get(r.id);
            if (!cur) return;
            if (finished(cur) && cur.updatedAt < now - this.keepMs) await this.store.delete(cur.id);
            else if (cur.state === 'reserved' && cur.expiresAt <= Date.now()) await this.release(cur, 'expiry').catch(() => undefined);
            else if (cur.state === 'cancelled' && !cur.applied) await this.release(cur, cur.cancelledBy ?? 'expiry').catch(() => undefined);
          });
        }
      } catch {
        // The store failed; the next sweep tries again.
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async try(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readJson(req, this.o.maxBodyBytes ?? 1_048_576)) as B;
    const id = randomUUID();
    const data = await this.o.try({ id, body, req });
    const now = Date.now();
    const expiresAt = now + this.o.ttlMs;
    if (!(await this.store.write({ id, state: 'reserved', data, expiresAt, applied: false, updatedAt: now, rev: 1 }, 0))) throw new Error(`reservation ${id} already exists`);
    const base = (this.o.publicUrl ?? `http://${req.headers.host ?? 'localhost'}`).replace(/\/+$/, '');
    const uri = `${base}${this.path === '/' ? '' : this.path}/${id}`;
    const expires = new Date(expiresAt).toISOString();
    res.writeHead(201, { 'content-type': 'application/json', location: uri });
    res.end(JSON.stringify({ participantLink: { uri, expires } }));
  }

  private confirm(id: string, res: ServerResponse): Promise<void> {
    return this.turn(id, async () => {
      for (;;) {
        const r = await this.store.get(id);
        if (!r || r.state === 'cancelled') return problem(res, 404, 'Not Found', r ? `reservation ${id} was cancelled${r.cancelledBy === 'expiry' ? ' at its expiry' : ''}` : `no reservation ${id}`);
        if (r.state === 'confirmed') return noContent(res);
        if (r.state === 'reserved' && Date.now() >= r.expiresAt) {
          await this.release(r, 'expiry').catch(() => undefined);
          return problem(res, 404, 'Not Found', `reservation ${id} expired at ${new Date(r.expiresAt).toISOString()}`);
        }
        // Claimed (reserved → confirming) before the confirm runs, so nothing cancels it meanwhile; a
        // confirm interrupted by a crash leaves it confirming, and the next PUT runs it again.
        const claimed = r.state === 'confirming' ? r : next(r, { state: 'confirming' });
        if (claimed !== r && !(await this.store.write(claimed, r.rev))) continue;
        try {
          await this.o.confirm({ id, data: r.data });
        } catch (err) {
          // Not confirmed: reserved again (its expiry still holds), and the coordinator retries.
          await this.store.write(next(claimed, { state: 'reserved' }), claimed.rev);
          throw err;
        }
        await this.store.write(next(claimed, { state: 'confirmed' }), claimed.rev);
        return noContent(res);
      }
    });
  }

  private cancel(id: string, res: ServerResponse): Promise<void> {
    if (this.o.explicitCancel === false) {
      problem(res, 405, 'Method Not Allowed', 'this participant takes no explicit cancel: its reservations are released at their expiry', { allow: 'GET, PUT' });
      return Promise.resolve();
    }
    return this.turn(id, async () => {
      const r = await this.store.get(id);
      if (!r) return problem(res, 404, 'Not Found', `no reservation ${id}`);
      if (r.state === 'confirming' || r.state === 'confirmed') return problem(res, 409, 'Conflict', `reservation ${id} is ${r.state}: it can no longer be cancelled`);
      const expired = r.state === 'cancelled' ? r.cancelledBy === 'expiry' : Date.now() >= r.expiresAt;
      if (r.state === 'reserved' || !r.applied) await this.release(r, r.state === 'cancelled' ? (r.cancelledBy ?? 'request') : expired ? 'expiry' : 'request');
      return expired ? problem(res, 404, 'Not Found', `reservation ${id} expired at ${new Date(r.expiresAt).toISOString()}`) : noContent(res);
    });
  }

  private async show(id: string, res: ServerResponse): Promise<void> {
    const r = await this.store.get(id);
    if (!r) return problem(res, 404, 'Not Found', `no reservation ${id}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: r.id, state: r.state, expires: new Date(r.expiresAt).toISOString(), ...(r.cancelledBy ? { cancelledBy: r.cancelledBy } : {}) }));
  }

  /** reserved → cancelled (compare-and-set), then the cancel handler; a failure leaves it for the sweep. */
  private async release(r: Reservation<R>, by: 'request' | 'expiry'): Promise<void> {
    let cur = r;
    if (cur.state === 'reserved') {
      const cancelled = next(cur, { state: 'cancelled', cancelledBy: by, applied: false });
      if (!(await this.store.write(cancelled, cur.rev))) throw new Error(`reservation ${r.id} changed meanwhile`);
      cur = cancelled;
    }
    if (cur.state !== 'cancelled' || cur.applied) return;
    await this.o.cancel({ id: cur.id, data: cur.data, expired: cur.cancelledBy === 'expiry' });
    await this.store.write(next(cur, { applied: true }), cur.rev);
  }

  /** Runs `fn` after the calls on the same reservation queued before it (this process only). */
  private turn<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.turns.get(id) ?? Promise.resolve()).then(fn, fn);
    const settled = run.catch(() => undefined);
    this.turns.set(id, settled);
    void settled.then(() => {
      if (this.turns.get(id) === settled) this.turns.delete(id);
    });
    return run;
  }
}

function next<R>(r: Reservation<R>, change: Partial<Reservation<R>>): Reservation<R> {
  return { ...r, ...change, updatedAt: Date.now(), rev: r.rev + 1 };
}

function finished(r: Reservation<unknown>): boolean {
  return r.state === 'confirmed' || (r.state === 'cancelled' && r.applied);
}

function noContent(res: ServerResponse): void {
  res.writeHead(204).end();
}

function problem(res: ServerResponse, status: number, title: string, detail: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/problem+json', ...headers });
  res.end(JSON.stringify({ type: 'about:blank', title, status, detail }));
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { status?: unknown; statusCode?: unknown } | null)?.status ?? (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' && Number.isInteger(s) && s >= 400 && s <= 599 ? s : undefined;
}

async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw Object.assign(new Error(`the Try's body is larger than ${max} bytes`), { status: 413 });
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw Object.assign(new Error("the Try's body is not JSON"), { status: 400 });
  }
}
