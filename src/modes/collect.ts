/**
 * What every mode's global step does with a finished global (invariant 8): keep it for the
 * retention, then collect it with everything of it; and how it reads the global's members from the
 * cache.
 */
import { MalformedRecord, WriteConflict } from '../errors.js';
import { requireFence, type ReconcileContext, type ReconcileResult } from '../runtime/index.js';
import { parseMember, type GlobalRecord, type MemberRecord, type Versioned } from '../store/index.js';
import { collectableAt } from './tcc/completion.js';

/**
 * Reports a global that finished by a write this service did not make (a saga's last step, a
 * message's discard): once, and only when it finished during this term — one finished before was
 * the earlier leader's to report (the service's own set dedupes the reconciles of this term).
 */
export function reportFinished(ctx: ReconcileContext, global: Versioned<GlobalRecord>): void {
  const fence = ctx.fence();
  if (fence && BigInt(global.modRevision) > BigInt(fence.createRevision)) ctx.events.completed(global.record);
}

/**
 * Writes the completion `rule` computes from the global's members as the cache holds them (TCC's
 * COMMITTED/ROLLED_BACK, a message's DELIVERED), reports it, and returns it with the members
 * counted; undefined while a member is not done, one is malformed, or the cache was behind (the
 * write lost its compares: the watch event that made it so re-queues the global).
 */
export async function completeWhenDone(ctx: ReconcileContext, global: Versioned<GlobalRecord>, rule: (g: GlobalRecord, members: MemberRecord[], now: number) => GlobalRecord | undefined): Promise<{ next: GlobalRecord; members: number } | undefined> {
  const seen = membersOf(ctx, global.record.xid);
  if (seen === undefined) return undefined;
  const next = rule(global.record, seen.members, Date.now());
  if (!next) return undefined;
  try {
    await ctx.store.globals.complete(global, next, requireFence(ctx), seen.revision);
  } catch (err) {
    if (err instanceof WriteConflict) return undefined;
    throw err;
  }
  ctx.events.completed(next);
  return { next, members: seen.members.length };
}

/** Collects the finished `global` once its retention passed; until then asks to be looked at again. */
export async function collectWhenDue(ctx: ReconcileContext, global: Versioned<GlobalRecord>): Promise<ReconcileResult> {
  const g = global.record;
  const xid = g.xid;
  const now = Date.now();
  const fence = requireFence(ctx);
  const due = collectableAt(g, membersOf(ctx, xid)?.members, ctx.options, now);
  if (now < due) {
    ctx.collectAt(xid, due);
    return;
  }
  if (await ctx.store.collection.collect(xid, fence, ctx.cached(xid))) {
    ctx.logger.debug({ xid }, 'collected after retention');
    ctx.events.collected(xid);
  } else {
    // Re-queued by the branch's next change; until then it stays for inspection.
    ctx.logger.warn({ xid }, 'not collected: a branch is not done (a late Try re-opened its cancel), or the transaction changed meanwhile; looked at again on its next change');
  }
  return;
}

/**
 * The global's members from the cache and the newest revision among them; undefined when one is
 * malformed (completion must not guess; it is reported, and waits until it is repaired).
 */
export function membersOf(ctx: ReconcileContext, xid: string): { members: MemberRecord[]; revision: string } | undefined {
  const members: MemberRecord[] = [];
  let revision = 0n;
  for (const key of ctx.memberKeys(xid)) {
    const kv = ctx.cache.get(key);
    if (!kv) continue;
    try {
      members.push(parseMember.ofEntry(key, kv));
    } catch (err) {
      if (!(err instanceof MalformedRecord)) throw err;
      ctx.malformed.report(key, 'member', err.problem, kv.modRevision);
      return undefined;
    }
    if (BigInt(kv.modRevision) > revision) revision = BigInt(kv.modRevision);
  }
  return { members, revision: revision.toString() };
}
